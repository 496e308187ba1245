"""Micro-Manager Python devices for the Yokogawa CSU-W1 (see :mod:`.mm_devices`).

Disk, dichroic, emission filter wheels and shutter are separate devices that share one
serial connection per ``Port`` value, as a real unit has a single serial port.
"""

from __future__ import annotations

from pymmcore_plus.experimental.unicore import (
    Device,
    ShutterDevice,
    StateDevice,
    pymm_property,
)

from nbo_recorder.drivers.csuw1 import (
    DICHROIC_POSITIONS,
    FILTER_POSITIONS,
    FILTER_WHEELS,
    MIN_DISK_SPEED_RPM,
    CSUW1Driver,
)
from nbo_recorder.drivers.mm_common import (
    SharedDrivers,
    describe,
    not_initialized,
    port_of,
    position_labels,
    register_port,
)

_CSUW1_UNITS = SharedDrivers(CSUW1Driver)


class _CSUW1Part:
    """Connection handling shared by the devices that live in one CSU-W1 unit."""

    def __init__(self, device: Device) -> None:
        self._device = device
        self._port = ""
        self._unit: CSUW1Driver | None = None

    def connect(self) -> CSUW1Driver:
        self._port = port_of(self._device)
        self._unit = _CSUW1_UNITS.acquire(self._port)
        return self._unit

    def disconnect(self) -> None:
        if self._unit is not None:
            _CSUW1_UNITS.release(self._port)
            self._unit = None

    @property
    def unit(self) -> CSUW1Driver:
        if self._unit is None:
            raise not_initialized(self._device)
        return self._unit


class CSUW1Disk(StateDevice):
    """CSU-W1 pinhole disk: states ``Disk 1``, ``Disk 2`` and ``Bypass`` (bright field).

    Pinhole size and pitch are not reported by the unit; they belong in the hardware
    profile (relabel the states with the disk names if you like).
    """

    BYPASS_STATE = 2

    def __init__(self) -> None:
        super().__init__({0: "Disk 1", 1: "Disk 2", self.BYPASS_STATE: "Bypass"})
        register_port(self)
        # Registered per instance: its limits come from the unit.
        self.register_property(
            "DiskSpeed",
            getter=CSUW1Disk._disk_speed_rpm,
            setter=CSUW1Disk._set_disk_speed_rpm,
            property_type=int,
        )
        describe(self, "DiskSpeed", "Disk speed in rpm (1500 up to MaxDiskSpeed)")
        self._part = _CSUW1Part(self)

    def initialize(self) -> None:
        """Connect (or join the unit's shared connection) and read the speed limit."""
        unit = self._part.connect()
        self.set_property_limits("DiskSpeed", (MIN_DISK_SPEED_RPM, unit.max_disk_speed_rpm))

    def shutdown(self) -> None:
        """Leave the unit's shared connection."""
        self._part.disconnect()

    def get_state(self) -> int:
        """0 or 1 for disk 1 or 2, 2 with the bright-field bypass in."""
        disk = self._part.unit.disk()
        return self.BYPASS_STATE if disk is None else disk - 1

    def set_state(self, position: int) -> None:
        """Move a disk, or the bright-field bypass, into the light path."""
        unit = self._part.unit
        if int(position) == self.BYPASS_STATE:
            unit.set_brightfield_bypass(True)
            return
        if unit.brightfield_bypass():
            unit.set_brightfield_bypass(False)
        unit.select_disk(int(position) + 1)

    def _disk_speed_rpm(self) -> int:
        """Disk speed setting in rpm (1500 up to MaxDiskSpeed)."""
        return self._part.unit.disk_speed_rpm()

    def _set_disk_speed_rpm(self, value: float) -> None:
        self._part.unit.set_disk_speed_rpm(round(float(value)))

    @pymm_property(name="MaxDiskSpeed")
    def max_disk_speed_rpm(self) -> int:
        """Fastest disk speed in rpm the unit allows (MS_MAX, ?)."""
        return self._part.unit.max_disk_speed_rpm


class CSUW1Dichroic(StateDevice):
    """CSU-W1 dichroic mirror turret, positions 1-3 (states 0-2)."""

    def __init__(self) -> None:
        super().__init__(position_labels(len(DICHROIC_POSITIONS)))
        register_port(self)
        self._part = _CSUW1Part(self)

    def initialize(self) -> None:
        """Connect (or join the unit's shared connection)."""
        self._part.connect()

    def shutdown(self) -> None:
        """Leave the unit's shared connection."""
        self._part.disconnect()

    def get_state(self) -> int:
        """Dichroic position minus one."""
        return self._part.unit.dichroic() - 1

    def set_state(self, position: int) -> None:
        """Turn the dichroic turret to state ``position`` (position + 1)."""
        self._part.unit.set_dichroic(int(position) + 1)


class CSUW1FilterWheel(StateDevice):
    """One CSU-W1 emission filter wheel (pre-init ``Wheel`` 1 or 2), positions 1-10."""

    def __init__(self) -> None:
        super().__init__(position_labels(len(FILTER_POSITIONS)))
        register_port(self)
        self.wheel = 1
        """Which of the unit's two emission filter wheels this device drives."""
        self.register_property(
            "Wheel",
            getter=CSUW1FilterWheel._wheel_number,
            setter=CSUW1FilterWheel._set_wheel_number,
            is_pre_init=True,
            property_type=int,
        )
        describe(self, "Wheel", "Which CSU-W1 emission filter wheel: 1 or 2")
        self._part = _CSUW1Part(self)

    def _wheel_number(self) -> int:
        return self.wheel

    def _set_wheel_number(self, value: int | str) -> None:
        wheel = int(value)
        if wheel not in FILTER_WHEELS:
            raise ValueError(f"CSU-W1 filter wheel must be 1 or 2, not {value!r}")
        self.wheel = wheel

    def initialize(self) -> None:
        """Connect (or join the unit's shared connection)."""
        self._part.connect()

    def shutdown(self) -> None:
        """Leave the unit's shared connection."""
        self._part.disconnect()

    def get_state(self) -> int:
        """Filter position minus one."""
        return self._part.unit.filter_position(self.wheel) - 1

    def set_state(self, position: int) -> None:
        """Turn the wheel to state ``position`` (position + 1)."""
        self._part.unit.set_filter_position(self.wheel, int(position) + 1)


class CSUW1Shutter(ShutterDevice):
    """The CSU-W1's internal light-path shutter (SHO / SHC)."""

    def __init__(self) -> None:
        super().__init__()
        register_port(self)
        self._part = _CSUW1Part(self)

    def initialize(self) -> None:
        """Connect (or join the unit's shared connection)."""
        self._part.connect()

    def shutdown(self) -> None:
        """Leave the unit's shared connection."""
        self._part.disconnect()

    def get_open(self) -> bool:
        """True when the unit reports its shutter open."""
        return self._part.unit.shutter_open()

    def set_open(self, open: bool) -> None:
        """Open or close the unit's shutter."""
        self._part.unit.set_shutter_open(bool(open))
