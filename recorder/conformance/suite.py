"""Rig conformance suite: does the file record exactly the state the hardware was put in?

For a rig builder or a device manufacturer, a hardware profile is only right when every bound
device, moved to each of its positions or settings, ends up in the OME-TIFF as the component
or value it really is. This module checks that end to end, one check per device, property,
value and way of setting it:

* **plan** (:meth:`ConformanceSuite.plan`, :mod:`~nbo_recorder.conformance.plan`): for
  each binding of the profile, the values to try — every label the binding names (also those
  mapped to ``null``); for a property the profile's ``test_values``, else every allowed value
  of an enumerated property, else the lowest, middle and highest value within the property
  limits, else (and for read-only properties) only the value as found; for a stage component
  with ``min_um``/``max_um``, three positions inside those limits (set directly: stages are
  not put in config groups);
* **check** (:meth:`ConformanceSuite.run_check`): set the value directly
  (``setState`` / ``setProperty`` / ``setPosition``) or through a temporary config group
  (``defineConfig`` + ``setConfig``, deleted afterwards; :mod:`~nbo_recorder.conformance.devices`),
  acquire one frame through the :class:`~nbo_recorder.capture.recorder.Recorder`, read the
  file back (:mod:`~nbo_recorder.conformance.readback`) and compare what it holds with what
  the profile says that value means (label -> component id; number converted from the
  binding's unit to the canonical one and written as text by conformance's own rules, never
  by the recorder's formatter: :mod:`~nbo_recorder.conformance.expect`), in the
  channel-settings annotation and in the OME attribute for it, if there is one. A device
  that does not hold the value it was set to fails the check too, and so does a recorded
  number no correctly converted value could have (see the unit check below).

Each check records with a *sub-profile* holding just the binding (and label or setting)
under test, so a binding to a property the device lacks, a label that no longer exists or a
device that fails fails only its own checks and the rest of the suite still runs.

Alongside, per bound property: whether its changes are announced by ``propertyChanged``
(watched separately for direct and config-group sets; silent is allowed, the recorder reads
explicitly, but it is listed), its read latency (median of :data:`READS` reads) and a unit
plausibility check (a light source's power range against its rated power, a percentage
within 0–100 %, ...), which is how a binding with the wrong unit — a power in ``W`` on a
device that reports mW — is caught. With a tier, the profile's NBO tier compliance too.

Safety (``allow_unsafe=False``, the default): light-source emission (an ``enabled``
setting) is only ever switched *off*; a ``power`` setting is only set to values at or below
the binding's ``power_cap_mw`` (0 mW when absent) — values above it are reported as not tried
and the cap itself is tried instead — and a power or emission state above that is not
restored at the end; stages only move inside the profile's ``min_um``/``max_um`` (never
without them, also with ``allow_unsafe``); acquisitions run with auto-shutter off, so the
shutter stays closed. Everything the suite moved is put back when it finishes; with
``allow_unsafe`` a light-source power or emission is put back right after its own check.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbo_recorder.conformance.devices import DeviceControl, equal_values
from nbo_recorder.conformance.expect import (
    UNIT_TOLERANCE,
    compare,
    implausible,
    label_expectation,
    rated_power,
    same,
    setting_expectation,
)
from nbo_recorder.conformance.plan import Planner, unsafe_reason
from nbo_recorder.conformance.readback import RecordedFrame, acquire
from nbo_recorder.conformance.results import (
    CheckResult,
    ConformanceReport,
    PlannedCheck,
    Status,
    tier_compliance,
)
from nbo_recorder.profile.model import SETTINGS, Binding, Profile
from nbo_recorder.render.nbo_checks import load_checked_profile
from nbo_recorder.store.formats import FORMAT_SUFFIXES, OutputFormat
from nbo_recorder.units import CANONICAL, to_canonical

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

#: reads per property for the latency figure
READS = 5


class ConformanceSuite:
    """The checks for one core and profile, and the session state they run in.

    Use :meth:`run` for everything at once, or :meth:`plan`, :meth:`start`,
    :meth:`run_check` per check and :meth:`finish` (the pytest plugin does this).
    """

    def __init__(
        self, core: CMMCorePlus, profile: Profile, *, allow_unsafe: bool = False,
        tier: int | None = None, output_format: OutputFormat = "ome-tiff",
    ) -> None:
        self.core = core
        self.profile = profile
        self.allow_unsafe = allow_unsafe
        self.tier = tier
        #: what each check records to: the check holds for that writer's output
        self.output_format: OutputFormat = output_format
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._checks: list[PlannedCheck] | None = None
        self.devices = DeviceControl(core)
        #: what the suite moves, as found at the start (the check carries the saved value)
        self._saved: list[PlannedCheck] = []
        self._auto_shutter: bool | None = None
        self._started = False
        self.notes: list[str] = []

    # --- planning ---------------------------------------------------------------------

    def plan(self) -> list[PlannedCheck]:
        """Every check, grouped by device and property, in the order they run."""
        if self._checks is None:
            planner = Planner(self.core, self.profile, self.allow_unsafe)
            checks = planner.plan()
            if self.tier is not None:
                checks.append(PlannedCheck(0, "(profile)", f"NBO tier {self.tier}", "profile",
                                           str(self.tier), "tier"))
            self._checks = [replace(c, index=i) for i, c in enumerate(checks)]
        return self._checks

    # --- session ----------------------------------------------------------------------

    def start(self) -> None:
        """Save what the suite will move, close the shutter path, start listening to events.

        Idempotent; :meth:`run_check` calls it.
        """
        if self._started:
            return
        core = self.core
        moved = {(c.device, c.prop, c.target): c for c in self.plan()
                 if c.mode in ("direct", "config") and c.verdict is None}
        for c in moved.values():
            try:
                self._saved.append(replace(c, value=self.devices.current(c), mode="direct"))
            except Exception as exc:  # a device that cannot be read: its checks say so
                self.notes.append(f"{c.device}.{c.prop}: not saved for restoring ({exc})")
        if not self.allow_unsafe:
            self._auto_shutter = bool(core.getAutoShutter())
            core.setAutoShutter(False)
        self.devices.delete_group()
        self.devices.listen()
        self._tmp = tempfile.TemporaryDirectory(prefix="nbo-conformance-")
        self._started = True

    def finish(self) -> list[str]:
        """Put back what the suite moved (never re-enabling light unless allowed); notes."""
        if not self._started:
            return self.notes
        core = self.core
        self.devices.stop_listening()
        self.devices.delete_group()
        for saved in reversed(self._saved):
            where = f"{saved.device}.{saved.prop}"
            reason = self._unsafe_reason(saved)
            if reason is not None:
                self.notes.append(f"{where}: left at a safe value, not restored to "
                                  f"{saved.value!r} ({reason})")
                continue
            try:
                self.devices.set_direct(saved)
            except Exception as exc:
                self.notes.append(f"{where}: could not be restored to {saved.value!r}: {exc}")
        self._saved.clear()
        if self._auto_shutter is not None:
            core.setAutoShutter(self._auto_shutter)
            self._auto_shutter = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._started = False
        return self.notes

    def run(self, progress: Callable[[CheckResult, int], None] | None = None,
            ) -> list[CheckResult]:
        """Run every planned check (one session) and return the results.

        ``progress(result, planned)`` is called after each check with the number of checks
        planned in all.
        """
        results = []
        self.start()
        try:
            checks = list(self.plan())
            for check in checks:
                result = self.run_check(check)
                results.append(result)
                if progress is not None:
                    progress(result, len(checks))
        finally:
            self.finish()
        return results

    # --- one check --------------------------------------------------------------------

    def run_check(self, check: PlannedCheck) -> CheckResult:
        """Run one check; any device or recorder error fails this check only."""
        self.start()
        t0 = time.perf_counter()
        try:
            result = self._dispatch(check)
        except Exception as exc:
            result = self._result(check, "fail",
                                  f"{check.device}.{check.prop}={check.value!r} "
                                  f"({check.mode}): {type(exc).__name__}: {exc}")
        return replace(result, duration_s=time.perf_counter() - t0)

    def _dispatch(self, check: PlannedCheck) -> CheckResult:
        if check.verdict is not None:
            return self._result(check, check.verdict, check.note)
        if check.mode == "tier":
            return self._tier_check(check)
        if check.target.startswith("stage-"):
            return self._stage_check(check)
        if check.mode == "read":
            return self._read_check(check)
        if check.mode == "unit":
            return self._unit_check(check)
        return self._value_check(check)

    @staticmethod
    def _result(check: PlannedCheck, status: Status, message: str, **kw: Any) -> CheckResult:
        return CheckResult(device=check.device, prop=check.prop, target=check.target,
                           value=check.value, mode=check.mode, status=status, message=message,
                           **kw)

    def _binding(self, check: PlannedCheck) -> Binding:
        assert check.binding is not None  # value, read and unit checks come from a binding
        return self.profile.bindings[check.binding]

    def _value_check(self, check: PlannedCheck) -> CheckResult:
        """Set a label or setting value, record one frame, compare the file with the profile."""
        core, dev, prop = self.core, check.device, check.prop
        b = self._binding(check)
        where = f"{dev}.{prop}"
        if b.labels is not None and check.target == "labels":
            labels = tuple(core.getStateLabels(dev))
            if check.value not in labels:
                return self._result(check, "fail", f"{where}: device {dev!r} has no state label "
                                    f"{check.value!r} (has: {', '.join(labels)})")
            expected = label_expectation(self.profile, b, check.value)
            if not expected.annotation and not expected.ome:
                return self._result(check, "skip", f"{where}: the recorder records nothing "
                                    f"for the labels of a {b.role} binding")
            sub = b.model_copy(update={"labels": {check.value: b.labels[check.value]},
                                       "settings": {}, "active_when": None,
                                       "shutter": None})
            comp = None
        else:
            src = b.settings[check.target]
            label = None if b.labels is None else str(core.getStateLabel(dev))
            target = None if b.labels is None or label is None else b.labels.get(label)
            comp = b.component if b.labels is None else (
                target.component if target is not None else None)
            if comp is None:
                return self._result(check, "skip", f"{where}: not recorded while {dev} is at "
                                    f"{label!r}, which selects no component")
            sub = b.model_copy(update={
                "labels": None if label is None else {label: target},
                "settings": {check.target: src}, "active_when": None,
                "shutter": None})
            value = check.value
            if check.mode == "current":
                value = str(core.getProperty(dev, prop))
                check = replace(check, value=value)
            try:
                expected = setting_expectation(check.target, src, comp, value)
            except ValueError:
                return self._result(check, "fail", f"{where}={value!r}: not a number, so the "
                                    f"{check.target} it means cannot be computed")
        changed, mark = False, len(self.devices.events)
        device_now = check.value
        if check.mode in ("direct", "config"):
            changed, mark = self.devices.apply(check)
            device_now = self.devices.current(check)
        mode_text = {"direct": "set directly", "config": "set through a config group",
                     "current": "as found (not set)"}[check.mode]
        problems, held = compare(expected, self._acquire(check, sub))
        # counted after the acquisition: MMCore may deliver a device's notification late
        event = self.devices.announced(check, mark) if changed else None
        if not equal_values(device_now, check.value):
            problems.insert(0, f"the device reports {device_now!r} after being set to "
                               f"{check.value!r}")
        if expected.number is not None:
            why = implausible(self.profile, comp, *expected.number)
            if why is not None:
                problems.append(why)
        self._restore_unsafe(check)
        expected_text = "; ".join(f"{k}={v!r}" for k, v in expected.annotation.items())
        if problems:
            return self._result(check, "fail", f"{where}={check.value!r} {mode_text}: "
                                + "; ".join(problems), expected=expected_text,
                                recorded="; ".join(held), event=event)
        return self._result(check, "pass", f"{where}={check.value!r} {mode_text}: recorded "
                            + "; ".join(held), expected=expected_text,
                            recorded="; ".join(held), event=event)

    def _acquire(self, check: PlannedCheck, sub: Binding | None) -> RecordedFrame:
        """One frame recorded with only ``sub`` bound (none for stages), read back."""
        assert self._tmp is not None  # run_check started the session
        suffix = FORMAT_SUFFIXES[self.output_format]
        path = Path(self._tmp.name) / f"check-{check.index:04d}{suffix}"
        profile = self.profile.model_copy(update={"bindings": () if sub is None else (sub,)})
        try:
            back = acquire(self.core, profile, path)
        finally:
            if path.is_dir():  # an OME-Zarr store
                shutil.rmtree(path, ignore_errors=True)
            path.unlink(missing_ok=True)
        if not back.frames:
            raise RuntimeError(f"{path}: the file holds no frame")
        return back.frames[0]

    def _unsafe_reason(self, check: PlannedCheck) -> str | None:
        """Why setting the check's value is not allowed in this session, or None."""
        if self.allow_unsafe or check.binding is None:
            return None
        return unsafe_reason(self.profile.bindings[check.binding], check.target, check.value)

    def _restore_unsafe(self, check: PlannedCheck) -> None:
        """After a check that switched light on or raised power, put the saved value back."""
        if check.target not in ("enabled", "power"):
            return
        for saved in self._saved:
            if ((saved.device, saved.prop, saved.target) == (check.device, check.prop,
                                                             check.target)
                    and not equal_values(saved.value, check.value)
                    and self._unsafe_reason(saved) is None):
                self.devices.set_direct(saved)

    # --- read latency, units, stages, tier ----------------------------------------------

    def _read_check(self, check: PlannedCheck) -> CheckResult:
        """Read the property :data:`READS` times: fails on a read error, else the latency."""
        core, dev, prop = self.core, check.device, check.prop
        times = []
        value = ""
        for _ in range(READS):
            t0 = time.perf_counter()
            try:
                value = str(core.getProperty(dev, prop))
            except Exception as exc:
                return self._result(check, "fail", f"{dev}.{prop}: reading failed: "
                                    f"{type(exc).__name__}: {exc}")
            times.append((time.perf_counter() - t0) * 1000)
        latency = statistics.median(times)
        return self._result(check, "pass", f"{dev}.{prop} reads {value!r} in {latency:.3g} ms "
                            f"(median of {READS})", recorded=value, latency_ms=latency)

    def _unit_check(self, check: PlannedCheck) -> CheckResult:
        """The device's limits (or current value) in the binding's unit must be plausible."""
        core, dev, prop = self.core, check.device, check.prop
        b = self._binding(check)
        name = check.target
        src = b.settings[name]
        unit = src.unit if src.unit is not None else CANONICAL[SETTINGS[name][0]]
        canonical = CANONICAL[SETTINGS[name][0]]
        comp = b.component
        if core.hasPropertyLimits(dev, prop):
            raw = [float(core.getPropertyLowerLimit(dev, prop)),
                   float(core.getPropertyUpperLimit(dev, prop))]
            what = "limits"
        else:
            raw = [float(core.getProperty(dev, prop))]
            what = "current value"
        converted = [to_canonical(v, unit) for v in raw]
        shown = "–".join(f"{v:g}" for v in raw)
        in_unit = "–".join(f"{v:g}" for v in converted)
        problems = [p for v in converted if (p := implausible(self.profile, comp, name, v))]
        rated = rated_power(self.profile, comp) if name == "power" else None
        if rated is not None and what == "limits" and 0 < converted[1] < rated / UNIT_TOLERANCE:
            problems.append(f"the highest settable power, {converted[1]:g} mW, is far below "
                            f"the rated {rated:g} mW of {comp}: is the binding's unit what the "
                            f"device reports?")
        summary = (f"{dev}.{prop} {what} {shown} read as {unit or 'no unit'} are {in_unit} "
                   f"{canonical}".rstrip())
        if problems:
            return self._result(check, "fail", f"{summary}: " + "; ".join(dict.fromkeys(
                problems)), recorded=in_unit)
        return self._result(check, "pass", f"{summary}: plausible", recorded=in_unit)

    def _stage_check(self, check: PlannedCheck) -> CheckResult:
        """Read latency, or a position (moved to, or as found) against the Plane's Position."""
        core, dev = self.core, check.device
        xy = check.target == "stage-xy"
        if check.mode == "read":
            times = []
            for _ in range(READS):
                t0 = time.perf_counter()
                if xy:
                    core.getXYPosition(dev)
                else:
                    core.getPosition(dev)
                times.append((time.perf_counter() - t0) * 1000)
            latency = statistics.median(times)
            return self._result(check, "pass", f"{dev} position reads in {latency:.3g} ms",
                                latency_ms=latency)
        if check.mode == "direct":
            self.devices.set_direct(check)
        axes = ("X", "Y") if xy else ("Z",)
        now = core.getXYPosition(dev) if xy else (core.getPosition(dev),)
        if check.mode == "current":
            check = replace(check, value=",".join(f"{float(v):g}" for v in now))
        frame = self._acquire(check, None)
        problems, held = [], []
        for axis, want in zip(axes, now, strict=True):
            got = frame.ome.get(f"Plane.Position{axis}")
            held.append(f"Plane.Position{axis}={got!r}")
            if not same(float(want), got):
                problems.append(f"OME Plane.Position{axis}: expected {float(want)!r} µm (what "
                                f"{dev} reports), the file holds {got!r}")
        target = (f"moved to {check.value} µm" if check.mode == "direct"
                  else f"not moved ({check.note})")
        reported = ", ".join(f"{float(v):g}" for v in now)
        text = f"{dev} {target}, reports {reported} µm"
        if problems:
            return self._result(check, "fail", f"{text}: " + "; ".join(problems),
                                recorded="; ".join(held))
        return self._result(check, "pass", f"{text}: recorded " + "; ".join(held),
                            recorded="; ".join(held))

    def _tier_check(self, check: PlannedCheck) -> CheckResult:
        """Every MUST attribute of the requested NBO tier is in the profile."""
        compliance = tier_compliance(self.profile, self.tier)
        if compliance.note:
            return self._result(check, "skip", compliance.note)
        if compliance.missing:
            return self._result(check, "fail", f"the profile misses {len(compliance.missing)} "
                                f"MUST attribute(s) of NBO tier {self.tier}:\n  "
                                + "\n  ".join(compliance.missing))
        return self._result(check, "pass", f"the profile has every MUST attribute of NBO tier "
                            f"{self.tier}")



def run_conformance(
    mm_config: str | Path, profile_path: str | Path, *, tier: int | None = None,
    allow_unsafe: bool = False, output_format: OutputFormat = "ome-tiff",
    progress: Callable[[CheckResult, int], None] | None = None,
) -> ConformanceReport:
    """Load the rig and profile, run the whole suite, unload; the report.

    Raises :class:`~nbo_recorder.profile.errors.ProfileError` or
    :class:`~nbo_recorder.rig.RigError` (and ``ValueError`` for a tier other than 1–3 or
    an OME-Zarr output whose package is missing) before anything moves.
    """
    from nbo_recorder.nbo.rules import check_tier
    from nbo_recorder.rig import load_core, release_core

    if tier is not None:
        check_tier(tier)
    if output_format == "ome-zarr":  # say which package is missing before anything moves
        from nbo_recorder.store.zarr_writer import require_backend

        require_backend()
    profile = load_checked_profile(profile_path)
    core = load_core(mm_config)
    try:
        suite = ConformanceSuite(core, profile, allow_unsafe=allow_unsafe, tier=tier,
                                 output_format=output_format)
        results = suite.run(progress)
        return ConformanceReport(rig=str(mm_config), profile=str(profile_path),
                                 allow_unsafe=allow_unsafe, results=results,
                                 tier=tier_compliance(profile, tier), notes=list(suite.notes))
    finally:
        release_core(core)
