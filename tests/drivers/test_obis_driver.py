"""ObisLaserDriver against the simulated OBIS over the real pyserial URL mechanism."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_helpers import Connect

from nbo_recorder import sim
from nbo_recorder.drivers import (
    InstrumentReportedError,
    ObisLaserDriver,
    WrongInstrument,
)
from nbo_recorder.sim import SimObis

URL = "sim://obis?name=laser561&wavelength=561&max_mw=80&min_mw=2&serial=A123&time_scale=0.01"


def laser(connect: Connect, url: str = URL) -> tuple[ObisLaserDriver, SimObis]:
    driver = connect(ObisLaserDriver, url)
    return driver, sim.get_instrument(url, SimObis)


def test_connect_sets_up_the_link_and_reads_the_identity(connect: Connect) -> None:
    driver, sim = laser(connect)
    assert sim.commands[:3] == ["SYST1:COMM:HAND On", "SYST1:COMM:PROM Off", "SYST1:ERR:CLE"]
    assert sim.handshake and not sim.prompt
    assert driver.identity.startswith("Coherent")
    assert driver.model == sim.model
    assert driver.serial_number == "A123"
    assert driver.firmware_version == sim.firmware
    assert driver.wavelength_nm == 561
    assert (driver.min_power_mw, driver.max_power_mw, driver.rated_power_mw) == (2, 80, 80)
    assert "561 nm" in driver.device


def test_power_is_mw_at_the_api_and_w_on_the_wire(connect: Connect) -> None:
    driver, sim = laser(connect)
    driver.set_power_mw(25)
    assert sim.commands[-1] == "SOUR:POW:LEV:IMM:AMPL 0.025000"
    assert sim.setpoint_w == pytest.approx(0.025)
    assert driver.power_setpoint_mw() == 25
    sim.setpoint_w = 0.0333
    assert driver.power_setpoint_mw() == 33.3


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(power_mw=st.floats(min_value=2, max_value=80))
def test_any_power_in_range_round_trips_to_10_uw(connect: Connect, power_mw: float) -> None:
    """Sent with 1 µW resolution, reported with 10 µW: back within 0.01 mW."""
    sim.reset_instruments()
    driver, _ = laser(connect)
    driver.set_power_mw(power_mw)
    assert driver.power_setpoint_mw() == pytest.approx(power_mw, abs=0.01)


@pytest.mark.parametrize("power_mw", [80.01, 1.99, -1.0, math.nan, math.inf])
def test_power_outside_the_laser_limits_is_refused_before_sending(
    connect: Connect, power_mw: float
) -> None:
    driver, sim = laser(connect)
    sent = len(sim.commands)
    with pytest.raises(ValueError, match=r"OBIS 561 nm laser.*limits 2-80 mW"):
        driver.set_power_mw(power_mw)
    assert len(sim.commands) == sent


def test_measured_power_is_read_from_the_laser(connect: Connect) -> None:
    driver, sim = laser(connect, URL.replace("time_scale=0.01", "time_scale=0.05"))
    driver.set_power_mw(40)
    assert driver.measured_power_mw() == 0
    sim.output_ratio = 0.9
    driver.set_emission(True)
    assert driver.emission()
    assert driver.measured_power_mw() == 0, "CDRH: no light for 5 s (x 0.05)"
    time.sleep(0.26)
    assert driver.measured_power_mw() == pytest.approx(36)
    driver.set_emission(False)
    assert not sim.emission
    assert driver.measured_power_mw() == 0


def test_state_changed_behind_the_driver_is_seen(connect: Connect) -> None:
    driver, sim = laser(connect)
    sim.emission = True
    sim.mode = "ANALOG"
    sim.fault_word = 0x11
    sim.status_word = 0x80000000
    assert driver.emission()
    assert driver.operating_mode() == "ANALOG"
    assert driver.fault_word() == 0x11
    assert driver.status_word() == 0x80000000


def test_operating_modes(connect: Connect) -> None:
    driver, sim = laser(connect)
    for mode in ("CWC", "DIGITAL", "ANALOG", "MIXED", "CWP"):
        driver.set_operating_mode(mode)
        assert sim.mode == mode
        assert driver.operating_mode() == mode
    with pytest.raises(ValueError, match="operating mode"):
        driver.set_operating_mode("PULSED")


def test_diagnostics(connect: Connect) -> None:
    driver, sim = laser(connect)
    sim.base_temperature_c = 31.25
    assert driver.base_temperature_c() == 31.25
    assert driver.diode_temperature_c() == sim.diode_temperature_c
    assert driver.diode_hours() == sim.diode_hours
    sim.errors.append("ERR-102")
    assert driver.error_count() == 1
    assert driver.next_error() == '-102,"Parameter out of range"'
    assert driver.error_count() == 0


def test_error_reply_names_device_command_and_bytes(connect: Connect) -> None:
    driver, sim = laser(connect)
    sim.set_fault("error")
    with pytest.raises(InstrumentReportedError) as caught:
        driver.set_emission(True)
    message = str(caught.value)
    assert "OBIS 561 nm laser" in message
    assert "SOUR:AM:STAT ON" in message
    assert "ERR-100" in message


@pytest.mark.parametrize("other", ["sim://fw102c", "sim://csuw1"])
def test_another_instrument_on_the_port_is_refused(connect: Connect, other: str) -> None:
    with pytest.raises(WrongInstrument, match="not an OBIS laser"):
        connect(ObisLaserDriver, other, timeout_s=0.2)
