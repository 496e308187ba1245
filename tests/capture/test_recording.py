"""End-to-end recording on the real demo adapters: what the file says equals what was active."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
import tifffile
import useq
import yaml

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.load import parse_profile
from tests.helpers import DEMO_PROFILE, annotations, load, planes, py_profile, snapped


class GroundTruth:
    """Reads the hardware directly at each frame, independently of the recorder."""

    def __init__(self, core: Any, keys: list[tuple[str, str]]) -> None:
        self.core = core
        self.keys = keys
        self.frames: list[dict[str, Any]] = []
        core.mda.events.frameReady.connect(self.on_frame)

    def on_frame(self, img: np.ndarray, event: useq.MDAEvent, meta: dict) -> None:
        state = {f"{d}.{p}": self.core.getProperty(d, p) for d, p in self.keys}
        state["pixel_size_um"] = self.core.getPixelSizeUm()
        self.frames.append({
            "index": dict(event.index), "sha1": hashlib.sha1(img.tobytes()).hexdigest(),
            "state": state,
        })


def test_file_validates_and_pixels_are_the_camera_frames(demo_core, tmp_path, ome_schema):
    truth = GroundTruth(demo_core, [])
    seq = useq.MDASequence(
        channels=["DAPI", "FITC"], z_plan={"range": 2, "step": 1},
        time_plan=snapped(2),
        stage_positions=[(0, 0, 0), {"x": 50, "y": 20, "z": 0, "name": "well B2"}],
    )
    out = tmp_path / "exp.ome.tif"
    demo_core.mda.run(seq, output=Recorder(demo_core, DEMO_PROFILE).sink(out))

    xml, ome = load(out)
    ome_schema.validate(xml)
    assert len(ome.images) == 2, "one image series per stage position"
    assert ome.images[1].name == "well B2"
    assert ome.images[1].stage_label.x == pytest.approx(50, abs=0.05)
    by_index = {(f["index"].get("p", 0), f["index"].get("t", 0), f["index"]["c"],
                 f["index"]["z"]): f["sha1"] for f in truth.frames}
    with tifffile.TiffFile(out) as tf:
        pages = [hashlib.sha1(p.asarray().tobytes()).hexdigest() for p in tf.pages]
    seen = planes(ome)
    assert len(seen) == len(truth.frames) == 24
    for pv in seen:
        assert pages[pv.ifd] == by_index[(pv.image, pv.t, pv.c, pv.z)]
    px = ome.images[0].pixels
    assert (px.size_c, px.size_z, px.size_t) == (2, 3, 2)
    assert px.physical_size_x == pytest.approx(1.0) and px.physical_size_z == pytest.approx(1.0)


def test_each_plane_names_the_state_active_when_it_was_taken(py_core, tmp_path, ome_schema):
    """Objective, binning and channel presets change between and during sequences.

    The PyChannel presets move Python devices (no propertyChanged at all) and demo state
    devices through a config group (configSet only); the objective is switched mid-run
    through a config group, binning through a property.
    """
    core = py_core
    keys = [("Objective", "Label"), ("Camera", "Binning"), ("Emission", "Label"),
            ("PyWheel", "Label"), ("PyLaser", "PowerW"), ("LED", "Label"),
            ("Core", "Shutter")]
    recorder = Recorder(core, py_profile())
    seq = useq.MDASequence(
        channels=[{"config": "DAPI", "group": "Channel"},
                  {"config": "GFP", "group": "PyChannel"},
                  {"config": "RFP", "group": "PyChannel"}],
        z_plan={"range": 1, "step": 1}, time_plan=snapped(3),
        axis_order="tpcz",
    )

    def switch_mid_run(event: useq.MDAEvent) -> None:
        if event.index.get("t") == 1 and event.index.get("c") == 0 and event.index.get("z") == 0:
            core.setConfig("Objective", "40X")
            core.setProperty("Camera", "Binning", "2")

    files = []
    for run in range(2):
        if run == 1:  # between sequences: a different objective and binning, set silently
            core.setConfig("Objective", "20X")
            core.setConfig("Camera", "LowRes")
        truth = GroundTruth(core, keys)
        core.mda.events.eventStarted.connect(switch_mid_run)
        out = tmp_path / f"run{run}.ome.tif"
        core.mda.run(seq, output=recorder.sink(out))
        core.mda.events.eventStarted.disconnect(switch_mid_run)
        core.mda.events.frameReady.disconnect(truth.on_frame)
        files.append((out, truth))

    objective_ids = {"Nikon 10X S Fluor": "obj-nikon-10x-sfluor",
                     "Nikon 20X Plan Fluor ELWD": "obj-nikon-20x-pf-elwd",
                     "Nikon 40X Plan Fluor ELWD": "obj-nikon-40x-pf-elwd"}
    for out, truth in files:
        xml, ome = load(out)
        ome_schema.validate(xml)
        actual = {(f["index"]["t"], f["index"]["c"], f["index"]["z"]): f["state"]
                  for f in truth.frames}
        views = planes(ome)
        assert len(views) == len(actual) == 18
        objectives_used = {st["Objective.Label"] for st in actual.values()}
        assert len(objectives_used) == 2, f"the objective must change mid-run: {objectives_used}"
        for pv in views:
            # page n is the n-th frame; a binning or objective change splits the Images,
            # whose own T/C/Z then count from 0 (their frames are matched by page)
            state = truth.frames[pv.ifd]["state"]
            s = pv.settings
            where = f"{out.name} t={pv.t} c={pv.c} z={pv.z}"
            assert s["objective"] == objective_ids[state["Objective.Label"]], where
            assert s["detector[cam-demo].binning"] == state["Camera.Binning"], where
            assert float(s["pixel_size_um"]) == pytest.approx(state["pixel_size_um"]), where
            wheel = {"Py-HQ535": "py-hq535", "Py-HQ700": "py-hq700"}[state["PyWheel.Label"]]
            emission = s["emission_filters"].split(",")
            assert wheel in emission, where
            power_mw = float(state["PyLaser.PowerW"]) * 1000
            assert s["light_source[py-laser].power_mw"] == f"{power_mw:g} mW", where
            if pv.channel == "DAPI":
                assert "em-chroma-hq620" in emission, where
                assert "light_source[led-demo]" not in s, where
            else:
                assert s["light_source[led-demo].wavelength_nm"] == \
                    state["LED.Label"].replace("nm", " nm"), where

    # the channel elements themselves carry the first state of each channel
    _, ome = load(files[0][0])
    chans = {c.name: c for c in ome.images[0].pixels.channels}
    assert "Filter:py-hq535" in [r.id for r in chans["GFP"].light_path.emission_filters]
    assert "Filter:py-hq700" in [r.id for r in chans["RFP"].light_path.emission_filters]
    assert chans["RFP"].light_source_settings.wavelength in (None, 550.0)
    assert ome.images[0].objective_settings.id == "Objective:obj-nikon-10x-sfluor"
    _, ome2 = load(files[1][0])
    assert ome2.images[0].objective_settings.id == "Objective:obj-nikon-20x-pf-elwd"
    assert ome2.images[0].pixels.channels[0].detector_settings.binning.value == "4x4"


def test_unreadable_value_is_recorded_as_unknown_not_invented(py_core, tmp_path):
    laser = py_core.getPyDevice("PyLaser") if hasattr(py_core, "getPyDevice") else None
    recorder = Recorder(py_core, py_profile())
    device = laser or py_core._pydevices["PyLaser"]
    device.fail_reads = True
    out = tmp_path / "unknown.ome.tif"
    seq = useq.MDASequence(channels=[{"config": "GFP", "group": "PyChannel"}])
    py_core.mda.run(seq, output=recorder.sink(out))
    _, ome = load(out)
    anns = annotations(ome)
    channel = ome.images[0].pixels.channels[0]
    values = {k: v for ref in channel.annotation_refs for k, v in anns[ref.id].items()}
    assert values["light_source[py-laser].power_mw"].startswith("unknown (reading PyLaser.PowerW")
    assert "laser did not answer" in values["light_source[py-laser].power_mw"]


def test_output_exists_and_unwritable_directory_fail_before_acquiring(demo_core, tmp_path):
    recorder = Recorder(demo_core, DEMO_PROFILE)
    existing = tmp_path / "taken.ome.tif"
    existing.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="--overwrite"):
        recorder.sink(existing)
    assert existing.read_bytes() == b"precious"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        recorder.sink(tmp_path / "no" / "such" / "dir.ome.tif")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        recorder.sink(existing / "inside-a-file.ome.tif")


def test_profile_binding_unknown_device_is_rejected_at_attach(demo_core):
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    data["bindings"][1]["device"] = "ExcitationWheel2"
    with pytest.raises(ProfileError, match="ExcitationWheel2"):
        Recorder(demo_core, parse_profile(data, "p.yaml"))


def test_a_profile_nbo_cannot_hold_is_refused_before_the_first_frame(demo_core, tmp_path):
    """Loading a profile does not check it against NBO; the recorder does, for a path and
    for a Profile object alike, naming the file when it has one."""
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    data["components"][3].setdefault("extra", {})["CoatingMethod"] = "Hard"
    with pytest.raises(ProfileError, match=r"\n  components\[3\]\.extra\.CoatingMethod"):
        Recorder(demo_core, parse_profile(data, "bad.yaml"))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError) as info:
        Recorder(demo_core, path)
    assert f"\n{path}: components[3].extra.CoatingMethod" in str(info.value)
    assert "'HardCoated', 'SoftCoated', 'Other'" in str(info.value)


def test_big_runs_switch_to_bigtiff():
    from nbo_recorder.store.tiff_writer import needs_bigtiff

    assert not needs_bigtiff(100 * 512 * 512 * 2)
    assert needs_bigtiff(5 * 2**30)
    assert needs_bigtiff(None)


def test_written_file_is_valid_tiff_after_every_frame(demo_core, tmp_path):
    """Frames are streamed: while acquiring, the file already holds every frame so far."""
    seen: list[int] = []
    out = tmp_path / "stream.ome.tif"

    def count_pages(*_: Any) -> None:
        if out.exists() and out.stat().st_size > 0:
            with tifffile.TiffFile(out) as tf:
                seen.append(len(tf.pages))

    demo_core.mda.events.frameReady.connect(count_pages)
    seq = useq.MDASequence(time_plan={"interval": 0.15, "loops": 4})
    demo_core.mda.run(seq, output=Recorder(demo_core, DEMO_PROFILE).sink(out))
    assert seen and max(seen) >= 2, f"pages visible during the run: {seen}"
    with tifffile.TiffFile(out) as tf:
        assert len(tf.pages) == 4




def _burst_on_a_slow_disk(core, monkeypatch, out, frames: int, write_s: float,
                          warning: str | None = None) -> tuple[Any, list[int]]:
    """Record a hardware-triggered burst of ``frames`` onto a disk that takes ``write_s`` per
    frame; the sink and what waited in the recorder's memory, sampled from another thread
    (``warning``: the RuntimeWarning the run must give)."""
    import contextlib
    import threading
    import time

    from nbo_recorder.store.tiff_writer import TiffPageWriter

    real_write = TiffPageWriter.write

    def slow_write(self, img):  # a disk far slower than the camera
        time.sleep(write_s)
        return real_write(self, img)

    monkeypatch.setattr(TiffPageWriter, "write", slow_write)
    core.setProperty("Camera", "FastImage", "1")
    core.setExposure(0)
    sink = Recorder(core, DEMO_PROFILE).sink(out)
    backlog: list[int] = []
    running = threading.Event()
    running.set()

    def watch() -> None:
        while running.is_set():
            backlog.append(sink.progress.backlog_bytes)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with (pytest.warns(RuntimeWarning, match=warning) if warning
              else contextlib.nullcontext()):
            core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": frames}),
                         output=sink)
    finally:
        running.clear()
        watcher.join()
    return sink, backlog


def test_slow_disk_gives_an_early_warning_and_loses_nothing(demo_core, tmp_path, monkeypatch):
    from nbo_recorder.capture import sink as sink_module

    frame_bytes = 512 * 512 * 2
    monkeypatch.setattr(sink_module, "BACKLOG_WARN_BYTES", 3 * frame_bytes)
    monkeypatch.setattr(sink_module, "BURST_BACKLOG_LIMIT_BYTES", 6 * frame_bytes)
    out = tmp_path / "slow.ome.tif"
    sink, backlog = _burst_on_a_slow_disk(demo_core, monkeypatch, out, 40, 0.03,
                                          warning="outrunning the disk")
    # during the burst the rest waited in the camera's buffer, not in memory
    assert max(backlog) <= 7 * frame_bytes, max(backlog) / frame_bytes
    assert max(backlog) >= 5 * frame_bytes, "the disk was meant to fall behind"
    assert sink.dropped_frames <= 1, "the engine may miss a burst's last frame (see snapped)"
    with tifffile.TiffFile(out) as tf:
        assert len(tf.pages) == 40 - sink.dropped_frames


def test_a_burst_keeps_the_writer_two_frames_ahead_however_small_the_bound(demo_core, tmp_path,
                                                                          monkeypatch):
    from nbo_recorder.capture import sink as sink_module

    # a byte bound below one frame: the writer still finds the next frame ready when it has
    # written one (with room for one frame only, it idled while that frame was fetched)
    monkeypatch.setattr(sink_module, "BURST_BACKLOG_LIMIT_BYTES", 1)
    frame_bytes = demo_core.getImageWidth() * demo_core.getImageHeight() * 2
    sink, backlog = _burst_on_a_slow_disk(demo_core, monkeypatch, tmp_path / "two.ome.tif",
                                          30, 0.02)
    sink.raise_if_failed()
    # the frame being written, the next one ready for the writer, and the one just handed
    # over, which the acquisition thread holds back until one is written (room for one frame
    # only: two at most)
    assert max(backlog) == 3 * frame_bytes, max(backlog) / frame_bytes


def test_dropped_frames_are_reported_not_hidden(demo_core, tmp_path, monkeypatch):
    """Frames the sequence planned but the engine never delivered show up in the file."""
    engine = demo_core.mda.engine
    real_exec = engine.exec_event

    def exec_dropping_t1(event):  # as when a camera delivers fewer images than asked
        for payload in real_exec(event) or ():
            if payload[1].index.get("t") != 1:
                yield payload

    monkeypatch.setattr(engine, "exec_event", exec_dropping_t1)
    out = tmp_path / "dropped.ome.tif"
    sink = Recorder(demo_core, DEMO_PROFILE).sink(out)
    seq = useq.MDASequence(time_plan={"interval": 0.01, "loops": 3})
    with pytest.warns(RuntimeWarning, match="1 of 3 frames never reached the recorder"):
        demo_core.mda.run(seq, output=sink)
    assert sink.dropped_frames == 1
    _, ome = load(out)
    status = next(a["status"] for a in annotations(ome).values() if "status" in a)
    assert status.startswith("incomplete: 2 of 3 expected frames reached the recorder")


def test_a_run_ended_by_an_exception_says_so_in_the_file(demo_core, tmp_path, monkeypatch):
    engine = demo_core.mda.engine
    real_exec = engine.exec_event

    def failing_at_t1(event):
        if event.index.get("t") == 1:
            raise MemoryError("Buffer overflowed")
        return real_exec(event)

    monkeypatch.setattr(engine, "exec_event", failing_at_t1)
    out = tmp_path / "errored.ome.tif"
    sink = Recorder(demo_core, DEMO_PROFILE).sink(out)
    with pytest.raises(MemoryError):
        demo_core.mda.run(useq.MDASequence(time_plan={"interval": 0.01, "loops": 3}),
                          output=sink)
    _, ome = load(out)
    status = next(a["status"] for a in annotations(ome).values() if "status" in a)
    assert status.startswith("incomplete: the acquisition stopped with an error"), status
    assert len(ome.images[0].pixels.planes) == 1


def test_filling_camera_buffer_warns_before_micro_manager_overflows(demo_core, tmp_path):
    """A burst that outruns the acquisition loop is announced while there is still room."""
    import time

    demo_core.setProperty("Camera", "FastImage", "1")
    demo_core.setExposure(0)
    demo_core.setCircularBufferMemoryFootprint(8)  # MB: about 16 frames of 512x512x2

    def slow_consumer(*_):  # e.g. an analysis callback that cannot keep up
        time.sleep(0.004)

    demo_core.mda.events.frameReady.connect(slow_consumer)
    out = tmp_path / "burst.ome.tif"
    sink = Recorder(demo_core, DEMO_PROFILE).sink(out)
    with pytest.warns(RuntimeWarning, match="circular buffer is .* full"):
        try:
            demo_core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 300}),
                              output=sink)
        except MemoryError:  # the overflow may or may not come: the warning must
            pass
    demo_core.mda.events.frameReady.disconnect(slow_consumer)
    assert sink.run is not None and sink.run.frames, "frames before the warning are kept"
