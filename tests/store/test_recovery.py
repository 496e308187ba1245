"""Recovery in-process: a run whose OME-XML was never written, then `recover` with progress."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import useq

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.store.journal import journal_path
from nbo_recorder.store.recovery import recover
from tests.helpers import DEMO_PROFILE, load, snapped

FRAME_BYTES = 512 * 512 * 2  # the demo camera's frames


def _unfinished_run(core: Any, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Record 6 frames whose finalisation fails before the OME-XML is written."""
    from nbo_recorder.capture import sink as sink_module

    def fail(*_: Any, **__: Any) -> str:
        raise RuntimeError("finalisation interrupted by the test")

    monkeypatch.setattr(sink_module, "build_ome_xml", fail)
    sink = Recorder(core, DEMO_PROFILE).sink(path)
    core.mda.run(useq.MDASequence(time_plan=snapped(6)), output=sink)
    assert "finalisation interrupted" in " ".join(sink.errors)
    monkeypatch.undo()
    assert journal_path(path).exists()


def test_recover_reports_progress_through_the_pages(demo_core, tmp_path, monkeypatch,
                                                    ome_schema):
    out = tmp_path / "unfinished.ome.tif"
    _unfinished_run(demo_core, out, monkeypatch)
    calls: list[tuple[int, int]] = []
    report = recover(out, progress=lambda done, total: calls.append((done, total)))
    assert report.frames_recovered == 6
    assert calls == [(6, 6), (6, 6)]  # after the walk (journaled total), once finished
    ome_schema.validate(load(out)[0])
    with tifffile.TiffFile(out) as tf:  # the OME series tifffile builds from the TiffData map
        series = tf.series[0]
        assert series.kind == "ome" and len(tf.series) == 1
        assert series.shape == (6, 512, 512)
        assert np.array_equal(series.asarray(), np.stack([p.asarray() for p in tf.pages]))


def test_recover_progress_ends_at_the_intact_pages_when_the_last_is_torn(
    demo_core, tmp_path, monkeypatch, ome_schema
):
    out = tmp_path / "torn.ome.tif"
    _unfinished_run(demo_core, out, monkeypatch)
    os.truncate(out, out.stat().st_size - FRAME_BYTES // 2)  # the last page's data cut off
    calls: list[tuple[int, int]] = []
    report = recover(out, progress=lambda done, total: calls.append((done, total)))
    assert (report.frames_recovered, report.frames_journaled) == (5, 6)
    assert calls == [(5, 6), (5, 5)]
    ome_schema.validate(load(out)[0])
    with tifffile.TiffFile(out) as tf:
        assert len(tf.pages) == 5


def test_the_recovered_files_summary_is_what_the_file_reads_back_as(demo_core, tmp_path,
                                                                      monkeypatch, capsys):
    from nbo_recorder.cli.acquisition import summarise
    from nbo_recorder.cli.main import main
    from nbo_recorder.judge.reader import read_outline

    out = tmp_path / "torn.ome.tif"
    _unfinished_run(demo_core, out, monkeypatch)
    os.truncate(out, out.stat().st_size - FRAME_BYTES // 2)
    copy = tmp_path / "copy.ome.tif"
    assert main(["recover", str(out), "--out", str(copy)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == "1 journaled frames never reached the file (frames 5)"
    # the summary comes from the model the description was written from; read the file anew
    assert printed[2:] == summarise(copy).splitlines()
    assert printed[2] == f"{copy}: 5 frames in 1 image(s)"
    pages, outline = read_outline(copy)
    report = recover(out, dry_run=True)
    assert report.outline is None  # nothing was written, nothing to describe
    in_place = recover(out)
    assert in_place.outline is not None
    assert in_place.outline[0] == pages == 5
    assert in_place.outline[1].model_dump() == outline.model_dump()
