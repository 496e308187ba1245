"""A run that stopped early declares exactly the planes its file holds (issue #14, item 1).

Real demo-core acquisitions (multi-channel z-stack time-lapses, several positions, two axis
orders) are cancelled at chosen frames, as Ctrl-C, SIGTERM, a full disk or a device error
stop a run. Ground truth is read in a ``frameReady`` handler connected before the recorder's
(the event's indices, its channel, the pixels), and the file is read back with tifffile and
ElementTree, not with the recorder's reader. Every Image must hold each plane its Pixels
declare (SizeZ x SizeC x SizeT TiffData, each (Z, C, T) once), at indices in the order of the
frames' own, with the frame's channel and pixels; the complete time points stay together;
the run's status names each partial time point and the Image that keeps it; Bio-Formats'
``ImageInfo`` opens every file and reads every plane of every series.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tifffile
import useq
from hypothesis import given, settings
from hypothesis import strategies as st

from nbo_recorder.capture.documents import FrameRecord
from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.render.blocks import grid_blocks
from tests.helpers import DEMO_PROFILE, bioformats_jar, bioformats_read_all

OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"
CHANNELS = [{"config": "DAPI", "exposure": 1}, {"config": "FITC", "exposure": 1}]
STACK = useq.MDASequence(channels=CHANNELS, z_plan={"range": 2, "step": 1},
                         time_plan={"interval": 0, "loops": 3})  # 6 frames per time point
POSITIONS = [(0, 0, 0), (40, 0, 0), (80, 0, 0)]
#: id -> (sequence, the frame whose arrival cancels the run; None: let it complete)
SCENARIOS: dict[str, tuple[useq.MDASequence, int | None]] = {
    "first-stack-cut": (STACK, 2),
    "second-channel-cut": (STACK, 4),
    "one-whole-time-point": (STACK, 6),
    "last-time-point-cut": (STACK, 8),
    "last-frame-missing": (STACK, 17),
    "complete": (STACK, None),
    "channels-inside-z-cut": (useq.MDASequence(
        channels=CHANNELS, z_plan={"range": 2, "step": 1}, time_plan={"interval": 0, "loops": 3},
        axis_order="tpzc"), 11),
    "position-3-of-3-cut": (useq.MDASequence(
        stage_positions=POSITIONS, channels=CHANNELS, z_plan={"range": 1, "step": 1},
        time_plan={"interval": 0, "loops": 2}), 17),
    "positions-outer-cut": (useq.MDASequence(
        stage_positions=POSITIONS, channels=CHANNELS, time_plan={"interval": 0, "loops": 2},
        axis_order="ptcz"), 11),
    "position-3-not-reached": (useq.MDASequence(
        stage_positions=POSITIONS, channels=CHANNELS, axis_order="pcz"), 3),
}


@dataclass
class Frame:
    """A frame as the camera delivered it: its sequence indices, channel and pixels."""

    p: int
    t: int
    c: int
    z: int
    channel: str
    sha1: str


@dataclass
class Recorded:
    path: Path
    frames: list[Frame]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Recorded]]:
    """Every scenario recorded once, on one demo core with small frames."""
    from nbo_recorder.rig import load_core

    core = load_core("demo")
    core.setProperty("Camera", "Mode", "Noise")
    core.setProperty("Camera", "OnCameraCCDXSize", "40")
    core.setProperty("Camera", "OnCameraCCDYSize", "24")
    folder = tmp_path_factory.mktemp("partial")
    out: dict[str, Recorded] = {}
    try:
        for name, (seq, stop_at) in SCENARIOS.items():
            frames: list[Frame] = []

            def on_frame(img: Any, event: useq.MDAEvent, *_: object,
                         frames: list[Frame] = frames, stop_at: int | None = stop_at) -> None:
                i = event.index
                frames.append(Frame(i.get("p", 0), i.get("t", 0), i.get("c", 0), i.get("z", 0),
                                    event.channel.config if event.channel else "",
                                    hashlib.sha1(img.tobytes()).hexdigest()))
                if len(frames) == stop_at:
                    core.mda.cancel()

            core.mda.events.frameReady.connect(on_frame)  # before the recorder's sink
            path = folder / f"{name}.ome.tif"
            try:
                core.mda.run(seq, output=Recorder(core, DEMO_PROFILE).sink(path))
            finally:
                core.mda.events.frameReady.disconnect(on_frame)
            out[name] = Recorded(path, frames)
        yield out
    finally:
        core.unloadAllDevices()


def _layout(path: Path, frames: list[Frame]) -> list[dict[str, Any]]:
    """Each Image's name, sizes and frames, asserting it holds every plane it declares."""
    with tifffile.TiffFile(path) as tf:
        root = ET.fromstring(tf.pages[0].description)
        pages = [hashlib.sha1(page.asarray().tobytes()).hexdigest() for page in tf.pages]
    assert len(pages) == len(frames), "every frame delivered is in the file"
    images, seen = [], []
    for image in root.iter(f"{OME}Image"):
        px = image.find(f"{OME}Pixels")
        assert px is not None
        size = tuple(int(px.get(f"Size{axis}", "0")) for axis in "ZCT")
        names = [channel.get("Name") for channel in px.iter(f"{OME}Channel")]
        assert len(names) == size[1], image.get("ID")
        placed: dict[tuple[int, int, int], int] = {}
        for td in px.iter(f"{OME}TiffData"):
            assert td.get("PlaneCount") == "1"
            zct = tuple(int(td.get(f"First{axis}", "0")) for axis in "ZCT")
            assert zct not in placed, f"{image.get('ID')}: plane {zct} declared twice"
            placed[zct] = int(td.get("IFD", "-1"))
        grid = {(z, c, t) for z in range(size[0]) for c in range(size[1])
                for t in range(size[2])}
        assert set(placed) == grid, f"{image.get('ID')} declares {size}, holds {sorted(placed)}"
        planes = {tuple(int(pl.get(f"The{axis}", "-1")) for axis in "ZCT")
                  for pl in px.iter(f"{OME}Plane")}
        assert planes == grid, image.get("ID")
        held = {zct: frames[ifd] for zct, ifd in placed.items()}
        for axis, attr in enumerate(("z", "c", "t")):
            # the Image numbers each axis 0, 1, ... in the order of the frames' own indices
            pairs = sorted({(getattr(f, attr), zct[axis]) for zct, f in held.items()})
            assert [own for _, own in pairs] == list(range(size[axis])), (image.get("ID"), attr)
        assert len({f.p for f in held.values()}) == 1, "one position per Image"
        for (_, c, _), ifd in placed.items():
            assert names[c] == frames[ifd].channel, f"IFD {ifd}: channel"
            assert pages[ifd] == frames[ifd].sha1, f"IFD {ifd}: pixels"
        seen.extend(placed.values())
        images.append({"name": image.get("Name"), "size": size, "frames": list(held.values()),
                       "description": image.findtext(f"{OME}Description") or ""})
    assert sorted(seen) == list(range(len(pages))), "every page in exactly one Image, once"
    return images


def _run_status(path: Path) -> dict[str, str]:
    """The run's MapAnnotation (the one with a status), key -> value."""
    with tifffile.TiffFile(path) as tf:
        root = ET.fromstring(tf.pages[0].description)
    for ann in root.iter(f"{OME}MapAnnotation"):
        values = {m.get("K"): m.text or "" for m in ann.iter(f"{OME}M")}
        if "status" in values:
            return values
    raise AssertionError("no run status")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_declared_planes_are_the_frames_written(recorded, name):
    run = recorded[name]
    images = _layout(run.path, run.frames)
    status = _run_status(run.path)
    cuts = [v for k, v in sorted(status.items()) if k.startswith("cut ")]
    expected_cuts = []
    for p in sorted({f.p for f in run.frames}):
        at_p = [f for f in run.frames if f.p == p]
        whole = len({f.z for f in at_p}) * len({f.c for f in at_p})
        per_t = Counter(f.t for f in at_p)
        complete = sorted(t for t, n in per_t.items() if n == whole)
        mine = [im for im in images if im["frames"][0].p == p]
        if complete:  # the complete time points are the position's first Image
            assert mine[0]["size"][2] == len(complete)
            assert sorted({f.t for f in mine[0]["frames"]}) == complete
        for t in sorted(t for t, n in per_t.items() if n < whole):
            keeping = [im["name"] for im in mine if {f.t for f in im["frames"]} == {t}]
            assert keeping and all(f"(partial t={t}" in title for title in keeping)
            expected_cuts.append(f"time point {t} partial: {per_t[t]} of {whole} planes; "
                                 f"kept as Image{'s' * (len(keeping) > 1)} "
                                 + ", ".join(f"'{title}'" for title in keeping))
            for im in mine:
                if complete and im is mine[0]:
                    assert all(f"'{title}'" in im["description"] for title in keeping)
    planned = len(SCENARIOS[name][0].stage_positions)
    reached = {f.p for f in run.frames}
    if planned > len(reached):
        expected_cuts.append(f"stage position {planned - 1} of {planned} not reached: no Image")
    assert cuts == expected_cuts
    assert status["status"] == ("complete" if SCENARIOS[name][1] is None
                                else "incomplete: canceled")


def test_a_cut_stack_keeps_its_finished_channels_together(recorded):
    """Stopped in the second channel's z-stack of the first time point: the finished channel
    is one Image (Z=3), the unfinished stack another (Z=1), no Image claims more."""
    images = _layout(recorded["second-channel-cut"].path, recorded["second-channel-cut"].frames)
    assert [im["size"] for im in images] == [(3, 1, 1), (1, 1, 1)]
    assert [im["name"] for im in images] == ["Position 0 (partial t=0, c=0)",
                                             "Position 0 (partial t=0, c=1)"]
    late = _layout(recorded["last-time-point-cut"].path, recorded["last-time-point-cut"].frames)
    assert [im["size"] for im in late] == [(3, 2, 1), (2, 1, 1)]
    assert "TheT 0 = sequence t 1" in late[1]["description"]


def test_bioformats_opens_every_partial_file(recorded, tmp_path):
    jar = bioformats_jar()
    files = {name: (run.path, len(_layout(run.path, run.frames)))
             for name, run in recorded.items()}
    results = bioformats_read_all(jar, list(files.values()), tmp_path)
    for name, (path, series) in files.items():
        got = results[str(path)]
        assert got["verdicts"] == [True] * series, (name, got["error"])
        assert got["series"] == series, name


@settings(max_examples=300, deadline=None)
@given(st.sets(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 3)), min_size=1))
def test_any_set_of_planes_splits_into_images_that_hold_all_they_declare(planes):
    """Whatever planes a run lost or never took: every block is a whole grid, every frame is
    in exactly one block, and the complete time points are together in the first."""
    frames = [FrameRecord(i, 0, t, c, z, None, 0.0, 1.0, None, None, None, 1.0, 0)
              for i, (t, c, z) in enumerate(sorted(planes))]
    blocks = grid_blocks(frames)
    placed = []
    for block in blocks:
        held = {(f.t, f.c, f.z) for f in block.frames}
        axes = [{plane[axis] for plane in held} for axis in range(3)]
        assert len(held) == len(block.frames) == len(axes[0]) * len(axes[1]) * len(axes[2])
        placed.extend(f.index for f in block.frames)
    assert sorted(placed) == list(range(len(frames)))
    whole = len({z for _, _, z in planes}) * len({c for _, c, _ in planes})
    complete = {t for t, n in Counter(t for t, _, _ in planes).items() if n == whole}
    if complete:
        assert {f.t for f in blocks[0].frames} == complete and not blocks[0].partial
    for block in blocks[1 if complete else 0:]:
        ts = {f.t for f in block.frames}
        assert block.partial and ts == set(block.partial_t) and not ts & complete
