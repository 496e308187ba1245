"""Planning the checks: the safe values to try for every binding and stage of a profile.

See :mod:`nbo_recorder.conformance.suite` for what is tried and what is withheld as unsafe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from nbo_recorder.conformance.expect import PLAUSIBLE
from nbo_recorder.conformance.results import Mode, PlannedCheck
from nbo_recorder.profile.model import Binding, Profile, PropertySource, Stage
from nbo_recorder.units import to_canonical

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

#: property names the suite uses for stage positions (a focus stage, an XY stage)
Z_POSITION = "Position"
XY_POSITION = "XYPosition"
#: config-group sets first: a direct set leaves pymmcore-plus de-duplication tokens (2 s) that
#: swallow a device's own notification of the same value, which would mask a config-group set
_MODES: tuple[Mode, Mode] = ("config", "direct")
_INTEGER_PROPERTY = 3  # MMCore PropertyType.Integer


def _number_text(value: float, integer: bool) -> str:
    """A value to set as the device takes it: no ``.0`` on whole numbers."""
    if integer:
        return str(int(value))
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _range_values(low: float, high: float, integer: bool) -> list[str]:
    """Lowest, middle (3 significant digits) and highest value within [low, high]."""
    if integer:
        points = [float(math.ceil(low)), float(round((low + high) / 2)), float(math.floor(high))]
    else:
        mid = float(f"{(low + high) / 2:.3g}")
        points = [low, min(max(mid, low), high), high]
    return list(dict.fromkeys(_number_text(p, integer) for p in points))


class Planner:
    """Works out the safe values to try for every binding of the profile."""

    def __init__(self, core: CMMCorePlus, profile: Profile, allow_unsafe: bool) -> None:
        self.core = core
        self.profile = profile
        self.allow_unsafe = allow_unsafe
        self.loaded = set(core.getLoadedDevices())

    def plan(self) -> list[PlannedCheck]:
        """Per binding its label and setting checks, then the stage checks (index 0)."""
        checks: list[PlannedCheck] = []
        for i, b in enumerate(self.profile.bindings):
            if b.device not in self.loaded:
                checks.append(PlannedCheck(
                    0, b.device, "(device)", "binding", "", "binding", i, verdict="fail",
                    note=f"bindings[{i}]: device {b.device!r} is not loaded "
                         f"(loaded: {', '.join(sorted(self.loaded))})"))
                continue
            if b.labels is not None:
                checks.extend(self._guarded(i, b.device, "Label", "labels",
                                            partial(self._labels, i, b)))
            for name, src in b.settings.items():
                checks.extend(self._guarded(i, b.device, src.property, name,
                                            partial(self._setting, i, b, name, src)))
        checks.extend(self._stages())
        return checks

    @staticmethod
    def _guarded(i: int, device: str, prop: str, target: str,
                 plan: Callable[[], list[PlannedCheck]]) -> list[PlannedCheck]:
        """The planned checks, or one failing check when the device errors while planning."""
        try:
            return plan()
        except Exception as exc:  # a device that fails on a query fails its own binding only
            return [PlannedCheck(0, device, prop, target, "", "binding", i, verdict="fail",
                                 note=f"bindings[{i}]: {device}.{prop}: planning failed: "
                                      f"{type(exc).__name__}: {exc}")]

    def _labels(self, i: int, b: Binding) -> list[PlannedCheck]:
        try:
            self.core.getStateLabels(b.device)
        except Exception as exc:
            return [PlannedCheck(0, b.device, "Label", "labels", "", "binding", i,
                                 verdict="fail", note=f"bindings[{i}]: {b.device!r} is not a "
                                 f"state device ({exc})")]
        labels = tuple(b.labels or {})
        checks = [PlannedCheck(0, b.device, "Label", "labels", "", "read", i)]
        for mode in _MODES:
            checks.extend(PlannedCheck(0, b.device, "Label", "labels", label, mode, i, labels)
                          for label in labels)
        return checks

    def _setting(self, i: int, b: Binding, name: str, src: PropertySource) -> list[PlannedCheck]:
        core, dev, prop = self.core, b.device, src.property
        if not core.hasProperty(dev, prop):
            return [PlannedCheck(0, dev, prop, name, "", "binding", i, verdict="fail",
                                 note=f"bindings[{i}].settings.{name}: device {dev!r} has no "
                                 f"property {prop!r}")]
        checks = [PlannedCheck(0, dev, prop, name, "", "read", i)]
        if name in PLAUSIBLE:
            checks.append(PlannedCheck(0, dev, prop, name, "", "unit", i))
        if core.isPropertyReadOnly(dev, prop) or core.isPropertyPreInit(dev, prop):
            checks.append(PlannedCheck(0, dev, prop, name, "(current)", "current", i))
            return checks
        candidates = list(src.test_values)
        if not candidates:
            allowed = tuple(core.getAllowedPropertyValues(dev, prop))
            if allowed:
                candidates = list(allowed)
            elif core.hasPropertyLimits(dev, prop):
                integer = int(core.getPropertyType(dev, prop)) == _INTEGER_PROPERTY
                candidates = _range_values(float(core.getPropertyLowerLimit(dev, prop)),
                                           float(core.getPropertyUpperLimit(dev, prop)), integer)
        if not candidates:
            checks.append(PlannedCheck(0, dev, prop, name, "(current)", "current", i,
                                       note="no test_values, allowed values or limits"))
            return checks
        safe, withheld = self._safe(b, name, candidates)
        cap = self._cap_value(b, src, dev, prop) if withheld and name == "power" else []
        safe = list(dict.fromkeys([*safe, *cap]))
        instead = f"; the cap, {cap[0]}, is tried instead" if cap else ""
        hint = "--allow-unsafe" if name == "enabled" else (
            f"--allow-unsafe, or raise bindings[{i}].power_cap_mw")
        for value, reason in withheld:
            checks.append(PlannedCheck(0, dev, prop, name, value, "direct", i, verdict="skip",
                                       note=f"{dev}.{prop}={value!r} not tried: {reason} "
                                       f"(needs {hint}){instead}"))
        for mode in _MODES:
            checks.extend(PlannedCheck(0, dev, prop, name, v, mode, i, tuple(safe))
                          for v in safe)
        return checks

    def _cap_value(self, b: Binding, src: PropertySource, dev: str, prop: str) -> list[str]:
        """The power cap in the device's unit, when positive and within the limits: what a
        withheld power value is clamped to."""
        cap_mw = b.power_cap_mw or 0.0
        if cap_mw <= 0:
            return []
        core = self.core
        value = cap_mw / to_canonical(1.0, src.unit or "mW")
        integer = int(core.getPropertyType(dev, prop)) == _INTEGER_PROPERTY
        if integer:
            value = float(math.floor(value))
        if core.hasPropertyLimits(dev, prop) and not (
                float(core.getPropertyLowerLimit(dev, prop)) <= value
                <= float(core.getPropertyUpperLimit(dev, prop))):
            return []
        return [_number_text(value, integer)]

    def _safe(
        self, b: Binding, name: str, candidates: list[str]
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Candidates split into safe values and (withheld value, reason)."""
        if self.allow_unsafe:
            return candidates, []
        safe: list[str] = []
        withheld: list[tuple[str, str]] = []
        for value in candidates:
            reason = unsafe_reason(b, name, value)
            if reason is None:
                safe.append(value)
            else:
                withheld.append((value, reason))
        return safe, withheld

    def _stages(self) -> list[PlannedCheck]:
        checks: list[PlannedCheck] = []
        for comp in self.profile.components:
            if not isinstance(comp, Stage):
                continue
            low, high = comp.min_um or (), comp.max_um or ()  # (z), (x, y) or (x, y, z)
            if "xy" in comp.axes:
                xy = (low[0], low[1], high[0], high[1]) if min(len(low), len(high)) >= 2 else None
                checks.extend(self._stage(comp.id, "xy", self.core.getXYStageDevice(), xy))
            if "z" in comp.axes:
                z = (low[-1], high[-1]) if low and high else None
                checks.extend(self._stage(comp.id, "z", self.core.getFocusDevice(), z))
        return checks

    def _stage(self, comp: str, axes: str, device: str,
               limits: tuple[float, ...] | None) -> list[PlannedCheck]:
        prop = XY_POSITION if axes == "xy" else Z_POSITION
        target = f"stage-{axes}"
        if not device:
            return [PlannedCheck(0, comp, prop, target, "", "binding", verdict="fail",
                                 note=f"stage {comp!r}: the core has no "
                                      f"{'XY stage' if axes == 'xy' else 'focus'} device")]
        checks = [PlannedCheck(0, device, prop, target, "", "read")]
        if limits is None:
            return [*checks, PlannedCheck(0, device, prop, target, "(current)", "current",
                                          note=f"{comp} has no min_um/max_um in the profile")]
        if axes == "z":
            values = _range_values(limits[0], limits[1], integer=False)
        else:
            xs = _range_values(limits[0], limits[2], integer=False)
            ys = _range_values(limits[1], limits[3], integer=False)
            values = [f"{x},{y}" for x, y in zip(xs, ys, strict=False)]
        return [*checks, *(PlannedCheck(0, device, prop, target, v, "direct") for v in values)]


def unsafe_reason(b: Binding, setting: str, value: str) -> str | None:
    """Why setting ``b``'s ``setting`` to ``value`` needs ``allow_unsafe``, or None if safe.

    Only light matters: an ``enabled`` value that counts as on, and a ``power`` above the
    binding's ``power_cap_mw`` (0 mW when the profile gives none) or not a number.
    """
    src = b.settings.get(setting)
    if src is None:
        return None
    if setting == "enabled" and value.strip() in src.true_values:
        return "it switches emission on"
    if setting == "power":
        cap = b.power_cap_mw or 0.0
        try:
            mw = to_canonical(float(value), src.unit or "mW")
        except ValueError:
            return "not a number, so its power is unknown"
        if mw > cap:
            return f"{mw:g} mW is above the safe cap of {cap:g} mW"
    return None


