"""What is in the light path: unknown on/off is never claimed, shutters gate, lasers report.

Issue 13, cases 2, 7 and 8. Ground truth is read independently of the recorder: the
simulators' own state (``sim.get_instrument``) and direct core reads in a ``frameReady``
handler connected before the recorder's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import useq

from nbo_recorder import sim
from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.cli.acquisition import bundled_profile, bundled_rig_config
from nbo_recorder.drivers import mm_coolled
from nbo_recorder.judge.methods import build_methods
from nbo_recorder.judge.reader import read
from nbo_recorder.rig import load_core
from nbo_recorder.vocabulary import NBO_NAMESPACE
from tests.helpers import DEMO_PROFILE, planes, snapped

SD_PROFILE = bundled_profile("sim_spinning_disk.yaml")
LEDS = ("led-pe300-a", "led-pe300-b", "led-pe300-c")


def _sd_core(tmp_path: Path, obis_time_scale: str = "0.01") -> Any:
    """The simulated spinning-disk rig, powered up fresh (lasers on their own time scale)."""
    text = Path(bundled_rig_config("sim_spinning_disk.cfg")).read_text(encoding="utf-8")
    text = text.replace("&max_mw=100&time_scale=0.01", f"&max_mw=100&time_scale={obis_time_scale}")
    cfg = tmp_path / "sd.cfg"
    cfg.write_text(text, encoding="utf-8")
    sim.reset_instruments()
    return load_core(str(cfg))


@pytest.fixture
def sd_core(tmp_path: Path) -> Iterator[Any]:
    core = _sd_core(tmp_path)
    yield core
    core.unloadAllDevices()
    sim.reset_instruments()


def _nbo_light_source_refs(path: Path) -> list[set[str]]:
    """Per NBO LightPath, the IDs of its LightSourceSettings."""
    nbo = read(path).nbo
    assert nbo is not None
    return [{el.get("ID", "") for el in lp.iter(f"{{{NBO_NAMESPACE}}}LightSourceSettings")}
            for lp in nbo.iter(f"{{{NBO_NAMESPACE}}}LightPath")]


# --- case 2: an unreadable on/off is never claimed as in the path -----------------------------


@pytest.fixture
def sd_core_quick_coolled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The spinning-disk rig with a CoolLED driver that gives up after 0.2 s, not 1 s.

    The simulators answer in milliseconds (time_scale 0.01), so only unanswered queries wait
    out the timeout; a garbled unit costs every LED query that wait, on every frame.
    """
    monkeypatch.setattr(mm_coolled, "CoolLEDDriver",
                        functools.partial(mm_coolled.CoolLEDDriver, timeout_s=0.2))
    core = _sd_core(tmp_path)
    yield core
    core.unloadAllDevices()
    sim.reset_instruments()


def test_garbage_from_the_coolled_claims_no_led_and_says_the_path_is_unknown(
        sd_core_quick_coolled, tmp_path):
    sd_core = sd_core_quick_coolled
    sd_core.setProperty("Laser488", "Emission", "On")  # the one source truly lit
    sd_core.setProperty("LED", "Emission-B", "Off")
    coolled = sim.get_instrument("pe300", sim.SimCoolLED)
    obis = sim.get_instrument("laser488", sim.SimObis)
    while not obis.is_emitting(time.monotonic()):  # past its CDRH start-up delay: lit
        time.sleep(0.01)
    truth: list[tuple[bool, ...]] = []
    sd_core.mda.events.frameReady.connect(
        lambda *_: truth.append((obis.is_emitting(time.monotonic()),
                                 *(ch.on for ch in coolled.channels.values()))))
    out = tmp_path / "garbage.ome.tif"
    sink = Recorder(sd_core, SD_PROFILE).sink(out)
    coolled.set_fault("garbage")
    # each unanswered LED query waits out the driver's timeout
    sd_core.mda.engine.timeout_base = 120
    sd_core.mda.run(useq.MDASequence(time_plan=snapped(2)), output=sink)
    coolled.set_fault(None)
    assert truth == [(True, False, False, False)] * 2, "the rig: laser 488 on, every LED off"
    recorded = read(out)
    for view in planes(recorded.ome):
        s = view.settings
        for led in LEDS:
            assert s[f"light_source[{led}]"].startswith("unknown (on/off: reading LED.Emission-")
        assert s["light_sources"].startswith("unknown (led-pe300-a: on/off: reading LED.")
        assert s["light_source[laser-488]"] == "in path"
    channel = recorded.ome.images[0].pixels.channels[0]
    assert channel.light_source_settings.id == "LightSource:laser-488"  # known lit, not an LED
    assert channel.excitation_wavelength is None, "another source may have been lit"
    assert _nbo_light_source_refs(out) == [{"LightSource:laser-488"}]
    text = build_methods(recorded.ome).text()
    assert "light sources in the path unknown (led-pe300-a: on/off" in text
    assert "which light sources were in the path" in text


def test_an_unplugged_obis_that_is_off_is_not_written_as_in_path(sd_core, tmp_path):
    laser561 = sim.get_instrument("laser561", sim.SimObis)
    assert not laser561.emission  # Startup: all light off
    laser561.set_fault("disconnect_after:0")
    # reading an unplugged laser waits out its timeouts while the burst's frames wait in the
    # camera buffer: give the engine time to collect them on a loaded machine
    sd_core.mda.engine.timeout_base = 120
    truth: list[bool] = []
    sd_core.mda.events.frameReady.connect(lambda *_: truth.append(laser561.emission))
    out = tmp_path / "unplugged.ome.tif"
    try:
        sd_core.mda.run(useq.MDASequence(time_plan=snapped(2)),
                        output=Recorder(sd_core, SD_PROFILE).sink(out))
    finally:
        laser561.reconnect()
    assert truth == [False, False]
    recorded = read(out)
    for view in planes(recorded.ome):
        state = view.settings["light_source[laser-561]"]
        assert state.startswith("unknown (on/off: reading Laser561.Emission failed"), state
        assert "light_source[laser-561].power_mw" not in view.settings
        assert view.settings["light_sources"].startswith("unknown (laser-561: on/off")
    assert recorded.ome.images[0].pixels.channels[0].light_source_settings is None
    assert _nbo_light_source_refs(out) == [set()]


# --- case 7: a closed shutter lets no light through --------------------------------------------


@pytest.mark.parametrize(("shutter", "component", "preset"), [
    ("LED Shutter", "led-demo", None), ("White Light Shutter", "white-light-demo", "FITC")])
def test_a_closed_shutter_without_auto_shutter_puts_no_light_in_the_path(
        demo_core, tmp_path, shutter, component, preset):
    demo_core.setProperty("Core", "Shutter", shutter)
    demo_core.setProperty("LED", "Label", "470nm")
    demo_core.setAutoShutter(False)
    demo_core.setShutterOpen(shutter, False)

    def open_at_t1(event: useq.MDAEvent) -> None:
        if event.index.get("t") == 1:
            demo_core.setShutterOpen(shutter, True)

    truth: list[bool] = []
    demo_core.mda.events.eventStarted.connect(open_at_t1)
    demo_core.mda.events.frameReady.connect(lambda *_: truth.append(
        demo_core.getShutterOpen(shutter) or (demo_core.getAutoShutter()
                                              and demo_core.getShutterDevice() == shutter)))
    out = tmp_path / "shutter.ome.tif"
    seq = useq.MDASequence(time_plan={"interval": 0.02, "loops": 3},
                           channels=[preset] if preset else [])
    demo_core.mda.run(seq, output=Recorder(demo_core, DEMO_PROFILE).sink(out))
    assert truth == [False, True, True]
    recorded = read(out)
    by_t = {v.t: v.settings for v in planes(recorded.ome)}
    assert f"light_source[{component}]" not in by_t[0], "closed, auto-shutter off: no light"
    assert by_t[1][f"light_source[{component}]"] == "in path"
    assert by_t[2][f"light_source[{component}]"] == "in path"
    assert recorded.ome.images[0].pixels.channels[0].light_source_settings is None


def test_auto_shutter_opens_the_selected_shutter_for_each_exposure(demo_core, tmp_path):
    demo_core.setProperty("Core", "Shutter", "LED Shutter")
    demo_core.setProperty("LED", "Label", "470nm")
    demo_core.setAutoShutter(True)
    demo_core.setShutterOpen("LED Shutter", False)
    out = tmp_path / "auto.ome.tif"
    demo_core.mda.run(useq.MDASequence(time_plan=snapped(2)),
                      output=Recorder(demo_core, DEMO_PROFILE).sink(out))
    assert not demo_core.getShutterOpen("LED Shutter") and demo_core.getAutoShutter()
    for view in planes(read(out).ome):
        assert view.settings["light_source[led-demo]"] == "in path"


# --- case 8: what the laser emits, beside what it is set to -------------------------------------


def test_a_laser_in_its_cdrh_delay_is_recorded_as_not_emitting(tmp_path):
    core = _sd_core(tmp_path, obis_time_scale="0.1")  # CDRH start-up delay: 0.5 s
    try:
        obis = sim.get_instrument("laser488", sim.SimObis)
        truth: list[tuple[str, float, float]] = []

        def observe(*_: Any) -> None:
            now = time.monotonic()
            state = ("Emitting" if obis.is_emitting(now) else
                     "CDRH delay" if obis.emission else "Off")
            truth.append((state, obis.measured_power_w(now) * 1000, obis.setpoint_w * 1000))

        core.mda.events.frameReady.connect(observe)
        out = tmp_path / "cdrh.ome.tif"
        seq = useq.MDASequence(channels=["488-GFP"], time_plan={"interval": 0.35, "loops": 3})
        core.mda.run(seq, output=Recorder(core, SD_PROFILE).sink(out))
        states = [state for state, _, _ in truth]
        assert states == ["CDRH delay", "CDRH delay", "Emitting"], truth
        recorded = read(out)
        views = sorted(planes(recorded.ome), key=lambda v: v.t)
        for view, (state, emitted_mw, setpoint_mw) in zip(views, truth, strict=True):
            s = view.settings
            assert s["light_source[laser-488].emission_state"] == state
            assert s["light_source[laser-488].power_emitted_mw"] == f"{emitted_mw:g} mW"
            assert s["light_source[laser-488].power_mw"] == f"{setpoint_mw:g} mW"
            # lit only once it emits: during the delay the frame had none of its light
            assert s["light_source[laser-488]"] == (
                "in path" if state == "Emitting" else f"in path, not emitting ({state})")
        assert views[0].settings["light_source[laser-488].power_emitted_mw"] == "0 mW"
        assert views[2].settings["light_source[laser-488].power_emitted_mw"] == "20 mW"
        text = build_methods(recorded.ome).text()
        assert "20 mW set at the source; the source reported 0 mW emitted, CDRH delay" in text
    finally:
        core.unloadAllDevices()
        sim.reset_instruments()
