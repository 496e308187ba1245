"""Micro-Meta App microscope files <-> hardware profiles.

A Micro-Meta App (NBO v2.01 model) microscope file is a JSON object with ``Schema_ID:
"Instrument.json"``, a ``MicroscopeStand`` object, a flat ``components`` list (each with a
``Schema_ID`` such as ``"Objective.json"``, a ``Name``, an ``ID`` (UUID), canvas-layout keys,
property values with their units in separate ``...Unit`` keys, and child arrays such as
``TransmittanceRange`` or ``LEDModule``) and ``linkedFields``. References between components
are ``"<Kind>/<uuid>"`` strings; ``"na"`` means none.

:func:`import_micrometa` maps each component to a profile component that keeps the Micro-Meta
ID, converting units with :mod:`nbo_recorder.units`. What the profile model has no field for goes
into the component's ``extra`` (flattened: ``"TransmittanceRange[0].Wavelength"``), including
the original spelling of a value the profile normalises (``"Achroplan"`` for correction
``Achromat``). Records the profile has no component kind for (software, environmental
control, condensers, focus stabilisation, turrets and wheels, unknown Schema_IDs) and the
instrument / stand fields the profile cannot hold are returned as *kept* data, which the CLI
writes next to the profile (``<profile>.micrometa-kept.json``). :func:`export_micrometa`
rebuilds a Micro-Meta App file from a profile (and the kept data, when there is some), so an
import -> export -> import round trip loses no field. Canvas-layout keys are dropped.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nbo_recorder.profile.model import (
    LED,
    Arc,
    Detector,
    Dichroic,
    Filter,
    FilterSet,
    GenericLightSource,
    Laser,
    Microscope,
    Objective,
    Pinhole,
    Profile,
    ProfileError,
    SpinningDisk,
    Stage,
    parse_profile,
)
from nbo_recorder.units import UnitError, quantity_of, to_canonical

Data = dict[str, Any]
Scalar = str | bool | int | float | None


class MicroMetaError(ValueError):
    """A file that cannot be imported; the message names the file, component Name and ID."""


MODEL_VERSION = "2.01.0"
INSTRUMENT_SCHEMA = "Instrument.json"
#: canvas layout, not metadata (dropped on import, not written on export)
LAYOUT_KEYS = frozenset({"PositionX", "PositionY", "PositionZ", "Width", "Height", "OffsetX",
                         "OffsetY", "OccupiedSpot", "occupiedSpot"})
_COUNTER_RE = re.compile(r"^(Current|Min|Max)_Number_Of_(\w+)$")
_NONE_VALUES = frozenset({"na", "NA", "", "Not assigned", "None"})

# --- which Schema_ID becomes which profile kind -----------------------------------------------

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

_DETECTOR_SCHEMA_TYPES: dict[str, str | None] = {
    "CCD.json": "CCD", "CMOS.json": "CMOS", "EMCCD.json": "EMCCD",
    "IntensifiedCCD.json": "IntensifiedCCD", "IntensifiedCamera.json": "IntensifiedCCD",
    "AnalogVideo.json": "AnalogVideo", "PhotoMultiplierTube.json": "PMT",
    "PhotoDiode.json": "Photodiode", "HybridPhotoDetector.json": None,
    "GenericDetector.json": None,
}

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

#: Extension, Domain, Category written for components a profile made (not imported)
_HW = "MicroscopeHardwareSpecifications"
_SCHEMA_META: dict[str, tuple[str, str, str]] = {
    "Objective.json": ("Core", _HW, "Magnification"),
    "ExcitationFilter.json": ("Core", _HW, "FluorescenceLightPath"),
    "EmissionFilter.json": ("Core", _HW, "FluorescenceLightPath"),
    "StandardDichroic.json": ("Core", _HW, "FluorescenceLightPath"),
    "FilterCube.json": ("Core", _HW, "FluorescenceLightPath"),
    "Fluorescence_LightSource_LightEmittingDiode.json": ("Core", _HW, "Fluorescence_LightSource"),
    "Fluorescence_LightSource_Laser.json": ("Core", _HW, "Fluorescence_LightSource"),
    "Fluorescence_LightSource_Arc.json": ("Core", _HW, "Fluorescence_LightSource"),
    "Fluorescence_LightSource_GenericExcitationSource.json":
        ("Core", _HW, "Fluorescence_LightSource"),
    "CCD.json": ("Basic", _HW, "Detector.Camera"),
    "CMOS.json": ("Basic", _HW, "Detector.Camera"),
    "EMCCD.json": ("Basic", _HW, "Detector.Camera"),
    "IntensifiedCCD.json": ("Basic", _HW, "Detector.Camera"),
    "AnalogVideo.json": ("Basic", _HW, "Detector.Camera"),
    "PhotoMultiplierTube.json": ("Basic", _HW, "Detector.PointDetector"),
    "PhotoDiode.json": ("Basic", _HW, "Detector.PointDetector"),
    "GenericDetector.json": ("Basic", _HW, "Detector"),
    "MechanicalStage.json": ("Basic", _HW, "SamplePositioning.Stage"),
    "Z-Drive.json": ("Basic", _HW, "SamplePositioning.Focusing"),
    "InvertedMicroscopeStand.json": ("Basic", _HW, "MicroscopeStand"),
    "UprightMicroscopeStand.json": ("Basic", _HW, "MicroscopeStand"),
}

# --- value vocabularies ------------------------------------------------------------------------

_CORRECTION_IN = {
    "Achro": "Achro", "Achromat": "Achromat", "Achroplan": "Achromat", "Apo": "Apo",
    "Apochromat": "Apo", "Fl": "Fl", "Fluar": "Fluar", "Fluor": "Fluor", "Fluotar": "Fluotar",
    "Neofluar": "Neofluar", "PlanApo": "PlanApo", "PlanApochromat": "PlanApo",
    "PlanFluor": "PlanFluor", "PlanNeofluar": "PlanNeofluar", "SuperFluor": "SuperFluor",
    "UPlanApo": "PlanApo", "UPlanFl": "PlanFluor", "UV": "UV",
    "VioletCorrected": "VioletCorrected", "Other": "Other",
}
_CORRECTION_OUT = {"Apo": "Apochromat", "PlanApo": "PlanApochromat"}
_IMMERSION_IN = {"Air": "Air", "Water": "Water", "Mineral Oil": "Oil", "Oil": "Oil",
                 "Silicone Oil": "Oil", "Glycerol": "Glycerol", "Multi": "Multi",
                 "Other": "Other"}
_IMMERSION_OUT = {"Oil": "Mineral Oil", "WaterDipping": "Dipping"}
_FILTER_TYPE_IN = {"BandPass": "BandPass", "LongPass": "LongPass", "ShortPass": "ShortPass",
                   "MultiPass": "MultiPass", "NeutralDensity": "NeutralDensity",
                   "Tuneable": "Tuneable", "BandStop": "Other", "Notch": "Other",
                   "Other": "Other", "Dichroic": "Dichroic"}
_LASER_TYPE_IN = {"Gas": "Gas", "MetalVapor": "MetalVapor", "Dye": "Dye",
                  "Semiconductor": "Semiconductor", "LaserDiode": "Semiconductor",
                  "FreeElectron": "FreeElectron", "SolidState": "SolidState",
                  "DiodePumpedSolidState": "SolidState", "Excimer": "Excimer", "Other": "Other"}
_ARC_TYPE_IN = {"Hg": "Hg", "Xe": "Xe", "HgXe": "HgXe", "Other": "Other"}
_AXES_IN = {"XY": "xy", "Z": "z", "XYZ": "xyz", "X-Y": "xy", "X-Y-Z": "xyz"}
_AXES_OUT = {"xy": "XY", "z": "Z", "xyz": "XYZ"}

# --- flattening nested values into ``extra`` -------------------------------------------------


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


# --- numbers and units -------------------------------------------------------------------------


def _clean(x: float) -> int | float:
    """Round away float noise from unit conversion (0.55 mm -> 550 µm, not 550.0000000000001)."""
    y = round(x, 9)
    return int(y) if float(y).is_integer() else y


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _wavelength_nm(v: float, unit: str) -> float | None:
    if unit == "nm":
        return v
    try:
        quantity = quantity_of(unit)
    except UnitError:
        return None
    return to_canonical(v, unit) * 1e3 if quantity == "length" else None


def _length_um(v: float, unit: str) -> float | None:
    if unit == "nm":
        return v / 1e3
    try:
        quantity = quantity_of(unit)
    except UnitError:
        return None
    return to_canonical(v, unit) if quantity == "length" else None


def _power_mw(v: float, unit: str) -> float | None:
    try:
        quantity = quantity_of(unit)
    except UnitError:
        return None
    return to_canonical(v, unit) if quantity == "power" else None


def _same(a: Any, b: Any) -> bool:
    """Equal, with floats compared to 1e-9 relative (ints and floats alike)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# --- record <-> profile fields, per kind -------------------------------------------------------


@dataclass
class _Mapped:
    """Profile fields taken from one record, and which (flattened) record keys each used."""

    fields: Data = field(default_factory=dict)
    used: dict[str, set[str]] = field(default_factory=dict)

    def put(self, name: str, value: Any, keys: Iterable[str]) -> None:
        self.fields[name] = value
        self.used.setdefault(name, set()).update(keys)


def _take_text(m: _Mapped, rec: Mapping[str, Any], key: str, name: str) -> None:
    v = rec.get(key)
    if isinstance(v, str) and v != "":
        m.put(name, v, [key])
    elif isinstance(v, int | float) and not isinstance(v, bool):
        m.put(name, str(v), [key])


def _take_number(m: _Mapped, rec: Mapping[str, Any], key: str, name: str,
                 unit_key: str | None = None, default_unit: str | None = None,
                 convert: Callable[[float, str], float | None] | None = None,
                 prefix: str = "") -> None:
    v = _number(rec.get(key))
    if v is None:
        return
    keys = [prefix + key]
    if convert is not None and unit_key is not None:
        unit = rec.get(unit_key, default_unit)
        if not isinstance(unit, str):
            return
        converted = convert(v, unit)
        if converted is None:
            return
        v = converted
        if unit_key in rec:
            keys.append(prefix + unit_key)
    m.put(name, _clean(v), keys)


def _take_enum(m: _Mapped, rec: Mapping[str, Any], key: str, name: str,
               table: Mapping[str, str]) -> None:
    v = rec.get(key)
    if isinstance(v, str) and v in table:
        m.put(name, table[v], [key])


def _ref_ids(value: Any) -> list[str] | None:
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


def to_fields(schema: str, kind: str, rec: Mapping[str, Any]) -> _Mapped:
    """The profile fields a Micro-Meta record states (no validation)."""
    m = _Mapped()
    _take_text(m, rec, "Name", "name")
    for key, name in (("Manufacturer", "manufacturer"), ("Model", "model"),
                      ("CatalogNumber", "catalog_number"), ("SerialNumber", "serial_number"),
                      ("LotNumber", "lot_number")):
        _take_text(m, rec, key, name)
    if kind == "objective":
        _take_number(m, rec, "Magnification", "nominal_magnification")
        _take_number(m, rec, "CalibratedMagnification", "calibrated_magnification")
        _take_number(m, rec, "LensNA", "lens_na")
        _take_enum(m, rec, "Correction", "correction", _CORRECTION_IN)
        imm = rec.get("ImmersionType")
        if imm == "Dipping" and rec.get("DippingMedium") == "Water-based":
            m.put("immersion", "WaterDipping", ["ImmersionType"])
        else:
            _take_enum(m, rec, "ImmersionType", "immersion", _IMMERSION_IN)
        _take_number(m, rec, "WorkingDistance", "working_distance_um", "WorkingDistanceUnit",
                     "mm", _length_um)
        if isinstance(rec.get("Iris"), bool):
            m.put("iris", rec["Iris"], ["Iris"])
    elif kind == "filter":
        _take_enum(m, rec, "Type", "filter_type", _FILTER_TYPE_IN)
        if schema == "NeutralDensityFilter.json" and "filter_type" not in m.fields:
            m.fields["filter_type"] = "NeutralDensity"
        _take_text(m, rec, "FilterWheel", "filter_wheel")
        _filter_range(m, rec)
    elif kind == "dichroic":
        ranges = rec.get("TransmittanceRange")
        if (isinstance(ranges, list) and len(ranges) == 1 and isinstance(ranges[0], dict)
                and rec.get("Type", "LongPass") == "LongPass"):
            r = ranges[0]
            width = _number(r.get("FWHMBandwidth", 0))
            if set(r) <= {"Wavelength", "WavelengthUnit", "FWHMBandwidth"} and width == 0:
                sub = _Mapped()
                _take_number(sub, r, "Wavelength", "cut_on_nm", "WavelengthUnit", "nm",
                             _wavelength_nm, prefix="TransmittanceRange[0].")
                if "cut_on_nm" in sub.fields:
                    used = sub.used["cut_on_nm"] | {f"TransmittanceRange[0].{k}" for k in r}
                    m.put("cut_on_nm", sub.fields["cut_on_nm"], used)
    elif kind == "filter_set":
        for key, name, many in (("ExcitationFilter", "excitation_filters", True),
                                ("StandardDichroic", "dichroic", False),
                                ("EmissionFilter", "emission_filters", True)):
            if key not in rec:
                continue
            ids = _ref_ids(rec[key])
            if ids is None or (not many and len(ids) > 1):
                continue
            keys = ([f"{key}[{i}]" for i in range(len(rec[key]))]
                    if isinstance(rec[key], list) else [key])
            if many:
                m.put(name, ids, keys)
            elif ids:
                m.put(name, ids[0], keys)
            else:
                m.used.setdefault(name, set()).update(keys)
    elif kind == "led":
        modules = rec.get("LEDModule")
        if isinstance(modules, list) and len(modules) == 1 and isinstance(modules[0], dict):
            mod = modules[0]
            _take_number(m, mod, "PeakWavelength", "wavelength_nm", "PeakWavelengthUnit", "nm",
                         _wavelength_nm, prefix="LEDModule[0].")
            _take_number(m, mod, "IlluminationPower", "rated_power_mw", "IlluminationPowerUnit",
                         None, _power_mw, prefix="LEDModule[0].")
    elif kind in ("laser", "arc", "generic_light_source"):
        for key in ("NominalPowerOutput", "NominalPower", "Power"):
            _take_number(m, rec, key, "rated_power_mw", f"{key}Unit", None, _power_mw)
            if "rated_power_mw" in m.fields:
                break
        if kind == "laser":
            _take_number(m, rec, "Wavelength", "wavelength_nm", "WavelengthUnit", "nm",
                         _wavelength_nm)
            _take_enum(m, rec, "Type", "laser_type", _LASER_TYPE_IN)
            _take_text(m, rec, "LaserMedium", "laser_medium")
        elif kind == "arc":
            _take_enum(m, rec, "Type", "arc_type", _ARC_TYPE_IN)
    elif kind == "detector":
        dtype = _DETECTOR_SCHEMA_TYPES.get(schema)
        if schema == "CCD.json" and rec.get("Type") == "EMCCD":
            m.put("detector_type", "EMCCD", ["Type"])
        elif dtype is not None:
            m.fields["detector_type"] = dtype
        for key, name in (("ArrayWidth", "sensor_width_px"), ("ArrayHeight", "sensor_height_px")):
            v = _number(rec.get(key))
            if v is not None and v.is_integer():
                m.put(name, int(v), [key])
        pw, ph = _Mapped(), _Mapped()
        _take_number(pw, rec, "PixelWidth", "p", "PixelWidthUnit", "µm", _length_um)
        _take_number(ph, rec, "PixelHeight", "p", "PixelHeightUnit", "µm", _length_um)
        if "p" in pw.fields and "p" in ph.fields and _same(pw.fields["p"], ph.fields["p"]):
            m.put("pixel_size_um", pw.fields["p"], pw.used["p"] | ph.used["p"])
        bits = rec.get("MaxBitDepth")
        found = re.fullmatch(r"\s*(\d+)\s*(bits?)?\s*", str(bits)) if bits is not None else None
        if found and not isinstance(bits, bool):
            m.put("bit_depth", int(found.group(1)), ["MaxBitDepth"])
    elif kind == "stage":
        axes = rec.get("MovementAxes")
        if isinstance(axes, str) and axes in _AXES_IN:
            m.put("axes", _AXES_IN[axes], ["MovementAxes"])
        elif axes is None and schema in ("Z-Drive.json", "TurretObjectiveFocusing.json",
                                         "IndividualObjectiveFocusing.json"):
            m.fields["axes"] = "z"
    return m


def _filter_range(m: _Mapped, rec: Mapping[str, Any]) -> None:
    ranges = rec.get("TransmittanceRange")
    if not (isinstance(ranges, list) and len(ranges) == 1 and isinstance(ranges[0], dict)):
        return
    r = ranges[0]
    if not set(r) <= {"Wavelength", "WavelengthUnit", "FWHMBandwidth", "Transmittance"}:
        return
    unit = r.get("WavelengthUnit", "nm")
    centre = _number(r.get("Wavelength"))
    width = _number(r.get("FWHMBandwidth"))
    if centre is None or not isinstance(unit, str):
        return
    centre_nm = _wavelength_nm(centre, unit)
    width_nm = _wavelength_nm(width, unit) if width is not None else None
    if centre_nm is None:
        return
    ftype = m.fields.get("filter_type")
    keys = {f"TransmittanceRange[0].{k}" for k in r}
    tr: Data = {}
    transmittance = _number(r.get("Transmittance"))
    if "Transmittance" in r and transmittance is None:
        return
    if ftype == "LongPass" and not width_nm:
        tr["cut_in_nm"] = _clean(centre_nm)
    elif ftype == "ShortPass" and not width_nm:
        tr["cut_out_nm"] = _clean(centre_nm)
    elif ftype in (None, "BandPass", "Other", "NeutralDensity") and width_nm:
        m.put("center_wavelength_nm", _clean(centre_nm), keys)
        tr = {"cut_in_nm": _clean(centre_nm - width_nm / 2),
              "cut_out_nm": _clean(centre_nm + width_nm / 2)}
    elif ftype in (None, "BandPass") and width is None:
        m.put("center_wavelength_nm", _clean(centre_nm), keys)
        return
    else:
        return
    if transmittance is not None:
        tr["transmittance"] = transmittance
    m.put("transmittance_range", tr, keys)


def from_fields(schema: str, kind: str, f: Mapping[str, Any]) -> Data:
    """The Micro-Meta record keys a profile component's fields give (inverse of to_fields)."""
    rec: Data = {}
    if f.get("name") is not None:
        rec["Name"] = f["name"]
    for key, name in (("Manufacturer", "manufacturer"), ("Model", "model"),
                      ("CatalogNumber", "catalog_number"), ("SerialNumber", "serial_number"),
                      ("LotNumber", "lot_number")):
        if f.get(name) is not None:
            rec[key] = f[name]

    def put(key: str, name: str, scale: float = 1.0, unit: tuple[str, str] | None = None) -> None:
        if f.get(name) is not None:
            rec[key] = _clean(f[name] * scale) if scale != 1.0 else f[name]
            if unit is not None:
                rec[unit[0]] = unit[1]

    if kind == "objective":
        put("Magnification", "nominal_magnification")
        put("CalibratedMagnification", "calibrated_magnification")
        put("LensNA", "lens_na")
        if f.get("correction") is not None:
            rec["Correction"] = _CORRECTION_OUT.get(f["correction"], f["correction"])
        if f.get("immersion") is not None:
            rec["ImmersionType"] = _IMMERSION_OUT.get(f["immersion"], f["immersion"])
        put("WorkingDistance", "working_distance_um", 1e-3, ("WorkingDistanceUnit", "mm"))
        put("Iris", "iris")
    elif kind == "filter":
        if f.get("filter_type") is not None and not (
            schema == "NeutralDensityFilter.json" and f["filter_type"] == "NeutralDensity"
        ):
            rec["Type"] = f["filter_type"]
        put("FilterWheel", "filter_wheel")
        tr = f.get("transmittance_range") or {}
        cut_in, cut_out = tr.get("cut_in_nm"), tr.get("cut_out_nm")
        centre = f.get("center_wavelength_nm")
        r: Data = {}
        if cut_in is not None and cut_out is not None:
            r = {"Wavelength": _clean(centre if centre is not None else (cut_in + cut_out) / 2),
                 "FWHMBandwidth": _clean(cut_out - cut_in), "WavelengthUnit": "nm"}
        elif cut_in is not None or cut_out is not None:
            r = {"Wavelength": cut_in if cut_in is not None else cut_out, "FWHMBandwidth": 0,
                 "WavelengthUnit": "nm"}
        elif centre is not None:
            r = {"Wavelength": centre, "WavelengthUnit": "nm"}
        if r and tr.get("transmittance") is not None:
            r["Transmittance"] = tr["transmittance"]
        if r:
            rec["TransmittanceRange"] = [r]
    elif kind == "dichroic":
        if f.get("cut_on_nm") is not None:
            rec["TransmittanceRange"] = [{"WavelengthUnit": "nm", "Wavelength": f["cut_on_nm"],
                                          "FWHMBandwidth": 0}]
    elif kind == "filter_set":
        for key, name in (("ExcitationFilter", "excitation_filters"),
                          ("StandardDichroic", "dichroic"), ("EmissionFilter", "emission_filters")):
            ids = f.get(name)
            ids = [ids] if isinstance(ids, str) else list(ids or [])
            rec[key] = f"{key}/{ids[0]}" if len(ids) == 1 else (
                "na" if not ids else [f"{key}/{i}" for i in ids])
    elif kind == "led":
        mod: Data = {}
        if f.get("wavelength_nm") is not None:
            mod.update(PeakWavelength=f["wavelength_nm"], PeakWavelengthUnit="nm")
        if f.get("rated_power_mw") is not None:
            mod.update(IlluminationPower=f["rated_power_mw"], IlluminationPowerUnit="mW")
        if mod:
            rec["LEDModule"] = [mod]
    elif kind in ("laser", "arc", "generic_light_source"):
        put("NominalPowerOutput", "rated_power_mw", unit=("NominalPowerOutputUnit", "mW"))
        if kind == "laser":
            put("Wavelength", "wavelength_nm", unit=("WavelengthUnit", "nm"))
            put("Type", "laser_type")
            put("LaserMedium", "laser_medium")
        elif kind == "arc":
            put("Type", "arc_type")
    elif kind == "detector":
        if f.get("detector_type") == "EMCCD" and schema == "CCD.json":
            rec["Type"] = "EMCCD"
        put("ArrayWidth", "sensor_width_px")
        put("ArrayHeight", "sensor_height_px")
        if f.get("pixel_size_um") is not None:
            rec.update(PixelWidth=f["pixel_size_um"], PixelWidthUnit="µm",
                       PixelHeight=f["pixel_size_um"], PixelHeightUnit="µm")
        if f.get("bit_depth") is not None:
            rec["MaxBitDepth"] = f"{f['bit_depth']}bit"
    elif kind == "stage":
        if f.get("axes") is not None:
            rec["MovementAxes"] = _AXES_OUT[f["axes"]]
    return rec


_KIND_CLASS: dict[str, type[Any]] = {
    "objective": Objective, "filter": Filter, "dichroic": Dichroic, "filter_set": FilterSet,
    "laser": Laser, "led": LED, "arc": Arc, "generic_light_source": GenericLightSource,
    "detector": Detector, "pinhole": Pinhole, "spinning_disk": SpinningDisk, "stage": Stage,
}

# --- import ------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    """A profile made from a Micro-Meta App file, plus what the profile cannot hold."""

    data: Data
    kept: Data
    warnings: list[str]
    notes: list[str]
    #: component index -> comment lines for the YAML
    comments: dict[int, list[str]]
    sections: dict[int, str]

    def profile(self) -> Profile:
        return parse_profile(self.data, "<import-micrometa>")


def _who(i: int, rec: Mapping[str, Any]) -> str:
    return f"components[{i}] {rec.get('Name')!r} (ID {rec.get('ID')})"


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


def _strip_layout(rec: Mapping[str, Any]) -> Data:
    return {k: v for k, v in rec.items() if k not in LAYOUT_KEYS}


def _strip_counters(schema: str, rec: Data) -> Data:
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


def _add_counters(schema: str, rec: Data) -> Data:
    out = dict(rec)
    for array, lo, hi in _COUNTED_ARRAYS.get(schema, ()):
        items = rec.get(array)
        out[f"Current_Number_Of_{array}"] = len(items) if isinstance(items, list) else 0
        out.setdefault(f"Min_Number_Of_{array}", lo)
        out.setdefault(f"Max_Number_Of_{array}", hi)
    return out


def _validate_fields(kind: str, cid: str, m: _Mapped, who: str,
                     warnings: list[str]) -> None:
    """Drop mapped fields the profile model rejects (their record keys stay in ``extra``)."""
    cls = _KIND_CLASS[kind]
    for _ in range(len(m.fields) + 1):
        try:
            cls.model_validate({"kind": kind, "id": cid, **m.fields})
            return
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            if not bad & set(m.fields):
                raise MicroMetaError(f"{who}: {exc}") from None
            for name in bad & set(m.fields):
                keys = sorted(m.used.pop(name, set()))
                warnings.append(f"{who}: {', '.join(keys) or name} = {m.fields.pop(name)!r} is "
                                f"not a valid {name}; kept unchanged in extra")


def _extra_for(schema: str, kind: str, rec: Data, m: _Mapped) -> dict[str, Scalar]:
    """Record keys the fields do not reproduce exactly: kept in the component's ``extra``."""
    flat = flatten({k: v for k, v in rec.items() if k != "ID"})
    used = set().union(*m.used.values()) if m.used else set()
    regen = flatten(from_fields(schema, kind, m.fields))
    extra: dict[str, Scalar] = {}
    for k, v in flat.items():
        if k == "Schema_ID" or k not in used:
            extra[k] = v
        elif k in regen and _same(regen[k], v):
            continue
        else:
            candidate = dict(regen)
            candidate[k] = v
            if _same(to_fields(schema, kind, unflatten(candidate)).fields, m.fields):
                # same meaning, different spelling: keep the original, namespaced so the NBO
                # record (which reads NBO attribute names from extra) does not see two values
                extra[ROUND_TRIP_PREFIX + k] = v
    return extra


#: prefix of ``extra`` keys kept only to write a Micro-Meta App file back unchanged (an
#: original spelling, the stand's UUID); the NBO record ignores them
ROUND_TRIP_PREFIX = "MicroMetaApp."


def _round_trip_keys(extra: Mapping[str, Scalar | None] | None) -> dict[str, Scalar]:
    """``extra`` with round-trip keys restored to their Micro-Meta App names (they win)."""
    plain: dict[str, Scalar] = {k: v for k, v in (extra or {}).items()
             if v is not None and not k.startswith(ROUND_TRIP_PREFIX)}
    plain.update({k.removeprefix(ROUND_TRIP_PREFIX): v for k, v in (extra or {}).items()
                  if v is not None and k.startswith(ROUND_TRIP_PREFIX)})
    return plain


def import_micrometa(doc: Any, source: str, core: Any | None = None) -> ImportResult:
    """Map a Micro-Meta App microscope (parsed JSON) to profile data.

    ``source`` names the file in messages. With ``core`` (a loaded Micro-Manager core), state
    device labels equal to a component's Name become bindings; otherwise bindings are a TODO.
    Raises :class:`MicroMetaError` for a file that is not a Micro-Meta App microscope, for
    duplicate IDs and for dangling references.
    """
    if not isinstance(doc, dict):
        raise MicroMetaError(f"{source}: not a Micro-Meta App microscope file: the top level is "
                             f"a {type(doc).__name__}, expected an object with Schema_ID "
                             f"{INSTRUMENT_SCHEMA!r}")
    if doc.get("Schema_ID") != INSTRUMENT_SCHEMA:
        raise MicroMetaError(f"{source}: not a Micro-Meta App microscope file: top-level "
                             f"Schema_ID is {doc.get('Schema_ID')!r}, expected "
                             f"{INSTRUMENT_SCHEMA!r}")
    records = doc.get("components")
    if not isinstance(records, list):
        raise MicroMetaError(f"{source}: not a Micro-Meta App microscope file: no 'components' "
                             f"list")
    warnings: list[str] = []
    notes: list[str] = []
    seen: dict[str, str] = {}
    stand = doc.get("MicroscopeStand")
    if isinstance(stand, dict) and isinstance(stand.get("ID"), str):
        seen[stand["ID"]] = f"MicroscopeStand {stand.get('Name')!r}"
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise MicroMetaError(f"{source}: components[{i}] is a {type(rec).__name__}, "
                                 f"expected an object")
        who = _who(i, rec)
        if not isinstance(rec.get("Schema_ID"), str):
            raise MicroMetaError(f"{source}: {who}: no Schema_ID")
        cid = rec.get("ID")
        if not isinstance(cid, str) or not cid.strip():
            raise MicroMetaError(f"{source}: {who}: no ID")
        if re.search(r"\s", cid):
            raise MicroMetaError(f"{source}: {who}: the ID contains white space, which a "
                                 f"profile id cannot")
        if cid in seen:
            raise MicroMetaError(f"{source}: duplicate component ID {cid!r}: {seen[cid]} and "
                                 f"{who}")
        seen[cid] = who
    by_id = {rec["ID"]: rec for rec in records}
    stems = {s[:-5] for s in (*SCHEMA_KINDS, *KEPT_SCHEMAS, *STAND_SCHEMAS)}
    stems |= {str(r["Schema_ID"])[:-5] for r in records if str(r["Schema_ID"]).endswith(".json")}
    held_by: dict[str, list[str]] = {}
    for i, rec in enumerate(records):
        for key, value in rec.items():
            for ref in value if isinstance(value, list) else [value]:
                if not isinstance(ref, str) or "/" not in ref:
                    continue
                kind_name, _, target = ref.partition("/")
                if kind_name not in stems:
                    continue
                if target not in by_id:
                    raise MicroMetaError(f"{source}: {_who(i, rec)}: {key} refers to {ref!r}, "
                                         f"which is not a component of this file")
                target_schema = str(by_id[target]["Schema_ID"])
                if target_schema != f"{kind_name}.json":
                    raise MicroMetaError(f"{source}: {_who(i, rec)}: {key} refers to {ref!r}, "
                                         f"but that component is a {target_schema}")
                if KEPT_SCHEMAS.get(str(rec["Schema_ID"])) == "holder":
                    held_by.setdefault(target, []).append(
                        f"{str(rec['Schema_ID'])[:-5]} {rec.get('Name')!r} ({rec['ID']})")

    instrument_name = str(doc.get("Name") or "Micro-Meta App microscope")
    components: list[Data] = []
    comments: dict[int, list[str]] = {}
    sections: dict[int, str] = {}
    kept_components: list[Data] = []
    last_schema = None
    for i, record in enumerate(records):
        schema = str(record["Schema_ID"])
        rec = _strip_layout(record)
        who = f"{source}: {_who(i, record)}"
        kind = SCHEMA_KINDS.get(schema)
        if kind is None:
            kept_components.append(rec)
            if schema in KEPT_SCHEMAS:
                notes.append(f"{who}: {schema} ({KEPT_SCHEMAS[schema]}) has no profile component "
                             f"kind; kept as a generic record for export")
            else:
                warnings.append(f"{who}: unknown Schema_ID {schema!r}; kept unchanged as a "
                                f"generic record for export (no profile component)")
            continue
        rec = _strip_counters(schema, rec)
        m = to_fields(schema, kind, rec)
        if kind == "stage" and "axes" not in m.fields:
            kept_components.append(_strip_layout(record))
            warnings.append(f"{who}: {schema} does not state its MovementAxes as XY, Z or XYZ; "
                            f"kept as a generic record for export (a profile stage needs axes)")
            continue
        cid = str(record["ID"])
        _validate_fields(kind, cid, m, who, warnings)
        extra = _extra_for(schema, kind, rec, m)
        comp: Data = {"kind": kind, "id": cid, **m.fields}
        src = f"Micro-Meta App {schema} record in {instrument_name!r}"
        if cid in held_by:
            src += "; held by " + ", ".join(held_by[cid])
        comp["source"] = src
        if extra:
            comp["extra"] = extra
        if schema != last_schema:
            sections[len(components)] = f"{schema} -> {kind}"
            last_schema = schema
        components.append(_ordered_component(comp))
        if cid in held_by:
            comments[len(components) - 1] = [
                f"held by {h} (no profile kind for holders; kept for export)"
                for h in held_by[cid]]

    kept: Data = {
        "about": "Parts of a Micro-Meta App microscope file that the hardware profile has no "
                 "place for; 'nbo-recorder profile export-micrometa' merges them back. Keep "
                 "this file next to the profile.",
        "source": Path(source).name,
        "instrument": {k: v for k, v in doc.items()
                       if k not in ("Name", "components", "MicroscopeStand", "linkedFields")},
        "components": kept_components,
    }
    microscope: Data = {}
    if isinstance(stand, dict):
        stand_rec = _strip_layout(stand)
        stype = STAND_SCHEMAS.get(str(stand_rec.get("Schema_ID")))
        if stype:
            microscope["type"] = stype
        for key, name in (("Manufacturer", "manufacturer"), ("Model", "model"),
                          ("SerialNumber", "serial_number"), ("LotNumber", "lot_number")):
            if isinstance(stand_rec.get(key), str):
                microscope[name] = stand_rec.pop(key)
        if "extra" in Microscope.model_fields:  # the stand's other fields stay in the profile
            if stand_rec:
                # the stand's Micro-Meta ID is not an NBO ID: the recorder makes its own
                microscope["extra"] = {(ROUND_TRIP_PREFIX + k if k == "ID" else k): v
                                       for k, v in flatten(stand_rec).items()}
        else:
            kept["MicroscopeStand"] = stand_rec
    if "linkedFields" in doc:
        kept["linkedFields"] = doc["linkedFields"]
        links = doc["linkedFields"] if isinstance(doc["linkedFields"], dict) else {}
        for key in links:
            if str(key).rpartition("_")[2] not in by_id:
                notes.append(f"{source}: linkedFields entry {key!r} names no component of the "
                             f"file (left over in the app); kept as it is")

    data: Data = {"schema_version": 1, "name": instrument_name, "microscope": microscope,
                  "components": components, "bindings": []}
    todo: list[str] = []
    if core is not None:
        todo = _bind_labels(core, data, warnings)
    else:
        todo.append("bindings: none yet; which Micro-Manager device reveals which component "
                    "is unknown: write them, or re-import with --mm-config to bind state "
                    "labels equal to component names")
    todo.append("channel_defaults: illumination_type / contrast_method / acquisition_mode of "
                "the channels")
    data["todo"] = todo
    try:
        parse_profile(data, source)
    except ProfileError as exc:
        raise MicroMetaError(f"{source}: the mapped profile is not valid:\n{exc}") from None
    return ImportResult(data=data, kept=kept, warnings=warnings, notes=notes,
                        comments=comments, sections=sections)


_FIELD_ORDER = ("kind", "id", "name", "manufacturer", "model", "catalog_number",
                "serial_number", "lot_number")


def _ordered_component(comp: Data) -> Data:
    head = {k: comp[k] for k in _FIELD_ORDER if k in comp}
    tail = {k: v for k, v in comp.items() if k not in head and k not in ("source", "extra")}
    out = {**head, **tail}
    for k in ("source", "extra"):
        if k in comp:
            out[k] = comp[k]
    return out


_KIND_ROLE = {"objective": "objective", "dichroic": "dichroic", "filter_set": "filter_set",
              "led": "light_source", "laser": "light_source", "arc": "light_source",
              "generic_light_source": "light_source", "pinhole": "pinhole",
              "detector": "detector", "spinning_disk": "spinning_disk"}


def _role_of(comp: Mapping[str, Any]) -> str | None:
    if comp["kind"] == "filter":
        schema = (comp.get("extra") or {}).get("Schema_ID")
        return "emission_filter" if schema == "EmissionFilter.json" else "excitation_filter"
    return _KIND_ROLE.get(str(comp["kind"]))


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _bind_labels(core: Any, data: Data, warnings: list[str]) -> list[str]:
    """Bind state labels equal (case and spacing aside) to a component's Name."""
    by_name: dict[str, list[Data]] = {}
    for comp in data["components"]:
        if isinstance(comp.get("name"), str):
            by_name.setdefault(_norm(comp["name"]), []).append(comp)
    todo: list[str] = []
    for dev in core.getLoadedDevices():
        try:
            labels = [str(lb) for lb in core.getStateLabels(dev)]
        except Exception:
            continue
        matches: dict[str, Data] = {}
        for label in labels:
            found = by_name.get(_norm(label), [])
            if len(found) > 1:
                warnings.append(f"device {dev!r} label {label!r} matches the Name of several "
                                f"components ({', '.join(c['id'] for c in found)}); not bound")
            elif found and _role_of(found[0]) is not None:
                matches[label] = found[0]
        if not matches:
            continue
        roles = {lb: _role_of(c) for lb, c in matches.items()}
        role, _ = max(((r, sum(1 for x in roles.values() if x == r)) for r in set(roles.values())),
                      key=lambda t: (t[1], str(t[0])))
        mapped = {lb: c["id"] for lb, c in matches.items() if roles[lb] == role}
        data["bindings"].append({"device": str(dev), "role": role, "labels": mapped})
        rest = [lb for lb in labels if lb not in mapped]
        if rest:
            todo.append(f"bindings[{dev}].labels: labels matching no component Name "
                        f"({', '.join(rest)}): map each to a component id, or null if empty")
    if not data["bindings"]:
        todo.append("bindings: no state label of the configuration equals a component Name: "
                    "write the bindings by hand")
    else:
        todo.append("bindings: only state labels equal to component Names were bound; add "
                    "camera settings, light-source conditions (active_when) and the rest")
    return todo


# --- export ------------------------------------------------------------------------------------


def component_roles(profile: Profile) -> dict[str, str]:
    """Component id -> the role a binding or filter set gives it (first one wins)."""
    roles: dict[str, str] = {}
    for comp in profile.components:
        if isinstance(comp, FilterSet):
            for fid in comp.excitation_filters:
                roles.setdefault(fid, "excitation_filter")
            for fid in comp.emission_filters:
                roles.setdefault(fid, "emission_filter")
    for b in profile.bindings:
        ids = [b.component] if b.component else [t.component for t in (b.labels or {}).values()
                                                  if t is not None]
        for cid in ids:
            if cid is not None:
                roles.setdefault(cid, b.role)
    return roles


def _default_schema(comp: Any, roles: Mapping[str, str], warnings: list[str]) -> str | None:
    kind = comp.kind
    if kind == "objective":
        return "Objective.json"
    if kind == "filter":
        role = roles.get(comp.id)
        if comp.filter_type is not None and comp.filter_type.value == "NeutralDensity":
            return "NeutralDensityFilter.json"
        if role == "emission_filter":
            return "EmissionFilter.json"
        if role != "excitation_filter":
            warnings.append(f"components {comp.id!r}: no binding or filter set says whether this "
                            f"filter is an exciter or an emitter; exported as ExcitationFilter")
        return "ExcitationFilter.json"
    if kind == "detector":
        dtype = comp.detector_type.value if comp.detector_type else None
        return {"CMOS": "CMOS.json", "IntensifiedCCD": "IntensifiedCCD.json",
                "AnalogVideo": "AnalogVideo.json", "PMT": "PhotoMultiplierTube.json",
                "Photodiode": "PhotoDiode.json", None: "GenericDetector.json"}.get(
                    dtype, "CCD.json" if dtype in ("CCD", "EMCCD") else "GenericDetector.json")
    if kind == "stage":
        return "Z-Drive.json" if comp.axes == "z" else "MechanicalStage.json"
    return {
        "dichroic": "StandardDichroic.json", "filter_set": "FilterCube.json",
        "led": "Fluorescence_LightSource_LightEmittingDiode.json",
        "laser": "Fluorescence_LightSource_Laser.json", "arc": "Fluorescence_LightSource_Arc.json",
        "generic_light_source": "Fluorescence_LightSource_GenericExcitationSource.json",
    }.get(kind)


_RECORD_ORDER = ("Name", "ID", "Tier", "Schema_ID", "ModelVersion", "Extension", "Domain",
                 "Category")


def _order_record(rec: Mapping[str, Any]) -> Data:
    head = {k: rec[k] for k in _RECORD_ORDER if k in rec}
    counters = {k: v for k, v in rec.items() if _COUNTER_RE.match(k) and k not in head}
    maker = {k: rec[k] for k in ("Manufacturer", "Model", "CatalogNumber") if k in rec}
    rest = {k: v for k, v in rec.items() if k not in head and k not in counters
            and k not in maker}
    return {**head, **counters, **maker, **rest}


def _stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "nbo-recorder:" + "/".join(parts)))


def schema_for(comp: Any, roles: Mapping[str, str], warnings: list[str] | None = None
               ) -> str | None:
    """The Micro-Meta App Schema_ID of a profile component (its imported one if consistent)."""
    schema = (comp.extra or {}).get("Schema_ID")
    if isinstance(schema, str) and SCHEMA_KINDS.get(schema) == comp.kind:
        return schema
    return _default_schema(comp, roles, [] if warnings is None else warnings)


def export_component(comp: Any, roles: Mapping[str, str], warnings: list[str]) -> Data | None:
    """One profile component as a Micro-Meta App record (None: no Micro-Meta schema for it)."""
    extra: dict[str, Scalar] = _round_trip_keys(comp.extra)
    schema = schema_for(comp, roles, warnings)
    if schema is None:
        warnings.append(f"components {comp.id!r}: a {comp.kind} has no Micro-Meta App schema "
                        f"here; not exported")
        return None
    fields = comp.model_dump(mode="json", exclude_none=True,
                             exclude={"kind", "id", "source", "extra"})
    if comp.kind == "filter_set" and (len(comp.excitation_filters) > 1
                                      or len(comp.emission_filters) > 1):
        warnings.append(f"components {comp.id!r}: a Micro-Meta App FilterCube holds one "
                        f"excitation and one emission filter; the extra ones are written as a "
                        f"list the app may not show")
    base = flatten(from_fields(schema, comp.kind, fields))
    reference = to_fields(schema, comp.kind, unflatten(base)).fields
    result = dict(base)
    for k, v in extra.items():
        if k == "Schema_ID":
            continue
        if k in base and not _same(base[k], v):
            candidate = dict(result)
            candidate[k] = v
            if _same(to_fields(schema, comp.kind, unflatten(candidate)).fields, reference):
                result[k] = v
            else:
                warnings.append(f"components {comp.id!r}: extra.{k} = {v!r} no longer matches "
                                f"the profile's value; wrote the profile's")
        else:
            result[k] = v
    rec: Data = {"ID": comp.id, "Schema_ID": schema, **unflatten(result)}
    if "Name" not in rec:
        rec["Name"] = comp.id
    ext, domain, category = _SCHEMA_META.get(schema, ("Core", _HW, ""))
    rec.setdefault("Tier", 1)
    rec.setdefault("ModelVersion", MODEL_VERSION)
    rec.setdefault("Extension", ext)
    rec.setdefault("Domain", domain)
    if category:
        rec.setdefault("Category", category)
    if comp.source and not comp.source.startswith("Micro-Meta App ") and "Description" not in rec:
        rec["Description"] = comp.source
    return _order_record(_add_counters(schema, rec))


def export_micrometa(profile: Profile, kept: Mapping[str, Any] | None = None
                     ) -> tuple[Data, list[str]]:
    """A Micro-Meta App microscope file for ``profile`` (and the kept data of an import)."""
    warnings: list[str] = []
    kept = kept or {}
    roles = component_roles(profile)
    instrument: Data = dict(kept.get("instrument") or {})
    doc: Data = {"Name": profile.name, "Schema_ID": INSTRUMENT_SCHEMA,
                 "ID": instrument.pop("ID", _stable_uuid(profile.name)),
                 "Tier": instrument.pop("Tier", 1),
                 "ValidationTier": instrument.pop("ValidationTier", 1),
                 "ModelVersion": instrument.pop("ModelVersion", MODEL_VERSION)}
    instrument.pop("Schema_ID", None)
    doc.update(instrument)
    mic = profile.microscope
    stand: Data = {**(kept.get("MicroscopeStand") or {}),
                   **unflatten(_round_trip_keys(getattr(mic, "extra", None)))}
    mtype = mic.type.value if mic.type else None
    if mtype in ("Inverted", "Upright"):
        stand["Schema_ID"] = f"{mtype}MicroscopeStand.json"
    elif stand.get("Schema_ID") not in STAND_SCHEMAS:
        stand["Schema_ID"] = "UprightMicroscopeStand.json"
        warnings.append(f"microscope.type is {mtype!r}: Micro-Meta App knows inverted and "
                        f"upright stands only; exported as UprightMicroscopeStand")
    if mtype in ("Dissection", "Electrophysiology") and "Type" not in stand:
        stand["Type"] = mtype
    stand.setdefault("Name", profile.name)
    stand.setdefault("ID", _stable_uuid(profile.name, "stand"))
    ext, domain, category = _SCHEMA_META[str(stand["Schema_ID"])]
    for k, v in (("Tier", 1), ("ModelVersion", MODEL_VERSION), ("Extension", ext),
                 ("Domain", domain), ("Category", category)):
        stand.setdefault(k, v)
    for key, value in (("Manufacturer", mic.manufacturer), ("Model", mic.model),
                       ("SerialNumber", mic.serial_number), ("LotNumber", mic.lot_number)):
        if value is not None:
            stand[key] = value
    doc["MicroscopeStand"] = _order_record(stand)
    records: list[Data] = []
    for comp in profile.components:
        rec = export_component(comp, roles, warnings)
        if rec is not None:
            records.append(rec)
    ids = {r["ID"] for r in records}
    for rec in kept.get("components") or []:
        if rec.get("ID") in ids:
            warnings.append(f"kept record {rec.get('Name')!r} ({rec.get('ID')}) has the ID of a "
                            f"profile component; the profile's wins")
            continue
        records.append(dict(rec))
        ids.add(rec.get("ID"))
    for rec in records:
        for key, value in rec.items():
            for ref in value if isinstance(value, list) else [value]:
                if isinstance(ref, str) and "/" in ref and ref.split("/", 1)[0] in {
                    s[:-5] for s in (*SCHEMA_KINDS, *KEPT_SCHEMAS)
                } and ref.split("/", 1)[1] not in ids:
                    warnings.append(f"{rec.get('Name')!r} ({rec.get('ID')}): {key} refers to "
                                    f"{ref!r}, which is no longer in the profile")
    doc["components"] = records
    doc["linkedFields"] = _linked_fields(records, kept.get("linkedFields"))
    return doc, warnings


def _linked_fields(records: Sequence[Mapping[str, Any]], old: Any) -> Data:
    """``linkedFields``: the kept entries (as they were), filter cubes' regenerated."""
    by_key = {f"{str(r['Schema_ID'])[:-5]}_{r['ID']}": r for r in records}
    out: Data = dict(old) if isinstance(old, dict) else {}
    for key, rec in by_key.items():
        if rec["Schema_ID"] not in ("FilterCube.json", "FilterSet.json"):
            continue
        entry: Data = {}
        for link in ("ExcitationFilter", "StandardDichroic", "EmissionFilter"):
            ids = _ref_ids(rec.get(link, "na")) or []
            entry[link] = {"schemaType": str(rec["Schema_ID"])[:-5],
                           "value": ids[0] if len(ids) == 1 else (ids or "na")}
        out[key] = entry
    return out


def kept_path(profile_path: str | Path) -> Path:
    """Where the kept Micro-Meta data of an imported profile lives."""
    p = Path(profile_path)
    return p.with_name(p.stem + ".micrometa-kept.json")
