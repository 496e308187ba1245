"""``validate`` grades a long run's Planes from the first of them, and says the same.

The ground truth is the same file graded Plane by Plane (the grading every other file
gets, with cutting turned off): each report must be the same, text and JSON, and a Plane
unlike the first (an attribute more or less, a bad value, a child, a value recorded as
unknown, broken XML) must make it grade Plane by Plane, so the report names that Plane.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from nbo_recorder.cli.main import main
from nbo_recorder.judge import plane_runs
from nbo_recorder.judge.reader import read_ome_xml
from nbo_recorder.judge.validate import GradedRun, format_report, validate_file
from nbo_recorder.nbo.rules import EXTENSIONS
from nbo_recorder.vocabulary import NBO_NAMESPACE, UNKNOWN_TEXT

PLANES = 300
_PLANE = re.compile(r"<Plane [^<>]*/>")


@pytest.fixture(scope="module")
def long_run_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo file's OME-XML with its record's Planes replaced by ``PLANES`` Planes made
    from its first (childless) one: a long time-lapse's Planes, which differ in values."""
    out = tmp_path_factory.mktemp("runs") / "demo.ome.tif"
    assert main(["demo", "--out", str(out)]) == 0
    text = read_ome_xml(out)
    record_at = text.index(f'<OME xmlns="{NBO_NAMESPACE}"')
    pixels_at = text.index("<Pixels ", record_at)
    first = _PLANE.search(text, pixels_at)
    assert first is not None and first.start() == text.index("<Plane ", pixels_at)
    last_end = text.index("</Plane>", text.rindex("<Plane ", pixels_at,
                                                   text.index("</Pixels>", pixels_at)))
    assert text.startswith("</Plane>", last_end)  # the demo's last Plane has a child
    planes = "".join(_numbered(first.group(), k) for k in range(PLANES))
    return text[:first.start()] + planes + text[last_end + len("</Plane>"):]


def _numbered(plane: str, k: int) -> str:
    plane = re.sub(r' ID="Plane:0:\d+"', f' ID="Plane:0:{k}"', plane)
    plane = re.sub(r' TheT="\d+"', f' TheT="{k}"', plane)
    return re.sub(r' Timestamp="[^"]*"', f' Timestamp="{0.05 * k:.3f}"', plane)


def _written(folder: Path, name: str, description: str) -> Path:
    out = folder / name
    tifffile.imwrite(out, np.zeros((4, 4), np.uint16), description=description.encode(),
                     metadata=None)
    return out


def _reports(path: Path, monkeypatch: pytest.MonkeyPatch, tier: int = 1,
             extensions: tuple[str, ...] = EXTENSIONS):
    """``path`` graded as ``validate`` grades it, and graded Plane by Plane."""
    cut = validate_file(path, tier, extensions)
    with monkeypatch.context() as patch:
        patch.setattr(plane_runs, "MIN_PLANES", 10 ** 9)
        whole = validate_file(path, tier, extensions)
    return cut, whole


def _same(cut, whole) -> None:
    assert format_report(cut) == format_report(whole)
    assert format_report(cut, all_rows=True) == format_report(whole, all_rows=True)
    assert format_report(cut, failures_only=True) == format_report(whole, failures_only=True)
    assert cut.json_text() == whole.json_text()
    assert cut.verdicts == whole.verdicts and cut.schema_errors == whole.schema_errors


def _runs(report) -> list[GradedRun]:
    return [item for item in report.elements if isinstance(item, GradedRun)]


@pytest.mark.parametrize(("tier", "extensions"), [(1, EXTENSIONS), (3, EXTENSIONS),
                                                   (2, ("core", "advconf"))])
def test_a_long_runs_planes_are_reported_as_when_each_is_graded(long_run_text, tmp_path,
                                                                 monkeypatch, tier, extensions):
    path = _written(tmp_path, "long.ome.tif", long_run_text)
    cut, whole = _reports(path, monkeypatch, tier, extensions)
    _same(cut, whole)
    # the run was graded from its first Plane, and stands for every other one
    assert [(run.first, run.size) for run in _runs(cut)] == [(1, PLANES - 1)] * len(_runs(cut))
    assert _runs(cut) and not _runs(whole)
    plane_rows = [row for row in whole.rows if row.element == "Plane"]
    assert {row.path for row in plane_rows} == {
        f"/OME/Image[1]/Pixels[1]/Plane[{k}]" for k in range(1, PLANES + 1)}
    table = format_report(cut, all_rows=True)
    assert f"×{PLANES}  Plane ExposureTime (Image 0, planes 0-{PLANES - 1})" in table


def _plane_changed(text: str, k: int, change) -> str:
    """``text`` with the record's Plane ``k`` (0-based) replaced by ``change(plane)``."""
    record_at = text.index(f'<OME xmlns="{NBO_NAMESPACE}"')
    found = list(_PLANE.finditer(text, text.index("<Pixels ", record_at)))[k]
    return text[:found.start()] + change(found.group()) + text[found.end():]


#: Planes unlike the first, each a reason to grade Plane by Plane
DEFECTS = {
    "lacks an attribute": lambda p: re.sub(r' ExposureTime="[^"]*"', "", p),
    "has an attribute too many": lambda p: p.replace(" />", ' DeltaT="1.0" />'),
    "has a value the XSD rejects": lambda p: re.sub(r' TheZ="\d+"', ' TheZ="-1"', p),
    "has a child": lambda p: p.replace(" />", '><AnnotationRef ID="Annotation:0" /></Plane>'),
    "has a value recorded as unknown": lambda p: re.sub(
        r' ExposureTime="[^"]*"', f' ExposureTime="{UNKNOWN_TEXT}"', p),
    "has it as character references": lambda p: re.sub(
        r' ExposureTime="[^"]*"', ' ExposureTime="&#117;' + UNKNOWN_TEXT[1:] + '"', p),
}


@pytest.mark.parametrize("where", [0, 150, PLANES - 1])
@pytest.mark.parametrize("defect", list(DEFECTS))
def test_a_plane_unlike_the_first_is_graded_where_it_is(long_run_text, tmp_path, monkeypatch,
                                                        defect, where):
    text = _plane_changed(long_run_text, where, DEFECTS[defect])
    path = _written(tmp_path, "odd.ome.tif", text)
    cut, whole = _reports(path, monkeypatch)
    _same(cut, whole)
    assert not _runs(cut)
    at = f"/OME/Image[1]/Pixels[1]/Plane[{where + 1}]"
    exposure = {row.status for row in cut.rows
                if row.path == at and row.attribute == "ExposureTime"}
    if defect == "has a value the XSD rejects":
        assert any(error.startswith(f"{at}:") for error in cut.schema_errors)
    if defect == "lacks an attribute":
        assert exposure == {"missing"}
    elif defect.startswith("has a value recorded") or defect.endswith("references"):
        assert exposure == {"unknown at acquisition"}
    else:
        assert exposure == {"present"}


def test_a_run_that_is_not_well_formed_is_refused_as_any_file(long_run_text, tmp_path,
                                                             monkeypatch, capsys):
    # an attribute twice: not well-formed
    text = _plane_changed(long_run_text, 150, lambda p: p.replace(' TheZ="', ' TheZ="0" TheZ="'))
    path = _written(tmp_path, "broken.ome.tif", text)
    assert main(["validate", str(path)]) == 2
    cut = capsys.readouterr().err
    with monkeypatch.context() as patch:
        patch.setattr(plane_runs, "MIN_PLANES", 10 ** 9)
        assert main(["validate", str(path)]) == 2
    whole = capsys.readouterr().err
    assert cut == whole and "broken.ome.tif: its OME-XML is not well-formed" in cut


def test_only_long_runs_are_cut_and_the_cut_keeps_everything_else(long_run_text):
    record_at = long_run_text.index(f'<OME xmlns="{NBO_NAMESPACE}"')
    record = long_run_text[record_at:long_run_text.index("</OME>", record_at) + len("</OME>")]
    cut = plane_runs.cut_runs(record)
    assert [(run.pixels, run.count, sum(size for *_, size in run.pieces))
            for run in cut.runs] == [(0, PLANES - 1, PLANES)]
    planes = _PLANE.findall(record)
    assert cut.text == record.replace("".join(planes[1:]), "")
    # every Plane is in one piece, once, each piece's Planes counted
    pieces = [record[start:end] for start, end, _ in cut.runs[0].pieces]
    assert "".join(_PLANE.findall("".join(pieces))) == "".join(planes)
    assert [len(_PLANE.findall(piece)) for piece in pieces] == [
        size for *_, size in cut.runs[0].pieces]
    # a record inside a longer text: the pieces are places in that text
    wrapped = plane_runs.cut_runs(long_run_text, record_at, record_at + len(record))
    assert wrapped.text == cut.text
    assert [(a - record_at, b - record_at, n) for a, b, n in wrapped.runs[0].pieces] == list(
        cut.runs[0].pieces)
    few = record.replace("".join(planes[plane_runs.MIN_PLANES - 1:]), "")
    assert plane_runs.cut_runs(few).runs == () and plane_runs.cut_runs(few).text == few


@pytest.mark.parametrize(("first", "count"), [(1, 1), (1, 8), (1, 9), (1, 299), (5, 95),
                                              (98, 3), (1, 99_999), (123, 45_678)])
def test_a_run_sorts_where_its_first_member_in_text_order_does(first, count):
    run = GradedRun("/OME/Image[1]/Pixels[1]/Plane[", "Image 0, plane ", True, first, count, ())
    paths = [path for path, _, _ in run.members()]
    assert len(paths) == count and paths[0] == f"/OME/Image[1]/Pixels[1]/Plane[{first + 1}]"
    assert run.least_path() == min(paths)
    assert all(run.member_at(path) for path in (paths[0], paths[-1]))
    assert not run.member_at(f"{run.path}{first}]")
    assert not run.member_at(f"{run.path}{first + count + 1}]")


def test_each_pixels_run_is_cut_on_its_own(long_run_text, tmp_path, monkeypatch):
    # a record of two Images (the second a copy of the first under other IDs), each of
    # whose Pixels holds a long run
    record_at = long_run_text.index(f'<OME xmlns="{NBO_NAMESPACE}"')
    image_at = long_run_text.index("<Image ", record_at)
    image_end = long_run_text.index("</Image>", image_at) + len("</Image>")
    image = long_run_text[image_at:image_end]
    second = (image.replace('ID="Image:0"', 'ID="Image:1"')
              .replace('ID="Pixels:0"', 'ID="Pixels:1"').replace('ID="Plane:0:', 'ID="Plane:1:'))
    assert second.count('ID="Plane:1:') == PLANES
    text = long_run_text[:image_end] + second + long_run_text[image_end:]
    record = text[record_at:text.index("</OME>", record_at) + len("</OME>")]
    cut = plane_runs.cut_runs(record)
    assert [(run.pixels, run.count) for run in cut.runs] == [(0, PLANES - 1), (1, PLANES - 1)]
    graded, whole = _reports(_written(tmp_path, "two.ome.tif", text), monkeypatch)
    _same(graded, whole)
    assert len(_runs(graded)) == 2 * len([r for r in _runs(graded) if "Image[1]" in r.path])
    assert f"Plane ExposureTime (Image 0, planes 0-{PLANES - 1}; Image 1, planes 0-{PLANES - 1})" \
        in format_report(graded, all_rows=True)


@pytest.mark.parametrize("defect", [None, "has a value the XSD rejects", "lacks an attribute"])
def test_a_run_checked_in_many_pieces_per_thread_is_graded_alike(long_run_text, tmp_path,
                                                                 monkeypatch, defect):
    # seven pieces of at most 45 Planes on two threads: each thread checks several in turn
    monkeypatch.setattr(plane_runs, "_PIECE_PLANES", 45)
    text = long_run_text if defect is None else _plane_changed(long_run_text, 200,
                                                                DEFECTS[defect])
    path = _written(tmp_path, "pieces.ome.tif", text)
    cut = plane_runs.cut_runs(text, text.index(f'<OME xmlns="{NBO_NAMESPACE}"'))
    assert [len(run.pieces) for run in cut.runs] == [7]
    graded, whole = _reports(path, monkeypatch)
    _same(graded, whole)
    assert bool(_runs(graded)) == (defect is None)
