"""CoolLEDDriver against the simulated pE-300 / pE-4000 over the real pyserial URL mechanism."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sim_helpers import Connect

from nbo_recorder import sim
from nbo_recorder.drivers import (
    CoolLEDDriver,
    InstrumentReplyError,
    InstrumentTimeout,
    WrongInstrument,
)
from nbo_recorder.drivers.coolled import ChannelStatus
from nbo_recorder.sim import SimCoolLED

PE300 = "sim://coolled?name=pe300&model=pE-300"
PE4000 = "sim://coolled?name=pe4000&model=pE-4000&leds=385/470/550/635"


def engine(connect: Connect, url: str = PE300) -> tuple[CoolLEDDriver, SimCoolLED]:
    driver = connect(CoolLEDDriver, url)
    return driver, sim.get_instrument(url, SimCoolLED)


def test_connect_skips_the_greeting_and_reads_model_channels_and_leds(connect: Connect) -> None:
    driver, _ = engine(connect)
    assert driver.model == "pE-300"
    assert driver.channels == ("A", "B", "C")
    assert driver.installed_leds_nm == {"A": 400, "B": 460, "C": 550}
    big, _ = engine(connect, PE4000)
    assert big.model == "pE-4000"
    assert big.installed_leds_nm == {"A": 385, "B": 470, "C": 550, "D": 635}


def test_channel_settings_reach_the_light_engine(connect: Connect) -> None:
    driver, sim = engine(connect)
    driver.set_intensity_pct("B", 40)
    assert sim.channels["B"].intensity_pct == 40
    assert driver.intensity_pct("B") == 40
    driver.set_channel_on("B", True)
    assert sim.channels["B"].selected and sim.channels["B"].on
    driver.set_selected("A", True)
    driver.set_selected_channels_on(False)
    assert not any(ch.on for ch in sim.channels.values())
    driver.set_selected_channels_on(True)
    assert sim.status_line() == "CSSASN000BSN040CXF000"
    driver.set_selected("B", False)
    assert driver.status()["B"] == ChannelStatus(selected=False, on=False, intensity_pct=40)


def test_changes_made_at_the_unit_are_read_back(connect: Connect) -> None:
    driver, sim = engine(connect)
    sim.channels["C"].intensity_pct = 77
    sim.channels["C"].selected = sim.channels["C"].on = True
    assert driver.status()["C"] == ChannelStatus(selected=True, on=True, intensity_pct=77)


def test_pe4000_switches_leds(connect: Connect) -> None:
    driver, sim = engine(connect, PE4000)
    assert driver.load_led(490) == "B"
    assert sim.channels["B"].led_nm == 490
    assert driver.read_installed_leds()["B"] == 490


@pytest.mark.parametrize(
    ("url", "call", "message"),
    [
        (PE300, lambda d: d.set_intensity_pct("D", 10), "no channel 'D'; channels: A, B, C"),
        (PE300, lambda d: d.set_intensity_pct("A", 101), "intensity 101 .* 0-100"),
        (PE300, lambda d: d.set_intensity_pct("A", -1), "intensity -1 .* 0-100"),
        (PE300, lambda d: d.set_intensity_pct("A", 12.5), "whole number of percent"),
        (PE300, lambda d: d.load_led(470), "only a pE-4000 can switch LEDs"),
        (PE4000, lambda d: d.load_led(999), "no pE-4000 channel offers 999 nm"),
    ],
)
def test_invalid_requests_are_refused_before_sending(
    connect: Connect, url: str, call: Callable[[CoolLEDDriver], object], message: str
) -> None:
    driver, sim = engine(connect, url)
    sent = len(sim.commands)
    with pytest.raises(ValueError, match=f"CoolLED pE-.*{message}"):
        call(driver)
    assert len(sim.commands) == sent


def test_an_unexpected_line_is_an_error(connect: Connect) -> None:
    driver, sim = engine(connect)
    sim.set_fault("error")
    with pytest.raises(InstrumentReplyError, match=r"expected a CSS status line.*CAI5.*ERROR"):
        driver.set_intensity_pct("A", 5)


@pytest.mark.parametrize("other", ["sim://obis", "sim://fw102c"])
def test_another_instrument_on_the_port_is_silent(connect: Connect, other: str) -> None:
    """The others run at 115200 baud: at 57600 the CoolLED driver hears nothing."""
    with pytest.raises(InstrumentTimeout, match="no reply"):
        connect(CoolLEDDriver, other, timeout_s=0.2)


def test_a_text_instrument_at_the_same_baud_rate_is_refused(connect: Connect) -> None:
    """A CoolLED answering with something else entirely is reported as the wrong instrument."""
    _, sim = engine(connect)
    sim.set_fault("error")
    with pytest.raises(WrongInstrument, match="model line does not name a pE light engine"):
        connect(CoolLEDDriver, PE300, timeout_s=0.2)
