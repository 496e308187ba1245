"""Moving the devices a check is about, and hearing whether the core announced the change.

A check's value is set directly (``setState`` / ``setProperty`` / ``setPosition``) or through
a temporary config group (``defineConfig`` + ``setConfig``, deleted right afterwards);
``propertyChanged`` events are logged so a check can tell whether its set was announced.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from nbo_recorder.conformance.results import PlannedCheck

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

#: temporary config group the suite defines (and deletes) for config-group sets
CONFIG_GROUP = "__nbo_conformance__"
#: properties whose events announce a change of a state device's label
_STATE_PROPERTIES = ("State", "Label")


def equal_values(a: str, b: str) -> bool:
    """Two device values are the same: numerically when both are numbers, else as text."""
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except ValueError:
        return a.strip() == b.strip()


class DeviceControl:
    """Sets the property of a check in the check's mode and logs ``propertyChanged`` events."""

    def __init__(self, core: CMMCorePlus) -> None:
        self.core = core
        #: (device, property) of every ``propertyChanged`` event while listening
        self.events: list[tuple[str, str]] = []

    def listen(self) -> None:
        """Start logging ``propertyChanged`` events."""
        self.core.events.propertyChanged.connect(self._on_property_changed)

    def stop_listening(self) -> None:
        """Stop logging events (no error when not listening)."""
        try:
            self.core.events.propertyChanged.disconnect(self._on_property_changed)
        except (ValueError, RuntimeError):
            pass

    def announced(self, check: PlannedCheck, mark: int) -> bool:
        """Whether an event for the check's property was logged since ``mark``."""
        names = _STATE_PROPERTIES if check.prop == "Label" else (check.prop,)
        return any(d == check.device and p in names for d, p in self.events[mark:])

    def _on_property_changed(self, device: object, prop: object, _value: object) -> None:
        self.events.append((str(device), str(prop)))

    def current(self, check: PlannedCheck) -> str:
        """The check's property now, as the suite sets it: a label, ``x,y``, or the value."""
        core, device = self.core, check.device
        if check.target == "labels":
            return str(core.getStateLabel(device))
        if check.target == "stage-xy":
            x, y = core.getXYPosition(device)
            return f"{float(x)!r},{float(y)!r}"
        if check.target == "stage-z":
            return repr(float(core.getPosition(device)))
        return str(core.getProperty(device, check.prop))

    def set_direct(self, check: PlannedCheck, value: str | None = None) -> None:
        """Set the check's property to ``value`` (default: the check's value) directly."""
        core, device = self.core, check.device
        value = check.value if value is None else value
        if check.target == "labels":
            core.setState(device, core.getStateFromLabel(device, value))
        elif check.target == "stage-xy":
            x, y = (float(v) for v in value.split(","))
            core.setXYPosition(device, x, y)
        elif check.target == "stage-z":
            core.setPosition(device, float(value))
        else:
            core.setProperty(device, check.prop, value)
        core.waitForDevice(device)

    def set_config(self, check: PlannedCheck, value: str | None = None) -> None:
        """Set the check's property through a temporary config group, deleted afterwards."""
        core = self.core
        try:
            core.defineConfig(CONFIG_GROUP, "check", check.device, check.prop,
                              check.value if value is None else value)
            core.setConfig(CONFIG_GROUP, "check")
            core.waitForConfig(CONFIG_GROUP, "check")
        finally:
            self.delete_group()

    def apply(self, check: PlannedCheck) -> tuple[bool, int]:
        """Set the check's value in its mode: (whether that changed it, event log mark).

        When the device already holds the value it is first moved to another safe value, in
        the same mode: a direct set makes pymmcore-plus hold back the device's own echo of
        that value for a while, which would hide a later config-group set's notification.
        """
        value = check.value
        put = self.set_config if check.mode == "config" else self.set_direct
        before = self.current(check)
        if equal_values(before, value):
            alternative = next((a for a in check.alternatives
                                if not equal_values(a, value)), None)
            if alternative is not None:
                try:
                    put(check, alternative)
                    before = self.current(check)
                except Exception:  # moving away only makes the set a change; not required
                    pass
        mark = len(self.events)
        put(check)
        return not equal_values(before, value), mark

    def delete_group(self) -> None:
        """Delete the suite's temporary config group if it is defined."""
        if self.core.isGroupDefined(CONFIG_GROUP):
            self.core.deleteConfigGroup(CONFIG_GROUP)
