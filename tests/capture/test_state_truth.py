"""Issue 13, cases 4-6: every frame gets the state in force during its exposure.

Ground truth is read independently of the recorder: core reads in handlers that run ahead of
the recorder's (``priority`` above its 1000) or at the exposure's end (``imageSnapped``), and
the simulated instruments' own state (``sim.get_instrument``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import useq

from nbo_recorder import sim
from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.capture.state import VerifyPolicy
from nbo_recorder.cli.acquisition import bundled_profile, bundled_rig_config
from nbo_recorder.cli.main import main
from nbo_recorder.profile.load import load_profile
from nbo_recorder.rig import load_core
from tests.helpers import DEMO_PROFILE, load, planes, py_profile

AHEAD = 2000  # frameReady priority above the recorder's: runs before it captures


def _views(path: Any) -> list[Any]:
    """The file's planes in acquisition (page) order."""
    return sorted(planes(load(path)[1]), key=lambda v: v.ifd)


def _number(text: str) -> float:
    """'20 mW' -> 20.0; '2' -> 2.0."""
    return float(text.split()[0])


def _label_components(profile: Any, device: str) -> dict[str, str | None]:
    binding = next(b for b in profile.bindings if b.device == device and b.labels)
    return {label: (t.component if t is not None else None)
            for label, t in binding.labels.items()}


# --- case 4: no lost updates ----------------------------------------------------------------

def test_config_change_during_a_refresh_is_not_lost(py_core, tmp_path):
    """setConfig fired while the recorder reads the state: the next planes re-read it."""
    objectives = _label_components(load_profile(DEMO_PROFILE), "Objective")
    truth: list[tuple[str, float]] = []
    armed = threading.Event()
    real_get = py_core.getProperty

    def get_property(device: str, prop: str) -> Any:
        if (device, prop) == ("PyLaser", "PowerW") and armed.is_set():
            armed.clear()
            py_core.setConfig("Objective", "20X")  # an event in the middle of the read
            py_core.waitForConfig("Objective", "20X")
        return real_get(device, prop)

    py_core.getProperty = get_property

    def observe(*_: Any) -> None:
        truth.append((py_core.getProperty("Objective", "Label"), py_core.getPixelSizeUm()))
        if len(truth) == 1:
            armed.set()  # fires during the recorder's read for this first frame

    py_core.mda.events.frameReady.connect(observe, priority=AHEAD)
    out = tmp_path / "mid.ome.tif"
    seq = useq.MDASequence(channels=["DAPI"], z_plan={"range": 3, "step": 1})
    py_core.mda.run(seq, output=Recorder(py_core, py_profile()).sink(out))

    views = _views(out)
    assert [label for label, _ in truth] == (["Nikon 10X S Fluor"]
                                             + ["Nikon 20X Plan Fluor ELWD"] * 3)
    assert len(views) == len(truth) == 4
    for view, (label, pixel_um) in zip(views, truth, strict=True):
        assert view.settings["objective"] == objectives[label]
        assert float(view.settings["pixel_size_um"]) == pytest.approx(pixel_um)


# --- case 5: a change just after the exposure belongs to the next frame -----------------------

@pytest.mark.parametrize("delay_s", [0.00005, 0.001, 0.005])
def test_gain_change_just_after_the_snap_is_the_next_frames(demo_core, tmp_path, delay_s):
    at_exposure: list[float] = []
    demo_core.events.imageSnapped.connect(
        lambda *_: at_exposure.append(float(demo_core.getProperty("Camera", "Gain"))))
    sink = Recorder(demo_core, DEMO_PROFILE).sink(tmp_path / "gain.ome.tif")
    gains = iter(["1", "2", "3", "4", "5"])

    def change_after_snap(*_: Any) -> None:  # runs after the recorder noted the exposure end
        until = time.perf_counter() + delay_s
        while time.perf_counter() < until:
            pass
        demo_core.setProperty("Camera", "Gain", next(gains))

    demo_core.events.imageSnapped.connect(change_after_snap)
    demo_core.mda.run(useq.MDASequence(channels=["DAPI"], z_plan={"range": 4, "step": 1}),
                      output=sink)
    views = _views(sink.path)
    assert at_exposure == [0, 1, 2, 3, 4]
    assert [_number(v.settings["detector[cam-demo].gain"]) for v in views] == at_exposure


def test_gain_change_from_another_thread_after_the_snap(demo_core, tmp_path):
    at_exposure: list[float] = []
    demo_core.events.imageSnapped.connect(
        lambda *_: at_exposure.append(float(demo_core.getProperty("Camera", "Gain"))))
    sink = Recorder(demo_core, DEMO_PROFILE).sink(tmp_path / "gain.ome.tif")
    timers: list[threading.Timer] = []

    def later(*_: Any) -> None:
        value = str(len(at_exposure))
        timers.append(threading.Timer(
            0.001, demo_core.setProperty, args=("Camera", "Gain", value)))
        timers[-1].start()

    def settled(*_: Any) -> None:  # the change lands before the next frame is set up
        if timers:
            timers[-1].join()

    demo_core.events.imageSnapped.connect(later)
    demo_core.mda.events.eventStarted.connect(settled)
    demo_core.setExposure(20)
    demo_core.mda.run(useq.MDASequence(channels=["DAPI"], z_plan={"range": 3, "step": 1}),
                      output=sink)
    for timer in timers:
        timer.join()
    views = _views(sink.path)
    assert at_exposure == [0, 1, 2, 3]
    assert [_number(v.settings["detector[cam-demo].gain"]) for v in views] == at_exposure


# --- case 6: silent changes are caught (default) or declared ----------------------------------

def _py_power_run(core: Any, path: Any, verify: str | None) -> list[float]:
    """A z-stack during which the Python laser's power is set through the core (no event)."""
    truth: list[float] = []
    core.mda.events.frameReady.connect(
        lambda *_: truth.append(float(core.getProperty("PyLaser", "PowerW")) * 1000),
        priority=AHEAD)
    powers = iter(["0.02", "0.03", "0.04", "0.05", "0.06"])

    def between_frames(event: useq.MDAEvent) -> None:
        if event.index.get("z", 0) in (2, 4):
            core.setProperty("PyLaser", "PowerW", next(powers))

    core.mda.events.eventStarted.connect(between_frames)
    options = {} if verify is None else {"verify": verify}
    core.mda.run(useq.MDASequence(channels=["DAPI"], z_plan={"range": 5, "step": 1}),
                 output=Recorder(core, py_profile(), **options).sink(path))
    return truth


def test_python_device_power_set_through_the_core_is_caught_by_default(py_core, tmp_path):
    out = tmp_path / "py.ome.tif"
    truth = _py_power_run(py_core, out, None)
    assert truth == [10, 10, 20, 20, 30, 30]
    views = _views(out)
    assert [_number(v.settings["light_source[py-laser].power_mw"]) for v in views] == truth
    assert "PyLaser.PowerW" in views[0].settings["provenance.verified"]
    assert "provenance.assumed" not in views[0].settings
    assert "read at frame 0" in views[0].settings["provenance.read"]
    assert "PyLaser.PowerW (re-read at frame 2)" in views[2].settings["provenance.events"]


def test_with_verify_events_a_silent_value_is_declared_assumed(py_core, tmp_path):
    out = tmp_path / "ev.ome.tif"
    truth = _py_power_run(py_core, out, "events")
    views = _views(out)
    recorded = [_number(v.settings["light_source[py-laser].power_mw"]) for v in views]
    assert truth[0] == recorded[0] == 10
    assert set(recorded) == {10}, "not re-read within the z-stack ..."
    for view in views:  # ... and the file says so for every plane
        assert "PyLaser.PowerW" in view.settings["provenance.assumed"]
        assert "assumed unchanged" in view.settings["provenance.assumed"]
        assert "provenance.verified" not in view.settings


def test_interval_policy_rereads_after_its_interval(py_core, tmp_path):
    out = tmp_path / "iv.ome.tif"
    truth = _py_power_run(py_core, out, "interval:0.000001")
    assert [_number(v.settings["light_source[py-laser].power_mw"])
            for v in _views(out)] == truth


def test_keypad_changes_on_every_simulated_instrument_are_caught(tmp_path):
    """The spinning-disk rig with the default policy: emission wheel moved at the CSU-W1,
    a CoolLED channel's intensity changed and a channel switched on at the unit, OBIS power
    changed at the laser, all mid z-stack with no event."""
    core = load_core(bundled_rig_config("sim_spinning_disk.cfg"))
    profile = load_profile(bundled_profile("sim_spinning_disk.yaml"))
    wheel = _label_components(profile, "W1-Emission")
    labels = ["525/50", "617/73", "700/75", "Open"]
    w1 = sim.get_instrument("csuw1", sim.SimCSUW1)
    led = sim.get_instrument("pe300", sim.SimCoolLED)
    laser = sim.get_instrument("laser488", sim.SimObis)
    truth: list[dict[str, Any]] = []

    def observe(*_: Any) -> None:
        truth.append({"filter": wheel[labels[w1.filters[1] - 1]],
                      "power_mw": round(laser.setpoint_w * 1000, 3),
                      "led_c_pct": led.channels["C"].intensity_pct,
                      "led_c_on": led.channels["C"].on})

    def at_the_keypad(event: useq.MDAEvent) -> None:
        z = event.index.get("z", 0)
        if z == 1:
            w1.filters[1] = 3
        elif z == 2:
            laser.setpoint_w = 0.045
        elif z == 3:
            led.channels["C"].intensity_pct = 40
        elif z == 4:
            led.channels["C"].on = True

    core.mda.events.frameReady.connect(observe, priority=AHEAD)
    core.mda.events.eventStarted.connect(at_the_keypad)
    out = tmp_path / "keypad.ome.tif"
    try:
        core.mda.run(useq.MDASequence(channels=["488-GFP"], z_plan={"range": 4, "step": 1}),
                     output=Recorder(core, profile).sink(out))
    finally:
        led.channels["C"].on = False
        core.unloadAllDevices()
    views = _views(out)
    assert len(views) == len(truth) == 5
    assert [t["filter"] for t in truth] == ["em-525-50", "em-700-75", "em-700-75",
                                            "em-700-75", "em-700-75"]
    raw = [dict(v.settings) for v in views]
    for view, expected in zip(raw, truth, strict=True):
        assert view["emission_filters"].split(",")[0] == expected["filter"]
        assert _number(view["light_source[laser-488].power_mw"]) == expected["power_mw"]
        assert "LED.Emission-C" in view["provenance.verified"]
    assert [t["power_mw"] for t in truth] == [20, 20, 45, 45, 45]
    assert [t["led_c_on"] for t in truth] == [False] * 4 + [True]
    for view, expected in zip(raw, truth, strict=True):  # LED C in the path only once on
        assert ("light_source[led-pe300-c]" in view) == expected["led_c_on"]
    assert _number(raw[4]["light_source[led-pe300-c].intensity_percent"]) == 40
    assert "LED.Emission-C (re-read at frame 4)" in raw[4]["provenance.events"]


# --- the option ------------------------------------------------------------------------------

def test_verify_option_is_checked_before_anything_runs(demo_core, capsys, tmp_path):
    assert VerifyPolicy.parse("interval:2.5") == VerifyPolicy("interval", 2.5)
    assert str(VerifyPolicy.parse("events")) == "events"
    for bad in ("sometimes", "interval:0", "interval:x", "interval:-1"):
        with pytest.raises(ValueError, match="verify"):
            Recorder(demo_core, DEMO_PROFILE, verify=bad)
    out = tmp_path / "never.ome.tif"
    assert main(["demo", "--out", str(out), "--verify", "sometimes"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--verify" in err and "sometimes" in err
    assert not out.exists()
