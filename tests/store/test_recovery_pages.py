"""Recovery judges each page by its own IFD, also when it reads one IFD per kind of page.

tifffile reads one page of each distinct IFD (pages alike but for where their strips and
values lie); pages of another size, or a journal line that disagrees with its page, must
still be told apart page by page. Ground truth: the frames written, and their journal lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from nbo_recorder.capture.documents import FrameRecord, RunStart, StateSnapshot
from nbo_recorder.profile.load import load_profile
from nbo_recorder.store.journal import JournalWriter, journal_path
from nbo_recorder.store.recovery import recover
from nbo_recorder.store.tiff_writer import TiffPageWriter
from tests.helpers import DEMO_PROFILE

FRAMES = 40
WRONG_LINE = 30  # this frame's journal line gives another size than its page has


def _size(i: int) -> tuple[int, int]:
    """(height, width) of frame ``i``: the run changes its frame size half-way."""
    return (8, 8) if i < FRAMES // 2 else (4, 6)


def _crashed(path: Path, bigtiff: bool) -> list[np.ndarray]:
    """FRAMES pages and their journal, no OME-XML; the frames written."""
    journal = JournalWriter(journal_path(path))
    journal.start(RunStart(started_at="2026-11-23T10:00:00+00:00",
                           profile=load_profile(DEMO_PROFILE).model_dump(mode="json"),
                           sequence={}, width=8, height=8, dtype="uint16", camera="Camera",
                           versions={}))
    snapshot = StateSnapshot(uid=0, elapsed_s=0.0, trigger="test",
                             values={("Camera", "Gain"): "1"})
    writer = TiffPageWriter(path, bigtiff=bigtiff, run_id=journal.run_id)
    frames = []
    for i in range(FRAMES):
        h, w = _size(i)
        frame = np.full((h, w), i, dtype=np.uint16)
        line_h, line_w = (8, 8) if i == WRONG_LINE else (h, w)
        journal.frame(FrameRecord(index=i, p=0, t=i, c=0, z=0, channel=None,
                                  elapsed_ms=float(i), exposure_ms=10.0, x_um=None, y_um=None,
                                  z_um=None, pixel_size_um=1.0, snapshot=0, width=line_w,
                                  height=line_h), snapshot)
        writer.write(frame)
        frames.append(frame)
    writer.close()
    journal.close()
    return frames


@pytest.mark.parametrize("bigtiff", [False, True], ids=["classic", "bigtiff"])
def test_pages_of_two_sizes_and_a_wrong_line_are_told_apart(tmp_path, bigtiff):
    path = tmp_path / "sizes.ome.tif"
    frames = _crashed(path, bigtiff)
    report = recover(path)
    assert report.intact_pages == FRAMES and not report.dropped_pages
    assert report.undescribed_pages == (WRONG_LINE,)
    assert report.frames_recovered == FRAMES - 1
    assert any(f"page {WRONG_LINE}'s IFD says (4, 6)" in note for note in report.notes)
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome
        got = [page.asarray() for page in tf.pages]
    assert [g.shape for g in got] == [f.shape for f in frames]
    assert all(np.array_equal(g, f) for g, f in zip(got, frames, strict=True))
