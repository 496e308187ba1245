"""``profile init`` and ``profile check``: a skeleton from the real demo configuration."""

from __future__ import annotations

from typing import Any

import pytest
import useq
import yaml

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.cli.main import main
from nbo_recorder.profile.check import check_profile, missing_for_tier
from nbo_recorder.profile.core_check import check_against_core
from nbo_recorder.profile.labels import (
    is_generic_label,
    parse_dichroic_label,
    parse_filter_label,
    parse_objective_label,
)
from nbo_recorder.profile.load import load_profile, parse_profile
from nbo_recorder.profile.skeleton import init_profile
from tests.helpers import DEMO_PROFILE, load, snapped


def _state_devices(core: Any) -> dict[str, list[str]]:
    out = {}
    for dev in core.getLoadedDevices():
        if str(core.getDeviceType(dev)) == "State":
            out[dev] = list(core.getStateLabels(dev))
    return out


def test_labels_state_only_what_they_say():
    assert parse_objective_label("Nikon 20X Plan Fluor ELWD") == {
        "manufacturer": "Nikon", "nominal_magnification": 20, "correction": "PlanFluor"}
    assert parse_objective_label("Olympus UPlanSApo 60x/1.35 Oil") == {
        "manufacturer": "Olympus", "nominal_magnification": 60, "lens_na": 1.35,
        "immersion": "Oil"}
    assert parse_objective_label("Objective-2") == {}
    assert parse_filter_label("Chroma-HQ535") == {"manufacturer": "Chroma",
                                                 "center_wavelength_nm": 535}
    assert parse_filter_label("Semrock FF01-525/45-25") == {
        "manufacturer": "Semrock", "filter_type": "BandPass", "center_wavelength_nm": 525,
        "transmittance_range": {"cut_in_nm": 502.5, "cut_out_nm": 547.5}}
    assert parse_filter_label("LP 590") == {"filter_type": "LongPass",
                                            "transmittance_range": {"cut_in_nm": 590}}
    assert parse_filter_label("89402m") == {}
    assert parse_dichroic_label("Q505LP") == {"cut_on_nm": 505}
    assert parse_dichroic_label("400DCLP") == {"cut_on_nm": 400}
    assert parse_dichroic_label("89402bs") == {}
    for label in ("State-5", "Objective-2", "Pos 3", "7"):
        assert is_generic_label(label)
    for label in ("Chroma-HQ535", "Nikon 10X S Fluor", "Empty"):
        assert not is_generic_label(label)


def test_init_binds_every_device_and_label_of_the_demo_config(demo_core, tmp_path):
    result = init_profile(demo_core, "MMConfig_demo.cfg")
    path = tmp_path / "rig.yaml"
    path.write_text(result.text)
    profile = load_profile(path)  # the commented YAML loads as it is
    assert profile == result.profile()
    check_against_core(profile, demo_core)

    # every loaded device is accounted for, with the reason when it is not bound
    assert set(result.devices) == set(demo_core.getLoadedDevices())
    bound = {b.device: b for b in profile.bindings}
    assert set(bound) == {"Camera", "Dichroic", "Emission", "Excitation", "Objective", "LED",
                          "White Light Shutter"}
    assert "no NBO role" in result.devices["Path"]
    assert "LED" in result.devices["LED Shutter"]
    stages = {c.name: c.axes for c in profile.components if c.kind == "stage"}
    assert stages == {"Z": "z", "XY": "xy"}

    # every label of every bound state device: mapped, null, or listed as unmapped
    for dev, labels in _state_devices(demo_core).items():
        if dev not in bound:
            continue
        described = set(bound[dev].labels or {})
        assert described | set(result.unmapped_labels.get(dev, [])) == set(labels), dev
        assert not described & set(result.unmapped_labels.get(dev, []))
        for label in result.unmapped_labels.get(dev, []):
            assert f"# {label}:" in result.text  # commented out where the human edits
    assert bound["Objective"].labels["Nikon 10X S Fluor"].component == "obj-nikon-10x-s-fluor"
    assert result.unmapped_labels["Objective"] == ["Objective-2", "Objective-4", "Objective-5"]
    assert bound["Excitation"].labels["Empty"] is None
    assert bound["LED"].labels["Closed"] is None

    # kinds guessed from names and labels
    kinds = {c.id: c.kind for c in profile.components}
    assert kinds["cam-camera"] == "detector"
    assert kinds["dc-q505lp"] == "dichroic" and kinds["em-chroma-hq535"] == "filter"
    assert kinds["led-led"] == "led" and kinds["ls-white-light-shutter"] == "generic_light_source"
    assert {n: s.property for n, s in bound["Camera"].settings.items()} == {
        "gain": "Gain", "offset": "Offset", "binning": "Binning", "bit_depth": "BitDepth"}
    led = bound["LED"]
    assert led.active_when is not None and led.active_when.equals == ("LED Shutter",)
    assert led.labels["470nm"].component == "led-led" and led.labels["470nm"].wavelength_nm == 470
    white = bound["White Light Shutter"]
    assert white.active_when is not None and white.active_when.equals == ("White Light Shutter",)


def test_init_prefills_only_label_facts_and_marks_every_todo(demo_core):
    result = init_profile(demo_core, "MMConfig_demo.cfg")
    profile = result.profile()
    obj = profile.component("obj-nikon-20x-plan-fluor-elwd")
    assert (obj.manufacturer, obj.nominal_magnification, obj.correction.value) == (
        "Nikon", 20, "PlanFluor")
    assert obj.lens_na is None and obj.immersion is None and obj.model is None
    hq535 = profile.component("em-chroma-hq535")
    assert (hq535.manufacturer, hq535.center_wavelength_nm) == ("Chroma", 535)
    assert hq535.transmittance_range is None and hq535.filter_type is None
    assert profile.component("dc-q505lp").cut_on_nm == 505
    assert profile.component("dc-89402bs").cut_on_nm is None
    assert profile.component("cam-camera").detector_type is None
    todo = set(profile.todo)
    for field in ("lens_na", "immersion", "working_distance_um", "model", "catalog_number"):
        assert any(t.startswith(f"components[obj-nikon-20x-plan-fluor-elwd].{field}:")
                   for t in todo), field
    assert not any(t.startswith("components[obj-nikon-20x-plan-fluor-elwd].correction")
                   for t in todo)
    assert any(t.startswith("components[cam-camera].detector_type:") for t in todo)
    assert any(t.startswith("components[ls-white-light-shutter].kind:") for t in todo)
    assert any(t.startswith("microscope.type:") for t in todo)
    assert any(t.startswith("device Path:") for t in todo)
    assert "# TODO: lens_na, immersion, working_distance_um, model, catalog_number" in result.text


def test_filled_skeleton_records_the_right_objective(demo_core, tmp_path, ome_schema):
    data = yaml.safe_load(init_profile(demo_core, "MMConfig_demo.cfg").text)
    specs = {"obj-nikon-10x-s-fluor": (0.5, "Fluor"),
             "obj-nikon-20x-plan-fluor-elwd": (0.45, "PlanFluor"),
             "obj-nikon-40x-plan-fluor-elwd": (0.6, "PlanFluor")}
    for comp in data["components"]:
        if comp["id"] in specs:
            comp.update(lens_na=specs[comp["id"]][0], immersion="Air", model=comp["name"])
        if comp["kind"] == "detector":
            comp["detector_type"] = "CCD"
    data["microscope"] = {"type": "Inverted", "manufacturer": "Micro-Manager", "model": "demo"}
    data["todo"] = []
    profile = parse_profile(data, "filled")

    demo_core.setProperty("Objective", "Label", "Nikon 20X Plan Fluor ELWD")
    out = tmp_path / "filled.ome.tif"
    seq = useq.MDASequence(channels=["FITC"], time_plan=snapped(2))
    sink = Recorder(demo_core, profile).sink(out)
    demo_core.mda.run(seq, output=sink)
    sink.raise_if_failed()

    xml, ome = load(out)
    ome_schema.validate(xml)
    assert ome.images[0].objective_settings.id == "Objective:obj-nikon-20x-plan-fluor-elwd"
    objectives = {o.id: o for o in ome.instruments[0].objectives}
    assert objectives["Objective:obj-nikon-20x-plan-fluor-elwd"].lens_na == pytest.approx(0.45)
    ch = ome.images[0].pixels.channels[0]
    assert [f.id for f in ch.light_path.excitation_filters] == ["Filter:ex-chroma-hq480"]
    assert ch.light_path.dichroic_ref.id == "Dichroic:dc-q505lp"
    assert ch.light_source_settings.id == "LightSource:ls-white-light-shutter"


def test_init_command_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "rig.yaml"
    assert main(["profile", "init", "--mm-config", "demo", "--out", str(out)]) == 0
    assert "TODO entries" in capsys.readouterr().err
    assert load_profile(out).todo
    assert main(["profile", "init", "--mm-config", "demo", "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["profile", "init", "--mm-config", str(tmp_path / "nope.cfg")]) == 2
    assert "nope.cfg: Micro-Manager configuration file not found" in capsys.readouterr().err


def test_check_reports_every_problem_one_per_line(tmp_path, capsys):
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    data["bindings"][0]["device"] = "Nosepiece"                      # not loaded
    data["bindings"][1]["labels"]["Chroma-XX999"] = None                # no such label
    camera = next(b for b in data["bindings"] if b["device"] == "Camera")
    camera["settings"]["gain"]["property"] = "AnalogGain"             # no such property
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["profile", "check", str(path), "--mm-config", "demo"]) == 1
    out = capsys.readouterr().out.splitlines()
    problems = [line for line in out if not line.startswith("warning:")]
    assert len(problems) == 3, out
    assert any("bindings[0].device: device 'Nosepiece' is not loaded" in p for p in problems)
    assert any("labels['Chroma-XX999']" in p and "has no such label" in p for p in problems)
    assert any("has no property 'AnalogGain'" in p for p in problems)
    assert all(p.startswith(f"{path}: ") for p in problems)
    assert any("Objective-2" in w for w in out if w.startswith("warning:")) is False  # unbound

    assert main(["profile", "check", str(DEMO_PROFILE), "--mm-config", "demo"]) == 0
    capsys.readouterr()

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncomponents:\n  - kind: objective\n    lens_na: high\n")
    assert main(["profile", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "bad.yaml: components[0].id" in out and "bad.yaml: components[0].lens_na" in out
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    assert main(["profile", "check", str(broken)]) == 2
    assert main(["profile", "check", str(tmp_path / "missing.yaml")]) == 2
    assert main(["profile", "check", str(DEMO_PROFILE), "--mm-config",
                 str(tmp_path / "nope.cfg")]) == 2


def test_check_lists_todos_and_stale_todos(tmp_path):
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    data["todo"] = ["components[obj-nikon-10x-sfluor].lens_na: NA from the datasheet",
                    "components[obj-nikon-10x-sfluor].serial_number: engraved on the barrel"]
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(data))
    result = check_profile(path)
    assert result.exit_code == 1
    assert result.problems == [f"{path}: todo: components[obj-nikon-10x-sfluor].serial_number: "
                               f"engraved on the barrel"]
    assert any("lens_na is filled in now" in w for w in result.warnings)


def test_missing_for_tier_maps_profile_fields_to_nbo_attributes():
    profile = load_profile(DEMO_PROFILE)
    tier1 = missing_for_tier(profile, 1)
    assert any(line.startswith("microscope.type: not set") for line in tier1)
    obj = [line for line in tier1 if "'obj-nikon-20x-pf-elwd' (Objective)" in line]
    assert any("CatalogNumber is MUST at tier 1; set catalog_number" in line for line in obj)
    assert any("ContrastModulation is MUST at tier 1; no profile field" in line for line in obj)
    assert not any("LensNA" in line or "Magnification" in line for line in obj)  # filled
    assert any("'em-chroma-89402m' (EmissionFilter): TransmittanceRange is MUST" in line
               for line in tier1)
    assert not any("'led-demo'" in line and "LEDModule" in line for line in tier1)  # labels
    assert any("'cam-demo'" in line and "detector_type not set" in line for line in tier1)
    tier2 = missing_for_tier(profile, 2)
    assert set(tier1) < set(tier2)
    assert any("'obj-nikon-20x-pf-elwd' (Objective): WorkingDistance is MUST at tier 2; set "
               "working_distance_um" in line for line in tier2)
    with pytest.raises(ValueError, match="tier must be 1, 2 or 3"):
        missing_for_tier(profile, 4)
