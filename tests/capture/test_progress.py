"""The sink's progress, read from another thread while a run is recorded."""

from __future__ import annotations

import threading

import tifffile
import useq

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.capture.sink import SinkProgress
from tests.helpers import DEMO_PROFILE, snapped


def test_progress_counts_the_frames_written_of_the_frames_expected(demo_core, tmp_path):
    seq = useq.MDASequence(channels=["DAPI", "FITC"], z_plan={"range": 2, "step": 1},
                           time_plan=snapped(2))
    out = tmp_path / "progress.ome.tif"
    sink = Recorder(demo_core, DEMO_PROFILE).sink(out)
    assert sink.progress == SinkProgress(frames_written=0, frames_expected=None,
                                         backlog_bytes=0, paused=False)
    seen: list[SinkProgress] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.append(sink.progress)
            done.wait(0.002)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        demo_core.mda.run(seq, output=sink)
    finally:
        done.set()
        poller.join()
    sink.raise_if_failed()

    with tifffile.TiffFile(out) as tf:
        pages = len(tf.pages)
    final = sink.progress
    assert final == SinkProgress(frames_written=pages, frames_expected=len(list(seq)),
                                 backlog_bytes=0, paused=False)
    assert pages == 12
    written = [p.frames_written for p in seen]
    assert written == sorted(written), "frames written never go back"
    assert all(p.backlog_bytes >= 0 and not p.paused for p in seen)
    assert all(p.frames_expected in (None, 12) for p in seen)
