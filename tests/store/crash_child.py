"""Child process for the crash tests: acquires on the demo rig and kills itself on cue.

Usage: python crash_child.py OUT LOG MODE FRAME
MODE: ``before`` (after frame FRAME's journal line, before its page), ``mid`` (the file cut
half-way through frame FRAME's pixels, as a crash mid-write leaves it), ``after`` (right
after frame FRAME's page), or ``finalise`` (after the last frame, before the OME-XML is written).
LOG receives, unbuffered: ``hash K SHA1`` for each camera frame as it arrives and
``written K`` after each page write returned.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from pathlib import Path

import useq

from nbo_recorder.capture import sink as sink_module
from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.rig import load_core
from nbo_recorder.store import tiff_writer

REPO = Path(__file__).resolve().parents[2]
out, log_path, mode, frame = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)


def log(text: str) -> None:
    os.write(log_fd, (text + "\n").encode())


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


original_write = tiff_writer.TiffPageWriter.write


def write(self, img):  # type: ignore[no-untyped-def]
    k = self.pages
    if k == frame and mode == "before":
        die()
    page = original_write(self, img)
    if k == frame and mode == "mid":
        # the state a crash half-way through the pixel data leaves on disk
        os.ftruncate(self.fileno(), os.fstat(self.fileno()).st_size - img.nbytes // 2)
        die()
    log(f"written {page}")
    if k == frame and mode == "after":
        die()
    return page


tiff_writer.TiffPageWriter.write = write
if mode == "finalise":
    sink_module.build_ome_xml = lambda *a, **k: die()  # type: ignore[assignment]

core = load_core("demo")
core.setProperty("Camera", "Mode", "Noise")
count = iter(range(10**6))
core.mda.events.frameReady.connect(
    lambda img, *_: log(f"hash {next(count)} {hashlib.sha1(img.tobytes()).hexdigest()}")
)
seq = useq.MDASequence(channels=["DAPI", "FITC"], z_plan={"range": 1, "step": 1},
                       time_plan={"interval": 0, "loops": 3})
core.mda.run(seq, output=Recorder(core, REPO / "hardware_profiles/mm_demo.yaml").sink(out))
log("finished")
