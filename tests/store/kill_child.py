"""Child process for the Bio-Formats kill test: several runs, each cut at a chosen frame.

Usage: python kill_child.py DIR LOG MODE:FRAME [MODE:FRAME ...]

Run ``i`` acquires a small-frame multi-position, multi-channel z-stack time-lapse
(:data:`SEQUENCE`) into ``DIR/run<i>.ome.tif`` and is cut at frame FRAME: MODE ``before``
(after the frame's journal line, before its page), ``mid`` (half of the frame's pixels on
disk) or ``after`` (right after its page). The last run is cut by a real SIGKILL. Every
earlier run is cut by copying its file and journal at that instant, which is exactly what a
SIGKILL there would leave: both are written unbuffered, so the operating system holds every
byte written so far; the copy then replaces what the rest of that run wrote. That makes
several kills per child (one core start-up each), the costly part of a kill.

LOG receives, unbuffered: ``frame RUN K P T C Z CHANNEL SHA1`` for each camera frame as the
acquisition delivers it (this handler is connected before the recorder's), and
``written RUN K`` after each page write returned.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import useq

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.rig import load_core
from nbo_recorder.store import tiff_writer
from nbo_recorder.store.journal import journal_path

REPO = Path(__file__).resolve().parents[2]
#: 2 positions x 3 time points x 2 channels x 3 z = 36 frames per run
SEQUENCE = useq.MDASequence(
    stage_positions=[(0, 0, 0), (50, 50, 0)],
    channels=[{"config": "DAPI", "exposure": 1}, {"config": "FITC", "exposure": 1}],
    z_plan={"range": 2, "step": 1},
    time_plan={"interval": 0, "loops": 3},
)
FRAMES = 36

folder, log_path = Path(sys.argv[1]), sys.argv[2]
cuts = [(mode, int(frame)) for mode, frame in (arg.split(":") for arg in sys.argv[3:])]
log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
current = {"run": 0}


def log(text: str) -> None:
    os.write(log_fd, (text + "\n").encode())


def snapshot(tiff: Path, torn_bytes: int) -> None:
    """Keep the file and journal as they are now (less ``torn_bytes``), or die if last."""
    run = current["run"]
    if run == len(cuts) - 1:
        if torn_bytes:
            os.truncate(tiff, tiff.stat().st_size - torn_bytes)
        os.kill(os.getpid(), signal.SIGKILL)
    keep = folder / "kept"
    keep.mkdir(exist_ok=True)
    shutil.copyfile(tiff, keep / tiff.name)
    shutil.copyfile(journal_path(tiff), keep / journal_path(tiff).name)
    if torn_bytes:
        os.truncate(keep / tiff.name, (keep / tiff.name).stat().st_size - torn_bytes)
    core.mda.cancel()


original_write = tiff_writer.TiffPageWriter.write


def write(self: tiff_writer.TiffPageWriter, img: Any) -> int:
    """The writer's own write, with the run's cut at its frame."""
    mode, frame = cuts[current["run"]]
    k = self.pages
    if k == frame and mode == "before":
        snapshot(self.path, 0)
    page = original_write(self, img)
    log(f"written {current['run']} {page}")
    if k == frame and mode in ("mid", "after"):
        snapshot(self.path, img.nbytes // 2 if mode == "mid" else 0)
    return page


tiff_writer.TiffPageWriter.write = write  # type: ignore[method-assign]

core = load_core("demo")
core.setProperty("Camera", "Mode", "Noise")
core.setProperty("Camera", "OnCameraCCDXSize", "48")
core.setProperty("Camera", "OnCameraCCDYSize", "32")
count = {"n": 0}


def on_frame(img: Any, event: useq.MDAEvent, *_: object) -> None:
    """Log the frame as the camera delivered it: the ground truth of the test."""
    i = event.index
    channel = event.channel.config if event.channel else "-"
    log(f"frame {current['run']} {count['n']} {i.get('p', 0)} {i.get('t', 0)} {i.get('c', 0)} "
        f"{i.get('z', 0)} {channel} {hashlib.sha1(img.tobytes()).hexdigest()}")
    count["n"] += 1


core.mda.events.frameReady.connect(on_frame)
for run in range(len(cuts)):
    current["run"], count["n"] = run, 0
    out = folder / f"run{run}.ome.tif"
    core.mda.run(SEQUENCE, output=Recorder(core, REPO / "hardware_profiles/mm_demo.yaml").sink(out))
    kept = folder / "kept" / out.name
    if not kept.exists():
        log(f"uncut {run}")
        continue
    os.replace(kept, out)
    os.replace(folder / "kept" / journal_path(out).name, journal_path(out))
