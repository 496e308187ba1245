"""Importing a Micro-Meta App microscope file as hardware-profile data.

:func:`import_micrometa` maps each component to a profile component that keeps the Micro-Meta
ID. What the profile model has no field for goes into the component's ``extra`` (flattened),
including the original spelling of a value the profile normalises (``"Achroplan"`` for
correction ``Achromat``, under :data:`~nbo_recorder.profile.micrometa.ROUND_TRIP_PREFIX`).
Records the profile has no component kind for (software, environmental control, condensers,
focus stabilisation, turrets and wheels, unknown Schema_IDs), the instrument / stand fields
the profile cannot hold and the canvas layout of every record (by ID) are returned as *kept*
data, which the CLI writes next to the profile (``<profile>.micrometa-kept.json``) for
:mod:`nbo_recorder.profile.micrometa_export`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.load import parse_profile
from nbo_recorder.profile.micrometa import (
    INSTRUMENT_SCHEMA,
    KEPT_SCHEMAS,
    LAYOUT_KEYS,
    ROUND_TRIP_PREFIX,
    SCHEMA_KINDS,
    STAND_SCHEMAS,
    Data,
    MicroMetaError,
    Scalar,
    flatten,
    strip_counters,
    unflatten,
)
from nbo_recorder.profile.micrometa_fields import MappedFields, from_fields, same_value, to_fields
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
    SpinningDisk,
    Stage,
)

_KIND_CLASS: dict[str, type[Any]] = {
    "objective": Objective, "filter": Filter, "dichroic": Dichroic, "filter_set": FilterSet,
    "laser": Laser, "led": LED, "arc": Arc, "generic_light_source": GenericLightSource,
    "detector": Detector, "pinhole": Pinhole, "spinning_disk": SpinningDisk, "stage": Stage,
}


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


def _strip_layout(rec: Mapping[str, Any]) -> Data:
    return {k: v for k, v in rec.items() if k not in LAYOUT_KEYS}


def _validate_fields(kind: str, cid: str, m: MappedFields, who: str,
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


def _extra_for(schema: str, kind: str, rec: Data, m: MappedFields) -> dict[str, Scalar]:
    """Record keys the fields do not reproduce exactly: kept in the component's ``extra``."""
    flat = flatten({k: v for k, v in rec.items() if k != "ID"})
    used = set().union(*m.used.values()) if m.used else set()
    regen = flatten(from_fields(schema, kind, m.fields))
    extra: dict[str, Scalar] = {}
    respelled = {k: v for k, v in flat.items() if k in used and k != "Schema_ID"
                 and not (k in regen and same_value(regen[k], v))}
    # a value and its unit spelled differently together (0.05 W for 50 mW) mean the same
    together = same_value(to_fields(schema, kind, unflatten({**regen, **respelled})).fields,
                          m.fields)
    for k, v in flat.items():
        if k == "Schema_ID" or k not in used:
            extra[k] = v
        elif k in respelled and (together or same_value(
                to_fields(schema, kind, unflatten({**regen, k: v})).fields, m.fields)):
            # same meaning, different spelling: keep the original, namespaced so the NBO
            # record (which reads NBO attribute names from extra) does not see two values
            extra[ROUND_TRIP_PREFIX + k] = v
    return extra


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
    layout: Data = {}
    for record in [*records, *([stand] if isinstance(stand, dict) else [])]:
        where = {k: v for k, v in record.items() if k in LAYOUT_KEYS}
        if where and isinstance(record.get("ID"), str):
            layout[record["ID"]] = where
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
        rec = strip_counters(schema, rec)
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
        "layout": layout,
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
