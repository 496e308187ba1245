"""Serial drivers and Micro-Manager Python devices for the rig's instruments.

Drivers (one class per instrument, units in the API names):
:class:`~drivers.obis.ObisLaserDriver`, :class:`~drivers.csuw1.CSUW1Driver`,
:class:`~drivers.coolled.CoolLEDDriver`, :class:`~drivers.fw102c.FW102CDriver`.
Each takes a port string: a real port (``/dev/ttyUSB0``) or a ``sim://`` URL served by
the ``mocks`` package. Micro-Manager (UniMMCore) Python devices live in
:mod:`nbo_recorder.drivers.mm_devices`.
"""

from nbo_recorder.drivers._serial import (
    InstrumentBusy,
    InstrumentConnectionError,
    InstrumentError,
    InstrumentOutOfStep,
    InstrumentReplyError,
    InstrumentReportedError,
    InstrumentTimeout,
    WrongInstrument,
)
from nbo_recorder.drivers.coolled import CoolLEDDriver
from nbo_recorder.drivers.csuw1 import CSUW1Driver
from nbo_recorder.drivers.fw102c import FW102CDriver
from nbo_recorder.drivers.obis import ObisLaserDriver

__all__ = [
    "CSUW1Driver",
    "CoolLEDDriver",
    "FW102CDriver",
    "InstrumentBusy",
    "InstrumentConnectionError",
    "InstrumentError",
    "InstrumentOutOfStep",
    "InstrumentReplyError",
    "InstrumentReportedError",
    "InstrumentTimeout",
    "ObisLaserDriver",
    "WrongInstrument",
]
