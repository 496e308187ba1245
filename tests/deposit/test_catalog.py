"""``nbo-recorder catalog``: a folder of 240 varied demo files scanned into Parquet and queried.

The files are small copies of the two demo outputs (a 8×8 page carrying the demo's OME-XML)
whose metadata the test rewrites with ``tifffile.tiffcomment``: the objective's model, the
acquisition date, the run status, the tier the recorder recorded and a calibration that is
stale or not. The expected answers are what the test wrote.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from nbo_recorder.cli.main import main

CALIBRATION = ('<MapAnnotation ID="Annotation:cal" Namespace="urn:nbo-recorder:calibration">'
               '<Value><M K="id">{id}</M><M K="kind">excitation_power</M>'
               '<M K="date">2024-01-01</M><M K="stale">{stale}</M></Value></MapAnnotation>')


@dataclass(frozen=True)
class Made:
    """One generated file and the metadata the test gave it."""

    name: str
    channels: tuple[str, ...]
    objective: str
    date: str
    status: str
    tier_1: bool
    stale: bool


def _channels(xml: str) -> tuple[str, ...]:
    from ome_types import from_xml

    ome = from_xml(xml)
    return tuple(str(c.name) for img in ome.images for c in img.pixels.channels)


def _variant(xml: str, k: int) -> tuple[str, dict[str, Any]]:
    """The demo's OME-XML with the k-th file's objective, date, status, tier, calibration."""
    facts = {"objective": f"Objective model {k % 4}", "date": f"2025-03-{k % 28 + 1:02d}",
             "status": "complete" if k % 5 else "incomplete: canceled",
             "tier_1": k % 3 == 0, "stale": k % 2 == 0}
    used = re.search(r'<ObjectiveSettings ID="([^"]+)"', xml)
    assert used is not None
    xml = re.sub(rf'(<Objective [^>]*?)Model="[^"]*"([^>]*ID="{re.escape(used[1])}")',
                 rf'\1Model="{facts["objective"]}"\2', xml, count=1)
    xml = re.sub(r"<AcquisitionDate>[^<]*</AcquisitionDate>",
                 f"<AcquisitionDate>{facts['date']}T10:00:00Z</AcquisitionDate>", xml)
    xml = xml.replace('<M K="status">complete</M>', f'<M K="status">{facts["status"]}</M>')
    tier = "1" if facts["tier_1"] else "none"
    xml = xml.replace('<M K="tier reached">none</M>', f'<M K="tier reached">{tier}</M>')
    stale = "yes: 400 d old, maximum 180 d" if facts["stale"] else "no: 10 d old, maximum 180 d"
    # the first closing tag is the NBO record's own StructuredAnnotations
    xml = xml.replace("</StructuredAnnotations>",
                      CALIBRATION.format(id=f"cal-{k}", stale=stale)
                      + "</StructuredAnnotations>", 1)
    return xml, facts


@pytest.fixture(scope="module")
def facility(demo_file: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Made]]:
    folder = tmp_path_factory.mktemp("facility")
    made: list[Made] = []
    for rig, options in (("wf", ()), ("sd", ("--rig", "spinning-disk", "--study",
                                              "hardware_profiles/example_study.yaml"))):
        xml = str(tifffile.TiffFile(demo_file(*options)).pages.first.description)
        assert '<M K="tier reached">none</M>' in xml and '<M K="status">complete</M>' in xml
        channels = _channels(xml)
        base = folder / f"base-{rig}.tif"
        tifffile.imwrite(base, np.zeros((8, 8), np.uint8), description=xml.encode(), metadata=None)
        for k in range(120):
            sub = folder / f"rig-{rig}" / f"day-{k % 7}"
            sub.mkdir(parents=True, exist_ok=True)
            path = sub / f"{rig}-{k:03d}.ome.tif"
            shutil.copy(base, path)
            text, facts = _variant(xml, k)
            tifffile.tiffcomment(path, comment=text.encode())
            made.append(Made(path.relative_to(folder).as_posix(), channels, **facts))
        base.unlink()
    return folder, made


@pytest.fixture(scope="module")
def catalog(facility: tuple[Path, list[Made]],
            tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("catalog") / "catalog.parquet"
    assert main(["catalog", str(facility[0]), "--out", str(out)]) == 0
    return out


def _ask(catalog: Path, sql: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """``catalog query``'s printed rows (header, rule and count line removed)."""
    capsys.readouterr()
    assert main(["catalog", "query", str(catalog), sql]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"({len(lines) - 3} row{'s' if len(lines) != 4 else ''})"
    return [line.strip() for line in lines[2:-1]]


def test_every_image_channel_of_every_file_is_a_row(
        facility: tuple[Path, list[Made]], catalog: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, made = facility
    assert len(made) >= 200
    expected = sorted(f"{m.name}  {c}" for m in made for c in m.channels)
    found = _ask(catalog, "SELECT file || '  ' || channel_name FROM catalog ORDER BY 1", capsys)
    assert found == expected


def test_objective_date_and_status_are_read_from_each_file(
        facility: tuple[Path, list[Made]], catalog: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, made = facility
    found = _ask(catalog, "SELECT DISTINCT file || '|' || objective || '|' || left(date, 10) "
                          "|| '|' || status FROM catalog ORDER BY 1", capsys)
    assert found == sorted(f"{m.name}|{m.objective}|{m.date}|{m.status}" for m in made)


def test_query_answers_which_images_used_an_objective_while_its_calibration_was_stale(
        facility: tuple[Path, list[Made]], catalog: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, made = facility
    found = _ask(catalog, "SELECT DISTINCT file FROM catalog WHERE objective = "
                          "'Objective model 2' AND len(stale_calibrations) > 0 ORDER BY file",
                 capsys)
    expected = sorted(m.name for m in made if m.objective == "Objective model 2" and m.stale)
    assert expected and found == expected


def test_query_answers_which_files_miss_tier_1(
        facility: tuple[Path, list[Made]], catalog: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, made = facility
    found = _ask(catalog, "SELECT DISTINCT file FROM catalog WHERE NOT tier_1 ORDER BY file",
                 capsys)
    expected = sorted(m.name for m in made if not m.tier_1)
    assert expected and found == expected


def test_unreadable_files_are_reported_and_the_scan_goes_on(
        facility: tuple[Path, list[Made]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder, made = facility
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for m in made[:3]:
        shutil.copy(folder / m.name, mixed / Path(m.name).name)
    (mixed / "junk.tif").write_bytes(b"not a tiff at all")
    (mixed / "cut.ome.tif").write_bytes((folder / made[0].name).read_bytes()[:200])
    tifffile.imwrite(mixed / "plain.tif", np.zeros((4, 4), np.uint8))
    other = mixed / "other-tool.ome.tif"
    tifffile.imwrite(other, np.zeros((4, 4), np.uint8), metadata={"axes": "YX"})
    out = tmp_path / "mixed.parquet"
    capsys.readouterr()
    assert main(["catalog", str(mixed), "--out", str(out), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    for name in ("junk.tif", "cut.ome.tif", "plain.tif"):
        assert f"skipped {name}" in err
    assert "other-tool" not in err and "Traceback" not in err
    found = _ask(out, "SELECT DISTINCT file, tier_source FROM catalog ORDER BY file", capsys)
    assert [re.split(r"\s+", line) for line in found] == sorted(
        [[Path(m.name).name, "recorded"] for m in made[:3]] + [["other-tool.ome.tif",
                                                               "graded"]])


def test_query_with_bad_sql_is_bad_input(catalog: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "query", str(catalog), "SELECT nope FROM catalog"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err


def test_output_into_a_missing_folder_is_bad_input_before_any_work(
        facility: tuple[Path, list[Made]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder, made = facility
    missing = tmp_path / "no" / "such"
    capsys.readouterr()
    assert main(["catalog", str(tmp_path), "--out", str(missing / "c.parquet")]) == 2
    assert main(["deposit", str(folder / made[0].name), "--out", str(missing / "crate")]) == 2
    err = capsys.readouterr().err
    assert err.count("does not exist") == 2 and "Traceback" not in err
    assert not (tmp_path / "no").exists()
