"""What a value should look like in the file, derived independently of the recorder.

For a label: the component id in the channel-settings annotation and the OME reference to
it. For a setting: the device value converted from the binding's unit to the canonical one
(:func:`nbo_recorder.units.to_canonical`, the documented conversion) and written as text here,
by conformance's own rules (:func:`expected_text`, :func:`expected_binning`), never through
the recorder's formatter: a formatting mistake in the recorder then fails a check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nbo_recorder.conformance.readback import RecordedFrame
from nbo_recorder.profile.model import SETTINGS, Binding, Profile, PropertySource
from nbo_recorder.units import CANONICAL, to_canonical

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
    "power_emitted": ("power_emitted_mw", "mW", None),
    "intensity": ("intensity_percent", "%", None),
    "attenuation": ("attenuation", "", "Channel.LightSourceSettings.Attenuation"),
    "wavelength": ("wavelength_nm", "nm", "Channel.LightSourceSettings.Wavelength"),
    "speed": ("speed_setpoint_rpm", "rpm", None),
}


#: the binnings OME's Binning enumeration names; any other device binning is "Other"
OME_BINNINGS = ("1x1", "2x2", "4x4", "8x8")


def expected_text(number: float, unit: str) -> str:
    """A canonical number as the recorder documents it in its annotations.

    Up to six significant digits without trailing zeros (``5``, ``0.05``, ``12.5``,
    ``1e+06``), then a space and the unit when there is one (``5 mW``, ``470 nm``).
    """
    digits = f"{number:g}"
    return f"{digits} {unit}" if unit else digits


def expected_binning(value: str) -> str:
    """OME Binning for a device binning value: ``"2"`` or ``"2x2"`` -> ``"2x2"``, else Other."""
    if value in OME_BINNINGS:
        return value
    square = f"{value}x{value}"
    return square if square in OME_BINNINGS else "Other"


def expected_id(kind: str, component: str) -> str:
    """The OME id the recorder documents for a profile component: ``Objective:obj-10x``."""
    return f"{kind}:{component}"


@dataclass(frozen=True)
class Expected:
    """Per place, the text (annotation) or value (OME attribute) expected; None = absent."""

    annotation: dict[str, str | None]
    ome: dict[str, str | float | None]
    #: canonical number checked for plausibility, with the setting name
    number: tuple[str, float] | None = None


def label_expectation(profile: Profile, b: Binding, label: str) -> Expected:
    """What the file must hold while ``b``'s device is at ``label``."""
    labels = b.labels or {}
    target = labels[label]
    comp = target.component if target is not None else None
    annotation: dict[str, str | None] = {}
    ome: dict[str, str | float | None] = {}
    if b.role in _ROLE_KEYS:
        annotation[_ROLE_KEYS[b.role]] = comp
    if b.role in _ROLE_OME:
        place, kind = _ROLE_OME[b.role]
        ome[place] = expected_id(kind, comp) if comp else None
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
                annotation[f"light_source[{comp}].wavelength_nm"] = expected_text(
                    float(wavelength), "nm")
                ome["Channel.LightSourceSettings.Wavelength"] = float(wavelength)
    return Expected(annotation, ome)


def setting_expectation(name: str, src: PropertySource, comp: str, value: str) -> Expected:
    """What the file must hold after ``src.property`` was set to ``value`` (device unit)."""
    kinds = SETTINGS[name][1]
    if name == "enabled":
        on = value.strip() in src.true_values
        return Expected({f"light_source[{comp}]": "in path" if on else None},
                        {"Channel.LightSourceSettings": expected_id("LightSource", comp) if on
                         else None})
    if name == "emission_state":
        return Expected({f"light_source[{comp}].emission_state": value}, {})
    if name == "binning":
        return Expected({f"detector[{comp}].binning": value},
                        {"Channel.DetectorSettings.Binning": expected_binning(value)})
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
    return Expected({key: expected_text(number, unit_text)}, ome, (name, number))


def compare(expected: Expected, frame: RecordedFrame) -> tuple[list[str], list[str]]:
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
        if not same(want_ome, got):
            problems.append(
                f"OME {place}: expected {'nothing' if want_ome is None else repr(want_ome)}, "
                f"the file holds {'nothing' if got is None else repr(got)}")
    return problems, held


def same(want: str | float | None, got: str | None) -> bool:
    """Both absent, or equal: numerically for a number, as text otherwise."""
    if want is None or got is None:
        return want is None and got is None
    if isinstance(want, float):
        try:
            return math.isclose(float(got), want, rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    return got == want


def implausible(profile: Profile, comp: str | None, name: str, number: float) -> str | None:
    """Why a canonical value cannot be right for this setting (a unit mistake), or None."""
    if name not in PLAUSIBLE:
        return None
    low, high = PLAUSIBLE[name]
    rated = rated_power(profile, comp) if name == "power" else None
    if rated is not None:
        high = rated * UNIT_TOLERANCE
    if low <= number <= high:
        return None
    unit = CANONICAL[SETTINGS[name][0]]
    why = f"rated {rated:g} mW" if rated is not None else "plausible"
    return (f"{number:g} {unit} is outside {low:g}–{high:g} {unit} ({why}) for the {name} "
            f"of {comp or 'this component'}: is the binding's unit what the device reports?")


def rated_power(profile: Profile, comp: str | None) -> float | None:
    """The rated power (mW) the profile states for component ``comp``, if any."""
    if comp is None:
        return None
    try:
        rated = getattr(profile.component(comp), "rated_power_mw", None)
    except KeyError:
        return None
    return float(rated) if rated is not None else None


