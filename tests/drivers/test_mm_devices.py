"""Python devices (nbo_recorder.drivers.mm_devices) in a UniMMCore, talking to the simulators."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pymmcore_plus import DeviceInitializationState
from pymmcore_plus.experimental.unicore import UniMMCore

from nbo_recorder import sim as simulators
from nbo_recorder.drivers.mm_devices import (
    CoolLED,
    CSUW1Dichroic,
    CSUW1Disk,
    CSUW1FilterWheel,
    CSUW1Shutter,
    FW102CFilterWheel,
    ObisLaser,
)
from nbo_recorder.sim import SimCoolLED, SimCSUW1, SimFW102C, SimObis

LASER_URL = (
    "sim://obis?name=l640&wavelength=640&max_mw=140&min_mw=1.5&serial=SN-640"
    "&model=OBIS 640nm LX 140mW&cdrh=0"
)
W1_URL = "sim://csuw1?name=w1&max_rpm=3000&time_scale=0.01"


@pytest.fixture
def core() -> Iterator[UniMMCore]:
    """A UniMMCore with no devices; everything loaded is unloaded (ports closed) after."""
    mmc = UniMMCore()
    yield mmc
    mmc.unloadAllDevices()


def load(core: UniMMCore, label: str, device: object, port: str, **pre_init: str) -> None:
    core.loadPyDevice(label, device)  # type: ignore[arg-type]
    core.setProperty(label, "Port", port)
    for name, value in pre_init.items():
        core.setProperty(label, name, value)
    core.initializeDevice(label)
    assert (
        core.getDeviceInitializationState(label)
        == DeviceInitializationState.InitializedSuccessfully
    )


def test_obis_read_only_properties_come_from_the_laser(core: UniMMCore) -> None:
    load(core, "Laser640", ObisLaser(), LASER_URL)
    assert core.isPropertyPreInit("Laser640", "Port")
    assert core.getProperty("Laser640", "Wavelength") == 640
    assert core.getProperty("Laser640", "SerialNumber") == "SN-640"
    assert core.getProperty("Laser640", "Model") == "OBIS 640nm LX 140mW"
    assert core.getProperty("Laser640", "MaxPower") == 140
    assert core.getProperty("Laser640", "MinPower") == 1.5
    for name in ("Wavelength", "SerialNumber", "Model", "MaxPower", "PowerMeasured"):
        assert core.isPropertyReadOnly("Laser640", name), name
    with pytest.raises(ValueError, match="read-only"):
        core.setProperty("Laser640", "Wavelength", 488)
    assert core.getPropertyLowerLimit("Laser640", "PowerSetpoint") == 1.5
    assert core.getPropertyUpperLimit("Laser640", "PowerSetpoint") == 140


def test_obis_settings_reach_the_laser_in_watts(core: UniMMCore) -> None:
    load(core, "Laser640", ObisLaser(), LASER_URL)
    sim = simulators.get_instrument("l640", SimObis)
    core.setProperty("Laser640", "PowerSetpoint", "12.5")  # as a config file passes it
    assert sim.setpoint_w == pytest.approx(0.0125)
    assert core.getProperty("Laser640", "PowerSetpoint") == 12.5
    core.setProperty("Laser640", "Emission", "On")
    assert sim.emission
    sim.output_ratio = 0.5
    assert core.getProperty("Laser640", "PowerMeasured") == 6.25
    sim.setpoint_w = 0.1
    assert core.getProperty("Laser640", "PowerSetpoint") == 100
    with pytest.raises(ValueError, match="allowed range"):
        core.setProperty("Laser640", "PowerSetpoint", 141)
    assert sim.setpoint_w == 0.1
    core.setProperty("Laser640", "OperatingMode", "DIGITAL")
    assert sim.mode == "DIGITAL"


def test_two_lasers_keep_their_own_limits(core: UniMMCore) -> None:
    load(core, "A", ObisLaser(), "sim://obis?name=a&max_mw=50")
    load(core, "B", ObisLaser(), "sim://obis?name=b&max_mw=200")
    assert core.getPropertyUpperLimit("A", "PowerSetpoint") == 50
    assert core.getPropertyUpperLimit("B", "PowerSetpoint") == 200


@pytest.mark.parametrize("port", ["", "sim://fw102c"])
def test_initialization_fails_without_the_right_instrument(core: UniMMCore, port: str) -> None:
    core.loadPyDevice("Laser", ObisLaser())
    core.setProperty("Laser", "Port", port)
    core.initializeDevice("Laser")
    state = core.getDeviceInitializationState("Laser")
    assert state == DeviceInitializationState.InitializationFailed


def test_csuw1_devices_share_one_connection(core: UniMMCore) -> None:
    for label, device in [
        ("W1-Disk", CSUW1Disk()),
        ("W1-Dichroic", CSUW1Dichroic()),
        ("W1-Emission2", CSUW1FilterWheel()),
        ("W1-Shutter", CSUW1Shutter()),
    ]:
        core.loadPyDevice(label, device)
        core.setProperty(label, "Port", W1_URL)
    core.setProperty("W1-Emission2", "Wheel", "2")
    core.initializeAllDevices()
    sim = simulators.get_instrument("w1", SimCSUW1)
    assert sim.open_handles == 1

    assert core.getStateLabels("W1-Disk") == ("Disk 1", "Disk 2", "Bypass")
    core.setStateLabel("W1-Disk", "Bypass")
    assert sim.bypass
    assert core.getStateLabel("W1-Disk") == "Bypass"
    core.setStateLabel("W1-Disk", "Disk 2")
    assert (sim.disk, sim.bypass) == (2, False)
    core.setState("W1-Dichroic", 2)
    assert sim.dichroic == 3
    core.setState("W1-Emission2", 4)
    assert sim.filters == {1: 1, 2: 5}
    core.setShutterOpen("W1-Shutter", True)
    assert sim.shutter_open and core.getShutterOpen("W1-Shutter")

    assert core.getPropertyUpperLimit("W1-Disk", "DiskSpeed") == 3000
    core.setProperty("W1-Disk", "DiskSpeed", "2500")
    assert sim.speed_rpm == 2500
    assert core.isPropertyReadOnly("W1-Disk", "MaxDiskSpeed")

    sim.disk, sim.dichroic = 1, 1  # turned at the unit's keypad
    assert (core.getState("W1-Disk"), core.getState("W1-Dichroic")) == (0, 0)

    core.unloadAllDevices()
    assert sim.open_handles == 0


def test_coolled_channels_follow_the_unit(core: UniMMCore) -> None:
    load(core, "LED", CoolLED(), "sim://coolled?name=pe300&model=pE-300&leds=365/470/590")
    sim = simulators.get_instrument("pe300", SimCoolLED)
    names = core.getDevicePropertyNames("LED")
    assert {"Intensity-C", "Selected-C", "Emission-C", "Wavelength-C"} <= set(names)
    assert not any(name.endswith("-D") for name in names)
    assert [core.getProperty("LED", f"Wavelength-{ch}") for ch in "ABC"] == [365, 470, 590]
    assert core.isPropertyReadOnly("LED", "Wavelength-A")
    assert core.getProperty("LED", "Model") == "pE-300"

    core.setProperty("LED", "Intensity-B", "30")
    core.setProperty("LED", "Emission-B", "On")
    assert sim.status_line() == "CSSAXF000BSN030CXF000"
    core.setProperty("LED", "Selected-A", "Yes")
    core.setShutterOpen("LED", True)
    assert sim.status_line() == "CSSASN000BSN030CXF000"
    core.setShutterOpen("LED", False)
    assert not core.getShutterOpen("LED")
    assert core.getProperty("LED", "Emission-B") == "Off"
    with pytest.raises(ValueError, match="allowed range"):
        core.setProperty("LED", "Intensity-A", 101)


def test_coolled_wavelength_is_read_live(core: UniMMCore) -> None:
    load(core, "LED", CoolLED(), "sim://coolled?name=pe4000&model=pE-4000")
    simulators.get_instrument("pe4000", SimCoolLED).channels["B"].led_nm = 490  # LOAD at the unit
    assert core.getProperty("LED", "Wavelength-B") == 490


def test_fw102c_states_follow_the_position_count(core: UniMMCore) -> None:
    load(core, "Wheel", FW102CFilterWheel(), "sim://fw102c?name=fw&pcount=12&time_scale=0.01")
    sim = simulators.get_instrument("fw", SimFW102C)
    assert core.getNumberOfStates("Wheel") == 12
    assert core.getProperty("Wheel", "PositionCount") == 12
    assert core.isPropertyReadOnly("Wheel", "PositionCount")
    core.defineStateLabel("Wheel", 3, "FF01-525/45")
    core.setStateLabel("Wheel", "FF01-525/45")
    assert sim.position == 4
    assert core.getState("Wheel") == 3
    core.setProperty("Wheel", "Speed", "Slow")
    assert sim.settings_now["speed"] == 0
    sim.move_from_keypad(12)
    assert core.getState("Wheel") == 11
    assert core.getStateLabel("Wheel") == "Position-12"


def test_devices_load_from_a_config_file(core: UniMMCore, tmp_path: Path) -> None:
    """``#py pyDevice`` lines, the Port pre-init property, labels and a preset."""
    cfg = tmp_path / "rig.cfg"
    cfg.write_text(
        "\n".join(
            [
                "Property,Core,Initialize,0",
                "#py pyDevice,Laser,nbo_recorder.drivers.mm_devices,ObisLaser",
                "#py pyDevice,Wheel,nbo_recorder.drivers.mm_devices,FW102CFilterWheel",
                "#py Property,Laser,Port,sim://obis?name=cfg-laser&wavelength=405&max_mw=50",
                "#py Property,Wheel,Port,sim://fw102c?name=cfg-wheel&time_scale=0.01",
                "Property,Core,Initialize,1",
                "#py Label,Wheel,1,FF01-450/50",
                "#py ConfigGroup,Channel,405,Laser,PowerSetpoint,7.5",
                "#py ConfigGroup,Channel,405,Laser,Emission,On",
                "#py ConfigGroup,Channel,405,Wheel,Label,FF01-450/50",
            ]
        )
    )
    core.loadSystemConfiguration(cfg)
    assert core.getProperty("Laser", "Wavelength") == 405
    core.setConfig("Channel", "405")
    laser = simulators.get_instrument("cfg-laser", SimObis)
    assert laser.setpoint_w == pytest.approx(0.0075)
    assert laser.emission
    assert simulators.get_instrument("cfg-wheel", SimFW102C).position == 2
    assert core.getCurrentConfig("Channel") == "405"
