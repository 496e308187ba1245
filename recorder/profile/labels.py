"""What a Micro-Manager device name or state label states about the part behind it.

Labels are often the only trace of the physical parts in a configuration: ``"Nikon 20X Plan
Fluor ELWD"`` names a maker, a magnification and a correction; ``"Chroma-HQ535"`` a maker and
a centre wavelength; ``"Q505LP"`` a dichroic cut-on; ``"470nm"`` an LED line. These functions
read only what the text says, never a spec it does not state, and guess a state device's role
from its name and labels. ``profile init`` (:mod:`nbo_recorder.profile.skeleton`) builds the
skeleton from them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

Data = dict[str, Any]

# --- what labels state ---------------------------------------------------------------------

#: Makers whose name may appear in a device label (as written there -> canonical spelling).
MANUFACTURERS: tuple[str, ...] = (
    "Nikon", "Olympus", "Evident", "Zeiss", "Leica", "Chroma", "Semrock", "Omega", "AHF",
    "Thorlabs", "Edmund", "Hamamatsu", "Andor", "Photometrics", "PCO", "Teledyne", "Lumencor",
    "CoolLED", "Excelitas", "Coherent", "Cobolt", "Oxxius", "Toptica", "Prior", "ASI", "Ludl",
    "Sutter", "Yokogawa", "Mitutoyo", "Lambda",
)
_MANUFACTURER_RE = re.compile(
    r"(?<![A-Za-z])(" + "|".join(m for m in MANUFACTURERS if m != "Lambda") + r")(?![A-Za-z])",
    re.IGNORECASE,
)

_GENERIC_LABEL_RE = re.compile(
    r"^\s*(state|pos|position|slot|filter|objective|label|undefined|unused|port|cube|"
    r"dichroic|emission|excitation|wheel|turret|nosepiece|led|channel)?[\s_-]*\d+\s*$",
    re.IGNORECASE,
)
_EMPTY_LABEL_RE = re.compile(r"^\s*(empty|none|open|blank|no filter|nothing|hole|clear)\s*$",
                             re.IGNORECASE)
_CLOSED_LABEL_RE = re.compile(r"^\s*(closed|off|dark|none|empty)\s*$", re.IGNORECASE)
_WAVELENGTH_LABEL_RE = re.compile(r"^\s*(?:[A-Za-z]+[\s_-]*)?(\d{3,4})\s*nm\s*$", re.IGNORECASE)


def is_generic_label(label: str) -> bool:
    """A position name that states nothing about what sits there (``State-5``, ``Pos 2``)."""
    return bool(_GENERIC_LABEL_RE.match(label))


def is_empty_label(label: str) -> bool:
    """A label that states the position holds nothing (``Empty``, ``Open``)."""
    return bool(_EMPTY_LABEL_RE.match(label))


def label_wavelength(label: str) -> int | None:
    """The wavelength a light-source label states (``"470nm"`` -> 470)."""
    m = _WAVELENGTH_LABEL_RE.match(label)
    if m and 200 <= int(m.group(1)) <= 2000:
        return int(m.group(1))
    return None


def label_manufacturer(label: str) -> str | None:
    m = _MANUFACTURER_RE.search(label)
    if m is None:
        return None
    found = m.group(1).lower()
    return next(name for name in MANUFACTURERS if name.lower() == found)


_CORRECTIONS: tuple[tuple[str, str], ...] = (
    (r"plan[\s-]*apo(chromat)?", "PlanApo"),
    (r"plan[\s-]*neo[\s-]*fluar", "PlanNeofluar"),
    (r"plan[\s-]*fluor", "PlanFluor"),
    (r"super[\s-]*fluor", "SuperFluor"),
    (r"\bneo[\s-]*fluar\b", "Neofluar"),
    (r"\bfluar\b", "Fluar"),
    (r"\bfluotar\b", "Fluotar"),
    (r"\bapo(chromat)?\b", "Apo"),
    (r"\bachromat\b", "Achromat"),
    (r"\bachro\b", "Achro"),
    (r"\bfluor\b", "Fluor"),
    (r"\buv\b", "UV"),
)
_IMMERSIONS: tuple[tuple[str, str], ...] = (
    (r"\boil\b", "Oil"),
    (r"\bglyc(erol|erin)?\b", "Glycerol"),
    (r"\bwater\b|\bW\b", "Water"),
    (r"\b(air|dry)\b", "Air"),
)


def _num(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def parse_objective_label(label: str) -> Data:
    """What an objective label states: manufacturer, magnification, NA, immersion, correction."""
    out: Data = {}
    maker = label_manufacturer(label)
    if maker:
        out["manufacturer"] = maker
    m = re.search(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)\s*[xX×](?![A-Za-z])", label)
    if m and 0 < float(m.group(1)) <= 250:
        out["nominal_magnification"] = _num(m.group(1))
    m = re.search(r"(?:\bNA\s*[=:]?\s*|[xX×]\s*/\s*)(\d?\.\d+|1\.\d+)", label)
    if m and 0 < float(m.group(1)) <= 1.7:
        out["lens_na"] = _num(m.group(1))
    for pattern, value in _IMMERSIONS:
        flags = 0 if pattern.endswith(r"\bW\b") else re.IGNORECASE
        if re.search(pattern, label, flags):
            out["immersion"] = value
            break
    for pattern, value in _CORRECTIONS:
        if re.search(pattern, label, re.IGNORECASE):
            out["correction"] = value
            break
    return out


def _wl(text: str) -> int | float | None:
    value = float(text)
    return _num(text) if 200 <= value <= 2000 else None


def parse_filter_label(label: str) -> Data:
    """What a filter label states: manufacturer, centre / band, long- or short-pass edge."""
    out: Data = {}
    maker = label_manufacturer(label)
    if maker:
        out["manufacturer"] = maker
    rest = _MANUFACTURER_RE.sub(" ", label)
    m = re.search(r"(?<!\d)(\d{3,4}(?:\.\d+)?)\s*/\s*(\d{1,3}(?:\.\d+)?)(?![\d.])", rest)
    if m and _wl(m.group(1)) is not None and 0 < float(m.group(2)) < float(m.group(1)):
        centre, width = float(m.group(1)), float(m.group(2))
        out["filter_type"] = "BandPass"
        out["center_wavelength_nm"] = _num(m.group(1))
        out["transmittance_range"] = {"cut_in_nm": _num(str(centre - width / 2)),
                                      "cut_out_nm": _num(str(centre + width / 2))}
        return out
    m = re.search(r"(?<!\d)(\d{3,4})\s*-\s*(\d{3,4})(?!\d)", rest)
    if m and _wl(m.group(1)) and _wl(m.group(2)) and float(m.group(1)) < float(m.group(2)):
        out["filter_type"] = "BandPass"
        out["transmittance_range"] = {"cut_in_nm": _num(m.group(1)),
                                      "cut_out_nm": _num(m.group(2))}
        return out
    m = (re.search(r"(?<!\d)(\d{3,4})\s*(?:nm)?\s*(?:DC|EF|A)?LP", rest, re.IGNORECASE)
         or re.search(r"\bLP\s*(\d{3,4})(?!\d)", rest, re.IGNORECASE))
    if m and _wl(m.group(1)):
        out["filter_type"] = "LongPass"
        out["transmittance_range"] = {"cut_in_nm": _num(m.group(1))}
        return out
    m = (re.search(r"(?<!\d)(\d{3,4})\s*(?:nm)?\s*(?:DC|EF)?SP", rest, re.IGNORECASE)
         or re.search(r"\bSP\s*(\d{3,4})(?!\d)", rest, re.IGNORECASE))
    if m and _wl(m.group(1)):
        out["filter_type"] = "ShortPass"
        out["transmittance_range"] = {"cut_out_nm": _num(m.group(1))}
        return out
    m = re.search(r"\bBP\s*(\d{3,4})(?!\d)", rest, re.IGNORECASE)
    if m and _wl(m.group(1)):
        out["filter_type"] = "BandPass"
        out["center_wavelength_nm"] = _num(m.group(1))
        return out
    # a catalogue series letter code followed by the centre wavelength: HQ535, D360, ET470
    m = re.fullmatch(r"\s*[-_\s]*(?:HQ|D|ET|E|Q|S|Z|ZET|HC|FF\d\d)[-\s]?(\d{3})\s*", rest,
                     re.IGNORECASE)
    if m and _wl(m.group(1)):
        out["center_wavelength_nm"] = _num(m.group(1))
    return out


def parse_dichroic_label(label: str) -> Data:
    """What a dichroic label states: manufacturer and a long-pass cut-on (``Q505LP``)."""
    out: Data = {}
    maker = label_manufacturer(label)
    if maker:
        out["manufacturer"] = maker
    rest = _MANUFACTURER_RE.sub(" ", label)
    m = re.search(r"(?<!\d)(\d{3,4})\s*(?:nm)?\s*(?:DC)?(?:LP|XR)", rest, re.IGNORECASE)
    if m and _wl(m.group(1)):
        out["cut_on_nm"] = _num(m.group(1))
    return out


# --- classifying devices -------------------------------------------------------------------

_OBJECTIVE_RE = re.compile(r"objective|nosepiece|revolver|turret", re.IGNORECASE)
_DICHROIC_RE = re.compile(r"dichroic|beam\s*splitter|\bbs\b|mirror|polychroic", re.IGNORECASE)
_CUBE_RE = re.compile(r"cube|filter\s*set|reflector", re.IGNORECASE)
_EXCITATION_RE = re.compile(r"excitation|exciter|\bex\b|^ex[\s_-]", re.IGNORECASE)
_EMISSION_RE = re.compile(r"emission|emitter|barrier|\bem\b|^em[\s_-]", re.IGNORECASE)
_FILTER_RE = re.compile(r"filter|wheel", re.IGNORECASE)
_LASER_RE = re.compile(r"laser", re.IGNORECASE)
_LED_RE = re.compile(r"\bled\b|led[\s_-]|lumencor|spectra|coolled|pe-?\d{3}", re.IGNORECASE)


def classify_state_device(name: str, labels: Sequence[str]) -> str | None:
    """Guess the role of a state device from its name and labels (None: no NBO role)."""
    if _DICHROIC_RE.search(name):
        return "dichroic"
    if _CUBE_RE.search(name):
        return "filter_set"
    if _EXCITATION_RE.search(name):
        return "excitation_filter"
    if _EMISSION_RE.search(name):
        return "emission_filter"
    if _OBJECTIVE_RE.search(name) and not _FILTER_RE.search(name):
        return "objective"
    informative = [lb for lb in labels
                   if not is_generic_label(lb) and not _CLOSED_LABEL_RE.match(lb)]
    if informative and sum(label_wavelength(lb) is not None for lb in informative) * 2 >= len(
        informative
    ):
        return "light_source"
    if _LED_RE.search(name) or _LASER_RE.search(name):
        return "light_source"
    if _FILTER_RE.search(name):
        return "emission_filter"
    return None


def slug(text: str) -> str:
    """A component id fragment: lower case, runs of other characters -> '-'."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "x"




def is_closed_label(label: str) -> bool:
    """A light-source position that emits nothing (``Closed``, ``Off``)."""
    return bool(_CLOSED_LABEL_RE.match(label))


def names_objective(text: str) -> bool:
    """Whether a device name or description speaks of an objective turret / nosepiece."""
    return bool(_OBJECTIVE_RE.search(text))


def names_filter_path(name: str) -> bool:
    """Whether a device name says excitation or emission (not just "filter" or "wheel")."""
    return bool(_EXCITATION_RE.search(name) or _EMISSION_RE.search(name))


def names_laser(name: str) -> bool:
    """Whether a device name speaks of a laser (otherwise a light source is taken as an LED)."""
    return bool(_LASER_RE.search(name))
