"""Profiles that include shared component files (a facility's inventory) and override them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nbo_recorder.profile.check import check_profile
from nbo_recorder.profile.core_check import check_against_core
from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.load import load_profile

INVENTORY = {
    "description": "Facility objective inventory",
    "components": [
        {"kind": "objective", "id": "obj-10x", "manufacturer": "Nikon",
         "model": "CFI S Fluor 10X", "nominal_magnification": 10, "lens_na": 0.5,
         "immersion": "Air", "correction": "Fluor"},
        {"kind": "objective", "id": "obj-20x", "manufacturer": "Nikon",
         "model": "CFI Plan Fluor ELWD 20X", "nominal_magnification": 20, "lens_na": 0.45,
         "extra": {"ContrastModulation": "None", "DIC": False}},
    ],
    "bindings": [
        {"device": "Objective", "role": "objective",
         "labels": {"Nikon 10X S Fluor": "obj-10x", "Nikon 20X Plan Fluor ELWD": "obj-20x"}},
    ],
}


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_included_components_are_added_and_overridden_by_id(tmp_path, demo_core):
    _write(tmp_path / "shared" / "objectives.yaml", INVENTORY)
    rig = _write(tmp_path / "rigs" / "rig.yaml", {
        "name": "Rig A",
        "include": ["../shared/objectives.yaml"],
        "components": [
            # this rig's 20x: same part, its own serial number and a measured magnification
            {"id": "obj-20x", "serial_number": "SN-123", "calibrated_magnification": 19.87,
             "extra": {"DIC": True}},
            {"kind": "detector", "id": "cam", "detector_type": "CMOS"},
        ],
        "bindings": [{"device": "Camera", "role": "detector", "component": "cam",
                      "settings": {"gain": {"property": "Gain"}}}],
    })
    profile = load_profile(rig)
    assert [c.id for c in profile.components] == ["obj-10x", "obj-20x", "cam"]
    obj20 = profile.component("obj-20x")
    assert (obj20.model, obj20.lens_na, obj20.serial_number, obj20.calibrated_magnification) == (
        "CFI Plan Fluor ELWD 20X", 0.45, "SN-123", 19.87)
    assert obj20.extra == {"ContrastModulation": "None", "DIC": True}  # deep merge
    assert profile.component("obj-10x").serial_number is None  # untouched
    assert [b.device for b in profile.bindings] == ["Objective", "Camera"]
    check_against_core(profile, demo_core)
    assert check_profile(rig, "demo").problems == []


def test_binding_of_the_including_file_replaces_the_included_one(tmp_path):
    _write(tmp_path / "objectives.yaml", INVENTORY)
    rig = _write(tmp_path / "rig.yaml", {
        "name": "Rig B", "include": "objectives.yaml",
        "bindings": [{"device": "Objective", "role": "objective",
                      "labels": {"Nikon 10X S Fluor": "obj-10x", "Objective-2": None}}],
    })
    profile = load_profile(rig)
    assert len(profile.bindings) == 1
    assert set(profile.bindings[0].labels) == {"Nikon 10X S Fluor", "Objective-2"}


def test_nested_includes_resolve_relative_to_each_file(tmp_path):
    _write(tmp_path / "a" / "b" / "objectives.yaml", INVENTORY)
    _write(tmp_path / "a" / "facility.yaml", {
        "include": ["b/objectives.yaml"],
        "components": [{"kind": "led", "id": "led-1", "wavelength_nm": 470}],
    })
    rig = _write(tmp_path / "rig.yaml", {"name": "Rig C", "include": ["a/facility.yaml"]})
    assert [c.id for c in load_profile(rig).components] == ["obj-10x", "obj-20x", "led-1"]


def test_include_cycle_names_both_files(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    _write(a, {"name": "A", "include": ["b.yaml"]})
    _write(b, {"include": ["a.yaml"], "components": []})
    with pytest.raises(ProfileError) as err:
        load_profile(a)
    msg = str(err.value)
    assert f"{b}: include[0]:" in msg and "include cycle" in msg
    assert str(a.resolve()) in msg and str(b.resolve()) in msg
    self_include = _write(tmp_path / "self.yaml", {"name": "S", "include": ["self.yaml"]})
    with pytest.raises(ProfileError, match="include cycle"):
        load_profile(self_include)


def test_missing_or_malformed_include_names_both_files(tmp_path):
    rig = _write(tmp_path / "rig.yaml", {"name": "R", "include": ["nowhere.yaml"]})
    with pytest.raises(ProfileError) as err:
        load_profile(rig)
    assert f"{rig}: include[0]: included file {tmp_path / 'nowhere.yaml'} not found" in str(
        err.value)

    (tmp_path / "broken.yaml").write_text("components: [unclosed\n")
    rig = _write(tmp_path / "rig2.yaml", {"name": "R", "include": ["broken.yaml"]})
    with pytest.raises(ProfileError) as err:
        load_profile(rig)
    assert f"{rig}: include[0]: {tmp_path / 'broken.yaml'}: not valid YAML" in str(err.value)

    _write(tmp_path / "full.yaml", {"name": "not allowed here", "components": []})
    rig = _write(tmp_path / "rig3.yaml", {"name": "R", "include": ["full.yaml"]})
    with pytest.raises(ProfileError, match=r"may only have .*found \['name'\]"):
        load_profile(rig)

    rig = _write(tmp_path / "rig4.yaml", {"name": "R", "include": {"file": "x.yaml"}})
    with pytest.raises(ProfileError, match="include: expected a list of file paths"):
        load_profile(rig)


def test_conflicts_and_errors_in_included_components(tmp_path):
    _write(tmp_path / "one.yaml", INVENTORY)
    _write(tmp_path / "two.yaml", {"components": [{"kind": "objective", "id": "obj-10x"}]})
    rig = _write(tmp_path / "rig.yaml", {"name": "R", "include": ["one.yaml", "two.yaml"]})
    with pytest.raises(ProfileError) as err:
        load_profile(rig)
    assert "component id 'obj-10x' is defined both in" in str(err.value)
    assert "one.yaml" in str(err.value) and "two.yaml" in str(err.value)

    rig = _write(tmp_path / "kind.yaml", {
        "name": "R", "include": ["one.yaml"],
        "components": [{"kind": "filter", "id": "obj-10x"}]})
    with pytest.raises(ProfileError, match=r"overrides a 'objective' .* with kind 'filter'"):
        load_profile(rig)

    rig = _write(tmp_path / "bad.yaml", {
        "name": "R", "include": ["one.yaml"],
        "components": [{"id": "obj-20x", "lens_na": 7}]})
    with pytest.raises(ProfileError) as err:
        load_profile(rig)
    line = next(ln for ln in str(err.value).splitlines() if "lens_na" in ln)
    assert line.startswith(f"{rig}: components[1] (from {tmp_path / 'one.yaml'} components[1], "
                           f"overridden by {rig} components[0]).lens_na:")


def test_profiles_without_include_load_as_before(tmp_path):
    from tests.helpers import DEMO_PROFILE

    plain = load_profile(DEMO_PROFILE)
    copy = _write(tmp_path / "demo.yaml", yaml.safe_load(DEMO_PROFILE.read_text()))
    assert load_profile(copy) == plain
