"""The NBO rules table: regeneration from the workbook and spot checks against the sheet.

Expected values below were read by hand from
``tools/nbo-spec/NBO_MicroscopyMetadataSpecifications_ALL_v02-01.xlsx`` (sheet and
1-based row given in each comment), not copied from the extractor's output.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import astuple
from pathlib import Path
from types import ModuleType

import pytest

from nbo_recorder.nbo import RULES_PATH
from nbo_recorder.nbo.rules import Rule, RuleTable, load_rules

REPO = Path(__file__).resolve().parents[2]
EXTRACTOR = REPO / "tools" / "extract_nbo_rules.py"


def _extractor() -> ModuleType:
    """Import tools/extract_nbo_rules.py, which is a script rather than a package module."""
    spec = importlib.util.spec_from_file_location("extract_nbo_rules", EXTRACTOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def table() -> RuleTable:
    """The committed rules table."""
    return load_rules()


def rule(table: RuleTable, path: str) -> Rule:
    """The single row stored at ``path``."""
    found = [r for r in table.rules if r.path == path]
    assert len(found) == 1, f"{path}: {len(found)} rows"
    return found[0]


def test_regeneration_matches_committed_table(tmp_path: Path) -> None:
    extractor = _extractor()
    regenerated = extractor.render(
        extractor.build_rules(extractor.DEFAULT_SPEC_DIR, extractor.DEFAULT_XSD)
    )
    assert regenerated == RULES_PATH.read_text(encoding="utf-8")
    stale = tmp_path / "rules.json"
    stale.write_text(regenerated.replace('"tier": 3', '"tier": 2', 1), encoding="utf-8")
    assert extractor.main(["--out", str(stale), "--check"]) == 1


def test_table_is_sorted_and_unique(table: RuleTable) -> None:
    order = {name: rank for rank, name in enumerate(("core", "basic", "advconf", "calib"))}
    keys = [(order[r.extension], r.path) for r in table.rules]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_objective_lens_na(table: RuleTable) -> None:
    # Core+Basic Specs row 230: Tier 1.0, M&M "Y", LensNA in column F, Cardinality "R".
    lens_na = rule(table, "OME/Instrument/Objective/@LensNA")
    assert (lens_na.extension, lens_na.kind, lens_na.tier) == ("core", "attribute", 1)
    assert lens_na.requirement == "MUST"
    assert lens_na.mm is True
    assert lens_na.data_type == "float with unit:none"


def test_objective_other_attributes(table: RuleTable) -> None:
    # Row 247: ImageDistance, Tier 3.0, "R", no M&M.
    image_distance = rule(table, "OME/Instrument/Objective/@ImageDistance")
    assert (image_distance.tier, image_distance.requirement) == (3, "MUST")
    assert image_distance.mm is False
    # Row 241: LightType, Tier 1.0, M&M "Y", no "R", allowed "Infrared, Ultraviolet, Visible".
    light_type = rule(table, "OME/Instrument/Objective/@LightType")
    assert (light_type.tier, light_type.requirement, light_type.mm) == (1, "SHOULD", True)
    assert light_type.allowed_values == ("Infrared", "Ultraviolet", "Visible")


def test_cardinality_one_is_must(table: RuleTable) -> None:
    # Core+Basic Settings row 92: Image/ExperimentRef, Tier 1.0, Cardinality 1 (a number).
    experiment_ref = rule(table, "OME/Image/ExperimentRef")
    assert (experiment_ref.kind, experiment_ref.tier, experiment_ref.requirement) == (
        "element",
        1,
        "MUST",
    )


def test_advanced_confocal_attributes(table: RuleTable) -> None:
    # Adv-Confoc row 322: PinholeSettings/Aperture, Tier 1.0, M&M "Y", "R".
    aperture = rule(table, "OME/Image/Pixels/Channel/LightPath/PinholeSettings/@Aperture")
    assert (aperture.extension, aperture.tier, aperture.requirement, aperture.mm) == (
        "advconf",
        1,
        "MUST",
        True,
    )
    # Adv-Confoc row 11: TIRFHardwareModule/Ring, Tier 1.0, "R"; the XSD spells it "RIng".
    ring = rule(table, "OME/Instrument/TIRFHardwareModule/@RIng")
    assert (ring.label, ring.tier, ring.requirement, ring.xsd) == ("Ring", 1, "MUST", True)


def test_calibration_attributes(table: RuleTable) -> None:
    # Calib-Perf row 14: IntensityCalibrationTool/CalibrationType, Tier 2.0, enum, "R".
    calibration_type = rule(table, "OME/Instrument/IntensityCalibrationTool/@CalibrationType")
    assert (calibration_type.extension, calibration_type.tier) == ("calib", 2)
    assert calibration_type.requirement == "MUST"
    assert calibration_type.allowed_values == ("Detector", "Excitation", "Other")
    # Calib-Perf row 33: OpticalCalibration/Date, Tier 2.0, "R".
    assert rule(table, "OME/Image/OpticalCalibration/@Date").tier == 2
    # Calib-Perf row 27: LightSensor/LastCalibrationDate has no tier: it takes LightSensor's 2.
    last_calibration = rule(table, "OME/Instrument/LightSensor/@LastCalibrationDate")
    assert (last_calibration.tier, last_calibration.tier_inferred) == (2, True)


def test_ape_members_inherit_base_attributes(table: RuleTable) -> None:
    # LightSource-APE rows 117-119 (Manufacturer/Model/CatalogNumber: Tier 1.0, "Y", "R")
    # and row 124 (PurchaseDate: Tier 2.0, "R") apply to every light source, e.g. Laser.
    manufacturer = rule(table, "OME/Instrument/Laser/@Manufacturer")
    assert (manufacturer.tier, manufacturer.requirement, manufacturer.mm) == (1, "MUST", True)
    assert manufacturer.inherited_from == "LightSourceGroup"
    assert rule(table, "OME/Instrument/Laser/@PurchaseDate").tier == 2
    # CCD extends Camera extends Detector in the XSD: Camera-APE row 671 (PixelWidth,
    # Tier 1.0, "R") and Detector-APE row 653 (QuantumEfficiency, Tier 2.0, "R").
    assert rule(table, "OME/Instrument/CCD/@PixelWidth").inherited_from == "CameraGroup"
    quantum_efficiency = rule(table, "OME/Instrument/CCD/@QuantumEfficiency")
    assert (quantum_efficiency.tier, quantum_efficiency.inherited_from) == (2, "DetectorGroup")


def test_inherited_rows_take_the_inheriting_element_tier(table: RuleTable) -> None:
    # SamplePositioning-APE row 423: Motorized, Tier 1.0, "R". Z-Drive (row 442) is Tier 2.0
    # and TurretObjectiveFocusing (row 437) Tier 1.0.
    assert rule(table, "OME/Instrument/Z-Drive/@Motorized").tier == 2
    assert rule(table, "OME/Instrument/TurretObjectiveFocusing/@Motorized").tier == 1


def test_manufacturer_specs_base_is_inherited(table: RuleTable) -> None:
    # Objective (row 222) has the "ManufactuerSpecs" marker row 227; the base block
    # (rows 3-30) adds MapAnnotation (row 10, Tier 3.0) and SpecsFile (row 21).
    map_annotation = rule(table, "OME/Instrument/Objective/MapAnnotation")
    assert (map_annotation.kind, map_annotation.tier) == ("element", 3)
    assert map_annotation.inherited_from == "ManufacturerSpec"
    assert rule(table, "OME/Instrument/Objective/SpecsFile").inherited_from == "ManufacturerSpec"
    # Fluorophore (Settings row 244) only names "Manufacturer Specs" as complex type; its
    # XSD type extends ManufacturerSpec, so the base's Manufacturer (row 4) applies.
    fluorophore = rule(table, "OME/Image/Pixels/Channel/Fluorophore/@Manufacturer")
    assert (fluorophore.tier, fluorophore.requirement) == (1, "MUST")


def test_groups_and_choices(table: RuleTable) -> None:
    # Row 57: "substitution group (choose one)" before InvertedMicroscope.
    inverted = rule(table, "OME/Instrument/InvertedMicroscopeStand")
    assert (inverted.group, inverted.group_mode, inverted.label) == (
        "MicroscopeStandGroup",
        "one",
        "InvertedMicroscope",
    )
    # Settings rows 345-351: "choose only one" TiffData (1 ... ∞), then BinData "or".
    bin_data = rule(table, "OME/Image/Pixels/BinData")
    assert (bin_data.group, bin_data.requirement) == ("Pixels:choice", "MUST")


def test_queries(table: RuleTable) -> None:
    core_tier1 = {(r.parent, r.name) for r in table.must_attributes(1, ["core"])}
    assert ("Objective", "LensNA") in core_tier1
    assert ("Objective", "ImageDistance") not in core_tier1
    assert ("CCD", "PixelWidth") not in core_tier1
    assert ("Objective", "ImageDistance") in {
        (r.parent, r.name) for r in table.must_attributes(3, ["core"])
    }
    assert table.tier_of("Objective", "LensNA") == 1
    assert table.tier_of("Objective", "NoSuchAttribute") is None
    assert table.allowed_values("Objective", "Correction")[:3] == ("Achro", "Achromat", "Achroplan")
    objective = {r.name for r in table.for_element("Objective", kind="attribute")}
    assert {"Manufacturer", "LensNA", "ImageDistance"} <= objective


def test_context_disambiguates_same_element_name(table: RuleTable) -> None:
    # WavelengthRange/PeakWavelength: LightGuide row 213 is Tier 3.0, Detector-APE row 663
    # is Tier 2.0 (inherited by CCD).
    light_guide = ("OME", "Instrument", "LightGuide", "WavelengthRange")
    ccd = ("OME", "Instrument", "CCD", "WavelengthRange")
    assert table.tier_of("WavelengthRange", "PeakWavelength", light_guide) == 3
    assert table.tier_of("WavelengthRange", "PeakWavelength", ccd) == 2


def test_bad_tier_is_rejected(table: RuleTable) -> None:
    with pytest.raises(ValueError, match="tier"):
        table.must_attributes(4)


def _records() -> list[dict[str, object]]:
    records: list[dict[str, object]] = json.loads(RULES_PATH.read_text(encoding="utf-8"))
    return records


def test_table_made_a_column_at_a_time_is_the_one_made_row_by_row() -> None:
    """``load`` (rules made a column at a time) gives the rules ``Rule.from_record`` makes of
    each record, field for field, types included."""
    rows = [Rule.from_record(record) for record in _records()]
    loaded = RuleTable.load().rules
    assert list(loaded) == rows
    assert [tuple(map(type, astuple(r))) for r in loaded] == [tuple(map(type, astuple(r)))
                                                              for r in rows]


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("tier", "2", 2),  # a number as text: from_record converts it
    ("mm", 1, True),
    ("row", 7.0, 7),
    ("allowed_values", ["a", 3], ("a", "3")),
    ("parent", 5, "5"),
])
def test_an_unusual_record_is_read_as_from_record_reads_it(
        tmp_path: Path, field: str, value: object, expected: object) -> None:
    records = _records()
    records[10] = {**records[10], field: value}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    loaded = RuleTable.load(path).rules
    assert getattr(loaded[10], field) == expected
    assert type(getattr(loaded[10], field)) is type(expected)
    assert loaded[11] == Rule.from_record(records[11])


@pytest.mark.parametrize("change", [
    {"tier": 4}, {"extension": "other"}, {"kind": "text"}, {"requirement": "MAY"},
])
def test_a_record_out_of_its_enumeration_is_refused(tmp_path: Path,
                                                    change: dict[str, object]) -> None:
    records = _records()
    records[3] = {**records[3], **change}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(ValueError, match=f"rules record {records[3]['path']}"):
        RuleTable.load(path)


def test_a_record_with_a_field_missing_or_one_too_many_is_not_taken_as_it_is(
        tmp_path: Path) -> None:
    records = _records()
    extra = {**records[0], "note": "x"}
    del extra["label"]  # as many keys as fields, one of them not a field
    path = tmp_path / "rules.json"
    path.write_text(json.dumps([extra, *records[1:]]), encoding="utf-8")
    with pytest.raises(KeyError, match="label"):
        RuleTable.load(path)
