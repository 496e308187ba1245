"""Micro-Meta App microscope files: the format, shared by import and export.

A Micro-Meta App (NBO v2.01 model) microscope file is a JSON object with ``Schema_ID:
"Instrument.json"``, a ``MicroscopeStand`` object, a flat ``components`` list (each with a
``Schema_ID`` such as ``"Objective.json"``, a ``Name``, an ``ID`` (UUID), canvas-layout keys,
property values with their units in separate ``...Unit`` keys, and child arrays such as
``TransmittanceRange`` or ``LEDModule``) and ``linkedFields``. References between components
are ``"<Kind>/<uuid>"`` strings; ``"na"`` means none.

This module holds what both directions need: which Schema_ID becomes which profile kind,
reading the file, flattening nested values into a component's ``extra``
(``"TransmittanceRange[0].Wavelength"``), references, the app's child-array counters and key
order. The mapping of record keys to profile fields is
:mod:`nbo_recorder.profile.micrometa_fields`; a whole file becomes profile data in
:mod:`nbo_recorder.profile.micrometa_import` and is written back in
:mod:`nbo_recorder.profile.micrometa_export`, so an import -> export -> import round trip loses
no field. Canvas-layout keys are not profile data: an import keeps them beside the profile and
an export puts them back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Data = dict[str, Any]
Scalar = str | bool | int | float | None


class MicroMetaError(ValueError):
    """A file that cannot be imported; the message names the file, component Name and ID."""


MODEL_VERSION = "2.01.0"
INSTRUMENT_SCHEMA = "Instrument.json"

#: canvas layout, not metadata (kept beside an imported profile, by component ID)
LAYOUT_KEYS = frozenset({"PositionX", "PositionY", "PositionZ", "Width", "Height", "OffsetX",
                         "OffsetY", "OccupiedSpot", "occupiedSpot"})
_COUNTER_RE = re.compile(r"^(Current|Min|Max)_Number_Of_(\w+)$")
_NONE_VALUES = frozenset({"na", "NA", "", "Not assigned", "None"})


# --- which Schema_ID becomes which profile kind --------------------------------------------

#: Micro-Meta App Schema_ID -> profile component kind
SCHEMA_KINDS: dict[str, str] = {
    "Objective.json": "objective",
    "ExcitationFilter.json": "filter",
    "EmissionFilter.json": "filter",
    "NeutralDensityFilter.json": "filter",
    "GenericFilter.json": "filter",
    "StandardDichroic.json": "dichroic",
    "GenericDichroic.json": "dichroic",
    "FilterCube.json": "filter_set",
    "FilterSet.json": "filter_set",
    "Fluorescence_LightSource_LightEmittingDiode.json": "led",
    "Transmitted_LightSource_LightEmittingDiode.json": "led",
    "LightEmittingDiode.json": "led",
    "Fluorescence_LightSource_Laser.json": "laser",
    "Transmitted_LightSource_Laser.json": "laser",
    "Laser.json": "laser",
    "Fluorescence_LightSource_Arc.json": "arc",
    "Transmitted_LightSource_Arc.json": "arc",
    "Arc.json": "arc",
    "Fluorescence_LightSource_Filament.json": "generic_light_source",
    "Transmitted_LightSource_Filament.json": "generic_light_source",
    "Filament.json": "generic_light_source",
    "Fluorescence_LightSource_GenericExcitationSource.json": "generic_light_source",
    "Transmitted_LightSource_GenericExcitationSource.json": "generic_light_source",
    "GenericExcitationSource.json": "generic_light_source",
    "CCD.json": "detector",
    "CMOS.json": "detector",
    "EMCCD.json": "detector",
    "IntensifiedCCD.json": "detector",
    "IntensifiedCamera.json": "detector",
    "AnalogVideo.json": "detector",
    "PhotoMultiplierTube.json": "detector",
    "PhotoDiode.json": "detector",
    "HybridPhotoDetector.json": "detector",
    "GenericDetector.json": "detector",
    "PiezoElectricStage.json": "stage",
    "MechanicalStage.json": "stage",
    "Z-Drive.json": "stage",
    "TurretObjectiveFocusing.json": "stage",
    "IndividualObjectiveFocusing.json": "stage",
}

#: Micro-Meta App schemas the profile has no component kind for: kept verbatim for export
KEPT_SCHEMAS: dict[str, str] = {
    "AcquisitionSoftware.json": "software",
    "SoftwareModule.json": "software",
    "EnvironmentalControlDevice.json": "environmental control",
    "Condenser.json": "condenser",
    "FocusStabilizationDevice.json": "focus stabilisation",
    "AutoFocus.json": "autofocus",
    "FilterCubeTurret.json": "holder",
    "ObjectiveTurret.json": "holder",
    "OpticsTurret.json": "holder",
    "ExcitationFilterWheel.json": "holder",
    "EmissionFilterWheel.json": "holder",
    "DichroicFilterWheel.json": "holder",
    "ExcitationFilterSlider.json": "holder",
    "EmissionFilterSlider.json": "holder",
    "DichroicFilterSlider.json": "holder",
    "Fluorescence_LightSource_MultiLaserEngine.json": "holder",
    "MicroscopeTable.json": "accessory",
    "MagnificationChanger.json": "optics",
    "MicroscopeTube.json": "optics",
    "TubeLens.json": "optics",
    "RelayLens.json": "optics",
    "CouplingLens.json": "optics",
    "LightGuide.json": "light source coupling",
    "Direct.json": "light source coupling",
    "FreeBeam.json": "light source coupling",
    "IrisDiaphragm.json": "aperture",
    "StageInsert.json": "accessory",
}

STAND_SCHEMAS = {"InvertedMicroscopeStand.json": "Inverted",
                 "UprightMicroscopeStand.json": "Upright"}

#: child arrays whose Current/Min/Max counters the app writes, with the schema's min and max
_COUNTED_ARRAYS: dict[str, tuple[tuple[str, int, int], ...]] = {
    **{s: (("TransmittanceRange", 1, -1),)
       for s in ("ExcitationFilter.json", "EmissionFilter.json", "NeutralDensityFilter.json")},
    "StandardDichroic.json": (("TransmittanceRange", 1, -1), ("ReflectanceRange", 0, -1)),
    **{s: (("LEDModule", 1, -1),)
       for s, k in SCHEMA_KINDS.items() if k == "led"},
    **{s: (("WavelengthRange", 0, -1),)
       for s in ("CCD.json", "CMOS.json", "EMCCD.json", "IntensifiedCCD.json")},
}

#: prefix of ``extra`` keys kept only to write a Micro-Meta App file back unchanged (an
#: original spelling, the stand's UUID); the NBO record ignores them
ROUND_TRIP_PREFIX = "MicroMetaApp."


# --- files ---------------------------------------------------------------------------------


def read_micrometa(path: str | Path) -> Any:
    """Parse a JSON file; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MicroMetaError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MicroMetaError(f"{path}: not valid JSON: {exc}") from None


def kept_path(profile_path: str | Path) -> Path:
    """Where the kept Micro-Meta data of an imported profile lives."""
    p = Path(profile_path)
    return p.with_name(p.stem + ".micrometa-kept.json")


# --- flattening nested values into ``extra`` -----------------------------------------------


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """Nested JSON -> ``{"A[0].B": scalar}``; empty containers become ``"A[]"`` / ``"A{}"``."""
    out: dict[str, Scalar] = {}

    def walk(v: Any, key: str) -> None:
        if isinstance(v, dict):
            if not v:
                out[key + "{}"] = None
            for k, sub in v.items():
                walk(sub, f"{key}.{k}" if key else str(k))
        elif isinstance(v, list):
            if not v:
                out[key + "[]"] = None
            for i, sub in enumerate(v):
                walk(sub, f"{key}[{i}]")
        else:
            out[key] = v

    for k, v in value.items():
        walk(v, f"{prefix}.{k}" if prefix else str(k))
    return out


_TOKEN_RE = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def _path(key: str) -> list[str | int]:
    marker: list[str | int] = []
    if key.endswith("[]") or key.endswith("{}"):
        marker = [key[-2:]]
        key = key[:-2]
    parts: list[str | int] = []
    for m in _TOKEN_RE.finditer(key):
        parts.append(int(m.group(1)) if m.group(1) is not None else m.group(2))
    return parts + marker


def unflatten(flat: Mapping[str, Scalar]) -> Data:
    """Inverse of :func:`flatten` (list indices are kept in order)."""
    root: Data = {}
    for key, value in flat.items():
        parts = _path(key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = None if last else parts[i + 1]
            if last:
                node[part] = value
            elif nxt in ("[]", "{}"):
                node[part] = [] if nxt == "[]" else {}
                break
            else:
                if part not in node:
                    node[part] = {}
                node = node[part]
    out: Data = _lists(root)
    return out


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(isinstance(k, int) for k in node):
            return [_lists(node[k]) for k in sorted(node)]
        return {k: _lists(v) for k, v in node.items()}
    return node


# --- references, counters and key order ----------------------------------------------------


def ref_ids(value: Any) -> list[str] | None:
    """``"Kind/uuid"`` (or a list of them) -> ids; ``"na"`` -> []; None if not references."""
    values = value if isinstance(value, list) else [value]
    out: list[str] = []
    for v in values:
        if v is None or (isinstance(v, str) and v.strip() in _NONE_VALUES):
            continue
        if not isinstance(v, str) or "/" not in v:
            return None
        out.append(v.split("/", 1)[1])
    return out


def strip_counters(schema: str, rec: Data) -> Data:
    """Drop the app's child-array counters where they can be regenerated on export."""
    defaults = {name: (lo, hi) for name, lo, hi in _COUNTED_ARRAYS.get(schema, ())}
    out: Data = {}
    for k, v in rec.items():
        m = _COUNTER_RE.match(k)
        if m and m.group(2) in defaults:
            which, array = m.group(1), m.group(2)
            if which == "Current":
                continue
            lo, hi = defaults[array]
            if v == (lo if which == "Min" else hi):
                continue
        out[k] = v
    return out


def add_counters(schema: str, rec: Data) -> Data:
    """The record with the child-array counters the app writes (inverse of strip_counters)."""
    out = dict(rec)
    for array, lo, hi in _COUNTED_ARRAYS.get(schema, ()):
        items = rec.get(array)
        out[f"Current_Number_Of_{array}"] = len(items) if isinstance(items, list) else 0
        out.setdefault(f"Min_Number_Of_{array}", lo)
        out.setdefault(f"Max_Number_Of_{array}", hi)
    return out


_RECORD_ORDER = ("Name", "ID", "Tier", "Schema_ID", "ModelVersion", "Extension", "Domain",
                 "Category")


def order_record(rec: Mapping[str, Any]) -> Data:
    """The record's keys in the app's order: identity, counters, maker, then the rest."""
    head = {k: rec[k] for k in _RECORD_ORDER if k in rec}
    counters = {k: v for k, v in rec.items() if _COUNTER_RE.match(k) and k not in head}
    maker = {k: rec[k] for k in ("Manufacturer", "Model", "CatalogNumber") if k in rec}
    rest = {k: v for k, v in rec.items() if k not in head and k not in counters
            and k not in maker}
    return {**head, **counters, **maker, **rest}
