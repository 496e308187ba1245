"""Micro-Manager Python devices (pymmcore-plus ``UniMMCore``) for the rig's instruments.

Load them with ``core.loadPyDevice(label, ObisLaser())`` or from a configuration file::

    #py pyDevice,Laser488,nbo_recorder.drivers.mm_devices,ObisLaser
    #py Property,Laser488,Port,sim://obis?name=laser488&wavelength=488&max_mw=100
    Property,Core,Initialize,1

Every device has a pre-initialization ``Port`` property: a serial port (``/dev/ttyUSB0``,
``COM3``) or a ``sim://`` simulator URL. Read-only properties are read from the
instrument (static identity facts once at initialization, everything else on each
read); nothing is typed in by the user. The CSU-W1 devices (disk, dichroic, emission
filter wheels, shutter) share one serial connection per ``Port`` value, as a real unit
has a single serial port: give all of them the same ``Port`` string.

State devices number their states from 0, as Micro-Manager does; the instruments count
positions from 1, so state 0 is position 1 and the default labels (``Position-1`` ...)
name the instrument's position. Relabel them with ``Label,<device>,<state>,<name>``.

The classes are defined in :mod:`.mm_obis`, :mod:`.mm_csuw1`, :mod:`.mm_coolled` and
:mod:`.mm_fw102c` (shared helpers in :mod:`.mm_common`) and re-exported here, so configuration
files may name this module; UniMMCore reports (``getDeviceLibrary``) and saves the defining
module.
"""

from __future__ import annotations

from nbo_recorder.drivers.mm_coolled import CoolLED
from nbo_recorder.drivers.mm_csuw1 import (
    CSUW1Dichroic,
    CSUW1Disk,
    CSUW1FilterWheel,
    CSUW1Shutter,
)
from nbo_recorder.drivers.mm_fw102c import FW102CFilterWheel
from nbo_recorder.drivers.mm_obis import ObisLaser

__all__ = [
    "CSUW1Dichroic",
    "CSUW1Disk",
    "CSUW1FilterWheel",
    "CSUW1Shutter",
    "CoolLED",
    "FW102CFilterWheel",
    "ObisLaser",
]
