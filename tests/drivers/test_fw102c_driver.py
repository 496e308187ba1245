"""FW102CDriver against the simulated FW102C over the real pyserial URL mechanism."""

from __future__ import annotations

import time

import pytest
from sim_helpers import Connect

from nbo_recorder import sim
from nbo_recorder.drivers import (
    FW102CDriver,
    InstrumentReportedError,
    InstrumentTimeout,
    WrongInstrument,
)
from nbo_recorder.sim import SimFW102C

URL6 = "sim://fw102c?name=wheel6&pcount=6&time_scale=0.1"
URL12 = "sim://fw102c?name=wheel12&pcount=12&time_scale=0.01"


def wheel(connect: Connect, url: str = URL6, **options: float) -> tuple[FW102CDriver, SimFW102C]:
    driver = connect(FW102CDriver, url, **options)
    return driver, sim.get_instrument(url, SimFW102C)


def test_connect_reads_identity_firmware_and_position_count(connect: Connect) -> None:
    driver, _ = wheel(connect)
    assert "FW102C" in driver.identity
    assert driver.firmware_version == "1.07"
    assert driver.position_count == 6
    assert wheel(connect, URL12)[0].position_count == 12


def test_set_position_returns_when_the_wheel_has_stopped(connect: Connect) -> None:
    """1 -> 4 is three steps of 0.5 s real (x 0.1); 4 -> 6 goes two steps."""
    driver, sim = wheel(connect)
    started = time.monotonic()
    driver.set_position(4)
    assert 0.15 <= time.monotonic() - started < 0.6
    assert sim.position == driver.position() == 4
    driver.set_position(6)
    assert driver.position() == 6


@pytest.mark.parametrize("position", [0, 7, -1, True])
def test_position_outside_the_wheel_is_refused_before_sending(
    connect: Connect, position: int
) -> None:
    driver, sim = wheel(connect)
    sent = len(sim.commands)
    with pytest.raises(ValueError, match=r"FW102C filter wheel on sim://.*outside 1-6"):
        driver.set_position(position)
    assert len(sim.commands) == sent


def test_twelve_position_wheel_accepts_12(connect: Connect) -> None:
    driver, sim = wheel(connect, URL12)
    driver.set_position(12)
    assert sim.position == 12


def test_settings(connect: Connect) -> None:
    driver, sim = wheel(connect)
    driver.set_high_speed(False)
    driver.set_trigger_output(True)
    driver.set_sensors_always_on(True)
    assert sim.settings_now == {"pcount": 6, "speed": 0, "trig": 1, "sensors": 1}
    assert (driver.high_speed(), driver.trigger_output(), driver.sensors_always_on()) == (
        False,
        True,
        True,
    )
    driver.save_settings()
    assert sim.saved == sim.settings_now


def test_keypad_move_and_power_cycle_are_read_back(connect: Connect) -> None:
    driver, sim = wheel(connect)
    sim.move_from_keypad(3)
    assert driver.position() == 3
    sim.power_cycle()  # sends a stray '>' prompt to the open port
    assert driver.position() == 1
    assert driver.high_speed()


def test_error_line_between_echo_and_prompt(connect: Connect) -> None:
    driver, sim = wheel(connect)
    sim.settings_now["pcount"] = 3  # the controller was reconfigured behind our back
    with pytest.raises(InstrumentReportedError, match=r"pos=5.*Command error"):
        driver.set_position(5)


def test_move_outlasting_the_move_timeout(connect: Connect) -> None:
    driver, _ = wheel(connect, "sim://fw102c?name=slow&time_scale=1", move_timeout_s=0.3)
    with pytest.raises(InstrumentTimeout, match=r"within 0.3 s; command 'pos=4'"):
        driver.set_position(4)


@pytest.mark.parametrize("other", ["sim://obis", "sim://csuw1"])
def test_another_instrument_on_the_port_is_refused(connect: Connect, other: str) -> None:
    with pytest.raises(WrongInstrument, match="not an FW102C"):
        connect(FW102CDriver, other, timeout_s=0.2)
