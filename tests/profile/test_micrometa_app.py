"""Micro-Meta App accepts what we export: its own schemas, applied the way the app applies them.

The validator here implements the app's tier-adapted rule from
``../shared/micrometa-schemas/README.md`` (MicroMetaApp-React ``createAdaptedSchema``): for a
file at ``Tier`` T validated at ``ValidationTier`` V (default 1, capped by T), a property whose
``tier`` is above T is dropped, one above V is no longer required, recursively inside array
items; a component whose ``Schema_ID`` names no schema is left off the canvas (counted invalid
here). The adapted schema is then checked with ``jsonschema`` (draft 7, as the schemas declare),
as the app checks it with the JavaScript ``jsonschema`` package.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from nbo_recorder.cli.main import main
from nbo_recorder.profile.load import load_profile, parse_profile
from nbo_recorder.profile.micrometa import read_micrometa
from nbo_recorder.profile.micrometa_app import APP_SCHEMAS
from nbo_recorder.profile.micrometa_export import export_micrometa
from nbo_recorder.profile.model import Profile
from tests.helpers import REPO

SHARED = Path(__file__).resolve().parents[3] / "shared"
SCHEMAS = SHARED / "micrometa-schemas"
EXAMPLE = SHARED / "micrometa-examples" / "abif_axiovert1_.json"
if not SCHEMAS.is_dir() and os.environ.get("CI"):
    raise RuntimeError(f"{SCHEMAS} is missing: CI checks out shared/ beside the repository")
pytestmark = pytest.mark.skipif(not SCHEMAS.is_dir(), reason=f"{SCHEMAS} not found")

SHIPPED = {"mm_demo": REPO / "hardware_profiles" / "mm_demo.yaml",
           "sim_spinning_disk": REPO / "hardware_profiles" / "sim_spinning_disk.yaml"}


# --- the app's rule ------------------------------------------------------------------------


def _schema(schema_id: str) -> dict[str, Any] | None:
    path = SCHEMAS / schema_id
    if "/" in schema_id or not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def adapted(schema: dict[str, Any], tier: int, validation_tier: int) -> dict[str, Any]:
    """The schema as the app adapts it to a file's Tier and ValidationTier (README rule)."""
    out = copy.deepcopy(schema)

    def adapt(node: dict[str, Any]) -> None:
        holder = node["items"] if node.get("type") == "array" else node
        props = holder.get("properties")
        if not isinstance(props, dict):
            return
        required = holder.get("required")
        for key in list(props):
            prop = props[key]
            if prop.get("type") == "object" or (
                    prop.get("type") == "array" and isinstance(prop.get("items"), dict)
                    and "properties" in prop["items"]):
                adapt(prop)
            if prop.get("tier", 1) > tier:
                del props[key]
            if (prop.get("tier", 1) > tier or prop.get("tier", 1) > validation_tier) and (
                    isinstance(required, list)):
                holder["required"] = required = [r for r in required if r != key]

    adapt(out)
    return out


def app_errors(rec: Any, tier: int, validation_tier: int) -> list[str]:
    """What the app finds wrong with one record (empty: valid)."""
    if not isinstance(rec, dict):
        return ["missing"]
    schema = _schema(str(rec.get("Schema_ID")))
    if schema is None:
        return [f"no schema {rec.get('Schema_ID')!r}: left off the canvas"]
    jsonschema = pytest.importorskip("jsonschema")  # the validator the app uses, in Python
    validator = jsonschema.Draft7Validator(adapted(schema, tier, validation_tier))
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
                  for e in validator.iter_errors(rec))


def validate_file(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Per object of the file (instrument, stand, components by ID): the app's errors."""
    tier = int(doc.get("Tier", 1))
    vtier = min(int(doc.get("ValidationTier", 1)), tier)
    out = {"Instrument": app_errors(doc, tier, vtier),
           "MicroscopeStand": app_errors(doc.get("MicroscopeStand"), tier, vtier)}
    for rec in doc.get("components", []):
        out[str(rec.get("ID"))] = app_errors(rec, tier, vtier)
    return out


def counts(result: dict[str, list[str]]) -> tuple[int, int]:
    return sum(1 for errors in result.values() if not errors), len(result)


def _export(profile: Profile, tier: int | None = None) -> dict[str, Any]:
    doc, _ = export_micrometa(profile, tier=tier)
    out: dict[str, Any] = json.loads(json.dumps(doc))  # what a file holds
    return out


# --- a profile that states every fact Micro-Meta App asks for up to tier 2 ------------------

_MAKER = {"manufacturer": "Maker", "model": "M-1", "catalog_number": "C-1"}
_FILTER_FACTS = {"CoatingMethod": "HardCoated", "LightPathLocation": "Infinity space",
                 "AttenuationMethod": "Reflection"}
_STAGE_FACTS = {"Encoded": "Linear", "Motorized": True, "ZRepeatability": 100,
                "XYRepeatability": 100, "BuiltIn": False, "XTravelRange": 110000,
                "YTravelRange": 75000}
_DETECTOR_FACTS = {"QuantumEfficiency": 0.82, "ElectronicConversionFactor": 0.46,
                   "ReadOutNoise": 1.6, "DetectorNoiseModel": "Gaussian",
                   "DarkCurrentRate": 0.06, "Illumination": "Front"}
COMPLETE = {
    "name": "tier-complete rig",
    "microscope": {"type": "Inverted", "manufacturer": "Nikon", "model": "Ti2-E",
                   "extra": {"CatalogNumber": "MEA54000", "Type": "Compound"}},
    "components": [
        {"kind": "objective", "id": "obj", **_MAKER, "nominal_magnification": 60,
         "lens_na": 1.4, "immersion": "Oil", "correction": "PlanApo",
         "working_distance_um": 130,
         "extra": {"InfinityCorrected": True, "ContrastModulation": "None", "DIC": False,
                   "CorrectionCollar": False}},
        {"kind": "filter", "id": "ex", **_MAKER, "filter_type": "BandPass",
         "center_wavelength_nm": 480, "transmittance_range": {"cut_in_nm": 460,
                                                              "cut_out_nm": 500},
         "extra": _FILTER_FACTS},
        {"kind": "filter", "id": "em", **_MAKER, "filter_type": "LongPass",
         "transmittance_range": {"cut_in_nm": 515}, "extra": _FILTER_FACTS},
        {"kind": "dichroic", "id": "dc", **_MAKER, "cut_on_nm": 505, "extra": _FILTER_FACTS},
        {"kind": "filter_set", "id": "cube", **_MAKER, "excitation_filters": ["ex"],
         "dichroic": "dc", "emission_filters": ["em"]},
        {"kind": "laser", "id": "laser", **_MAKER, "wavelength_nm": 488, "rated_power_mw": 100,
         "laser_type": "Semiconductor",
         "extra": {"Tuneable": False, "ModulationMechanism": "Direct", "Pulse": False,
                   "IsPumped": False, "IsPump": False}},
        {"kind": "led", "id": "led", **_MAKER, "wavelength_nm": 470, "rated_power_mw": 150,
         "extra": {"Type": "Collimated"}},
        {"kind": "detector", "id": "cam", **_MAKER, "detector_type": "CMOS",
         "pixel_size_um": 6.5, "sensor_width_px": 2048, "sensor_height_px": 2048,
         "bit_depth": 16, "extra": _DETECTOR_FACTS},
        {"kind": "stage", "id": "xy", **_MAKER, "axes": "xy", "extra": _STAGE_FACTS},
        {"kind": "stage", "id": "z", **_MAKER, "axes": "z",
         "extra": {k: v for k, v in _STAGE_FACTS.items() if not k.startswith(("X", "Y"))}},
        {"kind": "spinning_disk", "id": "disk", **_MAKER, "pinholes": ["ph"]},
        {"kind": "pinhole", "id": "ph", **_MAKER, "diameter_um": 50},
    ],
    "bindings": [{"device": "Emission", "role": "emission_filter", "labels": {"LP": "em"}},
                 {"device": "Excitation", "role": "excitation_filter", "labels": {"BP": "ex"}}],
}


def _complete() -> Profile:
    return parse_profile(copy.deepcopy(COMPLETE), "tier-complete")


#: what a record may hold beside its schema's properties: the app's own bookkeeping
_BOOKKEEPING = {"Schema_ID", "ModelVersion", "Extension", "Domain", "Category"}


def test_the_required_table_is_the_apps():
    """The exporter's table of what the app requires equals the app's schema files."""
    for schema_id, app in APP_SCHEMAS.items():
        schema = _schema(schema_id)
        assert schema is not None, schema_id
        props = schema["properties"]
        assert app.tier == schema["tier"], schema_id
        if schema_id != "Instrument.json":
            assert (app.extension, app.category) == (schema["extension"].strip(),
                                                     schema["category"]), schema_id
        assert dict(app.required) == {k: props[k]["tier"] for k in schema["required"]}, schema_id
        arrays = {k: (p["tier"], {r: p["items"]["properties"][r]["tier"]
                                  for r in p["items"].get("required", [])})
                  for k, p in props.items()
                  if p.get("type") == "array" and "properties" in p.get("items", {})}
        assert {k: (t, dict(r)) for k, (t, r) in app.items.items()} == arrays, schema_id


def test_shipped_profiles_fail_only_for_facts_they_do_not_state(capsys):
    """Every app error of a shipped profile's export is a missing fact that check lists."""
    for name, path in SHIPPED.items():
        doc = _export(parse_profile(yaml.safe_load(path.read_text()), name))
        assert doc["Tier"] == doc["ValidationTier"] == 1
        result = validate_file(doc)
        print(name, "valid/total", counts(result))
        assert main(["profile", "check", str(path), "--for", "micrometa", "--tier", "1"]) == 1
        listed = capsys.readouterr().out
        for obj, errors in result.items():
            for error in errors:
                if obj == "MicroscopeStand" and error == "missing":
                    assert "microscope.type is None" in listed
                    continue
                found = error.split(": ", 1)[1]
                assert found.endswith("is a required property"), (name, obj, error)
                key = found.split("'")[1]
                owner = "microscope (" if obj == "MicroscopeStand" else f"{obj!r} ("
                assert any(owner in line and (f": {key} is required" in line
                                              or f"].{key} is required" in line)
                           for line in listed.splitlines()), (name, obj, key)


def test_a_complete_profile_exports_a_file_the_app_accepts_at_tier_2():
    profile = _complete()
    doc = _export(profile)
    assert (doc["Tier"], doc["ValidationTier"]) == (2, 2)  # the highest tier it satisfies
    assert doc["AppVersion"] and doc["ModelVersion"]
    result = validate_file(doc)
    assert {k: v for k, v in result.items() if v} == {}
    assert counts(result) == (2 + 10, 12)  # instrument, stand, every component with a schema
    ids = {r["ID"] for r in doc["components"]}
    assert "disk" not in ids and "ph" not in ids  # no schema in the app: reported, not written
    _, warnings = export_micrometa(profile)
    assert any("'disk'" in w and "no schema" in w for w in warnings)
    laser = next(r for r in doc["components"] if r["ID"] == "laser")
    assert laser["Type"] == "SemiconductorLaserDiode"
    assert laser["IlluminationWavelengthRange"] == [
        {"IlluminationPower": 100, "IlluminationPowerUnit": "mW", "PeakWavelength": 488,
         "PeakWavelengthUnit": "nm"}]
    dichroic = next(r for r in doc["components"] if r["ID"] == "dc")
    assert dichroic["Type"] == "LongPass"
    for rec in [doc["MicroscopeStand"], *doc["components"]]:  # no field without a slot
        props = set(_schema(rec["Schema_ID"])["properties"])  # type: ignore[index]
        counters = {k for k in rec if k.split("_Number_Of_")[0] in ("Current", "Min", "Max")}
        assert set(rec) - props - _BOOKKEEPING - counters == set(), rec["ID"]
    # at tier 3 the same profile lacks facts, and check says which
    assert validate_file(_export(profile, tier=3))["obj"]


def test_check_for_micrometa_exit_codes(tmp_path, capsys):
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(COMPLETE))
    assert main(["profile", "check", str(rig), "--for", "micrometa", "--tier", "2"]) == 0
    assert main(["profile", "check", str(rig), "--for", "micrometa", "--tier", "3"]) == 1
    out = capsys.readouterr().out
    assert "'obj' (Objective): ObjectiveViewField is required by Micro-Meta App at tier 3" in out
    assert main(["profile", "check", str(rig), "--for", "nothing", "--tier", "1"]) == 2
    assert main(["profile", "check", str(tmp_path / "gone.yaml"), "--for", "micrometa"]) == 2


def test_export_tier_option_and_default(tmp_path, capsys):
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(COMPLETE))
    out = tmp_path / "rig.json"
    assert main(["profile", "export-micrometa", str(rig), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["Tier"] == 2
    assert main(["profile", "export-micrometa", str(rig), "--out", str(out), "--overwrite",
                 "--tier", "1"]) == 0
    assert (json.loads(out.read_text())["Tier"], json.loads(out.read_text())["ValidationTier"]
            ) == (1, 1)
    assert main(["profile", "export-micrometa", str(rig), "--tier", "4"]) == 2


def test_every_ome_value_maps_into_the_apps_enumerations():
    from ome_types.model import Filter_Type, Laser_Type, Objective_Correction, Objective_Immersion

    comps: list[dict[str, Any]] = []
    for i, value in enumerate(Laser_Type):
        comps.append({"kind": "laser", "id": f"l{i}", "laser_type": value.value})
    for i, value in enumerate(Filter_Type):
        comps.append({"kind": "filter", "id": f"f{i}", "filter_type": value.value})
    for i, value in enumerate(Objective_Correction):
        comps.append({"kind": "objective", "id": f"c{i}", "correction": value.value})
    for i, value in enumerate(Objective_Immersion):
        comps.append({"kind": "objective", "id": f"i{i}", "immersion": value.value})
    doc = _export(parse_profile({"name": "enums", "components": comps}, "enums"), tier=3)
    enum_errors = [e for errors in validate_file(doc).values() for e in errors
                   if "is not one of" in e]
    assert enum_errors == []


def test_abif_file_round_trips_identically(tmp_path, capsys):
    """import -> export -> import of the app's own file: the same file, layout included."""
    original = read_micrometa(EXAMPLE)
    rig = tmp_path / "rig.yaml"
    assert main(["profile", "import-micrometa", str(EXAMPLE), "--out", str(rig)]) == 0
    exported = tmp_path / "out.json"
    assert main(["profile", "export-micrometa", str(rig), "--out", str(exported)]) == 0
    again = tmp_path / "again.yaml"
    assert main(["profile", "import-micrometa", str(exported), "--out", str(again)]) == 0
    capsys.readouterr()
    out = json.loads(exported.read_text())
    assert {k: v for k, v in out.items() if k != "components"} == {
        k: v for k, v in original.items() if k != "components"}
    assert sorted(out["components"], key=lambda r: r["ID"]) == sorted(
        original["components"], key=lambda r: r["ID"])
    assert load_profile(again) == load_profile(rig)
    assert (json.loads((tmp_path / "rig.micrometa-kept.json").read_text())["layout"]
            == json.loads((tmp_path / "again.micrometa-kept.json").read_text())["layout"])


#: a Micro-Meta App laser record as the app writes one (wavelength and power in its
#: IlluminationWavelengthRange, the app's Type spelling, power in W)
APP_LASER = {
    "Name": "OBIS 488", "ID": "5f0c1e7a-3a52-4c1b-9f59-0c4b1e0d2a11", "Tier": 1,
    "Schema_ID": "Fluorescence_LightSource_Laser.json", "ModelVersion": "2.01.0",
    "Extension": "Core", "Domain": "MicroscopeHardwareSpecifications",
    "Category": "Fluorescence_LightSource", "PositionX": 310, "PositionY": 120,
    "Manufacturer": "Coherent", "Model": "OBIS 488 LX", "CatalogNumber": "1178769",
    "Type": "SemiconductorLaserDiode", "Tuneable": False, "ModulationMechanism": "Direct",
    "Pulse": False, "IlluminationWavelengthRange": [
        {"IlluminationPower": 0.05, "IlluminationPowerUnit": "W", "PeakWavelength": 488,
         "PeakWavelengthUnit": "nm"}],
}


def test_an_imported_laser_is_known_to_a_recording(py_core, tmp_path):
    """The app's laser wavelength, power and type become profile fields the recorder writes."""
    import useq

    from nbo_recorder import Recorder
    from nbo_recorder.judge.reader import read
    from nbo_recorder.profile.micrometa_import import import_micrometa

    doc = read_micrometa(EXAMPLE)
    doc["components"].append(copy.deepcopy(APP_LASER))
    result = import_micrometa(doc, "with-laser.json")
    laser = result.profile().component(APP_LASER["ID"])
    assert (laser.wavelength_nm, laser.rated_power_mw, laser.laser_type.value) == (
        488, 50, "Semiconductor")
    assert result.kept["layout"][APP_LASER["ID"]] == {"PositionX": 310, "PositionY": 120}
    back, _ = export_micrometa(result.profile(), result.kept)
    assert next(r for r in back["components"] if r["ID"] == APP_LASER["ID"]) == APP_LASER

    data = yaml.safe_load((REPO / "hardware_profiles" / "mm_demo.yaml").read_text())
    data["components"].append(next(c for c in result.data["components"]
                                   if c["id"] == APP_LASER["ID"]))
    data["bindings"].append({"device": "PyLaser", "role": "light_source",
                             "component": APP_LASER["ID"],
                             "settings": {"power": {"property": "PowerW", "unit": "W"}}})
    out = tmp_path / "laser.ome.tif"
    py_core.mda.run(useq.MDASequence(channels=[{"config": "GFP", "group": "PyChannel"}]),
                    output=Recorder(py_core, parse_profile(data, "imported")).sink(out))
    lasers = {lz.id: lz for lz in read(out).ome.instruments[0].lasers}
    written = lasers[f"LightSource:{APP_LASER['ID']}"]
    assert (written.wavelength, written.power, written.type.value) == (488, 50, "Semiconductor")
