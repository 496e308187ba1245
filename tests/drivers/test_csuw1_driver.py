"""CSUW1Driver against the simulated CSU-W1 over the real pyserial URL mechanism."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sim_helpers import Connect

from nbo_recorder import sim
from nbo_recorder.drivers import (
    CSUW1Driver,
    InstrumentBusy,
    InstrumentReportedError,
    InstrumentTimeout,
    WrongInstrument,
)
from nbo_recorder.sim import SimCSUW1

URL = "sim://csuw1?name=w1&max_rpm=3500&time_scale=0.01"


def unit(connect: Connect, url: str = URL, **options: float) -> tuple[CSUW1Driver, SimCSUW1]:
    driver = connect(CSUW1Driver, url, **options)
    return driver, sim.get_instrument(url, SimCSUW1)


def test_disk_bypass_and_speed(connect: Connect) -> None:
    driver, sim = unit(connect)
    assert driver.max_disk_speed_rpm == 3500
    assert driver.disk() == 1
    driver.select_disk(2)
    assert (sim.disk, driver.disk()) == (2, 2)
    driver.set_brightfield_bypass(True)
    assert sim.bypass and driver.brightfield_bypass()
    assert driver.disk() is None
    driver.set_brightfield_bypass(False)
    assert driver.disk() == 2
    driver.set_disk_speed_rpm(2000)
    assert sim.speed_rpm == driver.disk_speed_rpm() == 2000
    driver.stop_disk()
    assert not sim.disk_running
    driver.start_disk()
    driver.sync_disk_speed_to_exposure(100)
    assert 1500 <= sim.speed_rpm <= 3500
    assert sim.commands[-1] == "MS_ADJUST,100"


def test_dichroic_filters_and_shutter(connect: Connect) -> None:
    driver, sim = unit(connect)
    driver.set_dichroic(3)
    assert sim.dichroic == driver.dichroic() == 3
    driver.set_filter_position(2, 10)
    assert sim.filters == {1: 1, 2: 10}
    assert driver.filter_position(2) == 10
    driver.set_shutter_open(True)
    assert sim.shutter_open and driver.shutter_open()
    driver.set_shutter_open(False)
    assert not driver.shutter_open()


def test_keypad_changes_are_read_back(connect: Connect) -> None:
    driver, sim = unit(connect)
    sim.disk, sim.dichroic, sim.filters[1] = 2, 2, 5
    assert (driver.disk(), driver.dichroic(), driver.filter_position(1)) == (2, 2, 5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: d.select_disk(3), "disk 3 is outside 1-2"),
        (lambda d: d.set_disk_speed_rpm(1499), "1499 rpm is outside 1500-3500"),
        (lambda d: d.set_disk_speed_rpm(3501), "3501 rpm is outside 1500-3500"),
        (lambda d: d.set_dichroic(4), "dichroic position 4 is outside 1-3"),
        (lambda d: d.set_dichroic(0), "dichroic position 0 is outside 1-3"),
        (lambda d: d.set_filter_position(3, 1), "filter wheel 3 is outside 1-2"),
        (lambda d: d.set_filter_position(1, 11), "filter position 11 is outside 1-10"),
        (lambda d: d.sync_disk_speed_to_exposure(0.2), "at least 1 ms"),
    ],
)
def test_out_of_range_values_are_refused_before_sending(
    connect: Connect, call: Callable[[CSUW1Driver], object], message: str
) -> None:
    driver, sim = unit(connect)
    sent = len(sim.commands)
    with pytest.raises(ValueError, match=f"CSU-W1 on sim://csuw1.*{message}"):
        call(driver)
    assert len(sim.commands) == sent


def test_error_code_is_explained(connect: Connect) -> None:
    driver, _ = unit(connect)
    driver.stop_disk()
    with pytest.raises(InstrumentReportedError, match=r"30204 \(disk stopped\).*MS_ADJUST,50"):
        driver.sync_disk_speed_to_exposure(50)


def test_busy_unit_is_retried_until_it_answers(connect: Connect) -> None:
    driver, sim = unit(connect, busy_retry_interval_s=0.02)
    sim.set_busy_for(10.0)  # a keypad disk change: 10 s real, 0.1 s here
    driver.select_disk(2)
    assert sim.disk == 2
    assert sim.commands.count("DC_SLCT,2") >= 2


def test_busy_unit_that_never_frees_up_raises(connect: Connect) -> None:
    driver, sim = unit(connect, busy_retries=3, busy_retry_interval_s=0.01)
    sim.set_busy_for(1000.0)
    with pytest.raises(InstrumentBusy, match=r"still busy after 3 retries.*DC_SLCT,2.*b'N'"):
        driver.select_disk(2)
    assert sim.commands.count("DC_SLCT,2") == 4


def test_moves_get_the_long_timeout(connect: Connect) -> None:
    """A disk change (3 s real, 0.3 s here) outlasts the 0.2 s query timeout."""
    url = "sim://csuw1?name=slow&time_scale=0.1"
    driver, _ = unit(connect, url, timeout_s=0.2, move_timeout_s=1.0)
    started = time.monotonic()
    driver.select_disk(2)
    assert time.monotonic() - started >= 0.25
    driver.move_timeout_s = 0.1
    with pytest.raises(InstrumentTimeout, match=r"within 0.1 s.*DC_SLCT,1"):
        driver.select_disk(1)


@pytest.mark.parametrize("other", ["sim://fw102c", "sim://obis"])
def test_another_instrument_on_the_port_is_refused(connect: Connect, other: str) -> None:
    with pytest.raises(WrongInstrument, match="not a CSU-W1"):
        connect(CSUW1Driver, other, timeout_s=0.2)
