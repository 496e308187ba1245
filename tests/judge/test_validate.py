"""nbo-recorder validate: grading files against NBO tiers, and what bad input gets."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import tifffile
import useq
import yaml

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.cli.main import main
from nbo_recorder.judge.reader import read
from nbo_recorder.profile.load import parse_profile
from nbo_recorder.vocabulary import NBO_NAMESPACE, UNKNOWN_TEXT
from tests.helpers import DEMO_FACTS, DEMO_PROFILE, DEMO_STAND, STUDY, py_profile

#: the experiment as a user states it, complete for tier 1
COMPLETE_STUDY = copy.deepcopy(STUDY)
COMPLETE_STUDY["nbo"]["Experiment"]["Name"] = "Nuclear envelope in fixed HeLa"
for fluor in COMPLETE_STUDY["nbo"]["Fluorophore"].values():
    fluor.update({"ExcitationWavelength": 358, "EmissionWavelength": 461})


def _element_at(record: ET.Element, path: str) -> ET.Element:
    """The element of the NBO record at a report path such as ``/OME/Instrument[1]/Laser[2]``."""
    element = record
    for step in path.strip("/").split("/")[1:]:
        name, _, index = step.rstrip("]").partition("[")
        element = element.findall(f"{{{NBO_NAMESPACE}}}{name}")[int(index or 1) - 1]
    return element


def _complete_profile(drop: tuple[str, str] | None = None):
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    data["microscope"].update(DEMO_STAND)
    for comp in data["components"]:
        comp["extra"] = DEMO_FACTS.get(comp["id"])
        if drop and comp["id"] == drop[0]:
            comp.pop(drop[1])
    return parse_profile(data, "complete demo profile")


@pytest.fixture
def record(demo_core, tmp_path, monkeypatch):

    def run(name: str, drop: tuple[str, str] | None = None):
        out = tmp_path / name
        seq = useq.MDASequence(channels=["DAPI", "FITC"], metadata=COMPLETE_STUDY)
        demo_core.mda.run(seq, output=Recorder(demo_core, _complete_profile(drop)).sink(out))
        return out

    return run


def test_complete_profile_passes_tier_1(record, capsys):
    out = record("complete.ome.tif")
    assert main(["validate", str(out), "--tier", "1"]) == 0, capsys.readouterr().out
    assert "NBO tier 1, extensions core, basic, advconf, calib: PASS" in capsys.readouterr().out


def test_one_missing_tier1_must_fails_and_is_named_exactly(record, capsys):
    out = record("no-na.ome.tif", drop=("obj-nikon-10x-sfluor", "lens_na"))
    assert main(["validate", str(out), "--tier", "1", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failing = {(f["element"], f["attribute"]) for f in report["failures"]}
    assert failing == {("Objective", "LensNA")}
    assert report["verdicts"]["tier 1"]["core"] is False
    assert main(["validate", str(out), "--tier", "1"]) == 1
    table = capsys.readouterr().out
    assert "Objective" in table and "LensNA" in table and "missing" in table


def test_missing_tier3_attributes_do_not_fail_tier_1_or_2(record, capsys):
    out = record("complete.ome.tif")
    assert main(["validate", str(out), "--tier", "3", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    tier3_missing = [r for r in report["failures"] if r["tier"] == 3]
    assert tier3_missing, "the demo profile leaves tier-3 MUST attributes empty"
    # the demo profile states no filter's AttenuationMethod, a tier-2 MUST: tier 2 fails
    record = read(out).nbo
    assert record is not None
    filters = list(record.iter(f"{{{NBO_NAMESPACE}}}EmissionFilter"))
    assert filters and all(f.get("AttenuationMethod") is None for f in filters)
    assert main(["validate", str(out), "--tier", "2", "--json"]) == 1
    report2 = json.loads(capsys.readouterr().out)
    assert all(r["tier"] <= 2 for r in report2["failures"])
    failing = {(r["element"], r["attribute"]) for r in report2["failures"]}
    assert ("EmissionFilter", "AttenuationMethod") in failing
    for row in report2["failures"]:  # each one is an attribute the record really lacks
        assert _element_at(record, row["path"]).get(row["attribute"]) in (None, UNKNOWN_TEXT)
    assert main(["validate", str(out), "--tier", "1"]) == 0


def test_extensions_limit_what_is_graded(record, capsys):
    out = record("no-na.ome.tif", drop=("obj-nikon-10x-sfluor", "lens_na"))
    assert main(["validate", str(out), "--extensions", "basic,advconf", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["extension"] for r in report["attributes"]} <= {"basic", "advconf"}
    assert main(["validate", str(out), "--extensions", "core,bogus"]) == 2
    assert "unknown ['bogus']" in capsys.readouterr().err


def test_unreadable_files_exit_2_with_a_clear_message(tmp_path, capsys):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, [[1, 2], [3, 4]])
    assert main(["validate", str(plain)]) == 2
    assert "plain.tif" in capsys.readouterr().err
    garbage = tmp_path / "garbage.ome.tif"
    garbage.write_bytes(b"not a tiff at all")
    assert main(["validate", str(garbage), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["readable"] is False


@pytest.mark.parametrize("command", ["validate", "methods", "report"])
def test_each_reader_says_why_a_file_is_not_an_ome_tiff(command, tmp_path, capsys):
    plain = tmp_path / "plain.tif"  # a TIFF with no ImageDescription at all
    tifffile.imwrite(plain, [[1, 2], [3, 4]], metadata=None)
    with tifffile.TiffFile(plain) as tf:
        assert 270 not in tf.pages.first.tags
    described = tmp_path / "described.tif"
    tifffile.imwrite(described, [[1, 2], [3, 4]], description="a microscope image",
                     metadata=None)
    garbage = tmp_path / "garbage.ome.tif"
    garbage.write_bytes(b"not a tiff at all")
    for path, why in ((plain, "TIFF without OME-XML in its first ImageDescription"),
                      (described, "TIFF without OME-XML in its first ImageDescription"),
                      (garbage, "not a readable TIFF (not a TIFF file)"),
                      (tmp_path / "missing.ome.tif", "")):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{path}: {why}" in err and "Traceback" not in err, err
        assert why or "no such file" in err.lower(), err
        assert len(err.strip().splitlines()) == 1, err


def test_truncated_recording_is_not_a_traceback(record, tmp_path, capsys):
    out = record("complete.ome.tif")
    data = out.read_bytes()
    # the OME-XML is written after the pixels, so the first 5000 bytes lose it: unreadable
    assert data.find(b"<OME") > 5000
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(data[:5000])
    assert main(["validate", str(cut)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cut.ome.tif" in err


def test_other_tools_ome_tiff_is_graded_from_its_ome_part(demo_core, tmp_path, capsys):
    out = tmp_path / "pmp.ome.tif"
    demo_core.mda.run(useq.MDASequence(channels=["DAPI"]), output=str(out))
    assert main(["validate", str(out), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["graded"].startswith("the OME part")
    assert report["failures"]


def test_unreadable_setting_is_reported_as_unknown_at_acquisition(py_core, tmp_path, capsys):
    py_core._pydevices["PyLaser"].fail_reads = True
    out = tmp_path / "unknown.ome.tif"
    seq = useq.MDASequence(channels=[{"config": "GFP", "group": "PyChannel"}])
    py_core.mda.run(seq, output=Recorder(py_core, py_profile()).sink(out))
    # py_profile() names no manufacturer for its laser, a tier-1 MUST: the file fails tier 1
    record = read(out).nbo
    assert record is not None
    laser = record.find(f".//{{{NBO_NAMESPACE}}}Laser")
    assert laser is not None and laser.get("Manufacturer") is None
    assert main(["validate", str(out), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert ("Laser", "Manufacturer") in {(r["element"], r["attribute"]) for r in report["failures"]}
    rows = report["attributes"]
    power = [r for r in rows if r["attribute"] == "IlluminationPowerSettings"
             and "PyLaser" in r["reason"]]
    assert power and power[0]["status"] == "unknown at acquisition"
    assert "laser did not answer" in power[0]["reason"]


def test_an_led_module_without_its_power_is_a_graded_gap_not_an_invalid_record(tmp_path,
                                                                               capsys):
    """The NBO sheet nests IlluminationWavelengthRange under LEDModule, where the XSD makes
    LEDModule extend its type: the rules table must grade LEDModule's own IlluminationPower
    (a tier-1 MUST the profile does not state for the pE-300 channels), so validate lists it
    as missing per LED instead of calling the record invalid."""
    out = tmp_path / "sd.ome.tif"
    assert main(["demo", "--rig", "spinning-disk", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["validate", str(out), "--tier", "1", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["schema_errors"] == []
    modules = [row for row in report["failures"]
               if row["element"] == "LEDModule" and row["attribute"] == "IlluminationPower"]
    leds = read(out).nbo.findall(f".//{{{NBO_NAMESPACE}}}LEDModule")
    assert len(modules) == len(leds) == 3
    assert all(led.get("IlluminationPower") is None for led in leds)


def test_the_record_is_graded_alone_only_where_the_rest_is_well_formed(demo_file, tmp_path,
                                                                        capsys, monkeypatch):
    # validate parses a recorder's NBO record on its own (a long run's OME part is half
    # the text); the rest must still be well-formed, and neither a record-like text inside
    # a comment nor the recorder's record behind another one may be taken for the record
    from nbo_recorder.judge import validate as validate_module
    from nbo_recorder.judge.reader import read_ome_xml
    from nbo_recorder.judge.validate import validate_file

    text = read_ome_xml(demo_file())
    record_at = text.index(f'<OME xmlns="{NBO_NAMESPACE}"')

    def written(name: str, description: str):
        out = tmp_path / name
        tifffile.imwrite(out, np.zeros((4, 4), np.uint16), description=description.encode(),
                         metadata=None)
        return out

    broken = text.replace("</Pixels>", "</Pixel>", 1)
    assert broken.index("</Pixel>") < record_at
    assert main(["validate", str(written("broken.ome.tif", broken))]) == 2
    err = capsys.readouterr().err
    assert "broken.ome.tif: its OME-XML is not well-formed" in err and "Traceback" not in err
    at = text.index("<StructuredAnnotations>")
    decoy = f'<!-- <OME xmlns="{NBO_NAMESPACE}"><Instrument ID="Instrument:9"/></OME> -->'
    commented = validate_file(written("commented.ome.tif", text[:at] + decoy + text[at:]))
    plain = validate_file(written("plain.ome.tif", text))
    assert plain.graded == "the embedded NBO v2.01 record" and plain.rows
    assert commented.rows == plain.rows and commented.schema_errors == plain.schema_errors
    first = (f"<XMLAnnotation ID='Annotation:first' Namespace='{NBO_NAMESPACE}'><Value>"
             f"<OME xmlns='{NBO_NAMESPACE}'><Experimenter ID='Experimenter:9'/></OME>"
             "</Value></XMLAnnotation>")
    at = text.index("<XMLAnnotation")
    two = written("two.ome.tif", text[:at] + first + text[at:])
    graded = validate_file(two)
    assert graded.rows != plain.rows
    monkeypatch.setattr(validate_module, "_record_alone", lambda xml: None)  # parse it whole
    whole = validate_file(two)
    assert graded.rows == whole.rows and graded.schema_errors == whole.schema_errors
