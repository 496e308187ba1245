"""From raw observed property values to the settings a microscopist reads.

:func:`interpret` turns one :class:`~nbo_recorder.capture.documents.StateSnapshot` into
:class:`ObservedSettings` using the profile's bindings: which objective, filters and light
sources were in the path, and the detector and light-source settings in canonical units.
Anything that could not be observed, or that the profile cannot resolve (a label the profile
does not know), becomes :class:`~nbo_recorder.vocabulary.Unknown` with its reason.

A light source is in the path only when everything that gates it is known to let it through:
its ``active_when`` condition, its shutter (open, or auto-shutter on with it as the core
shutter) and its ``enabled`` switch. When any of these cannot be read the source is not
claimed; it is listed as unknown, and the channel's whole set of light sources is marked
``unknown (reason)`` (``light_sources``), since a source may have been lit that the file does
not name. What a source reports it emits (``power_emitted``, ``emission_state``) is recorded
beside its setpoint (``power``), so a laser still in its start-up delay is not taken to emit
the power it is set to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from nbo_recorder.capture.documents import PROVENANCE, PropertyKey, RawValue, StateSnapshot
from nbo_recorder.profile.model import SETTINGS, SHUTTER_STATE, Binding, Profile
from nbo_recorder.units import CANONICAL, to_canonical
from nbo_recorder.vocabulary import Unknown, format_value, unknown_text

Number = float | Unknown


@dataclass(frozen=True)
class LightSourceInPath:
    """One light source switched into the light path, with its observed settings.

    ``power_mw`` is the power set at the source (its setpoint); ``power_emitted_mw`` and
    ``emission_state`` are what the source reports it emits, when the profile binds them, and
    ``emitting`` says whether that state is one in which it emits (None: not reported).
    """

    component: str
    wavelength_nm: Number | None = None
    power_mw: Number | None = None
    intensity_percent: Number | None = None
    attenuation: Number | None = None
    power_emitted_mw: Number | None = None
    emission_state: str | Unknown | None = None
    emitting: bool | Unknown | None = None

    def path_text(self) -> str:
        """How the plane names this source: ``in path`` only when it emits (or cannot say).

        A source switched on that reports it is not emitting (a laser in its CDRH start-up
        delay) lit nothing during the frame: ``in path, not emitting (state)``; one whose
        running state could not be read: ``unknown (...)``.
        """
        if self.emitting is False:
            return f"in path, not emitting ({self.emission_state})"
        if isinstance(self.emitting, Unknown):
            return unknown_text(f"switched on; whether it emitted: {self.emitting.reason}")
        return "in path"


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
    spinning_disk_speed_setpoint_rpm: Number | None = None
    unknown: tuple[tuple[str, str], ...] = field(default=())
    light_sources_unknown: tuple[str, ...] = ()
    """Why a light source may have been in the path without being listed (empty: the list is
    complete)."""
    provenance: tuple[tuple[str, str], ...] = ()
    """How the snapshot's values are known (:data:`~nbo_recorder.capture.state.PROVENANCE`
    entries: when read, events since, silent values verified or assumed)."""

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
        if self.light_sources_unknown:
            out["light_sources"] = unknown_text("; ".join(self.light_sources_unknown))
        for ls in self.light_sources:
            out[f"light_source[{ls.component}]"] = ls.path_text()
            for attr, unit in (("wavelength_nm", "nm"), ("power_mw", "mW"),
                               ("power_emitted_mw", "mW"), ("intensity_percent", "%"),
                               ("attenuation", "")):
                v = getattr(ls, attr)
                if v is not None:
                    out[f"light_source[{ls.component}].{attr}"] = format_value(v, unit)
            if ls.emission_state is not None:
                out[f"light_source[{ls.component}].emission_state"] = str(ls.emission_state)
        for det in self.detectors:
            for attr, unit in (("gain", ""), ("offset", ""), ("binning", ""),
                               ("readout_rate_mhz", "MHz"), ("bit_depth", ""),
                               ("temperature_c", "°C"), ("em_gain", "")):
                v = getattr(det, attr)
                if v is not None:
                    out[f"detector[{det.component}].{attr}"] = format_value(v, unit)
        if self.spinning_disk_speed_setpoint_rpm is not None:
            # the speed set at the unit: a CSU-W1 cannot report whether its disk turns
            out["spinning_disk.speed_setpoint_rpm"] = format_value(
                self.spinning_disk_speed_setpoint_rpm, "rpm")
        for what, reason in self.unknown:
            out.setdefault(what, unknown_text(reason))
        out.update((f"provenance.{name}", text) for name, text in self.provenance)
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

    light_unknown: list[str] = []

    def light_not_known(what: str, reason: str) -> None:
        unknown.append((f"light_source[{what}]", reason))
        light_unknown.append(f"{what}: {reason}")

    for b in profile.bindings:
        active: bool | Unknown = True
        if b.active_when is not None:
            aw = b.active_when
            cond = values.get((aw.device, aw.property), Unknown("not observed"))
            active = cond if isinstance(cond, Unknown) else cond in aw.equals
        if b.shutter is not None and active is True:
            active = _shutter_open(b.shutter, values)
        if isinstance(active, Unknown):
            if b.role == "light_source":
                light_not_known(b.component or b.device, active.reason)
            else:
                unknown.append((f"{b.role}[{b.device}].in_path", active.reason))
            continue
        if not active:
            continue

        component: str | None = b.component
        label_wavelength: float | None = None
        if b.labels is not None:
            raw = values.get((b.device, "Label"), Unknown("not observed"))
            if raw not in b.labels:
                reason = raw.reason if isinstance(raw, Unknown) else (
                    f"label {raw!r} of {b.device} is not described in the profile")
                if b.role == "objective":
                    objective = Unknown(reason)
                if b.role == "light_source":
                    light_not_known(b.device, reason)
                else:
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
            if isinstance(enabled, Unknown):  # perhaps lit: never claimed, never left out
                light_not_known(component, f"on/off: {enabled.reason}")
                continue
            if enabled is False:
                continue
            sources.append(_light_source(profile, b, component, label_wavelength, settings))
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
        spinning_disk_speed_setpoint_rpm=disk_speed,
        unknown=tuple(unknown),
        light_sources_unknown=tuple(light_unknown),
        provenance=tuple((prop, str(value)) for (device, prop), value in values.items()
                         if device == PROVENANCE),
    )


def _shutter_open(shutter: str, values: Mapping[PropertyKey, RawValue]) -> bool | Unknown:
    """Whether ``shutter`` lets light through during the exposure.

    Open when it is open now, or when auto-shutter is on and it is the core shutter (the core
    opens it for each exposure); closed otherwise. Unknown when what decides it is unknown.
    """
    state = values.get((shutter, SHUTTER_STATE), Unknown("not observed"))
    if state == "1":
        return True
    auto = values.get(("Core", "AutoShutter"), Unknown("not observed"))
    if isinstance(auto, Unknown):
        return Unknown(f"Core.AutoShutter: {auto.reason}")
    if auto == "1":
        selected = values.get(("Core", "Shutter"), Unknown("not observed"))
        if isinstance(selected, Unknown):
            return Unknown(f"Core.Shutter: {selected.reason}")
        if selected == shutter:
            return True
    if isinstance(state, Unknown):
        return Unknown(f"shutter {shutter} open/closed: {state.reason}")
    return False


SettingValue = float | str | bool | Unknown


def _setting(b: Binding, name: str, values: Mapping[PropertyKey, RawValue]) -> SettingValue:
    src = b.settings[name]
    raw = values.get((b.device, src.property), Unknown("not observed"))
    if name == "enabled":
        return _is_true(raw, src.true_values)
    if name in ("binning", "emission_state"):
        return raw
    unit = src.unit if src.unit is not None else CANONICAL[SETTINGS[name][0]]
    return _number(raw, f"{b.device}.{src.property}", unit)


def _num(v: SettingValue | None) -> Number | None:
    if v is None or isinstance(v, float | Unknown):
        return v
    return None


def _light_source(
    profile: Profile, binding: Binding, component: str, label_wavelength: float | None,
    settings: dict[str, SettingValue],
) -> LightSourceInPath:
    wavelength = _num(settings.get("wavelength"))
    if wavelength is None:
        wavelength = label_wavelength
    if wavelength is None:
        comp = profile.component(component)
        wavelength = getattr(comp, "wavelength_nm", None)
    state = settings.get("emission_state")
    state_text = state if isinstance(state, str | Unknown) else None
    emitting: bool | Unknown | None = None
    if state_text is not None:
        src = binding.settings["emission_state"]
        emitting = _is_true(state_text, src.true_values)
    return LightSourceInPath(
        component=component,
        wavelength_nm=wavelength,
        power_mw=_num(settings.get("power")),
        intensity_percent=_num(settings.get("intensity")),
        attenuation=_num(settings.get("attenuation")),
        power_emitted_mw=_num(settings.get("power_emitted")),
        emission_state=state_text,
        emitting=emitting,
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
