"""Types and small helpers shared by the driver tests (imported by name from tests/drivers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import serial

DriverT = TypeVar("DriverT", bound="Closable")


class Closable(Protocol):
    """Anything with a ``close()`` method, like every driver."""

    def close(self) -> None: ...


class Connect(Protocol):
    """Signature of the ``connect`` fixture: build a driver that is closed at teardown."""

    def __call__(
        self, driver_class: Callable[..., DriverT], url: str, /, **options: Any
    ) -> DriverT: ...


class OpenRaw(Protocol):
    """Signature of the ``open_raw`` fixture: a plain pyserial port on a sim:// URL."""

    def __call__(
        self, url: str, /, *, timeout: float = ..., baudrate: int | None = ...
    ) -> serial.Serial: ...


def drain(port: serial.Serial, quiet_s: float = 0.05) -> bytes:
    """Read whatever arrives until the port has been quiet for ``quiet_s``."""
    previous = port.timeout
    port.timeout = quiet_s
    received = bytearray()
    while chunk := port.read(4096):
        received += chunk
    port.timeout = previous
    return bytes(received)
