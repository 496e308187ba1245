"""``--study``: what only the user knows reaches the file through the CLI, or is refused first."""

from __future__ import annotations

import yaml

from nbo_recorder.cli.main import main
from nbo_recorder.judge.reader import read
from tests.helpers import REPO

EXAMPLE = REPO / "hardware_profiles" / "example_study.yaml"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def test_the_example_study_is_recorded_by_demo(tmp_path, capsys):
    out = tmp_path / "sd.ome.tif"
    assert main(["demo", "--rig", "spinning-disk", "--study", str(EXAMPLE), "--out",
                 str(out)]) == 0
    stated = yaml.safe_load(EXAMPLE.read_text())
    nbo = read(out).nbo
    assert nbo is not None
    found = {_local(e.tag): e for e in nbo.iter()}
    assert found["Experiment"].get("Name") == stated["Experiment"]["Name"]
    assert found["Sample"].get("Organism") == stated["Sample"]["Organism"]
    medium, glass = stated["Sample"]["MountingMedium"], stated["Sample"]["CoverGlass"]
    assert float(found["MountingMedium"].get("RefractiveIndex")) == medium["RefractiveIndex"]
    assert found["MountingMedium"].get("Type") == medium["Type"]
    assert found["CoverGlass"].get("Manufacturer") == glass["Manufacturer"]
    parents = {_local(child.tag): _local(parent.tag) for parent in nbo.iter() for child in parent}
    assert parents["MountingMedium"] == parents["CoverGlass"] == "Sample"
    fluors = {e.get("Name") for e in nbo.iter() if _local(e.tag) == "Fluorophore"}
    assert {"EGFP", "mCherry"} <= fluors


def test_a_study_with_an_unknown_key_is_refused_before_the_rig_loads(tmp_path, capsys):
    bad = tmp_path / "study.yaml"
    bad.write_text("schema_version: 1\nSample:\n  Organsim: Homo sapiens\n")
    out = tmp_path / "never.ome.tif"
    assert main(["demo", "--study", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Sample.Organsim" in err and "unknown key" in err
    assert not out.exists()
