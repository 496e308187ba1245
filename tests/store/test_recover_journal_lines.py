"""Reading a journal's frame lines: what the writer wrote comes back field for field, a value
of a convertible type is converted, and a wrong one is refused by its line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbo_recorder.capture.documents import FrameRecord, RunStart, StateSnapshot
from nbo_recorder.store.journal import JournalError, JournalWriter, read_journal

START = RunStart(started_at="2026-01-01T00:00:00", profile={}, sequence={}, width=8,
                 height=8, dtype="uint16", camera="Camera", versions={})
SNAPSHOT = StateSnapshot(uid=0, values={("Camera", "Exposure"): "10"}, elapsed_s=0.0,
                         trigger="start")
FRAMES = [
    FrameRecord(index=0, p=0, t=0, c=0, z=0, channel="DAPI", elapsed_ms=0.5, exposure_ms=10.0,
                x_um=None, y_um=1.5, z_um=None, pixel_size_um=0.65, snapshot=0),
    FrameRecord(index=1, p=1, t=2, c=1, z=3, channel=None, elapsed_ms=12.25, exposure_ms=20.0,
                x_um=-3.0, y_um=None, z_um=7.5, pixel_size_um=0.0, snapshot=0,
                hardware_triggered=True, g=4, width=16, height=12),
]


def _journal(tmp_path: Path) -> Path:
    path = tmp_path / "run.ome.tif.nbo-journal"
    writer = JournalWriter(path)
    writer.start(START)
    for frame in FRAMES:
        writer.frame(frame, SNAPSHOT)
    writer.close()
    return path


def _with_last_frame(path: Path, values: list[object]) -> int:
    """Replace the last frame line's values; its 1-based line number."""
    lines = path.read_text().splitlines()
    lines[-1] = json.dumps({"f": values})
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def test_frames_come_back_as_written(tmp_path: Path) -> None:
    run = read_journal(_journal(tmp_path))
    assert run.frames == FRAMES
    assert run.snapshots == {0: SNAPSHOT}


def test_a_whole_number_for_a_float_field_is_read_as_a_float(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    _with_last_frame(path, [1, 0, 0, 0, 0, None, 12, 20, None, None, None, 1, 0])
    frame = read_journal(path).frames[-1]
    assert frame.elapsed_ms == 12.0 and type(frame.elapsed_ms) is float
    assert frame.pixel_size_um == 1.0 and type(frame.pixel_size_um) is float


@pytest.mark.parametrize("bad", [
    ["one", 0, 0, 0, 0, None, 1.0, 1.0, None, None, None, 1.0, 0],
    [1, 0, 0, 0, 0, 5, 1.0, 1.0, None, None, None, 1.0, 0],
    [1, 0, 0, 0, 0, None, "soon", 1.0, None, None, None, 1.0, 0],
])
def test_a_frame_value_of_the_wrong_type_is_refused_by_its_line(tmp_path: Path,
                                                                 bad: list[object]) -> None:
    path = _journal(tmp_path)
    line = _with_last_frame(path, bad)
    with pytest.raises(JournalError, match=rf":{line}: malformed frame line"):
        read_journal(path)
