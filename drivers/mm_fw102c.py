"""Micro-Manager Python device for the Thorlabs FW102C filter wheel (see :mod:`.mm_devices`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from pymmcore_plus import Keyword
from pymmcore_plus.experimental.unicore import StateDevice, pymm_property

from nbo_recorder.drivers.fw102c import FW102CDriver
from nbo_recorder.drivers.mm_common import (
    not_initialized,
    port_of,
    position_labels,
    register_port,
)

if TYPE_CHECKING:
    from pymmcore import StateLabel


class FW102CFilterWheel(StateDevice):
    """Thorlabs FW102C filter wheel; the number of states follows the unit's ``pcount``."""

    def __init__(self) -> None:
        super().__init__(position_labels(6))
        register_port(self)
        self._wheel: FW102CDriver | None = None

    def initialize(self) -> None:
        """Connect and size the state list to the wheel's 6 or 12 positions."""
        self._wheel = FW102CDriver(port_of(self))
        self._set_state_count(self._wheel.position_count)

    def shutdown(self) -> None:
        """Close the serial port."""
        if self._wheel is not None:
            self._wheel.close()
            self._wheel = None

    def _driver(self) -> FW102CDriver:
        if self._wheel is None:
            raise not_initialized(self)
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
