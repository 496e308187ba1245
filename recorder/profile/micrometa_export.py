"""Exporting a hardware profile as a Micro-Meta App microscope file the app accepts.

:func:`export_micrometa` rebuilds a Micro-Meta App file from a profile and, when the profile
was imported, the kept data of that import (records, instrument fields and canvas layout the
profile has no place for), so an import -> export -> import round trip loses nothing. A
component's NBO element follows its Micro-Meta App schema: :func:`schema_for`, also used by
``profile check``.

A component the profile made (not imported) is written with the app's spellings, only in
slots the app's schemas have: its typed fields through
:func:`~nbo_recorder.profile.micrometa_fields.from_fields`, and the NBO attributes a rig
builder states in its ``extra`` (``CoatingMethod``, ``TransmittanceRange[0].FWHMBandwidth``);
an ``extra`` key naming a nested object (``LightSourceSettings.X``, a settings element, not a
component field) has no slot and is reported. A kind with no Micro-Meta App schema (spinning
disks, pinholes) is reported, not written. The file declares the tier it is complete at
(``Tier`` = ``ValidationTier``): the one asked for, else the highest every record satisfies
(:func:`nbo_recorder.profile.micrometa_app.missing_fields`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from nbo_recorder.profile.micrometa import (
    INSTRUMENT_SCHEMA,
    KEPT_SCHEMAS,
    LAYOUT_KEYS,
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
from nbo_recorder.profile.micrometa_app import (
    APP_SCHEMAS,
    APP_VERSION,
    DOMAIN,
    TIERS,
    missing_fields,
)
from nbo_recorder.profile.micrometa_fields import from_fields, same_value, to_fields
from nbo_recorder.profile.model import FilterSet, Profile

#: an ``extra`` key inside a nested object (no component schema has object-valued slots)
_NESTED_OBJECT_RE = re.compile(r"^[^.\[\]]+\.")
#: component kinds Micro-Meta App has no schema for
NO_SCHEMA_KINDS = frozenset({"spinning_disk", "pinhole"})

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
        return {"CMOS": "CMOS.json", "IntensifiedCCD": "IntensifiedCamera.json",
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


def label_wavelengths(profile: Profile) -> dict[str, list[float]]:
    """Component id -> the wavelengths (nm) state-device labels give it, in label order."""
    out: dict[str, list[float]] = {}
    for b in profile.bindings:
        for target in (b.labels or {}).values():
            if target is not None and target.wavelength_nm is not None:
                lines = out.setdefault(target.component, [])
                if target.wavelength_nm not in lines:
                    lines.append(target.wavelength_nm)
    return out


def _slotted_extra(comp: Any, extra: dict[str, Scalar], warnings: list[str]
                   ) -> dict[str, Scalar]:
    """A profile-made component's ``extra`` without keys the app has no slot for."""
    kept: dict[str, Scalar] = {}
    for k, v in extra.items():
        if _NESTED_OBJECT_RE.match(k):
            warnings.append(f"components {comp.id!r}: extra.{k}: Micro-Meta App components "
                            f"have no nested {k.split('.', 1)[0]!r} (a settings element); "
                            f"not exported")
        else:
            kept[k] = v
    return kept


def export_component(comp: Any, roles: Mapping[str, str], warnings: list[str],
                     lines: Sequence[float] = ()) -> Data | None:
    """One profile component as a Micro-Meta App record (None: no Micro-Meta schema for it).

    ``lines`` are the wavelengths (nm) the bindings' labels give an LED without a
    ``wavelength_nm`` of its own: one LED module each.
    """
    extra: dict[str, Scalar] = _round_trip_keys(comp.extra)
    imported = isinstance(extra.get("Schema_ID"), str)
    schema = None if comp.kind in NO_SCHEMA_KINDS else schema_for(comp, roles, warnings)
    if schema is None:
        warnings.append(f"components {comp.id!r}: Micro-Meta App has no schema for a "
                        f"{comp.kind}; not exported")
        return None
    if not imported:
        extra = _slotted_extra(comp, extra, warnings)
    fields = comp.model_dump(mode="json", exclude_none=True,
                             exclude={"kind", "id", "source", "extra"})
    if comp.kind == "filter_set" and (len(comp.excitation_filters) > 1
                                      or len(comp.emission_filters) > 1):
        warnings.append(f"components {comp.id!r}: a Micro-Meta App FilterCube holds one "
                        f"excitation and one emission filter; the extra ones are written as a "
                        f"list the app may not show")
    base = flatten(from_fields(schema, comp.kind, fields))
    if comp.kind == "led" and comp.wavelength_nm is None and lines:
        for i, nm in enumerate(lines):
            base.update({f"LEDModule[{i}].PeakWavelength": nm,
                         f"LEDModule[{i}].PeakWavelengthUnit": "nm"})
    reference = to_fields(schema, comp.kind, unflatten(base)).fields
    result = dict(base)
    differing = {k: v for k, v in extra.items() if k in base and not same_value(base[k], v)}
    # a value and its unit spelled differently together (0.05 W for 50 mW) mean the same
    if differing and same_value(
            to_fields(schema, comp.kind, unflatten({**base, **differing})).fields, reference):
        result.update(differing)
    for k, v in extra.items():
        if k == "Schema_ID" or (k in differing and result[k] is v):
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
    app = APP_SCHEMAS.get(schema)
    rec.setdefault("Tier", app.tier if app else 1)
    rec.setdefault("ModelVersion", MODEL_VERSION)
    if app is not None:
        rec.setdefault("Extension", app.extension)
        rec.setdefault("Domain", DOMAIN)
        rec.setdefault("Category", app.category)
    if comp.source and not comp.source.startswith("Micro-Meta App ") and "Description" not in rec:
        rec["Description"] = comp.source
    return order_record(add_counters(schema, rec))


def _stand(profile: Profile, kept: Mapping[str, Any], warnings: list[str]) -> Data | None:
    """The MicroscopeStand record: its schema only from a stated (or imported) stand type."""
    mic = profile.microscope
    stand: Data = {**(kept.get("MicroscopeStand") or {}),
                   **unflatten(_round_trip_keys(getattr(mic, "extra", None)))}
    mtype = mic.type.value if mic.type else None
    if mtype in ("Inverted", "Upright"):
        stand["Schema_ID"] = f"{mtype}MicroscopeStand.json"
    elif stand.get("Schema_ID") not in STAND_SCHEMAS:
        warnings.append(f"microscope.type is {mtype!r}: Micro-Meta App needs an Inverted or "
                        f"Upright stand; the file has no MicroscopeStand (state "
                        f"microscope.type)")
        return None
    if mtype in ("Dissection", "Electrophysiology") and "Type" not in stand:
        stand["Type"] = mtype
    stand.setdefault("Name", profile.name)
    stand.setdefault("ID", _stable_uuid(profile.name, "stand"))
    app = APP_SCHEMAS[str(stand["Schema_ID"])]
    for k, v in (("Tier", app.tier), ("ModelVersion", MODEL_VERSION),
                 ("Extension", app.extension), ("Domain", DOMAIN), ("Category", app.category)):
        stand.setdefault(k, v)
    for key, value in (("Manufacturer", mic.manufacturer), ("Model", mic.model),
                       ("SerialNumber", mic.serial_number), ("LotNumber", mic.lot_number)):
        if value is not None:
            stand[key] = value
    return order_record(stand)


def satisfied_tier(doc: Mapping[str, Any]) -> int | None:
    """The highest tier at which the stand and every component have what the app requires."""
    records = [doc.get("MicroscopeStand"), *(doc.get("components") or [])]
    best = None
    for tier in TIERS:
        for rec in records:
            if not isinstance(rec, dict):
                return best
            schema = str(rec.get("Schema_ID"))
            if schema in APP_SCHEMAS and missing_fields(rec, schema, tier):
                return best
        best = tier
    return best


def export_micrometa(profile: Profile, kept: Mapping[str, Any] | None = None,
                     tier: int | None = None) -> tuple[Data, list[str]]:
    """A Micro-Meta App microscope file for ``profile`` (and the kept data of an import).

    ``tier`` sets the file's Tier and ValidationTier; without it an imported file keeps its
    own, and a profile-made one declares the highest tier it satisfies (1 if none).
    """
    warnings: list[str] = []
    kept = kept or {}
    roles = component_roles(profile)
    instrument: Data = dict(kept.get("instrument") or {})
    doc: Data = {"Name": profile.name, "Schema_ID": INSTRUMENT_SCHEMA,
                 "ID": instrument.pop("ID", _stable_uuid(profile.name)),
                 "Tier": instrument.pop("Tier", None),
                 "ValidationTier": instrument.pop("ValidationTier", None),
                 "ModelVersion": instrument.pop("ModelVersion", MODEL_VERSION),
                 "AppVersion": instrument.pop("AppVersion", APP_VERSION)}
    instrument.pop("Schema_ID", None)
    doc.update(instrument)
    stand = _stand(profile, kept, warnings)
    if stand is not None:
        doc["MicroscopeStand"] = stand
    records: list[Data] = []
    lines = label_wavelengths(profile)
    for comp in profile.components:
        rec = export_component(comp, roles, warnings, lines.get(comp.id, ()))
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
    _place(records, stand, kept.get("layout"))
    doc["components"] = records
    doc["linkedFields"] = _linked_fields(records, kept.get("linkedFields"))
    if tier is not None:
        doc["Tier"] = doc["ValidationTier"] = tier
    elif doc["Tier"] is None:
        doc["Tier"] = doc["ValidationTier"] = satisfied_tier(doc) or 1
    elif doc["ValidationTier"] is None:
        doc["ValidationTier"] = 1
    return doc, warnings


def _place(records: Sequence[Data], stand: Data | None, layout: Any) -> None:
    """Put the kept canvas layout (by component ID) back into the records."""
    if not isinstance(layout, dict):
        return
    for rec in [*records, *([stand] if stand is not None else [])]:
        where = layout.get(str(rec.get("ID")))
        if isinstance(where, dict):
            rec.update({k: v for k, v in where.items() if k in LAYOUT_KEYS})


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
