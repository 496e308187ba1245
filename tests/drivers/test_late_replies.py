"""A reply that arrives after its command timed out is never taken as the next answer.

Each case times out one query with the simulator's ``slow`` fault (the answer comes after
the driver's timeout), changes the instrument behind the driver's back where that makes
the late answer differ from the truth, and asks the next query. The truth is the
simulator's own state, read directly, never the driver's output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sim_helpers import Connect

from nbo_recorder import sim
from nbo_recorder.drivers import (
    CoolLEDDriver,
    CSUW1Driver,
    FW102CDriver,
    InstrumentError,
    InstrumentOutOfStep,
    InstrumentTimeout,
    ObisLaserDriver,
)
from nbo_recorder.drivers.coolled import ChannelStatus
from nbo_recorder.sim import SimCoolLED, SimCSUW1, SimFW102C, SimObis, SimulatedInstrument

TIMEOUT_S = 0.25
LATE_S = 0.4
"""Delay of every answer under the ``slow`` fault: later than TIMEOUT_S, earlier than 2x."""


def _set_obis(instrument: Any) -> None:
    instrument.setpoint_w = 0.02


def _move_wheel(instrument: Any) -> None:
    instrument.position = 4


def _dim_led(instrument: Any) -> None:
    instrument.channels["A"].intensity_pct = 77


@dataclass(frozen=True)
class Case:
    """A driver, the query that times out, a change behind its back, the next query."""

    driver: type[Any]
    url: str
    simulator: type[SimulatedInstrument]
    first: Callable[[Any], object]
    change: Callable[[Any], None]
    second: Callable[[Any], object]
    truth: Callable[[Any], object]
    """The second query's true answer, from the simulator's own state."""
    options: dict[str, float]


def _status_a(status: dict[str, ChannelStatus]) -> int:
    return status["A"].intensity_pct


CASES = [
    Case(  # the case: the disk number (1) must not become the disk speed
        CSUW1Driver,
        "sim://csuw1?name=late",
        SimCSUW1,
        lambda d: d.disk(),
        lambda s: None,
        lambda d: d.disk_speed_rpm(),
        lambda s: s.speed_rpm,
        {"busy_retries": 10, "busy_retry_interval_s": 0.05},
    ),
    Case(  # the late setpoint (0 W) must not become the diode hours
        ObisLaserDriver,
        "sim://obis?name=late",
        SimObis,
        lambda d: d.power_setpoint_mw(),
        _set_obis,
        lambda d: d.diode_hours(),
        lambda s: s.diode_hours,
        {},
    ),
    Case(  # same command twice, no echo: the old status must not be the new one
        CoolLEDDriver,
        "sim://coolled?name=late",
        SimCoolLED,
        lambda d: _status_a(d.status()),
        _dim_led,
        lambda d: _status_a(d.status()),
        lambda s: s.channels["A"].intensity_pct,
        {},
    ),
    Case(  # same command twice, same echo: the old position must not be the new one
        FW102CDriver,
        "sim://fw102c?name=late",
        SimFW102C,
        lambda d: d.position(),
        _move_wheel,
        lambda d: d.position(),
        lambda s: s.position,
        {},
    ),
]
IDS = [case.driver.__name__ for case in CASES]


def _time_out_first_query(connect: Connect, case: Case) -> tuple[Any, Any, object]:
    driver = connect(case.driver, case.url, timeout_s=TIMEOUT_S, **case.options)
    instrument = sim.get_instrument(case.url, case.simulator)
    late_answer = case.first(driver)  # what the late reply will say
    instrument.set_fault(f"slow:{LATE_S}")
    with pytest.raises(InstrumentTimeout) as caught:
        case.first(driver)
    assert "late reply #1" in str(caught.value), "the event is counted and named"
    case.change(instrument)
    return driver, instrument, late_answer


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_late_reply_is_dropped_when_the_instrument_recovers(connect: Connect, case: Case) -> None:
    driver, instrument, late_answer = _time_out_first_query(connect, case)
    instrument.set_fault(None)  # the late answer is still on its way
    answer = case.second(driver)
    assert answer == case.truth(instrument)
    assert answer != late_answer, "the case is built so that a mis-pairing would show"
    assert driver.late_replies == 1, "one event, counted"
    assert case.second(driver) == case.truth(instrument)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_while_answers_stay_late_the_value_is_an_error(connect: Connect, case: Case) -> None:
    driver, instrument, _ = _time_out_first_query(connect, case)
    for _ in range(3):  # every late answer, including the resynchronisation's, is refused
        with pytest.raises(InstrumentError) as caught:
            case.second(driver)
        why = str(caught.value)  # a unit that answers "busy" meanwhile is refused as well
        assert any(reason in why for reason in ("late reply #", "out of step", "still busy"))
    instrument.set_fault(None)
    deadline = time.monotonic() + 10
    while True:  # the backlog of late answers drains; every answer given is the truth
        try:
            answer = case.second(driver)
        except InstrumentError as error:
            assert time.monotonic() < deadline, f"never recovered: {error}"
            continue
        assert answer == case.truth(instrument)
        break
    assert case.second(driver) == case.truth(instrument)


def test_out_of_step_error_names_the_command_and_the_event(connect: Connect) -> None:
    driver = connect(CSUW1Driver, "sim://csuw1?name=named", timeout_s=TIMEOUT_S)
    instrument = sim.get_instrument("named", SimCSUW1)
    instrument.set_fault("timeout")  # swallowed: the answer never comes
    with pytest.raises(InstrumentTimeout):
        driver.disk()
    with pytest.raises(InstrumentOutOfStep) as caught:
        driver.disk_speed_rpm()
    message = str(caught.value)
    assert "out of step since late reply #1" in message
    assert "command 'MS, ?'" in message and "NBO_SYNC" in message
    instrument.set_fault(None)
    assert driver.disk_speed_rpm() == instrument.speed_rpm
    assert driver.disk() == instrument.disk


def test_late_obis_answer_with_its_ok_is_dropped_whole(connect: Connect) -> None:
    """A query's answer is two lines (value, OK): both belong to the timed-out query."""
    driver = connect(ObisLaserDriver, "sim://obis?name=two", timeout_s=TIMEOUT_S)
    instrument = sim.get_instrument("two", SimObis)
    instrument.set_fault(f"slow:{LATE_S}")
    with pytest.raises(InstrumentTimeout):
        driver.base_temperature_c()
    instrument.set_fault(None)
    driver.set_power_mw(30)  # a setting command answers a bare OK: not the late one's
    assert instrument.setpoint_w == pytest.approx(0.03)
    assert driver.power_setpoint_mw() == pytest.approx(instrument.setpoint_w * 1000)
    assert driver.diode_temperature_c() == instrument.diode_temperature_c
