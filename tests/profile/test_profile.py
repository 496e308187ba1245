"""Profiles: loading, validation errors that name file and field, checks against the core."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nbo_recorder.profile.check import check_profile
from nbo_recorder.profile.core_check import check_against_core
from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.load import load_profile, parse_profile
from nbo_recorder.render.nbo_checks import check_nbo_profile
from tests.helpers import DEMO_PROFILE


@pytest.fixture
def demo_data() -> dict:
    return yaml.safe_load(DEMO_PROFILE.read_text())


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_demo_profile_describes_every_bound_demo_device(demo_core):
    profile = load_profile(DEMO_PROFILE)
    check_against_core(profile, demo_core)
    bound = {b.device for b in profile.bindings}
    assert {"Camera", "Objective", "Excitation", "Emission", "Dichroic", "LED"} <= bound
    objectives = {c.model: c for c in profile.components if c.kind == "objective"}
    assert objectives["CFI S Fluor 10X"].lens_na == 0.5
    assert objectives["CFI Plan Fluor ELWD 40X"].nominal_magnification == 40


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = _write(tmp_path, "name: [unclosed\n")
    with pytest.raises(ProfileError, match=r"rig\.yaml: not valid YAML"):
        load_profile(path)


def test_wrong_type_names_file_and_field_path(tmp_path, demo_data):
    demo_data["components"][0]["lens_na"] = "very large"
    with pytest.raises(ProfileError) as err:
        load_profile(_write(tmp_path, demo_data))
    assert "rig.yaml: components[0].lens_na:" in str(err.value)


def test_unknown_component_kind_lists_known_kinds(tmp_path, demo_data):
    demo_data["components"][1]["kind"] = "flux_capacitor"
    with pytest.raises(ProfileError) as err:
        load_profile(_write(tmp_path, demo_data))
    assert "components[1]" in str(err.value)
    assert "unknown component kind" in str(err.value) and "objective" in str(err.value)


def test_enum_outside_ome_vocabulary_lists_allowed_values(tmp_path, demo_data):
    demo_data["components"][0]["correction"] = "SuperDuperApo"
    with pytest.raises(ProfileError, match=r"components\[0\]\.correction:.*PlanApo"):
        load_profile(_write(tmp_path, demo_data))


def test_duplicate_and_dangling_ids_are_named(demo_data):
    data = copy.deepcopy(demo_data)
    data["components"][1]["id"] = data["components"][0]["id"]
    with pytest.raises(ProfileError, match="duplicate id 'obj-nikon-10x-sfluor'"):
        parse_profile(data, "x.yaml")
    data = copy.deepcopy(demo_data)
    data["bindings"][0]["labels"]["Nikon 10X S Fluor"] = "obj-missing"
    with pytest.raises(ProfileError, match=r"unknown component id 'obj-missing'"):
        parse_profile(data, "x.yaml")


def test_unit_of_the_wrong_quantity_is_rejected(demo_data):
    camera = next(b for b in demo_data["bindings"] if b["device"] == "Camera")
    camera["settings"]["temperature"]["unit"] = "mW"
    with pytest.raises(ProfileError, match=r"temperature\.unit: 'mW' measures power"):
        parse_profile(demo_data, "x.yaml")


def test_binding_to_unloaded_device_fails_before_acquisition(demo_core, demo_data):
    demo_data["bindings"][0]["device"] = "Turret-9000"
    profile = parse_profile(demo_data, "x.yaml")
    with pytest.raises(ProfileError, match=r"bindings\[0\]\.device: device 'Turret-9000' is not"):
        check_against_core(profile, demo_core)


def test_binding_to_missing_label_or_property_is_named(demo_core, demo_data):
    demo_data["bindings"][0]["labels"]["Nikon 100X Oil"] = "obj-nikon-10x-sfluor"
    camera = next(b for b in demo_data["bindings"] if b["device"] == "Camera")
    camera["settings"]["gain"]["property"] = "Gian"
    profile = parse_profile(demo_data, "x.yaml")
    with pytest.raises(ProfileError) as err:
        check_against_core(profile, demo_core)
    assert "no such label" in str(err.value) and "'Nikon 100X Oil'" in str(err.value)
    assert "has no property 'Gian'" in str(err.value)


def test_readme_worked_example_is_a_valid_profile():
    readme = (DEMO_PROFILE.parent.parent / "README.md").read_text()
    section = readme[readme.index("## Hardware profiles"):]
    block = section[section.index("```yaml") + len("```yaml"):]
    block = block[:block.index("```")]
    profile = parse_profile(yaml.safe_load(block), "README.md")
    laser = next(b for b in profile.bindings if b.device == "Laser488")
    assert laser.settings["power"].unit == "W"


def test_nbo_vocabulary_and_missing_calibration_file_are_named(tmp_path, demo_data):
    demo_data["components"][0]["extra"] = {"ContrastModulation": "Hoffmannn"}
    demo_data["calibrations"] = [{"id": "flat-1", "kind": "field_uniformity",
                                  "date": "2026-10-01", "file": "maps/flat.tif"}]
    # loading checks the files a profile cites; the NBO vocabularies are a separate step
    with pytest.raises(ProfileError) as err:
        load_profile(_write(tmp_path, demo_data))
    text = str(err.value)
    assert "calibrations[0].file:" in text and "flat.tif does not exist" in text
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "flat.tif").write_bytes(b"II*\x00")
    with pytest.raises(ProfileError) as err:
        check_nbo_profile(load_profile(_write(tmp_path, demo_data)))
    text = str(err.value)
    assert "components[0].extra.ContrastModulation: 'Hoffmannn'" in text and "'Hoffman'" in text
    demo_data["components"][0]["extra"] = {"ContrastModulation": "Hoffman"}
    profile = load_profile(_write(tmp_path, demo_data))
    check_nbo_profile(profile)
    assert profile.calibrations[0].file == "maps/flat.tif"


def test_profile_check_reports_nbo_values_and_missing_files_together(tmp_path, demo_data):
    demo_data["components"][0]["extra"] = {"ContrastModulation": "Hoffmannn"}
    demo_data["calibrations"] = [{"id": "flat-1", "kind": "field_uniformity",
                                  "date": "2026-10-01", "file": "maps/flat.tif"}]
    path = _write(tmp_path, demo_data)
    problems = check_profile(path).problems
    assert problems[0] == f"{path}: profile values NBO v2.01 does not allow:"
    assert any(line.startswith(f"{path}: components[0].extra.ContrastModulation: 'Hoffmannn'")
               for line in problems)
    assert any(line.startswith(f"{path}: calibrations[0].file:") for line in problems)


def test_loading_a_profile_imports_no_xml_builder_or_schema():
    code = ("import sys; from nbo_recorder.profile.load import load_profile; "
            f"load_profile({str(DEMO_PROFILE)!r}); "
            "print([m for m in ('xmlschema', 'nbo_recorder.render', 'nbo_recorder.nbo.schema') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
