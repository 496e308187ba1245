"""Exporting a hardware profile as a Micro-Meta App microscope file.

:func:`export_micrometa` rebuilds a Micro-Meta App file from a profile and, when the profile
was imported, the kept data of that import (records and instrument fields the profile has no
place for), so an import -> export -> import round trip loses no field. A component's NBO
element follows its Micro-Meta App schema: :func:`schema_for`, also used by ``profile check``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from nbo_recorder.profile.micrometa import (
    INSTRUMENT_SCHEMA,
    KEPT_SCHEMAS,
    MODEL_VERSION,
    ROUND_TRIP_PREFIX,
    SCHEMA_KINDS,
    STAND_SCHEMAS,
    Data,
    Scalar,
    add_counters,
    flatten,
    order_record,
    ref_ids,
    unflatten,
)
from nbo_recorder.profile.micrometa_fields import from_fields, same_value, to_fields
from nbo_recorder.profile.model import FilterSet, Profile

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


def _stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "nbo-recorder:" + "/".join(parts)))


def schema_for(comp: Any, roles: Mapping[str, str], warnings: list[str] | None = None
               ) -> str | None:
    """The Micro-Meta App Schema_ID of a profile component (its imported one if consistent)."""
    schema = (comp.extra or {}).get("Schema_ID")
    if isinstance(schema, str) and SCHEMA_KINDS.get(schema) == comp.kind:
        return schema
    return _default_schema(comp, roles, [] if warnings is None else warnings)


def _round_trip_keys(extra: Mapping[str, Scalar | None] | None) -> dict[str, Scalar]:
    """``extra`` with round-trip keys restored to their Micro-Meta App names (they win)."""
    plain: dict[str, Scalar] = {k: v for k, v in (extra or {}).items()
             if v is not None and not k.startswith(ROUND_TRIP_PREFIX)}
    plain.update({k.removeprefix(ROUND_TRIP_PREFIX): v for k, v in (extra or {}).items()
                  if v is not None and k.startswith(ROUND_TRIP_PREFIX)})
    return plain


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
        if k in base and not same_value(base[k], v):
            candidate = dict(result)
            candidate[k] = v
            if same_value(to_fields(schema, comp.kind, unflatten(candidate)).fields, reference):
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
    return order_record(add_counters(schema, rec))


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
    doc["MicroscopeStand"] = order_record(stand)
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
            ids = ref_ids(rec.get(link, "na")) or []
            entry[link] = {"schemaType": str(rec["Schema_ID"])[:-5],
                           "value": ids[0] if len(ids) == 1 else (ids or "na")}
        out[key] = entry
    return out
