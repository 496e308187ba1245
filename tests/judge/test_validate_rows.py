"""``validate`` names what each row is about and collapses repeated rows, on a demo file.

The ground truth (which elements lack an attribute, their IDs and names, how many planes
an Image has) is read from the file's NBO record with ElementTree, not from the validator.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import tifffile

from nbo_recorder.cli.main import main

OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"
#: the top-level keys and row fields ``validate --json`` had before rows were named
JSON_KEYS = {"file", "tier", "extensions", "graded", "passed", "verdicts", "schema_errors",
             "failures", "attributes"}
ROW_FIELDS = {"element", "path", "attribute", "tier", "requirement", "extension", "status",
              "reason"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ET.Element]:
    """The widefield demo file and its NBO record (parsed straight from the TIFF)."""
    out = tmp_path_factory.mktemp("rows") / "demo.ome.tif"
    assert main(["demo", "--out", str(out)]) == 0
    with tifffile.TiffFile(out) as tf:
        root = ET.fromstring(str(tf.pages.first.description))
    value = next(x for x in root.iter(f"{OME}XMLAnnotation")
                 if "NBO" in (x.get("Namespace") or "")).find(f"{OME}Value")
    assert value is not None
    return out, value[0]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    main(["validate", *args])
    return capsys.readouterr().out


def _at(record: ET.Element, path: str) -> ET.Element:
    """The element at a report path such as ``/OME/Instrument[1]/Laser[2]``."""
    ns = record.tag.partition("}")[0] + "}"
    element = record
    for step in path.strip("/").split("/")[1:]:
        name, _, index = step.rstrip("]").partition("[")
        element = element.findall(f"{ns}{name}")[int(index or 1) - 1]
    return element


def test_json_keeps_its_structure_and_names_each_row(demo, capsys):
    out, record = demo
    report = json.loads(_run(capsys, str(out), "--tier", "3", "--json"))
    assert set(report) == JSON_KEYS
    rows = report["attributes"]
    assert rows and all(set(r) == ROW_FIELDS | {"subject"} for r in rows)
    ns = record.tag.partition("}")[0] + "}"
    instrument = record.find(f"{ns}Instrument")
    assert instrument is not None
    components = {el for el in instrument.iter() if el.get("ID")}
    seen = set()
    for row in rows:
        element = _at(record, row["path"])
        if element in components:
            label = element.get("Name") or " ".join(
                v for v in (element.get("Manufacturer"), element.get("Model")) if v)
            assert row["subject"] == element.get("ID") + (f" '{label}'" if label else "")
            seen.add("component")
        elif element.tag == f"{ns}Plane":
            pixels = _at(record, row["path"].rsplit("/", 1)[0])
            index = list(pixels.findall(f"{ns}Plane")).index(element)
            assert row["subject"] == f"Image 0, plane {index}"
            seen.add("plane")
        elif element.tag == f"{ns}Channel":
            pixels = _at(record, row["path"].rsplit("/", 1)[0])
            index = list(pixels.findall(f"{ns}Channel")).index(element)
            assert row["subject"] == f"Image 0, channel {index} '{element.get('Name')}'"
            seen.add("channel")
    assert seen == {"component", "plane", "channel"}


def test_table_rows_collapse_with_a_count_and_say_which(demo, capsys):
    out, record = demo
    report = json.loads(_run(capsys, str(out), "--tier", "1", "--json"))
    table = _run(capsys, str(out), "--tier", "1").splitlines()
    ns = record.tag.partition("}")[0] + "}"
    planes = record.findall(f".//{ns}Pixels/{ns}Plane")
    dwell = [line for line in table if "Plane PixelDwellTime" in line]
    assert dwell == [next(line for line in dwell)], "the planes' rows collapse into one"
    assert f"×{len(planes)}" in dwell[0]
    assert f"Plane PixelDwellTime (Image 0, planes 0-{len(planes) - 1})" in dwell[0]
    # every group of JSON rows shown is one table line with its count and every subject
    groups: dict[tuple[str, str, str, str], list[dict[str, str]]] = {}
    for row in report["attributes"]:
        if row["tier"] <= 1:
            groups.setdefault((row["element"], row["attribute"], row["status"], row["reason"]),
                              []).append(row)
    for (element, attribute, status, reason), rows in groups.items():
        lines = [line for line in table if f" {element} {attribute} (" in line
                 and status in line and line.endswith(f": {reason}" if reason else ")")]
        assert len(lines) == 1, (element, attribute, lines)
        count = lines[0].split(status, 1)[1].split()[0]
        assert count == (f"×{len(rows)}" if len(rows) > 1 else element)
        for row in rows:
            subject = row["subject"]
            if ", plane " not in subject and ", channel " not in subject:
                assert subject in lines[0]


def test_the_json_text_is_the_standard_librarys_byte_for_byte(demo):
    from nbo_recorder.judge.validate import ValidationReport, validate_file

    out, _ = demo
    graded = [validate_file(out, tier) for tier in (1, 3)]
    assert graded[0].failures, "the demo file is meant to fail tier 1"
    # a report with nothing failing, no rows, and text JSON must escape
    plane = ("Plane", "ExposureTime", 1, "SHOULD", "core", "missing", 'no "value"\nat all')
    named = ("Objective", "Model", 1, "MUST", "core", "present", "")
    graded.append(ValidationReport(
        file="/data/µ-run.ome.tif", tier=1, extensions=("core",), graded="an NBO record",
        elements=[("/OME/Image[1]/Pixels[1]/Plane[1]", "Image 0, plane 0", (plane,)),
                  ("/OME/Instrument[1]/Objective[1]", "Objective:1 'Plan-Apo λ 60×'",
                   (named, plane))],
        verdicts={"1": {"core": True}}))
    graded.append(ValidationReport(file="empty.ome.tif", tier=2, extensions=(),
                                   graded="an NBO record"))
    for report in graded:
        assert report.json_text() == json.dumps(report.as_json(), indent=2)
