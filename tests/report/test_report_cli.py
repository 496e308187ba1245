"""`nbo-recorder report`: where the page goes, bad input, and files that lack things.

The pages are read here as HTML text (the browser tests in ``test_report_browser.py`` check
the rendered DOM); what each page must say is read from the file itself with ome-types and
tifffile, never from the report's own model.
"""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import useq
from ome_types import OME, from_xml

from nbo_recorder.cli.main import main
from tests.helpers import DEMO_PROFILE, snapped

FRAME_BYTES = 512 * 512 * 2  # the demo camera's frames
OME_NS = {"o": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}


class _Page(HTMLParser):
    """The page's visible text and every element's attributes (the tag and its attributes)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self._skip = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.text.append(" ".join(data.split()))

    def all_text(self) -> str:
        return " ".join(self.text)

    def with_attr(self, name: str, value: str | None = None) -> list[dict[str, str]]:
        return [a for _, a in self.elements if name in a and (value is None or a[name] == value)]


def _report(path: Path, out: Path, *extra: str) -> _Page:
    assert main(["report", str(path), "--out", str(out), *extra]) == 0
    return _Page(out.read_text(encoding="utf-8"))


def _ome(path: Path) -> OME:
    with tifffile.TiffFile(path) as tf:
        return from_xml(tf.pages.first.description)


def _run_status(ome: OME) -> str:
    sa = ome.structured_annotations
    return next(m.value for a in sa.map_annotations if a.namespace == "urn:nbo-recorder:acquisition"
                for m in a.value.ms if m.k == "status")


@pytest.fixture(scope="module")
def recovered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose OME-XML was never written and whose last page is torn, then `recover`ed."""
    from nbo_recorder.capture import sink as sink_module
    from nbo_recorder.capture.recorder import Recorder
    from nbo_recorder.rig import load_core

    def fail(*_: Any, **__: Any) -> str:
        raise RuntimeError("finalisation interrupted by the test")

    path = tmp_path_factory.mktemp("recovered") / "unfinished.ome.tif"
    core = load_core("demo")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sink_module, "build_ome_xml", fail)
            sink = Recorder(core, DEMO_PROFILE).sink(path)
            core.mda.run(useq.MDASequence(time_plan=snapped(4)), output=sink)
    finally:
        core.unloadAllDevices()
    os.truncate(path, path.stat().st_size - FRAME_BYTES // 2)  # the last page's data cut off
    assert main(["recover", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OME-TIFF tifffile wrote by itself: two named channels, no instrument, no NBO."""
    path = tmp_path_factory.mktemp("foreign") / "tifffile.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 16, 16), np.uint8), ome=True,
                     metadata={"axes": "CZYX", "Channel": {"Name": ["DAPI", "GFP"]}})
    return path


def test_report_is_written_beside_the_file_and_its_path_printed(demo_file, tmp_path, capsys):
    copy = tmp_path / "exp1.ome.tif"
    shutil.copyfile(demo_file(), copy)
    capsys.readouterr()  # what recording the demo printed
    assert main(["report", str(copy)]) == 0
    out = tmp_path / "exp1.report.html"
    assert capsys.readouterr().out.strip() == str(out)
    page = _Page(out.read_text(encoding="utf-8"))
    names = [c.name for c in _ome(copy).images[0].pixels.channels]
    assert [a["data-channel-name"] for a in page.with_attr("data-channel-name")] == names


def test_report_of_an_ome_zarr_store_shows_its_channels(demo_file, tmp_path):
    store = demo_file("--format", "ome-zarr")
    xml = ET.parse(store / "OME" / "METADATA.ome.xml").getroot()
    names = [c.get("Name") for c in xml.iterfind("o:Image/o:Pixels/o:Channel", OME_NS)]
    page = _report(store, tmp_path / "zarr.report.html")
    assert [a["data-channel-name"] for a in page.with_attr("data-channel-name")] == names
    assert names


@pytest.mark.parametrize("case", ["missing", "not-ome", "out-folder-missing"])
def test_bad_input_is_one_line_and_exit_2(case, demo_file, tmp_path, capsys):
    source = {"missing": tmp_path / "nothing.ome.tif", "not-ome": tmp_path / "plain.ome.tif",
              "out-folder-missing": demo_file()}[case]
    if case == "not-ome":
        tifffile.imwrite(source, np.zeros((8, 8), np.uint8), ome=False)  # no OME-XML
    capsys.readouterr()  # what recording the demo printed
    out = tmp_path / ("no-such-folder" if case == "out-folder-missing" else "") / "r.html"
    assert main(["report", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nbo-recorder: error:")
    assert "Traceback" not in err
    assert str(out.parent if case == "out-folder-missing" else source) in err
    assert not out.exists()


def test_the_page_refers_to_nothing_outside_itself(demo_file, tmp_path):
    html = (tmp_path / "sd.html")
    _report(demo_file("--rig", "spinning-disk"), html, "--tier", "2")
    text = html.read_text(encoding="utf-8")
    page = _Page(text)
    loads = [(tag, k, v) for tag, attrs in page.elements for k, v in attrs.items()
             if k in ("src", "href", "action", "srcset", "data", "poster", "xlink:href")]
    assert loads == []
    # CSS or SVG may refer to a fragment of the page itself (url(#hatch)), nothing else
    assert not re.search(r"url\(\s*['\"]?(?!#)|@import|<link\b|<iframe\b|<object\b|<embed\b",
                         text, re.I)
    assert [tag for tag, _ in page.elements if tag == "script"] == ["script"]  # inline only


def test_a_recovered_file_reports_its_status_and_dropped_page(recovered, tmp_path):
    ome = _ome(recovered)
    status = _run_status(ome)
    assert "recovered" in status  # what `recover` wrote: the page must show it as it is
    page = _report(recovered, tmp_path / "recovered.html")
    assert page.with_attr("id", "run-status")[0]["data-value"] == status
    text = page.all_text()
    assert status in text
    assert f"planes described {len(ome.images[0].pixels.planes)}" in text
    assert len(ome.images[0].pixels.planes) == 3  # 4 frames taken, the torn one dropped


def test_a_file_from_another_tool_reports_what_it_lacks(foreign, tmp_path):
    ome = _ome(foreign)
    assert not ome.instruments and not ome.structured_annotations.xml_annotations
    page = _report(foreign, tmp_path / "foreign.html")
    text = page.all_text()
    assert "has no 4DN-BINA-OME (NBO) record" in text
    assert "no nbo-recorder acquisition record" in text
    assert "describes no instrument" in text
    assert page.with_attr("id", "run-status")[0]["data-value"] == ""
    assert [a["data-channel-name"] for a in page.with_attr("data-channel-name")] == [
        "DAPI", "GFP"]
    parts = page.with_attr("data-part")
    assert len(parts) == 2 * 7 and all(p["data-state"] in ("unknown", "none") for p in parts)
    assert all(p.get("title") for p in parts)  # each says why, on hover
    # the compliance matrix is graded from the OME part: every cell is there
    cells = page.with_attr("data-verdict")
    assert {(c["data-tier"], c["data-extension"]) for c in cells} == {
        (str(t), e) for t in (1, 2, 3) for e in ("core", "basic", "advconf", "calib")}
