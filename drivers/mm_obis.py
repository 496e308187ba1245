"""Micro-Manager Python device for the Coherent OBIS laser (see :mod:`.mm_devices`)."""

from __future__ import annotations

from pymmcore_plus.experimental.unicore import GenericDevice, pymm_property

from nbo_recorder.drivers.mm_common import (
    ON_OFF,
    describe,
    not_initialized,
    on_off,
    port_of,
    register_port,
)
from nbo_recorder.drivers.obis import OPERATING_MODES, ObisLaserDriver


class ObisLaser(GenericDevice):
    """Coherent OBIS laser: power in mW (the laser speaks W), emission On/Off."""

    def __init__(self) -> None:
        super().__init__()
        register_port(self)
        # Registered per instance: its limits differ from laser to laser.
        self.register_property(
            "PowerSetpoint",
            getter=ObisLaser._power_setpoint_mw,
            setter=ObisLaser._set_power_setpoint_mw,
            property_type=float,
        )
        describe(self, "PowerSetpoint", "Power setpoint in mW (the laser's limits apply)")
        self._laser: ObisLaserDriver | None = None

    def initialize(self) -> None:
        """Connect, check the identity and take the power limits from the laser."""
        self._laser = ObisLaserDriver(port_of(self))
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
            raise not_initialized(self)
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

    @pymm_property(name="EmissionState")
    def emission_state(self) -> str:
        """What the laser reports it emits: Off, CDRH delay, Emitting or Fault (SYST:STAT?).

        ``Emission`` is the on/off switch; after On, a laser with CDRH on reports
        ``CDRH delay`` (no light) for 5 s before ``Emitting``.
        """
        return self._driver().emission_state()

    @pymm_property(allowed_values=ON_OFF, name="Emission")
    def emission(self) -> str:
        """Laser emission On or Off (with CDRH on, light follows 5 s after On)."""
        return "On" if self._driver().emission() else "Off"

    @emission.setter
    def _set_emission(self, value: str) -> None:
        self._driver().set_emission(on_off(value))

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
