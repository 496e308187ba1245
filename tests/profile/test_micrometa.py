"""Micro-Meta App microscope files: import, export, round trip and bad input."""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from nbo_recorder.cli.main import main
from nbo_recorder.profile.load import load_profile
from nbo_recorder.profile.micrometa import (
    LAYOUT_KEYS,
    MicroMetaError,
    flatten,
    kept_path,
    read_micrometa,
    unflatten,
)
from nbo_recorder.profile.micrometa_export import export_micrometa
from nbo_recorder.profile.micrometa_import import import_micrometa
from tests.helpers import DEMO_PROFILE

#: the real Micro-Meta App file in the project's shared folder (beside the repository)
EXAMPLE = (Path(__file__).resolve().parents[3] / "shared" / "micrometa-examples"
           / "abif_axiovert1_.json")
if not EXAMPLE.is_file() and os.environ.get("CI"):
    raise RuntimeError(f"{EXAMPLE} is missing: CI checks out shared/ beside the repository")
pytestmark = pytest.mark.skipif(not EXAMPLE.is_file(), reason=f"{EXAMPLE} not found")

# Counted by reading abif_axiovert1_.json: 32 components.
EXPECTED_KINDS = {
    "objective": 5,   # Objective.json x5
    "filter": 8,      # ExcitationFilter.json x4 + EmissionFilter.json x4
    "dichroic": 4,    # StandardDichroic.json x4
    "filter_set": 5,  # FilterCube.json x5 (one of them empty: all "na")
    "led": 2,         # Fluorescence_ and Transmitted_LightSource_LightEmittingDiode.json
    "detector": 1,    # CCD.json
    "stage": 2,       # PiezoElectricStage.json (XY) + Z-Drive.json (Z)
}
EXPECTED_KEPT = {"AcquisitionSoftware.json", "Condenser.json", "EnvironmentalControlDevice.json",
                 "FilterCubeTurret.json", "FocusStabilizationDevice.json"}


@pytest.fixture
def doc() -> dict[str, Any]:
    data: dict[str, Any] = read_micrometa(EXAMPLE)
    return data


def test_import_maps_every_component(doc):
    result = import_micrometa(doc, str(EXAMPLE))
    profile = result.profile()
    assert len(doc["components"]) == 32
    assert Counter(c.kind for c in profile.components) == EXPECTED_KINDS
    assert {r["Schema_ID"] for r in result.kept["components"]} == EXPECTED_KEPT
    assert len(profile.components) + len(result.kept["components"]) == 32
    assert result.warnings == []
    assert {c.id for c in profile.components} | {r["ID"] for r in result.kept["components"]} == {
        r["ID"] for r in doc["components"]}  # Micro-Meta IDs kept

    assert profile.name == "ABIF Axiovert1"
    mic = profile.microscope
    assert (mic.type.value, mic.manufacturer, mic.model) == ("Inverted", "Zeiss",
                                                            "Axio Observer Z1")

    c = {comp.name: comp for comp in profile.components}
    obj10 = c["10X PLAN NEOFLUAR, NA= 0.30, Ph 1"]
    assert (obj10.nominal_magnification, obj10.lens_na, obj10.correction.value,
            obj10.immersion.value) == (10, 0.3, "PlanNeofluar", "Air")
    assert obj10.working_distance_um == pytest.approx(5200)  # 5.2 mm
    assert obj10.catalog_number == "999999"
    assert obj10.extra["ContrastModulation"] == "Ph1" and obj10.extra["DIC"] is False
    assert "WorkingDistance" not in obj10.extra and "WorkingDistanceUnit" not in obj10.extra
    obj40 = c["40X LD ACHROPLAN, NA=0.60, Ph2, Korr"]
    assert obj40.correction.value == "Achromat"
    assert obj40.extra["MicroMetaApp.Correction"] == "Achroplan"
    obj63 = c["63X PLAN APOCHROMAT, NA=1.40, OIL, DIC"]
    assert obj63.immersion.value == "Oil" and obj63.correction.value == "Apo"
    assert obj63.working_distance_um == pytest.approx(190)

    dapi_em = c["BP 445/50 - DAPI emission filter"]
    assert dapi_em.filter_type.value == "BandPass" and dapi_em.center_wavelength_nm == 445
    assert (dapi_em.transmittance_range.cut_in_nm, dapi_em.transmittance_range.cut_out_nm) == (
        420, 470)
    assert dapi_em.catalog_number == "999"  # placeholder kept as given
    assert dapi_em.extra["Schema_ID"] == "EmissionFilter.json"
    lp590 = c["LP 590 - TRITC emission filter"]
    assert lp590.filter_type.value == "LongPass" and lp590.transmittance_range.cut_in_nm == 590
    assert lp590.transmittance_range.cut_out_nm is None
    assert c["FT 395 - DAPI beamsplitter"].cut_on_nm == 395
    assert c["FT 510 - GFP beamsplitter"].extra["Description"] == (
        "FT 510 dichroic in FS 10 filter cube")

    cube = c["FS 49 - DAPI filter cube"]
    assert cube.excitation_filters == ("110538d1-4506-4ac5-a6b7-6d70b32fc7c4",)
    assert cube.dichroic == "76c78d9d-886c-42d6-b995-cee975dde448"
    assert cube.emission_filters == ("9b8c0b2b-17e2-45d5-ade1-ca44a4bbc8d2",)
    assert "held by FilterCubeTurret 'Filter Cube Turret'" in cube.source
    empty = c["EMPTY filter cube"]
    assert (empty.excitation_filters, empty.dichroic, empty.emission_filters) == ((), None, ())

    led = c["X-Cite light source"]
    assert (led.wavelength_nm, led.rated_power_mw) == (535, 999)  # 999 mW placeholder kept
    assert led.extra["LEDModule[0].CutOn"] == 370 and led.extra["LEDModule[0].CutOnUnit"] == "nm"
    cam = c["Axiocam 506"]
    assert (cam.detector_type.value, cam.pixel_size_um, cam.sensor_width_px,
            cam.sensor_height_px, cam.bit_depth) == ("CCD", 4.54, 2752, 2208, 14)
    assert cam.extra["Type"] == "Conventional"  # the NBO camera Type, not the OME detector type
    assert c["Zeiss piezo-electric stage"].axes == "xy" and c["Z-Drive"].axes == "z"

    for comp in profile.components:  # canvas layout dropped
        assert not set(comp.extra or {}) & LAYOUT_KEYS
    for rec in result.kept["components"]:
        assert not set(rec) & LAYOUT_KEYS
    assert any(t.startswith("bindings: none yet") for t in profile.todo)
    assert any("linkedFields entry 'FilterCube_3df06284" in n for n in result.notes)


def test_round_trip_through_files_loses_no_field(doc, tmp_path, capsys):
    rig = tmp_path / "rig.yaml"
    assert main(["profile", "import-micrometa", str(EXAMPLE), "--out", str(rig)]) == 0
    assert kept_path(rig).is_file()
    assert "FilterCubeTurret.json (holder) has no profile component kind" in (
        capsys.readouterr().err)
    exported = tmp_path / "rig.microscope.json"
    assert main(["profile", "export-micrometa", str(rig), "--out", str(exported)]) == 0
    again = tmp_path / "again.yaml"
    assert main(["profile", "import-micrometa", str(exported), "--out", str(again)]) == 0
    capsys.readouterr()

    assert load_profile(again) == load_profile(rig)
    kept1 = json.loads(kept_path(rig).read_text())
    kept2 = json.loads(kept_path(again).read_text())
    kept1.pop("source"), kept2.pop("source")
    assert kept1 == kept2

    # and at the Micro-Meta level: every field of every record is back, with its value and
    # its place on the app's canvas
    out = json.loads(exported.read_text())
    assert {k: out[k] for k in ("Name", "Schema_ID", "ID", "Tier", "ValidationTier",
                                "ModelVersion", "AppVersion")} == {
        k: doc[k] for k in ("Name", "Schema_ID", "ID", "Tier", "ValidationTier", "ModelVersion",
                            "AppVersion")}
    assert out["MicroscopeStand"] == doc["MicroscopeStand"]
    assert out["linkedFields"] == doc["linkedFields"]
    original = {r["ID"]: r for r in doc["components"]}  # canvas layout included
    written = {r["ID"]: r for r in out["components"]}
    assert written.keys() == original.keys()
    for cid, rec in original.items():
        assert written[cid] == rec, rec["Name"]


def test_export_writes_what_micro_meta_app_expects(doc):
    profile = import_micrometa(doc, str(EXAMPLE)).profile()
    out, warnings = export_micrometa(profile)  # without the kept data: profile only
    assert warnings == []
    # without the kept Tier the file declares the highest tier its records satisfy: the ABIF
    # records state every field the app requires up to tier 3 (placeholders included)
    assert out["Schema_ID"] == "Instrument.json" and out["Tier"] == 3
    assert out["ValidationTier"] == 3 and out["ModelVersion"] == "2.01.0"
    assert out["MicroscopeStand"]["Schema_ID"] == "InvertedMicroscopeStand.json"
    assert out["MicroscopeStand"]["Manufacturer"] == "Zeiss"
    by_id = {r["ID"]: r for r in out["components"]}
    for rec in out["components"]:
        assert {"Name", "ID", "Tier", "Schema_ID", "ModelVersion"} <= set(rec)
        assert rec["Schema_ID"] == next(r["Schema_ID"] for r in doc["components"]
                                        if r["ID"] == rec["ID"])
        for key in rec:  # units as separate keys next to their value
            if key.endswith("Unit") and key[:-4] in rec:
                assert isinstance(rec[key[:-4]], int | float), key
        for key in ("ExcitationFilter", "StandardDichroic", "EmissionFilter"):
            if rec["Schema_ID"] == "FilterCube.json":
                ref = rec[key]
                assert ref == "na" or (ref.split("/")[0] == key and ref.split("/")[1] in by_id)
    obj = by_id["23ff36dc-b6b4-4f2d-bb99-81b41eff5150"]
    assert (obj["WorkingDistance"], obj["WorkingDistanceUnit"]) == (5.2, "mm")


def test_native_profile_exports_and_imports(tmp_path):
    profile = load_profile(DEMO_PROFILE)
    out, warnings = export_micrometa(profile)
    by_id = {r["ID"]: r for r in out["components"]}
    assert by_id["obj-nikon-10x-sfluor"]["Schema_ID"] == "Objective.json"
    assert by_id["obj-nikon-10x-sfluor"]["LensNA"] == 0.5
    assert by_id["obj-nikon-10x-sfluor"]["WorkingDistance"] == 1.2
    assert by_id["ex-chroma-hq480-40x"]["Schema_ID"] == "ExcitationFilter.json"
    assert by_id["em-chroma-hq535-50m"]["Schema_ID"] == "EmissionFilter.json"
    assert by_id["em-chroma-hq535-50m"]["TransmittanceRange"] == [
        {"Wavelength": 535, "FWHMBandwidth": 50, "WavelengthUnit": "nm"}]
    assert by_id["fs-chroma-89402"]["StandardDichroic"] == "StandardDichroic/dc-chroma-89402bs"
    assert by_id["fs-chroma-89402"]["ExcitationFilter"] == "na"
    assert by_id["obj-nikon-10x-sfluor"]["Description"].startswith("[nikon]")
    assert any("microscope.type is None" in w for w in warnings)
    back = import_micrometa(json.loads(json.dumps(out)), "demo.json").profile()
    assert back.component("obj-nikon-20x-pf-elwd").lens_na == 0.45
    assert back.component("em-chroma-hq700-75m").transmittance_range.cut_in_nm == 662.5
    assert back.component("fs-chroma-89402").dichroic == "dc-chroma-89402bs"


def test_mm_config_binds_labels_equal_to_component_names(doc, demo_core):
    doc = copy.deepcopy(doc)
    renamed = {"23ff36dc-b6b4-4f2d-bb99-81b41eff5150": "Nikon 10X S Fluor",
               "b248bea2-0770-496c-baa6-2b92fd97e981": "nikon 20x  plan fluor elwd",
               "76c78d9d-886c-42d6-b995-cee975dde448": "400DCLP"}
    for rec in doc["components"]:
        rec["Name"] = renamed.get(rec["ID"], rec["Name"])
    profile = import_micrometa(doc, "x.json", demo_core).profile()
    bindings = {b.device: b for b in profile.bindings}
    assert bindings["Objective"].role == "objective"
    assert {k: v.component for k, v in bindings["Objective"].labels.items()} == {
        "Nikon 10X S Fluor": "23ff36dc-b6b4-4f2d-bb99-81b41eff5150",
        "Nikon 20X Plan Fluor ELWD": "b248bea2-0770-496c-baa6-2b92fd97e981"}
    assert bindings["Dichroic"].role == "dichroic"
    assert any(t.startswith("bindings[Objective].labels: labels matching no component Name")
               for t in profile.todo)


def test_not_a_micro_meta_file(tmp_path, capsys):
    with pytest.raises(MicroMetaError, match="top level is a list"):
        import_micrometa([], "x.json")
    with pytest.raises(MicroMetaError, match=re.escape(
            "top-level Schema_ID is 'Experiment.json', expected 'Instrument.json'")):
        import_micrometa({"Schema_ID": "Experiment.json", "components": []}, "x.json")
    with pytest.raises(MicroMetaError, match=re.escape(
            "x.json: not a Micro-Meta App microscope file: no 'components' list")):
        import_micrometa({"Schema_ID": "Instrument.json"}, "x.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["profile", "import-micrometa", str(bad), "--out", str(tmp_path / "p.yaml")]) == 2
    assert "bad.json: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "p.yaml").exists()


def test_duplicate_ids_and_dangling_references_name_the_component(doc):
    dup = copy.deepcopy(doc)
    dup["components"][4]["ID"] = dup["components"][3]["ID"]
    with pytest.raises(MicroMetaError) as err:
        import_micrometa(dup, "x.json")
    msg = str(err.value)
    assert "duplicate component ID '9b8c0b2b-17e2-45d5-ade1-ca44a4bbc8d2'" in msg
    assert "'BP 445/50 - DAPI emission filter'" in msg
    assert "'BP 515-565 - GFP emission filter'" in msg

    dangling = copy.deepcopy(doc)
    cube = next(r for r in dangling["components"] if r["Name"] == "FS 49 - DAPI filter cube")
    cube["StandardDichroic"] = "StandardDichroic/0000-gone"
    with pytest.raises(MicroMetaError) as err:
        import_micrometa(dangling, "x.json")
    assert ("'FS 49 - DAPI filter cube' (ID 91318a05-57c9-44bd-aac8-7e5c519c4119): "
            "StandardDichroic refers to 'StandardDichroic/0000-gone', which is not a component"
            in str(err.value))

    wrong_kind = copy.deepcopy(doc)
    cube = next(r for r in wrong_kind["components"] if r["Name"] == "FS 49 - DAPI filter cube")
    cube["StandardDichroic"] = "StandardDichroic/110538d1-4506-4ac5-a6b7-6d70b32fc7c4"
    with pytest.raises(MicroMetaError, match=r"but that component is a ExcitationFilter\.json"):
        import_micrometa(wrong_kind, "x.json")

    spaced = copy.deepcopy(doc)
    spaced["components"][1]["ID"] = "not a uuid"
    with pytest.raises(MicroMetaError, match=r"'Axiocam 506' \(ID not a uuid\): the ID contains"):
        import_micrometa(spaced, "x.json")


def test_unknown_schema_and_invalid_values_are_kept_with_warnings(doc):
    doc = copy.deepcopy(doc)
    doc["components"].append({"Name": "Home-made gizmo", "ID": "g-1", "Schema_ID": "Gizmo.json",
                              "PositionX": 3, "Knob": 11})
    obj = next(r for r in doc["components"] if r["Schema_ID"] == "Objective.json")
    obj["LensNA"] = 5
    result = import_micrometa(doc, "x.json")
    assert any("'Home-made gizmo' (ID g-1): unknown Schema_ID 'Gizmo.json'" in w
               for w in result.warnings)
    assert {"Name": "Home-made gizmo", "ID": "g-1", "Schema_ID": "Gizmo.json", "Knob": 11} in (
        result.kept["components"])
    assert any(f"(ID {obj['ID']}): LensNA = 5 is not a valid lens_na" in w
               for w in result.warnings)
    profile = result.profile()
    assert profile.component(obj["ID"]).lens_na is None
    assert profile.component(obj["ID"]).extra["LensNA"] == 5
    out, _ = export_micrometa(profile, result.kept)
    by_id = {r["ID"]: r for r in out["components"]}
    assert by_id[obj["ID"]]["LensNA"] == 5 and by_id["g-1"]["Knob"] == 11


def test_flatten_round_trips_nested_values():
    value = {"A": [{"B": 1, "C": [True, None]}, {}], "D": [], "E": {"F": "x"}, "G": 2.5}
    flat = flatten(value)
    assert flat["A[0].C[0]"] is True and flat["E.F"] == "x" and flat["D[]"] is None
    assert unflatten(flat) == value


def test_export_needs_an_overwrite_flag_and_reports_stale_extra(tmp_path, doc, capsys):
    rig = tmp_path / "rig.yaml"
    assert main(["profile", "import-micrometa", str(EXAMPLE), "--out", str(rig)]) == 0
    assert main(["profile", "import-micrometa", str(EXAMPLE), "--out", str(rig)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    # a human changes a value whose original spelling sits in extra: the profile wins
    text = rig.read_text().replace("correction: Achromat", "correction: PlanApo", 1)
    rig.write_text(text)
    out = tmp_path / "o.json"
    assert main(["profile", "export-micrometa", str(rig), "--out", str(out)]) == 0
    assert "extra.Correction = 'Achroplan' no longer matches" in capsys.readouterr().err
    rec = next(r for r in json.loads(out.read_text())["components"]
               if r["ID"] == "1dffb4e1-8870-4435-8b3e-f214ca516599")
    assert rec["Correction"] == "PlanApochromat"
