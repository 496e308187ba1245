"""One Micro-Meta App record <-> the fields of one profile component, per kind.

:func:`to_fields` reads the profile fields a record states, converting units with
:mod:`nbo_recorder.units` and normalising the app's value spellings to the OME vocabulary
(``"Achroplan"`` -> correction ``Achromat``); :func:`from_fields` is its inverse and writes the
app's spellings back. :class:`MappedFields` remembers which record keys each field used, so an
import can keep every other key in the component's ``extra``. Neither validates: the profile
model does that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbo_recorder.profile.micrometa import Data, ref_ids
from nbo_recorder.units import UnitError, quantity_of, to_canonical

# --- value vocabularies --------------------------------------------------------------------

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

_FILTER_TYPE_OUT = {"Dichroic": "Other", "NeutralDensity": "Other", "Tuneable": "Other"}
"""OME filter types the app's Type enumeration lacks (it has BandPass, BandStop, LongPass,
MultiPass, Notch, ShortPass, Other)."""

_LASER_TYPE_IN = {"Gas": "Gas", "MetalVapor": "MetalVapor", "Dye": "Dye",
                  "SemiconductorLaserDiode": "Semiconductor", "Semiconductor": "Semiconductor",
                  "LaserDiode": "Semiconductor", "FreeElectron": "FreeElectron",
                  "SolidState": "SolidState", "DiodePumpedSolidState (DPSS)": "SolidState",
                  "DiodePumpedSolidState": "SolidState", "Excimer": "Excimer",
                  "Chemical": "Other", "OpticalParametricOscillator (OPS)": "Other",
                  "Other": "Other"}
#: OME laser type -> the app's Laser Type enumeration
_LASER_TYPE_OUT = {"Semiconductor": "SemiconductorLaserDiode", "Excimer": "Other",
                   "FreeElectron": "Other"}
#: the app's MaxBitDepth enumeration
_BIT_DEPTHS = frozenset({8, 12, 14, 16, 32, 64})
#: detector schemas with sensor geometry (ArrayWidth/Height, PixelWidth/Height)
_CAMERA_SCHEMAS = frozenset({"CCD.json", "CMOS.json", "IntensifiedCamera.json",
                             "AnalogVideo.json"})
_ARC_TYPE_IN = {"Hg": "Hg", "Xe": "Xe", "HgXe": "HgXe", "Other": "Other"}
_AXES_IN = {"XY": "xy", "Z": "z", "XYZ": "xyz", "X-Y": "xy", "X-Y-Z": "xyz"}
_AXES_OUT = {"xy": "XY", "z": "Z", "xyz": "XYZ"}

#: detector Schema_ID -> OME detector type
_DETECTOR_SCHEMA_TYPES: dict[str, str | None] = {
    "CCD.json": "CCD", "CMOS.json": "CMOS", "EMCCD.json": "EMCCD",
    "IntensifiedCCD.json": "IntensifiedCCD", "IntensifiedCamera.json": "IntensifiedCCD",
    "AnalogVideo.json": "AnalogVideo", "PhotoMultiplierTube.json": "PMT",
    "PhotoDiode.json": "Photodiode", "HybridPhotoDetector.json": None,
    "GenericDetector.json": None,
}


# --- numbers and units ---------------------------------------------------------------------


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


def same_value(a: Any, b: Any) -> bool:
    """Equal, with floats compared to 1e-9 relative (ints and floats alike)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# --- record <-> profile fields, per kind ---------------------------------------------------


@dataclass
class MappedFields:
    """Profile fields taken from one record, and which (flattened) record keys each used."""

    fields: Data = field(default_factory=dict)
    used: dict[str, set[str]] = field(default_factory=dict)

    def put(self, name: str, value: Any, keys: Iterable[str]) -> None:
        self.fields[name] = value
        self.used.setdefault(name, set()).update(keys)


def _take_text(m: MappedFields, rec: Mapping[str, Any], key: str, name: str) -> None:
    v = rec.get(key)
    if isinstance(v, str) and v != "":
        m.put(name, v, [key])
    elif isinstance(v, int | float) and not isinstance(v, bool):
        m.put(name, str(v), [key])


def _take_number(m: MappedFields, rec: Mapping[str, Any], key: str, name: str,
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


def _take_enum(m: MappedFields, rec: Mapping[str, Any], key: str, name: str,
               table: Mapping[str, str]) -> None:
    v = rec.get(key)
    if isinstance(v, str) and v in table:
        m.put(name, table[v], [key])


def to_fields(schema: str, kind: str, rec: Mapping[str, Any]) -> MappedFields:
    """The profile fields a Micro-Meta record states (no validation)."""
    m = MappedFields()
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
        _filter_range(m, rec)
    elif kind == "dichroic":
        ranges = rec.get("TransmittanceRange")
        if (isinstance(ranges, list) and len(ranges) == 1 and isinstance(ranges[0], dict)
                and rec.get("Type", "LongPass") == "LongPass"):
            r = ranges[0]
            width = _number(r.get("FWHMBandwidth", 0))
            if set(r) <= {"Wavelength", "WavelengthUnit", "FWHMBandwidth"} and width == 0:
                sub = MappedFields()
                _take_number(sub, r, "Wavelength", "cut_on_nm", "WavelengthUnit", "nm",
                             _wavelength_nm, prefix="TransmittanceRange[0].")
                if "cut_on_nm" in sub.fields:
                    used = sub.used["cut_on_nm"] | {f"TransmittanceRange[0].{k}" for k in r}
                    used |= {"Type"} if "Type" in rec else set()
                    m.put("cut_on_nm", sub.fields["cut_on_nm"], used)
    elif kind == "filter_set":
        for key, name, many in (("ExcitationFilter", "excitation_filters", True),
                                ("StandardDichroic", "dichroic", False),
                                ("EmissionFilter", "emission_filters", True)):
            if key not in rec:
                continue
            ids = ref_ids(rec[key])
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
        ranges = rec.get("IlluminationWavelengthRange")
        if isinstance(ranges, list) and len(ranges) == 1 and isinstance(ranges[0], dict):
            prefix = "IlluminationWavelengthRange[0]."
            _take_number(m, ranges[0], "IlluminationPower", "rated_power_mw",
                         "IlluminationPowerUnit", "mW", _power_mw, prefix=prefix)
            if kind == "laser":
                _take_number(m, ranges[0], "PeakWavelength", "wavelength_nm",
                             "PeakWavelengthUnit", "nm", _wavelength_nm, prefix=prefix)
        if kind == "laser":
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
        if schema in _CAMERA_SCHEMAS:  # the others have no slot for the sensor geometry
            _sensor(m, rec)
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


def _sensor(m: MappedFields, rec: Mapping[str, Any]) -> None:
    for key, name in (("ArrayWidth", "sensor_width_px"), ("ArrayHeight", "sensor_height_px")):
        v = _number(rec.get(key))
        if v is not None and v.is_integer():
            m.put(name, int(v), [key])
    pw, ph = MappedFields(), MappedFields()
    _take_number(pw, rec, "PixelWidth", "p", "PixelWidthUnit", "µm", _length_um)
    _take_number(ph, rec, "PixelHeight", "p", "PixelHeightUnit", "µm", _length_um)
    if "p" in pw.fields and "p" in ph.fields and same_value(pw.fields["p"], ph.fields["p"]):
        m.put("pixel_size_um", pw.fields["p"], pw.used["p"] | ph.used["p"])


def _filter_range(m: MappedFields, rec: Mapping[str, Any]) -> None:
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
            if f["immersion"] == "WaterDipping":
                rec["DippingMedium"] = "Water-based"
        put("WorkingDistance", "working_distance_um", 1e-3, ("WorkingDistanceUnit", "mm"))
        put("Iris", "iris")
    elif kind == "filter":
        if f.get("filter_type") is not None and not (
            schema == "NeutralDensityFilter.json" and f["filter_type"] == "NeutralDensity"
        ):
            rec["Type"] = _FILTER_TYPE_OUT.get(f["filter_type"], f["filter_type"])
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
        if f.get("cut_on_nm") is not None:  # the profile's cut-on is a long-pass edge
            rec["Type"] = "LongPass"
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
        band: Data = {}
        if f.get("rated_power_mw") is not None:
            band.update(IlluminationPower=f["rated_power_mw"], IlluminationPowerUnit="mW")
        if kind == "laser" and f.get("wavelength_nm") is not None:
            band.update(PeakWavelength=f["wavelength_nm"], PeakWavelengthUnit="nm")
        if band:
            rec["IlluminationWavelengthRange"] = [band]
        if kind == "laser":
            if f.get("laser_type") is not None:
                rec["Type"] = _LASER_TYPE_OUT.get(f["laser_type"], f["laser_type"])
            put("LaserMedium", "laser_medium")
        elif kind == "arc":
            put("Type", "arc_type")
    elif kind == "detector":
        if f.get("detector_type") == "EMCCD" and schema == "CCD.json":
            rec["Type"] = "EMCCD"
        if schema in _CAMERA_SCHEMAS:
            put("ArrayWidth", "sensor_width_px")
            put("ArrayHeight", "sensor_height_px")
            if f.get("pixel_size_um") is not None:
                rec.update(PixelWidth=f["pixel_size_um"], PixelWidthUnit="µm",
                           PixelHeight=f["pixel_size_um"], PixelHeightUnit="µm")
        if f.get("bit_depth") in _BIT_DEPTHS:
            rec["MaxBitDepth"] = f"{f['bit_depth']}bit"
    elif kind == "stage":
        if f.get("axes") is not None:
            rec["MovementAxes"] = _AXES_OUT[f["axes"]]
    return rec
