"""Micro-Manager Python device for the CoolLED pE-300 / pE-4000 (see :mod:`.mm_devices`)."""

from __future__ import annotations

from pymmcore_plus.experimental.unicore import ShutterDevice, pymm_property

from nbo_recorder.drivers.coolled import CoolLEDDriver
from nbo_recorder.drivers.mm_common import (
    ON_OFF,
    YES_NO,
    describe,
    not_initialized,
    on_off,
    port_of,
    register_port,
)


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
        register_port(self)
        self._engine: CoolLEDDriver | None = None

    def initialize(self) -> None:
        """Connect, then create the per-channel properties for the channels present."""
        self._engine = CoolLEDDriver(port_of(self))
        for channel in self._engine.channels:
            self._register_channel(channel, self._engine.installed_leds_nm[channel])

    def shutdown(self) -> None:
        """Close the serial port (the LEDs keep their state)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def _driver(self) -> CoolLEDDriver:
        if self._engine is None:
            raise not_initialized(self)
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
            device._driver().set_channel_on(channel, on_off(value))

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
        describe(self, f"Intensity-{channel}", f"Channel {channel} intensity in % (0-100)")
        describe(self, f"Selected-{channel}", f"Channel {channel} selected (Yes/No)")
        describe(self, f"Emission-{channel}", f"Channel {channel} LED On/Off (On selects it)")
        if led_nm is not None:
            self.register_property(
                f"Wavelength-{channel}", getter=wavelength, is_read_only=True, property_type=int
            )
            describe(self, f"Wavelength-{channel}", f"Channel {channel} installed LED in nm")

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
