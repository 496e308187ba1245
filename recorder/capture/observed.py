"""From raw observed property values to the settings a microscopist reads.

:func:`interpret` turns one :class:`~nbo_recorder.capture.documents.StateSnapshot` into
:class:`ObservedSettings` using the profile's bindings: which objective, filters and light
sources were in the path, and the detector and light-source settings in canonical units.
Anything that could not be observed, or that the profile cannot resolve (a label the profile
does not know), becomes :class:`~nbo_recorder.vocabulary.Unknown` with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from nbo_recorder.capture.documents import PropertyKey, RawValue, StateSnapshot
from nbo_recorder.profile.model import SETTINGS, Binding, Profile
from nbo_recorder.units import CANONICAL, to_canonical
from nbo_recorder.vocabulary import Unknown, format_value, unknown_text

Number = float | Unknown


@dataclass(frozen=True)
class LightSourceInPath:
    """One light source that was illuminating the sample, with its observed settings."""

    component: str
    wavelength_nm: Number | None = None
    power_mw: Number | None = None
    intensity_percent: Number | None = None
    attenuation: Number | None = None


@dataclass(frozen=True)
class DetectorObserved:
    component: str
    gain: Number | None = None
    offset: Number | None = None
    binning: str | Unknown | None = None
    readout_rate_mhz: Number | None = None
    bit_depth: Number | None = None
    temperature_c: Number | None = None
    em_gain: Number | None = None


@dataclass(frozen=True)
class ObservedSettings:
    """The light path and settings in force for one snapshot."""

    objective: str | Unknown | None = None
    excitation_filters: tuple[str, ...] = ()
    emission_filters: tuple[str, ...] = ()
    dichroics: tuple[str, ...] = ()
    filter_sets: tuple[str, ...] = ()
    pinholes: tuple[str, ...] = ()
    light_sources: tuple[LightSourceInPath, ...] = ()
    detectors: tuple[DetectorObserved, ...] = ()
    spinning_disk_speed_rpm: Number | None = None
    unknown: tuple[tuple[str, str], ...] = field(default=())

    def flat(self) -> dict[str, str]:
        """A flat ``name -> text`` view, used to compare snapshots and to annotate planes."""
        out: dict[str, str] = {}
        if self.objective is not None:
            out["objective"] = str(self.objective)
        for name in ("excitation_filters", "emission_filters", "dichroics", "filter_sets",
                     "pinholes"):
            value: tuple[str, ...] = getattr(self, name)
            if value:
                out[name] = ",".join(value)
        for ls in self.light_sources:
            out[f"light_source[{ls.component}]"] = "in path"
            for attr, unit in (("wavelength_nm", "nm"), ("power_mw", "mW"),
                               ("intensity_percent", "%"), ("attenuation", "")):
                v = getattr(ls, attr)
                if v is not None:
                    out[f"light_source[{ls.component}].{attr}"] = format_value(v, unit)
        for det in self.detectors:
            for attr, unit in (("gain", ""), ("offset", ""), ("binning", ""),
                               ("readout_rate_mhz", "MHz"), ("bit_depth", ""),
                               ("temperature_c", "°C"), ("em_gain", "")):
                v = getattr(det, attr)
                if v is not None:
                    out[f"detector[{det.component}].{attr}"] = format_value(v, unit)
        if self.spinning_disk_speed_rpm is not None:
            out["spinning_disk.speed_rpm"] = format_value(self.spinning_disk_speed_rpm, "rpm")
        for what, reason in self.unknown:
            out.setdefault(what, unknown_text(reason))
        return out


def _number(raw: RawValue, where: str, unit: str) -> Number:
    if isinstance(raw, Unknown):
        return raw
    try:
        value = float(raw)
    except ValueError:
        return Unknown(f"{where} = {raw!r} is not a number")
    if not math.isfinite(value):
        return Unknown(f"{where} = {raw!r} is not finite")
    return to_canonical(value, unit)


def _is_true(raw: RawValue, true_values: tuple[str, ...]) -> bool | Unknown:
    if isinstance(raw, Unknown):
        return raw
    return raw.strip() in true_values


def interpret(snapshot: StateSnapshot, profile: Profile) -> ObservedSettings:
    """Resolve a snapshot through the profile's bindings."""
    values = snapshot.values
    unknown: list[tuple[str, str]] = []
    picked: dict[str, list[str]] = {
        "objective": [], "excitation_filter": [], "emission_filter": [], "dichroic": [],
        "filter_set": [], "pinhole": [],
    }
    objective: str | Unknown | None = None
    sources: list[LightSourceInPath] = []
    detectors: list[DetectorObserved] = []
    disk_speed: Number | None = None

    for b in profile.bindings:
        active: bool | Unknown = True
        if b.active_when is not None:
            aw = b.active_when
            cond = values.get((aw.device, aw.property), Unknown("not observed"))
            active = cond if isinstance(cond, Unknown) else cond in aw.equals
        if isinstance(active, Unknown):
            unknown.append((f"{b.role}[{b.device}].in_path", active.reason))
            continue
        if not active:
            continue

        component: str | None = b.component
        label_wavelength: float | None = None
        if b.labels is not None:
            raw = values.get((b.device, "Label"), Unknown("not observed"))
            if isinstance(raw, Unknown):
                if b.role == "objective":
                    objective = raw
                unknown.append((f"{b.role}[{b.device}]", raw.reason))
                continue
            if raw not in b.labels:
                reason = f"label {raw!r} of {b.device} is not described in the profile"
                if b.role == "objective":
                    objective = Unknown(reason)
                unknown.append((f"{b.role}[{b.device}]", reason))
                continue
            target = b.labels[raw]
            if target is None:
                continue
            component = target.component
            label_wavelength = target.wavelength_nm
        assert component is not None  # guaranteed by Binding validation

        settings = {name: _setting(b, name, values) for name in b.settings}
        if b.role == "objective":
            objective = component
        elif b.role in picked:
            picked[b.role].append(component)
        elif b.role == "light_source":
            enabled = settings.pop("enabled", None)
            if isinstance(enabled, Unknown):
                unknown.append((f"light_source[{component}].enabled", enabled.reason))
            elif enabled is False:
                continue
            sources.append(_light_source(profile, component, label_wavelength, settings))
        elif b.role == "detector":
            detectors.append(_detector(component, settings))
        elif b.role == "spinning_disk":
            speed = settings.get("speed")
            disk_speed = speed if isinstance(speed, float | Unknown) else None

    return ObservedSettings(
        objective=objective,
        excitation_filters=tuple(picked["excitation_filter"]),
        emission_filters=tuple(picked["emission_filter"]),
        dichroics=tuple(picked["dichroic"]),
        filter_sets=tuple(picked["filter_set"]),
        pinholes=tuple(picked["pinhole"]),
        light_sources=tuple(sources),
        detectors=tuple(detectors),
        spinning_disk_speed_rpm=disk_speed,
        unknown=tuple(unknown),
    )


SettingValue = float | str | bool | Unknown


def _setting(b: Binding, name: str, values: Mapping[PropertyKey, RawValue]) -> SettingValue:
    src = b.settings[name]
    raw = values.get((b.device, src.property), Unknown("not observed"))
    if name == "enabled":
        return _is_true(raw, src.true_values)
    if name == "binning":
        return raw
    unit = src.unit if src.unit is not None else CANONICAL[SETTINGS[name][0]]
    return _number(raw, f"{b.device}.{src.property}", unit)


def _num(v: SettingValue | None) -> Number | None:
    if v is None or isinstance(v, float | Unknown):
        return v
    return None


def _light_source(
    profile: Profile, component: str, label_wavelength: float | None,
    settings: dict[str, SettingValue],
) -> LightSourceInPath:
    wavelength = _num(settings.get("wavelength"))
    if wavelength is None:
        wavelength = label_wavelength
    if wavelength is None:
        comp = profile.component(component)
        wavelength = getattr(comp, "wavelength_nm", None)
    return LightSourceInPath(
        component=component,
        wavelength_nm=wavelength,
        power_mw=_num(settings.get("power")),
        intensity_percent=_num(settings.get("intensity")),
        attenuation=_num(settings.get("attenuation")),
    )


def _detector(component: str, settings: dict[str, SettingValue]) -> DetectorObserved:
    binning = settings.get("binning")
    return DetectorObserved(
        component=component,
        gain=_num(settings.get("gain")),
        offset=_num(settings.get("offset")),
        binning=binning if isinstance(binning, str | Unknown) else None,
        readout_rate_mhz=_num(settings.get("readout_rate")),
        bit_depth=_num(settings.get("bit_depth")),
        temperature_c=_num(settings.get("temperature")),
        em_gain=_num(settings.get("em_gain")),
    )
