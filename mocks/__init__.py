"""Protocol-faithful simulators of the rig's serial instruments, reachable over pyserial.

Call :func:`register` once, then open ``sim://obis``, ``sim://csuw1``,
``sim://coolled`` or ``sim://fw102c`` URLs with ``serial.serial_for_url`` exactly as a
real ``/dev/ttyUSB0`` port. Query parameters configure the simulated hardware (see each
``mocks.sim_*`` module), the time scale and injected faults (see :mod:`mocks._base`).
"""

from __future__ import annotations

import serial

from nbo_recorder.sim._base import DEFAULT_TIME_SCALE, Fault, SimulatedInstrument
from nbo_recorder.sim._registry import KINDS, get_instrument, open_instrument, reset_instruments
from nbo_recorder.sim.sim_coolled import SimCoolLED
from nbo_recorder.sim.sim_csuw1 import SimCSUW1
from nbo_recorder.sim.sim_fw102c import SimFW102C
from nbo_recorder.sim.sim_obis import SimObis

__all__ = [
    "DEFAULT_TIME_SCALE",
    "KINDS",
    "Fault",
    "SimCSUW1",
    "SimCoolLED",
    "SimFW102C",
    "SimObis",
    "SimulatedInstrument",
    "get_instrument",
    "open_instrument",
    "register",
    "reset_instruments",
]


def register() -> None:
    """Make pyserial's ``serial_for_url`` serve ``sim://`` URLs (idempotent)."""
    if __name__ not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(__name__)
