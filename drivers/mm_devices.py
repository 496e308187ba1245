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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from pymmcore_plus import Keyword
from pymmcore_plus.experimental.unicore import (
    Device,
    GenericDevice,
    ShutterDevice,
    StateDevice,
    pymm_property,
)

from nbo_recorder.drivers.coolled import CoolLEDDriver
from nbo_recorder.drivers.csuw1 import (
    DICHROIC_POSITIONS,
    FILTER_POSITIONS,
    FILTER_WHEELS,
    MIN_DISK_SPEED_RPM,
    CSUW1Driver,
)
from nbo_recorder.drivers.fw102c import FW102CDriver
from nbo_recorder.drivers.obis import OPERATING_MODES, ObisLaserDriver

if TYPE_CHECKING:
    from pymmcore import StateLabel

ON_OFF = ("On", "Off")
YES_NO = ("Yes", "No")
PORT = "Port"


def _describe(device: Device, name: str, description: str) -> None:
    """Attach a description (what, and in which unit) to a registered property."""
    device.get_property_info(name).description = description


def _register_port(device: Device) -> None:
    """Give a device the pre-initialization ``Port`` property (port name or sim:// URL).

    A change after initialization takes effect at the next initialization.
    """
    device.register_property(PORT, default_value="", is_pre_init=True)
    _describe(device, PORT, "Serial port (e.g. /dev/ttyUSB0, COM3) or sim:// simulator URL")


def _port_of(device: Device) -> str:
    port = str(device.get_property_value(PORT)).strip()
    if not port:
        raise RuntimeError(
            f"{type(device).__name__} {device.get_label()!r}: set the Port property "
            "(e.g. /dev/ttyUSB0 or sim://...) before initializing"
        )
    return port


def _not_initialized(device: Device) -> RuntimeError:
    return RuntimeError(f"{type(device).__name__} {device.get_label()!r} is not initialized")


def _on_off(value: Any) -> bool:
    return str(value) == "On"


class _Closable(Protocol):
    def close(self) -> None: ...


DriverT = TypeVar("DriverT", bound=_Closable)


class _SharedDrivers(Generic[DriverT]):
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


_CSUW1_UNITS = _SharedDrivers(CSUW1Driver)


# ---------------------------------------------------------------------- OBIS laser


class ObisLaser(GenericDevice):
    """Coherent OBIS laser: power in mW (the laser speaks W), emission On/Off."""

    def __init__(self) -> None:
        super().__init__()
        _register_port(self)
        # Registered per instance: its limits differ from laser to laser.
        self.register_property(
            "PowerSetpoint",
            getter=ObisLaser._power_setpoint_mw,
            setter=ObisLaser._set_power_setpoint_mw,
            property_type=float,
        )
        _describe(self, "PowerSetpoint", "Power setpoint in mW (the laser's limits apply)")
        self._laser: ObisLaserDriver | None = None

    def initialize(self) -> None:
        """Connect, check the identity and take the power limits from the laser."""
        self._laser = ObisLaserDriver(_port_of(self))
        self.set_property_limits(
            "PowerSetpoint", (self._laser.min_power_mw, self._laser.max_power_mw)
        )

    def shutdown(self) -> None:
        """Close the serial port (the laser keeps emitting if it was on)."""
        if self._laser is not None:
            self._laser.close()
            self._laser = None

    def _driver(self) -> ObisLaserDriver:
        if self._laser is None:
            raise _not_initialized(self)
        return self._laser

    def _power_setpoint_mw(self) -> float:
        """Power setpoint in mW; limits come from SOUR:POW:LIM:LOW?/HIGH?."""
        return self._driver().power_setpoint_mw()

    def _set_power_setpoint_mw(self, value: float) -> None:
        self._driver().set_power_mw(float(value))

    @pymm_property(name="PowerMeasured")
    def measured_power_mw(self) -> float:
        """Output power in mW measured by the laser's photodiode."""
        return self._driver().measured_power_mw()

    @pymm_property(allowed_values=ON_OFF, name="Emission")
    def emission(self) -> str:
        """Laser emission On or Off (with CDRH on, light follows 5 s after On)."""
        return "On" if self._driver().emission() else "Off"

    @emission.setter
    def _set_emission(self, value: str) -> None:
        self._driver().set_emission(_on_off(value))

    @pymm_property(allowed_values=tuple(OPERATING_MODES), name="OperatingMode")
    def operating_mode(self) -> str:
        """CWP, CWC, DIGITAL, ANALOG or MIXED, as SOUR:AM:SOUR? reports."""
        return self._driver().operating_mode()

    @operating_mode.setter
    def _set_operating_mode(self, value: str) -> None:
        self._driver().set_operating_mode(str(value))

    @pymm_property(name="Wavelength")
    def wavelength_nm(self) -> float:
        """Emission wavelength in nm (SYST:INF:WAV?)."""
        return self._driver().wavelength_nm

    @pymm_property(name="MaxPower")
    def max_power_mw(self) -> float:
        """Highest settable power in mW (SOUR:POW:LIM:HIGH?)."""
        return self._driver().max_power_mw

    @pymm_property(name="MinPower")
    def min_power_mw(self) -> float:
        """Lowest settable power in mW (SOUR:POW:LIM:LOW?)."""
        return self._driver().min_power_mw

    @pymm_property(name="RatedPower")
    def rated_power_mw(self) -> float:
        """Nominal power of the laser head in mW (SYST:INF:POW?)."""
        return self._driver().rated_power_mw

    @pymm_property(name="Model")
    def model(self) -> str:
        """Model string (SYST:INF:MOD?)."""
        return self._driver().model

    @pymm_property(name="SerialNumber")
    def serial_number(self) -> str:
        """Serial number of the laser head (SYST:INF:SNUM?)."""
        return self._driver().serial_number

    @pymm_property(name="FirmwareVersion")
    def firmware_version(self) -> str:
        """Firmware version (SYST:INF:FVER?)."""
        return self._driver().firmware_version


# ---------------------------------------------------------------------- CSU-W1


class _CSUW1Part:
    """Connection handling shared by the devices that live in one CSU-W1 unit."""

    def __init__(self, device: Device) -> None:
        self._device = device
        self._port = ""
        self._unit: CSUW1Driver | None = None

    def connect(self) -> CSUW1Driver:
        self._port = _port_of(self._device)
        self._unit = _CSUW1_UNITS.acquire(self._port)
        return self._unit

    def disconnect(self) -> None:
        if self._unit is not None:
            _CSUW1_UNITS.release(self._port)
            self._unit = None

    @property
    def unit(self) -> CSUW1Driver:
        if self._unit is None:
            raise _not_initialized(self._device)
        return self._unit


def _position_labels(count: int) -> dict[int, str]:
    return {state: f"Position-{state + 1}" for state in range(count)}


class CSUW1Disk(StateDevice):
    """CSU-W1 pinhole disk: states ``Disk 1``, ``Disk 2`` and ``Bypass`` (bright field).

    Pinhole size and pitch are not reported by the unit; they belong in the hardware
    profile (relabel the states with the disk names if you like).
    """

    BYPASS_STATE = 2

    def __init__(self) -> None:
        super().__init__({0: "Disk 1", 1: "Disk 2", self.BYPASS_STATE: "Bypass"})
        _register_port(self)
        # Registered per instance: its limits come from the unit.
        self.register_property(
            "DiskSpeed",
            getter=CSUW1Disk._disk_speed_rpm,
            setter=CSUW1Disk._set_disk_speed_rpm,
            property_type=int,
        )
        _describe(self, "DiskSpeed", "Disk speed in rpm (1500 up to MaxDiskSpeed)")
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
        super().__init__(_position_labels(len(DICHROIC_POSITIONS)))
        _register_port(self)
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
        super().__init__(_position_labels(len(FILTER_POSITIONS)))
        _register_port(self)
        self.wheel = 1
        """Which of the unit's two emission filter wheels this device drives."""
        self.register_property(
            "Wheel",
            getter=CSUW1FilterWheel._wheel_number,
            setter=CSUW1FilterWheel._set_wheel_number,
            is_pre_init=True,
            property_type=int,
        )
        _describe(self, "Wheel", "Which CSU-W1 emission filter wheel: 1 or 2")
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
        _register_port(self)
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


# ---------------------------------------------------------------------- CoolLED


class CoolLED(ShutterDevice):
    """CoolLED pE-300 / pE-4000 light engine.

    As a shutter it switches all selected channels on or off (``CSN``/``CSF``). Per
    channel X (A, B, C, ... as the unit reports them) it has ``Intensity-X`` (0-100 %),
    ``Selected-X`` (Yes/No), ``Emission-X`` (On/Off; On also selects the channel) and
    the read-only ``Wavelength-X`` (installed LED in nm, from ``LAMS``; absent for a
    channel whose LED the unit does not report as a number).
    """

    def __init__(self) -> None:
        super().__init__()
        _register_port(self)
        self._engine: CoolLEDDriver | None = None

    def initialize(self) -> None:
        """Connect, then create the per-channel properties for the channels present."""
        self._engine = CoolLEDDriver(_port_of(self))
        for channel in self._engine.channels:
            self._register_channel(channel, self._engine.installed_leds_nm[channel])

    def shutdown(self) -> None:
        """Close the serial port (the LEDs keep their state)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def _driver(self) -> CoolLEDDriver:
        if self._engine is None:
            raise _not_initialized(self)
        return self._engine

    def _register_channel(self, channel: str, led_nm: int | None) -> None:
        def intensity(device: CoolLED) -> int:
            return device._driver().intensity_pct(channel)

        def set_intensity(device: CoolLED, value: float) -> None:
            device._driver().set_intensity_pct(channel, float(value))

        def selected(device: CoolLED) -> str:
            return "Yes" if device._driver().status()[channel].selected else "No"

        def set_selected(device: CoolLED, value: str) -> None:
            device._driver().set_selected(channel, str(value) == "Yes")

        def emission(device: CoolLED) -> str:
            return "On" if device._driver().status()[channel].on else "Off"

        def set_emission(device: CoolLED, value: str) -> None:
            device._driver().set_channel_on(channel, _on_off(value))

        def wavelength(device: CoolLED) -> int:
            nm = device._driver().read_installed_leds()[channel]
            if nm is None:
                raise RuntimeError(f"channel {channel} no longer reports its LED in nm")
            return nm

        self.register_property(
            f"Intensity-{channel}",
            getter=intensity,
            setter=set_intensity,
            limits=(0, 100),
            property_type=int,
        )
        self.register_property(
            f"Selected-{channel}",
            getter=selected,
            setter=set_selected,
            allowed_values=YES_NO,
            property_type=str,
        )
        self.register_property(
            f"Emission-{channel}",
            getter=emission,
            setter=set_emission,
            allowed_values=ON_OFF,
            property_type=str,
        )
        _describe(self, f"Intensity-{channel}", f"Channel {channel} intensity in % (0-100)")
        _describe(self, f"Selected-{channel}", f"Channel {channel} selected (Yes/No)")
        _describe(self, f"Emission-{channel}", f"Channel {channel} LED On/Off (On selects it)")
        if led_nm is not None:
            self.register_property(
                f"Wavelength-{channel}", getter=wavelength, is_read_only=True, property_type=int
            )
            _describe(self, f"Wavelength-{channel}", f"Channel {channel} installed LED in nm")

    def get_open(self) -> bool:
        """True when any channel is on."""
        return any(channel.on for channel in self._driver().status().values())

    def set_open(self, open: bool) -> None:
        """Switch all selected channels on or off."""
        self._driver().set_selected_channels_on(bool(open))

    @pymm_property(name="Model")
    def model(self) -> str:
        """Model as the unit reports it (XMODEL), e.g. pE-300."""
        return self._driver().model

    @pymm_property(name="FirmwareVersion")
    def firmware_version(self) -> str:
        """Version text as the unit reports it (XVER)."""
        return self._driver().firmware_version


# ---------------------------------------------------------------------- FW102C


class FW102CFilterWheel(StateDevice):
    """Thorlabs FW102C filter wheel; the number of states follows the unit's ``pcount``."""

    def __init__(self) -> None:
        super().__init__(_position_labels(6))
        _register_port(self)
        self._wheel: FW102CDriver | None = None

    def initialize(self) -> None:
        """Connect and size the state list to the wheel's 6 or 12 positions."""
        self._wheel = FW102CDriver(_port_of(self))
        self._set_state_count(self._wheel.position_count)

    def shutdown(self) -> None:
        """Close the serial port."""
        if self._wheel is not None:
            self._wheel.close()
            self._wheel = None

    def _driver(self) -> FW102CDriver:
        if self._wheel is None:
            raise _not_initialized(self)
        return self._wheel

    def _set_state_count(self, count: int) -> None:
        """Resize the state and label lists, keeping labels already assigned.

        StateDevice fixes its states at construction and offers no public way to change
        their number, so its two label maps are rebuilt here.
        """
        labels = {
            state: self._state_to_label.get(state, cast("StateLabel", f"Position-{state + 1}"))
            for state in range(count)
        }
        self._state_to_label = labels
        self._label_to_state = {label: state for state, label in labels.items()}
        self.set_property_allowed_values(Keyword.State, tuple(range(count)))
        self.set_property_allowed_values(Keyword.Label, tuple(labels.values()))

    def get_state(self) -> int:
        """Wheel position minus one."""
        return self._driver().position() - 1

    def set_state(self, position: int) -> None:
        """Turn to state ``position`` (wheel position + 1); returns when the wheel stops."""
        self._driver().set_position(int(position) + 1)

    @pymm_property(name="PositionCount")
    def position_count(self) -> int:
        """Number of filter positions the controller reports (pcount?)."""
        return self._driver().position_count

    @pymm_property(allowed_values=("Fast", "Slow"), name="Speed")
    def speed(self) -> str:
        """Rotation speed mode (speed?)."""
        return "Fast" if self._driver().high_speed() else "Slow"

    @speed.setter
    def _set_speed(self, value: str) -> None:
        self._driver().set_high_speed(str(value) == "Fast")

    @pymm_property(allowed_values=("Input", "Output"), name="TriggerMode")
    def trigger_mode(self) -> str:
        """Whether the trigger connector is an input or an output (trig?)."""
        return "Output" if self._driver().trigger_output() else "Input"

    @trigger_mode.setter
    def _set_trigger_mode(self, value: str) -> None:
        self._driver().set_trigger_output(str(value) == "Output")

    @pymm_property(name="FirmwareVersion")
    def firmware_version(self) -> str:
        """Firmware version, the last token of *idn?."""
        return self._driver().firmware_version
