"""Every Image's geometry is that of its own frames, and its plane indices are unique.

Issue #13, cases 1 and 9, on the real demo adapters. Ground truth is read in a ``frameReady``
handler connected before the recorder's sink (the image array, ``core.getPixelSizeUm()``, the
focus position, the event's planned start time), never from the recorder's output. Frames
are matched to the file by page: the n-th frame acquired is page n.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import useq
from ome_types import OME
from ome_types.model import Image

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.render.layout import layout_run
from nbo_recorder.store.journal import JournalWriter, read_journal
from tests.helpers import DEMO_PROFILE, annotations, demo_profile, load, snapped


class Truth:
    """Per frame, in acquisition order: its sequence index, pixels and the rig's geometry."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.frames: list[dict[str, Any]] = []
        self.started: dict[tuple[int, int], float] = {}
        core.mda.events.frameReady.connect(self.on_frame)

    def on_frame(self, img: np.ndarray, event: useq.MDAEvent, meta: dict) -> None:
        self.frames.append({
            "index": {k: int(v) for k, v in event.index.items()},
            "sha1": hashlib.sha1(img.tobytes()).hexdigest(),
            "shape": img.shape,
            "pixel_size_um": self.core.getPixelSizeUm(),
            "z_um": self.core.getZPosition(),
            "planned_s": event.min_start_time,
        })

    def close(self) -> None:
        self.core.mda.events.frameReady.disconnect(self.on_frame)


def image_ifds(image: Image) -> list[int]:
    """The pages an Image's TiffData blocks name (one page each, as the recorder writes)."""
    blocks = image.pixels.tiff_data_blocks
    assert all(td.plane_count == 1 for td in blocks)
    return [td.ifd for td in blocks]


def record(core: Any, seq: useq.MDASequence, out: Path, ome_schema: Any,
           on_event: Any = None) -> tuple[OME, Truth]:
    """Run ``seq`` through the recorder with ground truth read ahead of it; the file's OME."""
    truth = Truth(core)
    if on_event is not None:
        core.mda.events.eventStarted.connect(on_event)
    try:
        core.mda.run(seq, output=Recorder(core, DEMO_PROFILE).sink(out))
    finally:
        if on_event is not None:
            core.mda.events.eventStarted.disconnect(on_event)
        truth.close()
    xml, ome = load(out)
    ome_schema.validate(xml)
    return ome, truth


def assert_images_match_their_frames(ome: OME, truth: Truth, out: Path) -> None:
    """Every page is in exactly one Image, whose sizes and pixel size are its frames', and
    whose (t, c, z) are unique and consistent with its sizes."""
    with tifffile.TiffFile(out) as tf:
        pages = [(p.shape, hashlib.sha1(p.asarray().tobytes()).hexdigest()) for p in tf.pages]
    assert len(pages) == len(truth.frames)
    placed = Counter(ifd for image in ome.images for ifd in image_ifds(image))
    assert placed == Counter(range(len(pages))), "every page in exactly one Image"
    for image in ome.images:
        px = image.pixels
        for ifd in image_ifds(image):
            frame = truth.frames[ifd]
            assert pages[ifd] == ((px.size_y, px.size_x), frame["sha1"]), image.id
            assert frame["shape"] == (px.size_y, px.size_x), image.id
            assert px.physical_size_x == pytest.approx(frame["pixel_size_um"]), image.id
            assert px.physical_size_y == pytest.approx(frame["pixel_size_um"]), image.id
        indices = [(pl.the_t, pl.the_c, pl.the_z) for pl in px.planes]
        assert len(indices) == len(set(indices)), f"{image.id}: duplicate (t, c, z)"
        assert all(t < px.size_t and c < px.size_c and z < px.size_z for t, c, z in indices)
        blocks = {(td.first_t, td.first_c, td.first_z) for td in px.tiff_data_blocks}
        assert blocks == set(indices), image.id


def frames_of(image: Image, truth: Truth) -> list[dict[str, Any]]:
    return [truth.frames[ifd] for ifd in image_ifds(image)]


def z_steps(frames: list[dict[str, Any]]) -> set[float]:
    """The distances between the focus positions the frames were taken at."""
    zs = sorted({round(f["z_um"], 3) for f in frames})
    return {round(b - a, 3) for a, b in itertools.pairwise(zs)}


def test_a_position_with_its_own_z_step_and_interval_says_so(demo_core, tmp_path, ome_schema):
    """Case 1: position 1's sub-sequence steps 2 µm every 0.3 s; the outer one 1 µm / 0.1 s.

    TimeIncrement is the planned interval (the events' planned start times); what each frame's
    time really was is its Plane's DeltaT.
    """
    seq = useq.MDASequence(
        channels=["DAPI"], z_plan={"range": 2, "step": 1},
        time_plan={"interval": 0.1, "loops": 2},
        stage_positions=[(0, 0, 0), {"x": 10, "y": 10, "z": 0, "name": "own plan", "sequence": {
            "z_plan": {"range": 4, "step": 2}, "time_plan": {"interval": 0.3, "loops": 2}}}],
    )
    out = tmp_path / "own_plan.ome.tif"
    with pytest.warns(RuntimeWarning, match="own time plan"):
        ome, truth = record(demo_core, seq, out, ome_schema)
    assert_images_match_their_frames(ome, truth, out)
    for image in ome.images:
        frames = frames_of(image, truth)
        positions = {f["index"].get("p", 0) for f in frames}
        assert len(positions) == 1
        px = image.pixels
        assert {px.physical_size_z} == z_steps(frames), image.id
        assert px.physical_size_z == (2.0 if positions == {1} else 1.0)
        first_at = {}
        for f in frames:
            first_at.setdefault(f["index"].get("t", 0), f)
        planned = [first_at[t]["planned_s"] for t in sorted(first_at)]
        assert px.time_increment == pytest.approx(planned[1] - planned[0]), image.id
        assert px.time_increment == (0.3 if positions == {1} else 0.1)
    assert [len(image.pixels.planes) for image in ome.images] == [6, 6, 6]


def test_binning_at_one_position_gives_that_image_its_own_size(demo_core, tmp_path, ome_schema):
    """Case 1: binning 2 at position 1 only; its 256² frames at 2 µm are described so."""
    seq = useq.MDASequence(channels=["DAPI", "FITC"], z_plan={"range": 1, "step": 1},
                           stage_positions=[(0, 0, 0), (20, 0, 0), (40, 0, 0)])

    def bin_position_1(event: useq.MDAEvent) -> None:
        demo_core.setProperty("Camera", "Binning", "2" if event.index.get("p") == 1 else "1")

    out = tmp_path / "binned_position.ome.tif"
    ome, truth = record(demo_core, seq, out, ome_schema, bin_position_1)
    assert_images_match_their_frames(ome, truth, out)
    sizes = [(im.pixels.size_x, im.pixels.size_y, im.pixels.physical_size_x)
             for im in ome.images]
    assert sizes == [(512, 512, 1.0), (256, 256, 2.0), (512, 512, 1.0)]
    assert {f["shape"] for f in frames_of(ome.images[1], truth)} == {(256, 256)}


def test_binning_per_channel_splits_the_position_by_frame_size(demo_core, tmp_path,
                                                               ome_schema):
    """Case 1: the Camera group's presets bin 1, 2 and 4: three Images of 512², 256², 128²."""
    seq = useq.MDASequence(
        channels=[{"config": name, "group": "Camera"} for name in ("HighRes", "MedRes",
                                                                   "LowRes")],
        z_plan={"range": 1, "step": 1}, time_plan=snapped(2),
    )
    out = tmp_path / "binning_per_channel.ome.tif"
    ome, truth = record(demo_core, seq, out, ome_schema)
    assert_images_match_their_frames(ome, truth, out)
    assert len(ome.images) == 3
    for image, (side, binning) in zip(ome.images, ((512, 1), (256, 2), (128, 4)), strict=True):
        px = image.pixels
        frames = frames_of(image, truth)
        assert {f["shape"] for f in frames} == {(side, side)}
        assert (px.size_x, px.size_y, px.size_c, px.size_z, px.size_t) == (side, side, 1, 2, 2)
        assert len(px.planes) == px.size_z * px.size_c * px.size_t
        assert px.physical_size_x == pytest.approx(frames[0]["pixel_size_um"])
        assert px.physical_size_x == pytest.approx(float(binning))
        assert px.channels[0].detector_settings.binning.value == f"{binning}x{binning}"
        assert f"{side} x {side} px" in image.description, image.description
        assert "one frame size and pixel size per Pixels" in image.description
    # the Images of the LowRes channel map their C back to the sequence's channel 2
    assert "TheC 0 = sequence c 2" in ome.images[2].description


def test_an_roi_change_mid_run_starts_a_new_image(demo_core, tmp_path, ome_schema):
    """Case 1: setROI at t=1; the later frames form an Image of 256 x 128 px, T from 0."""
    seq = useq.MDASequence(channels=["DAPI", "FITC"], time_plan={"interval": 0.05, "loops": 3})

    def crop_at_t1(event: useq.MDAEvent) -> None:
        if event.index.get("t") == 1 and event.index.get("c") == 0:
            demo_core.setROI(64, 32, 256, 128)

    out = tmp_path / "roi.ome.tif"
    try:
        ome, truth = record(demo_core, seq, out, ome_schema, crop_at_t1)
    finally:
        demo_core.clearROI()
    assert_images_match_their_frames(ome, truth, out)
    first, cropped = ome.images
    assert (first.pixels.size_x, first.pixels.size_y, first.pixels.size_t) == (512, 512, 1)
    assert (cropped.pixels.size_x, cropped.pixels.size_y) == (256, 128)
    assert (cropped.pixels.size_c, cropped.pixels.size_t) == (2, 2)
    assert [f["index"]["t"] for f in frames_of(cropped, truth)] == [1, 1, 2, 2]
    assert "TheT 0, 1 = sequence t 1, 2" in cropped.description
    assert cropped.pixels.time_increment == pytest.approx(0.05)
    assert cropped.id != first.id and cropped.pixels.channels[0].id != \
        first.pixels.channels[0].id


def test_a_canceled_run_with_split_images_is_still_valid(demo_core, tmp_path, ome_schema):
    """An incomplete run: what was written is described, Image by Image."""
    seq = useq.MDASequence(channels=["DAPI"], time_plan={"interval": 0.01, "loops": 4})

    def crop_then_cancel(event: useq.MDAEvent) -> None:
        if event.index.get("t") == 1:
            demo_core.setROI(0, 0, 128, 128)
        if event.index.get("t") == 2:
            demo_core.mda.cancel()  # the event under way still completes

    out = tmp_path / "canceled.ome.tif"
    try:
        ome, truth = record(demo_core, seq, out, ome_schema, crop_then_cancel)
    finally:
        demo_core.clearROI()
    assert_images_match_their_frames(ome, truth, out)
    assert len(truth.frames) < 4
    assert [im.pixels.size_t for im in ome.images] == [1, len(truth.frames) - 1]
    status = [v["status"] for v in annotations(ome).values() if "status" in v]
    assert status == ["incomplete: canceled"]


def test_sub_sequence_time_points_never_share_plane_indices(demo_core, tmp_path, ome_schema):
    """Case 9: a position's own time plan inside an outer one repeats useq's (t, c, z)."""
    seq = useq.MDASequence(
        channels=["DAPI", "FITC"], z_plan={"range": 2, "step": 1},
        time_plan=snapped(3),
        stage_positions=[(0, 0, 0), {"x": 10, "y": 10, "z": 0, "sequence": {
            "time_plan": snapped(2)}}],
    )
    out = tmp_path / "repeated.ome.tif"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ome, truth = record(demo_core, seq, out, ome_schema)
    repeated = [w for w in caught if "own time plan" in str(w.message)]
    assert len(repeated) == 1, "warned once per run"
    assert "stage position(s) 1" in str(repeated[0].message)
    at_1 = Counter((f["index"]["t"], f["index"]["c"], f["index"]["z"])
                   for f in truth.frames if f["index"].get("p") == 1)
    assert set(at_1.values()) == {3}, "the sequence itself repeats (t, c, z) at position 1"
    assert_images_match_their_frames(ome, truth, out)
    assert len(ome.images) == 4  # position 0, and each of the 3 runs at position 1
    for image in ome.images:
        px = image.pixels
        assert len(px.planes) == px.size_z * px.size_c * px.size_t, image.id
    runs = ome.images[1:]
    assert [im.pixels.size_t for im in runs] == [2, 2, 2]
    assert [f"sub-sequence run {n}" in im.description for n, im in
            enumerate(runs, start=1)] == [True] * 3
    assert len({im.name for im in ome.images}) == 4
    # each run's frames were taken after the previous run's
    starts = [min(image_ifds(im)) for im in runs]
    assert starts == sorted(starts)


def test_old_journals_without_frame_sizes_still_recover(demo_core, tmp_path):
    """A journal written before frames carried their size: the run's frame size stands in;
    a journal written now round-trips every FrameRecord field."""
    recorder = Recorder(demo_core, DEMO_PROFILE)
    sink = recorder.sink(tmp_path / "run.ome.tif")
    demo_core.mda.run(useq.MDASequence(channels=["DAPI"], time_plan=snapped(2)), output=sink)
    assert sink.run is not None
    run = sink.run
    new = tmp_path / "new.nbo-journal"
    writer = JournalWriter(new)
    writer.start(run.start)
    for f in run.frames:
        writer.frame(f, run.snapshots[f.snapshot])
    writer.close()
    assert read_journal(new).frames == run.frames
    assert {(f.width, f.height) for f in run.frames} == {(512, 512)}
    old = tmp_path / "old.nbo-journal"
    old_fields = 14  # index ... hardware_triggered
    lines = []
    for line in new.read_text().splitlines():
        doc = json.loads(line)
        if "f" in doc:
            line = json.dumps({"f": doc["f"][:old_fields]})
        lines.append(line)
    old.write_text("\n".join(lines) + "\n")
    replayed = read_journal(old)
    assert {(f.width, f.height, f.g) for f in replayed.frames} == {(0, 0, 0)}
    image, = layout_run(replayed, demo_profile(facts=False)).images
    assert (image.size_x, image.size_y) == (run.start.width, run.start.height)
