"""What a conformance run produces: planned checks, their results, the report, the tier.

The report's rows (:meth:`ConformanceReport.summaries`) group the results per device and
property, with whether changes were announced by ``propertyChanged`` per way of setting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from nbo_recorder.profile.model import Profile

#: how a check sets its value (direct, config, current = as found) or what else it checks
#: (read latency, unit plausibility, a binding the core cannot satisfy, the NBO tier)
Mode = Literal["direct", "config", "current", "read", "unit", "binding", "tier"]
Status = Literal["pass", "fail", "skip"]
EventVerdict = Literal["announced", "silent", "partial", "untested"]


class ConformanceError(RuntimeError):
    """The suite could not run at all (unusable configuration or profile)."""


@dataclass(frozen=True)
class PlannedCheck:
    """One check to run: a value of a bound property, set in one mode, or a property check.

    ``value`` is what is set (a label, or a value in the device's unit); ``alternatives``
    are the other safe values of the same property, used to move away first so that the set
    is a change (events are only meaningful for changes). A check planned with a ``verdict``
    is not run: it reports ``note`` (a binding the core cannot satisfy, a value withheld as
    unsafe).
    """

    index: int
    device: str
    prop: str
    target: str
    value: str
    mode: Mode
    binding: int | None = None
    alternatives: tuple[str, ...] = ()
    verdict: Status | None = None
    note: str = ""

    @property
    def name(self) -> str:
        """Test name, unique within the device: ``Label=Q505LP[config]``."""
        if self.mode in ("read", "unit", "binding", "tier"):
            return f"{self.prop}[{self.mode}]"
        return f"{self.prop}={self.value}[{self.mode}]"


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check, with a message naming device, property, value and the file.

    ``event`` says whether ``propertyChanged`` announced the set (None when the set was no
    change or failed); ``latency_ms`` is the median read time of a ``read`` check.
    """

    device: str
    prop: str
    target: str
    value: str
    mode: Mode
    status: Status
    message: str
    expected: str = ""
    recorded: str = ""
    event: bool | None = None
    latency_ms: float | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Passed or skipped (a skip is reported, never a failure)."""
        return self.status != "fail"

    @property
    def name(self) -> str:
        if self.mode in ("read", "unit", "binding", "tier"):
            return f"{self.device}.{self.prop} [{self.mode}]"
        return f"{self.device}.{self.prop}={self.value} [{self.mode}]"


@dataclass(frozen=True)
class PropertySummary:
    """One row of the report: a bound property of a device and how its checks went."""

    device: str
    prop: str
    values: tuple[str, ...]
    recorded_ok: int
    recorded_total: int
    other_failures: tuple[str, ...]
    events_direct: EventVerdict
    events_config: EventVerdict
    latency_ms: float | None


@dataclass(frozen=True)
class TierCompliance:
    """The profile's NBO tier: highest tier with no MUST attribute missing, and the gaps."""

    requested: int | None
    reached: int | None
    missing: tuple[str, ...] = ()
    note: str = ""


@dataclass
class ConformanceReport:
    """Everything a conformance run found."""

    rig: str
    profile: str
    allow_unsafe: bool
    results: list[CheckResult]
    tier: TierCompliance
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def summaries(self) -> list[PropertySummary]:
        """One row per (device, property), in the order the checks ran."""
        groups: dict[tuple[str, str], list[CheckResult]] = {}
        for r in self.results:
            if r.mode != "tier":
                groups.setdefault((r.device, r.prop), []).append(r)
        rows = []
        for (device, prop), results in groups.items():
            values = [r for r in results if r.mode in ("direct", "config", "current")]
            latency = next((r.latency_ms for r in results if r.latency_ms is not None), None)
            rows.append(PropertySummary(
                device=device, prop=prop,
                values=tuple(dict.fromkeys(
                    f"{r.value} (as found)" if r.mode == "current" else r.value
                    for r in values if r.status != "skip")),
                recorded_ok=sum(r.status == "pass" for r in values),
                recorded_total=sum(r.status != "skip" for r in values),
                other_failures=tuple(r.mode for r in results
                                     if r.status == "fail" and r not in values),
                events_direct=_verdict(r.event for r in values if r.mode == "direct"),
                events_config=_verdict(r.event for r in values if r.mode == "config"),
                latency_ms=latency,
            ))
        return rows

    def silent(self) -> list[tuple[str, str, Mode]]:
        """(device, property, mode) whose changes were not (always) announced by an event."""
        out: list[tuple[str, str, Mode]] = []
        for row in self.summaries():
            if row.events_direct in ("silent", "partial"):
                out.append((row.device, row.prop, "direct"))
            if row.events_config in ("silent", "partial"):
                out.append((row.device, row.prop, "config"))
        return out


def _verdict(events: Iterable[bool | None]) -> EventVerdict:
    seen = [e for e in events if e is not None]
    if not seen:
        return "untested"
    if all(seen):
        return "announced"
    return "silent" if not any(seen) else "partial"


def tier_compliance(profile: Profile, requested: int | None = None) -> TierCompliance:
    """Highest NBO tier whose MUST attributes the profile all has, and what ``requested`` lacks.

    Uses :func:`nbo_recorder.profile.check.missing_for_tier`; when that fails the result says
    so in ``note`` instead of guessing.
    """
    from nbo_recorder.profile.check import missing_for_tier

    reached = 0
    missing_requested: tuple[str, ...] = ()
    try:
        for tier in (1, 2, 3):
            missing = missing_for_tier(profile, tier)
            if tier == requested:
                missing_requested = tuple(missing)
            if not missing and reached == tier - 1:
                reached = tier
    except Exception as exc:
        return TierCompliance(requested, None, (),
                              f"tier compliance unavailable: {type(exc).__name__}: {exc}")
    return TierCompliance(requested, reached, missing_requested)

