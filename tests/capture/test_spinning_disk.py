"""The simulated spinning-disk rig: laser power, LED, pinhole disk recorded per channel."""

from __future__ import annotations

import pytest
import useq

from nbo_recorder import sim
from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.cli.acquisition import bundled_profile, bundled_rig_config
from nbo_recorder.cli.main import main
from nbo_recorder.rig import load_core
from tests.helpers import annotations, load, planes, snapped


def _channel_settings(ome):
    anns = annotations(ome)
    out = {}
    for ch in ome.images[0].pixels.channels:
        values = {}
        for ref in ch.annotation_refs:
            values.update(anns[ref.id])
        out[ch.name] = (ch, values)
    return out


def test_spinning_disk_demo_records_laser_power_led_and_pinhole(tmp_path, ome_schema):
    out = tmp_path / "sd.ome.tif"
    assert main(["demo", "--rig", "spinning-disk", "--out", str(out)]) == 0
    xml, ome = load(out)
    ome_schema.validate(xml)
    chans = _channel_settings(ome)
    gfp, gfp_values = chans["488-GFP"]
    assert gfp.light_source_settings.id == "LightSource:laser-488"
    assert gfp.light_source_settings.wavelength == 488.0  # read from the laser, not typed
    assert gfp_values["light_source[laser-488].power_mw"] == "20 mW"
    assert "light_source[laser-561]" not in gfp_values, "emission off: not in the path"
    assert gfp.pinhole_size == 50.0 and gfp_values["pinholes"] == "pinhole-50um"
    assert gfp.acquisition_mode.value == "SpinningDiskConfocal"
    mcherry, mcherry_values = chans["561-mCherry"]
    assert mcherry_values["light_source[laser-561].power_mw"] == "35 mW"
    assert mcherry.light_source_settings.wavelength == 561.0
    bf, bf_values = chans["BF-LED"]
    assert bf.pinhole_size is None and "pinholes" not in bf_values, "bypass: no pinhole"
    assert bf_values["light_source[led-pe300-b].intensity_percent"] == "15 %"
    assert bf.illumination_type.value == "Transmitted"


def test_changes_between_channels_match_the_simulated_instruments(tmp_path):

    core = load_core(bundled_rig_config("sim_spinning_disk.cfg"))
    # a preset that moves the disk and changes the power, applied as a config group
    for dev, prop, value in (("W1-Disk", "Label", "Disk 2"), ("Laser561", "PowerSetpoint", "55"),
                             ("Laser561", "Emission", "On"), ("Laser488", "Emission", "Off"),
                             ("W1-Emission", "Label", "617/73")):
        core.defineConfig("Channel", "561-disk2", dev, prop, value)
    truth = []

    def observe(*_):
        obis = sim.get_instrument("laser561", sim.SimObis)
        disk = sim.get_instrument("csuw1", sim.SimCSUW1)
        truth.append((round(obis.setpoint_w * 1000, 3), disk.disk, disk.bypass))

    core.mda.events.frameReady.connect(observe)
    out = tmp_path / "disk.ome.tif"
    seq = useq.MDASequence(channels=["561-mCherry", "561-disk2"],
                           time_plan={"interval": 0.02, "loops": 2})
    core.mda.run(seq, output=Recorder(core, bundled_profile("sim_spinning_disk.yaml")).sink(out))
    _, ome = load(out)
    views = sorted(planes(ome), key=lambda v: v.ifd)
    assert len(views) == len(truth) == 4
    for view, (power_mw, disk, bypass) in zip(views, truth, strict=True):
        assert not bypass
        assert view.settings["light_source[laser-561].power_mw"] == f"{power_mw:g} mW"
        assert view.settings["pinholes"] == {1: "pinhole-50um", 2: "pinhole-25um"}[disk]
    chans = _channel_settings(ome)
    assert chans["561-disk2"][0].pinhole_size == 25.0
    assert chans["561-mCherry"][0].pinhole_size == 50.0


@pytest.mark.parametrize("rig", ["widefield", "spinning-disk"])
def test_demo_rigs_validate(tmp_path, ome_schema, rig):
    out = tmp_path / f"{rig}.ome.tif"
    assert main(["demo", "--rig", rig, "--out", str(out)]) == 0
    ome_schema.validate(load(out)[0])


def test_a_stopped_disk_is_recorded_as_the_speed_set_not_as_turning(tmp_path):
    """The CSU-W1 answers its speed setting even with the disk stopped (MS_STOP): the file
    names the value a setpoint, never a measured speed."""
    core = load_core(bundled_rig_config("sim_spinning_disk.cfg"))
    try:
        disk = sim.get_instrument("csuw1", sim.SimCSUW1)
        core.setProperty("W1-Disk", "DiskSpeed", "3000")
        disk.disk_running = False  # stopped at the unit: no command the driver could see
        truth = []
        core.mda.events.frameReady.connect(lambda *_: truth.append((disk.speed_rpm,
                                                                    disk.disk_running)))
        out = tmp_path / "stopped.ome.tif"
        core.mda.run(useq.MDASequence(channels=["488-GFP"], time_plan=snapped(2)),
                     output=Recorder(core, bundled_profile("sim_spinning_disk.yaml")).sink(out))
        assert truth == [(3000, False)] * 2
        _, ome = load(out)
        for view in planes(ome):
            assert view.settings["spinning_disk.speed_setpoint_rpm"] == "3000 rpm"
            assert not any(k.startswith("spinning_disk.speed_rpm") for k in view.settings)
    finally:
        core.unloadAllDevices()
        sim.reset_instruments()
