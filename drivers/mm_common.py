"""Helpers shared by the Micro-Manager Python devices (:mod:`nbo_recorder.drivers.mm_devices`).

The pre-initialization ``Port`` property, property descriptions, the "not initialized"
error, On/Off values, default state labels and the reference-counted sharing of one
serial connection between the devices of one instrument.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from pymmcore_plus.experimental.unicore import Device

ON_OFF = ("On", "Off")
YES_NO = ("Yes", "No")
PORT = "Port"



def describe(device: Device, name: str, description: str) -> None:
    """Attach a description (what, and in which unit) to a registered property."""
    device.get_property_info(name).description = description


def register_port(device: Device) -> None:
    """Give a device the pre-initialization ``Port`` property (port name or sim:// URL).

    A change after initialization takes effect at the next initialization.
    """
    device.register_property(PORT, default_value="", is_pre_init=True)
    describe(device, PORT, "Serial port (e.g. /dev/ttyUSB0, COM3) or sim:// simulator URL")


def port_of(device: Device) -> str:
    """The device's ``Port`` value; a RuntimeError when it is not set."""
    port = str(device.get_property_value(PORT)).strip()
    if not port:
        raise RuntimeError(
            f"{type(device).__name__} {device.get_label()!r}: set the Port property "
            "(e.g. /dev/ttyUSB0 or sim://...) before initializing"
        )
    return port


def not_initialized(device: Device) -> RuntimeError:
    """The error to raise when a device not (or no longer) initialized is used."""
    return RuntimeError(f"{type(device).__name__} {device.get_label()!r} is not initialized")


def on_off(value: object) -> bool:
    """A property value of an On/Off property as a bool (the core may pass any type)."""
    return str(value) == "On"


def position_labels(count: int) -> dict[int, str]:
    """Default state labels ``Position-1`` ... for ``count`` states (state 0 is position 1)."""
    return {state: f"Position-{state + 1}" for state in range(count)}


class Closable(Protocol):
    """A driver: something with a serial connection to close."""

    def close(self) -> None: ...


DriverT = TypeVar("DriverT", bound=Closable)


class SharedDrivers(Generic[DriverT]):
    """One driver per port string, shared by the devices on that port (reference counted)."""

    def __init__(self, factory: Callable[[str], DriverT]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._drivers: dict[str, tuple[DriverT, int]] = {}

    def acquire(self, port: str) -> DriverT:
        """Return the driver for ``port``, connecting on first use."""
        with self._lock:
            driver, users = self._drivers.get(port) or (self._factory(port), 0)
            self._drivers[port] = (driver, users + 1)
            return driver

    def release(self, port: str) -> None:
        """Drop one user of ``port``; the last one closes the connection."""
        with self._lock:
            driver, users = self._drivers[port]
            if users > 1:
                self._drivers[port] = (driver, users - 1)
            else:
                del self._drivers[port]
                driver.close()
