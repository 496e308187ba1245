"""Rig conformance suite: does the file record exactly the state the hardware was put in?

For a rig builder or a device manufacturer, a hardware profile is only right when every bound
device, moved to each of its positions or settings, ends up in the OME-TIFF as the component
or value it really is. This module checks that end to end, one check per device, property,
value and way of setting it:

* **plan** (:meth:`ConformanceSuite.plan`): for each binding of the profile, the values to
  try — every label the binding names (also those mapped to ``null``); for a property the
  profile's ``test_values``, else every allowed value of an enumerated property, else the
  lowest, middle and highest value within the property limits, else (and for read-only
  properties) only the value as found; for a stage component with ``min_um``/``max_um``,
  three positions inside those limits (set directly: stages are not put in config groups);
* **check** (:meth:`ConformanceSuite.run_check`): set the value directly
  (``setState`` / ``setProperty`` / ``setPosition``) or through a temporary config group
  (``defineConfig`` + ``setConfig``, deleted afterwards), acquire one frame through the
  :class:`~nbo_recorder.capture.recorder.Recorder`, read the file back and compare what it holds
  with what the profile says that value means (label -> component id; number converted from the
  binding's unit to the canonical one and formatted as the recorder formats it), in the
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

import math
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from nbo_recorder.capture.observed import _text as format_value
from nbo_recorder.profile.model import (
    SETTINGS,
    Binding,
    Profile,
    PropertySource,
    Stage,
    load_profile,
)
from nbo_recorder.read.reader import read_ome_xml
from nbo_recorder.render.ome import _BINNING, ome_id
from nbo_recorder.units import CANONICAL, to_canonical

#: how a check sets its value (direct, config, current = as found) or what else it checks
#: (read latency, unit plausibility, a binding the core cannot satisfy, the NBO tier)
Mode = Literal["direct", "config", "current", "read", "unit", "binding", "tier"]
Status = Literal["pass", "fail", "skip"]
EventVerdict = Literal["announced", "silent", "partial", "untested"]

#: temporary config group the suite defines (and deletes) for config-group sets
CONFIG_GROUP = "__nbo_conformance__"
#: property names the suite uses for stage positions (a focus stage, an XY stage)
Z_POSITION = "Position"
XY_POSITION = "XYPosition"
#: reads per property for the latency figure
READS = 5
#: how far (as a factor) a light source's power range may sit from its rated power before the
#: binding's unit is taken to be wrong; unit mistakes between W, mW and µW are factors of 1000
UNIT_TOLERANCE = 30.0
#: canonical values a correctly converted setting can have (power also against rated power)
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "power": (0.0, 10_000.0),
    "intensity": (0.0, 100.0),
    "attenuation": (0.0, 1.0),
    "wavelength": (100.0, 10_000.0),
    "readout_rate": (1e-3, 1e3),
    "temperature": (-273.15, 150.0),
}

_OME_NS = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"
_STATE_PROPERTIES = ("State", "Label")
#: config-group sets first: a direct set leaves pymmcore-plus de-duplication tokens (2 s) that
#: swallow a device's own notification of the same value, which would mask a config-group set
_MODES: tuple[Mode, Mode] = ("config", "direct")
_INTEGER_PROPERTY = 3  # MMCore PropertyType.Integer
#: role of a label binding -> key of the channel-settings annotation it fills
_ROLE_KEYS = {"objective": "objective", "excitation_filter": "excitation_filters",
              "emission_filter": "emission_filters", "dichroic": "dichroics",
              "filter_set": "filter_sets", "pinhole": "pinholes"}
#: role of a label binding -> (OME place of its reference, OME id kind)
_ROLE_OME = {"objective": ("Image.ObjectiveSettings", "Objective"),
             "excitation_filter": ("Channel.LightPath.ExcitationFilterRef", "Filter"),
             "emission_filter": ("Channel.LightPath.EmissionFilterRef", "Filter"),
             "dichroic": ("Channel.LightPath.DichroicRef", "Dichroic"),
             "filter_set": ("Channel.FilterSetRef", "FilterSet"),
             "light_source": ("Channel.LightSourceSettings", "LightSource"),
             "detector": ("Channel.DetectorSettings", "Detector")}
#: setting -> (annotation attribute, unit text, OME place), as ObservedSettings.flat writes it
_SETTING_PLACES: dict[str, tuple[str, str, str | None]] = {
    "gain": ("gain", "", "Channel.DetectorSettings.Gain"),
    "offset": ("offset", "", "Channel.DetectorSettings.Offset"),
    "readout_rate": ("readout_rate_mhz", "MHz", "Channel.DetectorSettings.ReadOutRate"),
    "bit_depth": ("bit_depth", "", None),
    "temperature": ("temperature_c", "°C", None),
    "em_gain": ("em_gain", "", None),
    "power": ("power_mw", "mW", None),
    "intensity": ("intensity_percent", "%", None),
    "attenuation": ("attenuation", "", "Channel.LightSourceSettings.Attenuation"),
    "wavelength": ("wavelength_nm", "nm", "Channel.LightSourceSettings.Wavelength"),
    "speed": ("speed_rpm", "rpm", None),
}


class ConformanceError(RuntimeError):
    """The suite could not run at all (unusable configuration or profile)."""


# --- results -----------------------------------------------------------------------------


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


# --- reading a file back -----------------------------------------------------------------


@dataclass(frozen=True)
class RecordedFrame:
    """One frame as a reader of the file sees it.

    ``settings``: the channel-settings annotation overlaid with the plane's own annotation
    (keys as :meth:`nbo_recorder.capture.observed.ObservedSettings.flat` writes them). ``ome``: OME
    attributes of its image, channel and plane, keyed ``Channel.DetectorSettings.Gain``,
    ``Channel.LightPath.EmissionFilterRef`` (IDs joined by commas), ``Plane.PositionZ``, ...
    """

    ifd: int
    image: int
    channel: str | None
    settings: Mapping[str, str]
    ome: Mapping[str, str]


@dataclass(frozen=True)
class ReadBack:
    """A recorded file read back: its OME-XML and its frames in acquisition (IFD) order."""

    path: Path
    xml: str
    frames: tuple[RecordedFrame, ...]


def read_back(path: str | Path) -> ReadBack:
    """Read an OME-TIFF written by the recorder into per-frame settings and OME attributes."""
    path = Path(path)
    xml = read_ome_xml(path)
    root = ET.fromstring(xml)
    annotations: dict[str, dict[str, str]] = {}
    for ann in root.iter(f"{_OME_NS}MapAnnotation"):
        values = {m.get("K", ""): m.text or "" for m in ann.iter(f"{_OME_NS}M")}
        annotations[ann.get("ID", "")] = values
    frames: list[RecordedFrame] = []
    for i, image in enumerate(root.iter(f"{_OME_NS}Image")):
        pixels = image.find(f"{_OME_NS}Pixels")
        if pixels is None:
            continue
        channels = pixels.findall(f"{_OME_NS}Channel")
        ifds = {(td.get("FirstT"), td.get("FirstC"), td.get("FirstZ")): int(td.get("IFD", "0"))
                for td in pixels.iter(f"{_OME_NS}TiffData")}
        base: dict[str, str] = {}
        objective = image.find(f"{_OME_NS}ObjectiveSettings")
        if objective is not None:
            base["Image.ObjectiveSettings"] = objective.get("ID", "")
        for plane in pixels.iter(f"{_OME_NS}Plane"):
            c = int(plane.get("TheC", "0"))
            channel = channels[c] if c < len(channels) else None
            settings: dict[str, str] = {}
            ome = dict(base)
            if channel is not None:
                for ref in channel.iter(f"{_OME_NS}AnnotationRef"):
                    settings.update(annotations.get(ref.get("ID", ""), {}))
                ome.update(_channel_places(channel))
            for ref in plane.iter(f"{_OME_NS}AnnotationRef"):
                settings.update(annotations.get(ref.get("ID", ""), {}))
            for attr, value in plane.attrib.items():
                ome[f"Plane.{attr}"] = value
            key = (plane.get("TheT"), plane.get("TheC"), plane.get("TheZ"))
            frames.append(RecordedFrame(
                ifd=ifds.get(key, -1), image=i,
                channel=channel.get("Name") if channel is not None else None,
                settings=settings, ome=ome,
            ))
    return ReadBack(path=path, xml=xml, frames=tuple(sorted(frames, key=lambda f: f.ifd)))


def _channel_places(channel: ET.Element) -> dict[str, str]:
    out: dict[str, str] = {}
    for attr in ("Name", "PinholeSize"):
        if channel.get(attr) is not None:
            out[f"Channel.{attr}"] = channel.get(attr, "")
    for child in ("LightSourceSettings", "DetectorSettings", "FilterSetRef"):
        el = channel.find(f"{_OME_NS}{child}")
        if el is None:
            continue
        out[f"Channel.{child}"] = el.get("ID", "")
        for attr, value in el.attrib.items():
            if attr != "ID":
                out[f"Channel.{child}.{attr}"] = value
    path = channel.find(f"{_OME_NS}LightPath")
    if path is not None:
        for ref in ("ExcitationFilterRef", "DichroicRef", "EmissionFilterRef"):
            ids = [el.get("ID", "") for el in path.findall(f"{_OME_NS}{ref}")]
            if ids:
                out[f"Channel.LightPath.{ref}"] = ",".join(ids)
    return out


def acquire(
    core: Any, profile: Profile, path: str | Path, *, frames: int = 1, sequence: Any = None
) -> ReadBack:
    """Acquire ``frames`` time points (or ``sequence``) through the recorder; read it back.

    The recorder checks the profile against the core first (ProfileError on a mismatch) and
    a recording problem raises :class:`~nbo_recorder.capture.recorder.RecordingError`.
    """
    import useq

    from nbo_recorder.capture.recorder import Recorder

    # a small positive interval: frames are snapped one by one, not as a hardware-sequenced
    # burst, in which the demo camera occasionally delivers fewer images than asked for
    seq = sequence if sequence is not None else useq.MDASequence(
        time_plan={"interval": 0.001, "loops": frames})
    sink = Recorder(core, profile).sink(path)
    core.mda.run(seq, output=sink)
    sink.raise_if_failed()
    return read_back(path)


# --- what a value should look like in the file --------------------------------------------


@dataclass(frozen=True)
class _Expected:
    """Per place, the text (annotation) or value (OME attribute) expected; None = absent."""

    annotation: dict[str, str | None]
    ome: dict[str, str | float | None]
    #: canonical number checked for plausibility, with the setting name
    number: tuple[str, float] | None = None


def _label_expectation(profile: Profile, b: Binding, label: str) -> _Expected:
    labels = b.labels or {}
    target = labels[label]
    comp = target.component if target is not None else None
    annotation: dict[str, str | None] = {}
    ome: dict[str, str | float | None] = {}
    if b.role in _ROLE_KEYS:
        annotation[_ROLE_KEYS[b.role]] = comp
    if b.role in _ROLE_OME:
        place, kind = _ROLE_OME[b.role]
        ome[place] = ome_id(kind, comp) if comp else None
    if b.role == "pinhole":
        ome["Channel.PinholeSize"] = (
            getattr(profile.component(comp), "diameter_um", None) if comp else None)
    if b.role == "light_source":
        for other in {t.component for t in labels.values() if t is not None} - {comp}:
            annotation[f"light_source[{other}]"] = None
        if comp and target is not None:
            annotation[f"light_source[{comp}]"] = "in path"
            wavelength = target.wavelength_nm
            if wavelength is None:
                wavelength = getattr(profile.component(comp), "wavelength_nm", None)
            if wavelength is not None:
                annotation[f"light_source[{comp}].wavelength_nm"] = format_value(
                    float(wavelength), "nm")
                ome["Channel.LightSourceSettings.Wavelength"] = float(wavelength)
    return _Expected(annotation, ome)


def _setting_expectation(name: str, src: PropertySource, comp: str, value: str) -> _Expected:
    """What the file must hold after ``src.property`` was set to ``value`` (device unit)."""
    kinds = SETTINGS[name][1]
    if name == "enabled":
        on = value.strip() in src.true_values
        return _Expected({f"light_source[{comp}]": "in path" if on else None},
                         {"Channel.LightSourceSettings": ome_id("LightSource", comp) if on
                          else None})
    if name == "binning":
        return _Expected({f"detector[{comp}].binning": value},
                         {"Channel.DetectorSettings.Binning": _BINNING.get(value, "Other")})
    attr, unit_text, place = _SETTING_PLACES[name]
    unit = src.unit if src.unit is not None else CANONICAL[SETTINGS[name][0]]
    number = to_canonical(float(value), unit)
    if "detector" in kinds:
        key = f"detector[{comp}].{attr}"
    elif "spinning_disk" in kinds:
        key = f"spinning_disk.{attr}"
    else:
        key = f"light_source[{comp}].{attr}"
    ome: dict[str, str | float | None] = {} if place is None else {place: number}
    return _Expected({key: format_value(number, unit_text)}, ome, (name, number))


def _compare(expected: _Expected, frame: RecordedFrame) -> tuple[list[str], list[str]]:
    """(mismatches, what the file held) for every place of ``expected``."""
    problems: list[str] = []
    held: list[str] = []
    for key, want in expected.annotation.items():
        got = frame.settings.get(key)
        held.append(f"{key}={got!r}" if got is not None else f"{key} absent")
        if got != want:
            problems.append(
                f"channel-settings annotation '{key}': expected "
                f"{'nothing' if want is None else repr(want)}, the file holds "
                f"{'nothing' if got is None else repr(got)}")
    for place, want_ome in expected.ome.items():
        got = frame.ome.get(place)
        held.append(f"{place}={got!r}" if got is not None else f"{place} absent")
        if not _same(want_ome, got):
            problems.append(
                f"OME {place}: expected {'nothing' if want_ome is None else repr(want_ome)}, "
                f"the file holds {'nothing' if got is None else repr(got)}")
    return problems, held


def _same(want: str | float | None, got: str | None) -> bool:
    if want is None or got is None:
        return want is None and got is None
    if isinstance(want, float):
        try:
            return math.isclose(float(got), want, rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    return got == want


def _implausible(profile: Profile, comp: str | None, name: str, number: float) -> str | None:
    """Why a canonical value cannot be right for this setting (a unit mistake), or None."""
    if name not in PLAUSIBLE:
        return None
    low, high = PLAUSIBLE[name]
    rated = _rated_power(profile, comp) if name == "power" else None
    if rated is not None:
        high = rated * UNIT_TOLERANCE
    if low <= number <= high:
        return None
    unit = CANONICAL[SETTINGS[name][0]]
    why = f"rated {rated:g} mW" if rated is not None else "plausible"
    return (f"{number:g} {unit} is outside {low:g}–{high:g} {unit} ({why}) for the {name} "
            f"of {comp or 'this component'}: is the binding's unit what the device reports?")


def _rated_power(profile: Profile, comp: str | None) -> float | None:
    if comp is None:
        return None
    try:
        rated = getattr(profile.component(comp), "rated_power_mw", None)
    except KeyError:
        return None
    return float(rated) if rated is not None else None


# --- the suite ----------------------------------------------------------------------------


def _number_text(value: float, integer: bool) -> str:
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


def _equal(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except ValueError:
        return a.strip() == b.strip()


class ConformanceSuite:
    """The checks for one core and profile, and the session state they run in.

    Use :meth:`run` for everything at once, or :meth:`plan`, :meth:`start`,
    :meth:`run_check` per check and :meth:`finish` (the pytest plugin does this).
    """

    def __init__(
        self, core: Any, profile: Profile, *, allow_unsafe: bool = False,
        tier: int | None = None,
    ) -> None:
        self.core = core
        self.profile = profile
        self.allow_unsafe = allow_unsafe
        self.tier = tier
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._checks: list[PlannedCheck] | None = None
        self._events: list[tuple[str, str]] = []
        #: what the suite moves, as found at the start (the check carries the saved value)
        self._saved: list[PlannedCheck] = []
        self._auto_shutter: bool | None = None
        self._started = False
        self.notes: list[str] = []

    # --- planning ---------------------------------------------------------------------

    def plan(self) -> list[PlannedCheck]:
        """Every check, grouped by device and property, in the order they run."""
        if self._checks is None:
            planner = _Planner(self.core, self.profile, self.allow_unsafe)
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
                self._saved.append(replace(c, value=self._current(c), mode="direct"))
            except Exception as exc:  # a device that cannot be read: its checks say so
                self.notes.append(f"{c.device}.{c.prop}: not saved for restoring ({exc})")
        if not self.allow_unsafe:
            self._auto_shutter = bool(core.getAutoShutter())
            core.setAutoShutter(False)
        self._delete_group()
        core.events.propertyChanged.connect(self._on_property_changed)
        self._tmp = tempfile.TemporaryDirectory(prefix="nbo-conformance-")
        self._started = True

    def finish(self) -> list[str]:
        """Put back what the suite moved (never re-enabling light unless allowed); notes."""
        if not self._started:
            return self.notes
        core = self.core
        try:
            core.events.propertyChanged.disconnect(self._on_property_changed)
        except (ValueError, RuntimeError):
            pass
        self._delete_group()
        for saved in reversed(self._saved):
            where = f"{saved.device}.{saved.prop}"
            reason = self._unsafe_reason(saved)
            if reason is not None:
                self.notes.append(f"{where}: left at a safe value, not restored to "
                                  f"{saved.value!r} ({reason})")
                continue
            try:
                self._set_direct(saved)
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

    def run(self, progress: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
        """Run every planned check (one session) and return the results."""
        results = []
        self.start()
        try:
            for check in self.plan():
                result = self.run_check(check)
                results.append(result)
                if progress is not None:
                    progress(result)
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
            expected = _label_expectation(self.profile, b, check.value)
            if not expected.annotation and not expected.ome:
                return self._result(check, "skip", f"{where}: the recorder records nothing "
                                    f"for the labels of a {b.role} binding")
            sub = b.model_copy(update={"labels": {check.value: b.labels[check.value]},
                                       "settings": {}, "active_when": None})
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
                "settings": {check.target: src}, "active_when": None})
            value = check.value
            if check.mode == "current":
                value = str(core.getProperty(dev, prop))
                check = replace(check, value=value)
            try:
                expected = _setting_expectation(check.target, src, comp, value)
            except ValueError:
                return self._result(check, "fail", f"{where}={value!r}: not a number, so the "
                                    f"{check.target} it means cannot be computed")
        changed, mark = False, len(self._events)
        device_now = check.value
        if check.mode in ("direct", "config"):
            changed, mark = self._apply(check)
            device_now = self._current(check)
        mode_text = {"direct": "set directly", "config": "set through a config group",
                     "current": "as found (not set)"}[check.mode]
        problems, held = _compare(expected, self._acquire(check, sub))
        # counted after the acquisition: MMCore may deliver a device's notification late
        names = _STATE_PROPERTIES if prop == "Label" else (prop,)
        event = any(d == dev and p in names for d, p in self._events[mark:]) if changed else None
        if not _equal(device_now, check.value):
            problems.insert(0, f"the device reports {device_now!r} after being set to "
                               f"{check.value!r}")
        if expected.number is not None:
            why = _implausible(self.profile, comp, *expected.number)
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
        path = Path(self._tmp.name) / f"check-{check.index:04d}.ome.tif"
        profile = self.profile.model_copy(update={"bindings": () if sub is None else (sub,)})
        try:
            back = acquire(self.core, profile, path)
        finally:
            path.unlink(missing_ok=True)
        if not back.frames:
            raise RuntimeError(f"{path}: the file holds no frame")
        return back.frames[0]

    # --- setting values and watching events -------------------------------------------

    def _on_property_changed(self, device: Any, prop: Any, _value: Any) -> None:
        self._events.append((str(device), str(prop)))

    def _current(self, check: PlannedCheck) -> str:
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

    def _set_direct(self, check: PlannedCheck, value: str | None = None) -> None:
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

    def _set_config(self, check: PlannedCheck, value: str | None = None) -> None:
        """Set the check's property through a temporary config group, deleted afterwards."""
        core = self.core
        try:
            core.defineConfig(CONFIG_GROUP, "check", check.device, check.prop,
                              check.value if value is None else value)
            core.setConfig(CONFIG_GROUP, "check")
            core.waitForConfig(CONFIG_GROUP, "check")
        finally:
            self._delete_group()

    def _apply(self, check: PlannedCheck) -> tuple[bool, int]:
        """Set the check's value in its mode: (whether that changed it, event log mark).

        When the device already holds the value it is first moved to another safe value, in
        the same mode: a direct set makes pymmcore-plus hold back the device's own echo of
        that value for a while, which would hide a later config-group set's notification.
        """
        value = check.value
        put = self._set_config if check.mode == "config" else self._set_direct
        before = self._current(check)
        if _equal(before, value):
            alternative = next((a for a in check.alternatives if not _equal(a, value)), None)
            if alternative is not None:
                try:
                    put(check, alternative)
                    before = self._current(check)
                except Exception:  # moving away only makes the set a change; not required
                    pass
        mark = len(self._events)
        put(check)
        return not _equal(before, value), mark

    def _delete_group(self) -> None:
        if self.core.isGroupDefined(CONFIG_GROUP):
            self.core.deleteConfigGroup(CONFIG_GROUP)

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
                    and not _equal(saved.value, check.value)
                    and self._unsafe_reason(saved) is None):
                self._set_direct(saved)

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
        problems = [p for v in converted if (p := _implausible(self.profile, comp, name, v))]
        rated = _rated_power(self.profile, comp) if name == "power" else None
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
            self._set_direct(check)
        axes = ("X", "Y") if xy else ("Z",)
        now = core.getXYPosition(dev) if xy else (core.getPosition(dev),)
        if check.mode == "current":
            check = replace(check, value=",".join(f"{float(v):g}" for v in now))
        frame = self._acquire(check, None)
        problems, held = [], []
        for axis, want in zip(axes, now, strict=True):
            got = frame.ome.get(f"Plane.Position{axis}")
            held.append(f"Plane.Position{axis}={got!r}")
            if not _same(float(want), got):
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


class _Planner:
    """Works out the safe values to try for every binding of the profile."""

    def __init__(self, core: Any, profile: Profile, allow_unsafe: bool) -> None:
        self.core = core
        self.profile = profile
        self.allow_unsafe = allow_unsafe
        self.loaded = set(core.getLoadedDevices())

    def plan(self) -> list[PlannedCheck]:
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


def tier_compliance(profile: Profile, requested: int | None = None) -> TierCompliance:
    """Highest NBO tier whose MUST attributes the profile all has, and what ``requested`` lacks.

    Uses :func:`nbo_recorder.profile.check.missing_for_tier`; when that is unavailable the
    result says so in ``note`` instead of guessing.
    """
    try:
        from nbo_recorder.profile.check import missing_for_tier
    except ImportError as exc:
        return TierCompliance(requested, None, (), f"tier compliance unavailable: {exc}")
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


def run_conformance(
    mm_config: str | Path, profile_path: str | Path, *, tier: int | None = None,
    allow_unsafe: bool = False, progress: Callable[[CheckResult], None] | None = None,
) -> ConformanceReport:
    """Load the rig and profile, run the whole suite, unload; the report.

    Raises :class:`~nbo_recorder.profile.model.ProfileError` or
    :class:`~nbo_recorder.rig.RigError` (and
    ``ValueError`` for a tier other than 1–3) before anything moves.
    """
    from nbo_recorder.nbo.rules import check_tier
    from nbo_recorder.rig import load_core

    if tier is not None:
        check_tier(tier)
    profile = load_profile(profile_path)
    core = load_core(mm_config)
    try:
        suite = ConformanceSuite(core, profile, allow_unsafe=allow_unsafe, tier=tier)
        results = suite.run(progress)
        return ConformanceReport(rig=str(mm_config), profile=str(profile_path),
                                 allow_unsafe=allow_unsafe, results=results,
                                 tier=tier_compliance(profile, tier), notes=list(suite.notes))
    finally:
        core.unloadAllDevices()
