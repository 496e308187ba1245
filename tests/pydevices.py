"""Python (UniMMCore) devices used by the tests: they fire no propertyChanged, like real ones."""

from __future__ import annotations

from pymmcore_plus.experimental.unicore import GenericDevice, StateDevice, pymm_property


class PyEmissionWheel(StateDevice):
    """A two-position emission filter wheel implemented in Python."""

    def __init__(self) -> None:
        super().__init__({0: "Py-HQ535", 1: "Py-HQ700"})
        self._state = 0

    def get_state(self) -> int:
        return self._state

    def set_state(self, position: int) -> None:
        self._state = int(position)


class PyLaser(GenericDevice):
    """A laser whose power setpoint is in W (as OBIS lasers report it) and can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self._power_w = 0.01
        self.fail_reads = False

    @pymm_property(limits=(0.0, 0.1), name="PowerW")
    def power_w(self) -> float:
        if self.fail_reads:
            raise TimeoutError("laser did not answer")
        return self._power_w

    @power_w.setter
    def _set_power_w(self, value: float) -> None:
        self._power_w = float(value)
