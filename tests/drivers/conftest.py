"""Fixtures for the driver, simulator and Python-device tests.

Every test starts with no live simulated instrument, so each ``sim://`` URL powers up a
fresh instrument, and every port or driver a test opens is closed afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import serial
from sim_helpers import Closable, Connect, DriverT, OpenRaw

from nbo_recorder import sim

BAUD_RATES = {"obis": 115200, "csuw1": 115200, "coolled": 57600, "fw102c": 115200}


@pytest.fixture(autouse=True)
def fresh_simulators() -> Iterator[None]:
    """Register the sim:// handler and forget all simulated instruments around each test."""
    sim.register()
    sim.reset_instruments()
    yield
    sim.reset_instruments()


@pytest.fixture
def open_raw() -> Iterator[OpenRaw]:
    """Open a sim:// URL with plain pyserial at the instrument's baud rate."""
    ports: list[serial.Serial] = []

    def _open(url: str, *, timeout: float = 1.0, baudrate: int | None = None) -> serial.Serial:
        kind = url.split("://", 1)[1].split("?", 1)[0]
        port = serial.serial_for_url(url, baudrate=baudrate or BAUD_RATES[kind], timeout=timeout)
        ports.append(port)
        return port

    yield _open
    for port in ports:
        port.close()


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Construct a driver (``connect(DriverClass, url, **options)``) closed at teardown."""
    opened: list[Closable] = []

    def _connect(driver_class: Callable[..., DriverT], url: str, /, **options: Any) -> DriverT:
        driver = driver_class(url, **options)
        opened.append(driver)
        return driver

    yield _connect
    for driver in opened:
        driver.close()
