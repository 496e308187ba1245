"""Every injected fault, on every driver, over the real pyserial URL mechanism.

Each instrument is exercised through one single-command query, so the fault is hit by
exactly one exchange. Faults are switched on through the registry (a test hook) after
connecting, or from the URL before connecting.
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
    InstrumentConnectionError,
    InstrumentError,
    InstrumentReplyError,
    InstrumentReportedError,
    InstrumentTimeout,
    ObisLaserDriver,
    WrongInstrument,
)
from nbo_recorder.sim import SimCoolLED, SimCSUW1, SimFW102C, SimObis, SimulatedInstrument


@dataclass(frozen=True)
class Case:
    """A driver, its simulator URL, one single-command query and its command text."""

    driver: type[Any]
    url: str
    query: Callable[[Any], object]
    command: str
    device: str
    error: type[InstrumentError]
    """What the ``error`` fault raises: the instrument's own error grammar if it has one."""
    simulator: type[SimulatedInstrument]


CASES = [
    Case(
        ObisLaserDriver,
        "sim://obis?name=f",
        lambda d: d.power_setpoint_mw(),
        "SOUR:POW:LEV:IMM:AMPL?",
        "OBIS 488 nm laser",
        InstrumentReportedError,
        SimObis,
    ),
    Case(
        CSUW1Driver,
        "sim://csuw1?name=f",
        lambda d: d.disk(),
        "DC_SLCT, ?",
        "CSU-W1",
        InstrumentReportedError,
        SimCSUW1,
    ),
    Case(
        CoolLEDDriver,
        "sim://coolled?name=f",
        lambda d: d.status(),
        "CSS?",
        "CoolLED pE-4000",
        InstrumentReplyError,
        SimCoolLED,
    ),
    Case(
        FW102CDriver,
        "sim://fw102c?name=f",
        lambda d: d.position(),
        "pos?",
        "FW102C filter wheel",
        InstrumentReportedError,
        SimFW102C,
    ),
]
IDS = [case.driver.__name__ for case in CASES]
TIMEOUT_S = 0.25


def connected(connect: Connect, case: Case) -> tuple[Any, SimulatedInstrument]:
    driver = connect(case.driver, case.url, timeout_s=TIMEOUT_S)
    return driver, sim.get_instrument(case.url, case.simulator)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_timeout(connect: Connect, case: Case) -> None:
    driver, sim = connected(connect, case)
    sim.set_fault("timeout")
    started = time.monotonic()
    with pytest.raises(InstrumentTimeout) as caught:
        case.query(driver)
    assert TIMEOUT_S <= time.monotonic() - started < TIMEOUT_S + 0.5
    message = str(caught.value)
    assert case.device in message
    assert f"command {case.command!r}" in message
    assert f"within {TIMEOUT_S:g} s" in message
    assert "received b''" in message
    sim.set_fault(None)
    case.query(driver)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_garbage(connect: Connect, case: Case) -> None:
    driver, sim = connected(connect, case)
    sim.set_fault("garbage")
    with pytest.raises(InstrumentReplyError) as caught:
        case.query(driver)
    message = str(caught.value)
    assert case.device in message and case.command in message
    assert "\\x8f\\xfe" in message, "the garbage bytes are shown"
    assert not isinstance(caught.value, WrongInstrument)
    sim.set_fault(None)
    case.query(driver)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_error_reply(connect: Connect, case: Case) -> None:
    driver, sim = connected(connect, case)
    sim.set_fault("error")
    with pytest.raises(case.error) as caught:
        case.query(driver)
    assert case.device in str(caught.value) and case.command in str(caught.value)
    assert caught.value.reply


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_disconnect_after_n_commands(connect: Connect, case: Case) -> None:
    driver, sim = connected(connect, case)
    sim.set_fault("disconnect_after:2")
    case.query(driver)
    case.query(driver)
    with pytest.raises(InstrumentConnectionError, match="device disconnected") as caught:
        case.query(driver)
    assert case.device in str(caught.value) and case.command in str(caught.value)
    with pytest.raises(InstrumentConnectionError):
        case.query(driver)
    sim.reconnect()
    case.query(driver)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_slow_answers_within_the_timeout_still_work(connect: Connect, case: Case) -> None:
    driver, sim = connected(connect, case)
    sim.set_fault("slow:0.1")
    started = time.monotonic()
    case.query(driver)
    assert time.monotonic() - started >= 0.1


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_slow_answers_beyond_the_timeout_time_out(connect: Connect, case: Case) -> None:
    driver, sim = connected(connect, case)
    sim.set_fault(f"slow:{TIMEOUT_S + 0.15}")
    with pytest.raises(InstrumentTimeout, match=case.command.replace("?", r"\?")):
        case.query(driver)
    sim.set_fault(None)
    time.sleep(0.2)  # the late answer lands and is discarded before the next command
    case.query(driver)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("fault", ["timeout", "garbage", "disconnect_after:0"])
def test_fault_from_the_url_hits_the_connection(case: Case, fault: str) -> None:
    expected: type[InstrumentError] = {
        "timeout": InstrumentTimeout,
        "garbage": InstrumentReplyError,
        "disconnect_after:0": InstrumentConnectionError,
    }[fault]
    with pytest.raises(expected):
        case.driver(f"{case.url}&fault={fault}", timeout_s=TIMEOUT_S)


PAIRS = [(case, other) for case in CASES for other in CASES if case is not other]


@pytest.mark.parametrize(
    ("case", "other"),
    PAIRS,
    ids=[f"{case.driver.__name__} on {other.url.split('?')[0]}" for case, other in PAIRS],
)
def test_wrong_instrument(case: Case, other: Case) -> None:
    """Same baud rate: refused as the wrong instrument; other baud rate: silence."""
    same_baud = (case.driver is CoolLEDDriver) == (other.driver is CoolLEDDriver)
    with pytest.raises(WrongInstrument if same_baud else InstrumentTimeout):
        case.driver(other.url.split("?")[0], timeout_s=TIMEOUT_S)


def test_port_that_does_not_exist() -> None:
    with pytest.raises(InstrumentConnectionError, match="cannot open port '/dev/no-such-port'"):
        ObisLaserDriver("/dev/no-such-port")
