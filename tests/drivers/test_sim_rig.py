"""mocks/rigs/sim_spinning_disk.cfg through UniMMCore: presets reach the simulators, MDA runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mm_test_adapters
import pytest
import useq
from pymmcore_plus import DeviceInitializationState
from pymmcore_plus.experimental.unicore import UniMMCore

from nbo_recorder import sim
from nbo_recorder.sim import SimCoolLED, SimCSUW1, SimFW102C, SimObis

RIG_CFG = Path(__file__).resolve().parents[2] / "mocks" / "rigs" / "sim_spinning_disk.cfg"
PY_DEVICES = ("Laser488", "Laser561", "W1-Disk", "W1-Dichroic", "W1-Emission", "LED", "Emission2")


@pytest.fixture
def rig() -> Iterator[UniMMCore]:
    core = UniMMCore()
    core.setDeviceAdapterSearchPaths([mm_test_adapters.device_adapter_path()])
    core.loadSystemConfiguration(RIG_CFG)
    yield core
    core.unloadAllDevices()


def snapshot() -> dict[str, Any]:
    """The simulated hardware as it physically is."""
    laser488 = sim.get_instrument("laser488", SimObis)
    laser561 = sim.get_instrument("laser561", SimObis)
    w1 = sim.get_instrument("csuw1", SimCSUW1)
    led = sim.get_instrument("pe300", SimCoolLED)
    return {
        "488 on": laser488.emission,
        "488 mW": round(laser488.setpoint_w * 1000, 3),
        "561 on": laser561.emission,
        "561 mW": round(laser561.setpoint_w * 1000, 3),
        "disk": None if w1.bypass else w1.disk,
        "dichroic": w1.dichroic,
        "W1 filter": w1.filters[1],
        "wheel 2": sim.get_instrument("fw102c", SimFW102C).position,
        "LED B on": led.channels["B"].on,
    }


GFP = {"488 on": True, "488 mW": 20, "561 on": False, "disk": 1, "dichroic": 1}
GFP |= {"W1 filter": 1, "wheel 2": 1, "LED B on": False}
MCHERRY = {"488 on": False, "561 on": True, "561 mW": 35, "disk": 1, "dichroic": 1}
MCHERRY |= {"W1 filter": 2, "wheel 2": 2, "LED B on": False}
BRIGHTFIELD = {"488 on": False, "561 on": False, "disk": None, "W1 filter": 4, "LED B on": True}


def test_rig_loads_with_every_python_device_initialized(rig: UniMMCore) -> None:
    for label in PY_DEVICES:
        assert rig.isPyDevice(label)
        state = rig.getDeviceInitializationState(label)
        assert state == DeviceInitializationState.InitializedSuccessfully, label
    assert rig.getChannelGroup() == "Channel"
    assert set(rig.getAvailableConfigs("Channel")) == {"488-GFP", "561-mCherry", "BF-LED"}
    assert snapshot()["488 on"] is False, "System/Startup switched the lasers off"
    assert rig.getProperty("Laser561", "Wavelength") == 561
    assert rig.getProperty("LED", "Wavelength-B") == 460


def test_objective_group_sets_the_pixel_size(rig: UniMMCore) -> None:
    for preset, um in [("10x", 0.65), ("20x", 0.325), ("60x", 0.108)]:
        rig.setConfig("Objective", preset)
        assert rig.getPixelSizeUm() == pytest.approx(um)


@pytest.mark.parametrize(
    ("preset", "expected"),
    [("488-GFP", GFP), ("561-mCherry", MCHERRY), ("BF-LED", BRIGHTFIELD)],
)
def test_channel_presets_move_the_hardware(
    rig: UniMMCore, preset: str, expected: dict[str, Any]
) -> None:
    rig.setConfig("Channel", preset)
    state = snapshot()
    assert {key: state[key] for key in expected} == expected
    assert rig.getCurrentConfig("Channel") == preset


def test_disk_group(rig: UniMMCore) -> None:
    rig.setConfig("Disk", "Disk 2")
    assert snapshot()["disk"] == 2
    rig.setConfig("Disk", "Bypass")
    assert snapshot()["disk"] is None
    assert rig.getCurrentConfig("Disk") == "Bypass"


def test_mda_over_two_channels_and_two_planes(rig: UniMMCore) -> None:
    frames: list[tuple[str, int, dict[str, Any]]] = []

    def on_frame(image: Any, event: useq.MDAEvent) -> None:
        assert event.channel is not None
        frames.append((event.channel.config, event.index.get("z", -1), snapshot()))

    rig.mda.events.frameReady.connect(on_frame)
    sequence = useq.MDASequence(
        channels=[
            {"group": "Channel", "config": "488-GFP"},
            {"group": "Channel", "config": "561-mCherry"},
        ],
        z_plan={"range": 1.0, "step": 1.0},
        axis_order="czp",
    )
    rig.mda.run(sequence)

    assert [(channel, z) for channel, z, _ in frames] == [
        ("488-GFP", 0),
        ("488-GFP", 1),
        ("561-mCherry", 0),
        ("561-mCherry", 1),
    ]
    for channel, _, state in frames:
        expected = GFP if channel == "488-GFP" else MCHERRY
        assert {key: state[key] for key in expected} == expected, channel
