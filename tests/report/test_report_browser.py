"""The report of both demo files, rendered in headless Chromium (Debian's chromium and
chromium-driver, driven by selenium).

Each page is loaded from a ``file://`` URL and screenshotted into ``.ci/artifacts/`` (kept by
CI). What the rendered DOM must show is read from the file itself, with tifffile and
ome-types, never from the report's own model. Skipped when chromium or chromedriver is
missing, except in CI (``CI`` set), where they are required (``.ci/run`` installs them).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tifffile
from ome_types import OME, from_xml

from nbo_recorder.cli.main import main
from tests.helpers import REPO

ARTIFACTS = REPO / ".ci" / "artifacts"
RIGS = {"widefield": (), "spinning-disk": ("--rig", "spinning-disk")}
NS_CHANNEL = "urn:nbo-recorder:channel-settings"
NBO_NS = "{http://www.NamespaceTest.org/Schemas/NBO/2020-11}"


def _tools() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are required in CI (.ci/run installs them)")
        pytest.skip("chromium or chromedriver not installed (bash .ci/run installs them)")
    return browser, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module, with a fresh profile and no network use."""
    binary, driver = _tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = binary
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture(scope="module")
def reports(demo_file: Callable[..., Path],
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Per demo rig: its file and its report (rendered once for the module)."""
    folder = tmp_path_factory.mktemp("reports")
    out = {}
    for rig, options in RIGS.items():
        source = demo_file(*options)
        page = folder / f"{rig}.report.html"
        assert main(["report", str(source), "--out", str(page)]) == 0
        out[rig] = (source, page)
    return out


def _ome(path: Path) -> OME:
    with tifffile.TiffFile(path) as tf:
        return from_xml(tf.pages.first.description)


def _open(browser: Any, page: Path) -> None:
    browser.get(page.resolve().as_uri())
    assert browser.execute_script("return document.readyState") == "complete"


def _all(root: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(root.find_elements(By.CSS_SELECTOR, css))


def _one(root: Any, css: str) -> Any:
    found = _all(root, css)
    assert len(found) == 1, f"{css}: {len(found)} elements"
    return found[0]


def _channel_settings(ome: OME, channel: Any) -> dict[str, str]:
    refs = {r.id for r in channel.annotation_refs}
    return {m.k: m.value for a in ome.structured_annotations.map_annotations
            if a.id in refs and a.namespace == NS_CHANNEL for m in a.value.ms}


def _value(part: Any, component: str, field: str) -> Any:
    return _one(part, f'[data-component="{component}"] dd[data-field="{field}"]')


@pytest.mark.parametrize("rig", RIGS)
def test_each_channel_shows_its_light_path_with_the_recorded_values(rig, browser, reports):
    source, page = reports[rig]
    _open(browser, page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height)
    assert browser.save_screenshot(str(ARTIFACTS / f"report-{rig}.png"))

    ome = _ome(source)
    inst = ome.instruments[0]
    by_id = {c.id: c for c in [*inst.filters, *inst.dichroics, *inst.objectives,
                               *inst.detectors, *inst.light_source_group]}
    image = ome.images[0]
    sections = _all(browser, "section.channel")
    assert [s.get_attribute("data-channel") for s in sections] == [
        c.id for c in image.pixels.channels]
    for section, ch in zip(sections, image.pixels.channels, strict=True):
        assert section.is_displayed()
        path = _one(section, "ol.path")
        kinds = [li.get_attribute("data-part") for li in _all(path, "li.part")]
        assert kinds == ["light-source", "excitation-filter", "dichroic", "objective",
                         "pinhole", "emission-filter", "detector"]
        part = {k: _one(path, f'li[data-part="{k}"]') for k in kinds}

        lss = ch.light_source_settings
        assert _all(part["light-source"], ".component")[0].get_attribute(
            "data-component") == lss.id
        if lss.wavelength is not None:
            line = _value(part["light-source"], lss.id, "wavelength_nm")
            assert float(line.get_attribute("data-value")) == lss.wavelength
            assert line.text == f"{lss.wavelength:g} nm"
        observed = _channel_settings(ome, ch)
        local = lss.id.partition(":")[2]
        for key, field in (("power_mw", "power"), ("intensity_percent", "intensity")):
            if f"light_source[{local}].{key}" in observed:
                shown = _value(part["light-source"], lss.id, field)
                assert shown.text == observed[f"light_source[{local}].{key}"]

        for which, refs in (("excitation", ch.light_path.excitation_filters),
                            ("emission", ch.light_path.emission_filters)):
            li = part[f"{which}-filter"]
            shown = [c.get_attribute("data-component") for c in _all(li, ".component")]
            assert shown == [r.id for r in refs]
            assert li.get_attribute("data-state") != "none" or not refs
            for ref in refs:
                band = by_id[ref.id].transmittance_range
                if band is not None and band.cut_in is not None:
                    cut = _value(li, ref.id, "cut_in_nm")
                    assert float(cut.get_attribute("data-value")) == band.cut_in
                if band is not None and band.cut_out is not None:
                    cut = _value(li, ref.id, "cut_out_nm")
                    assert float(cut.get_attribute("data-value")) == band.cut_out
        dichroic = ch.light_path.dichroic_ref
        assert [c.get_attribute("data-component") for c in _all(part["dichroic"], ".component")
                ] == ([dichroic.id] if dichroic else [])

        objective = by_id[image.objective_settings.id]
        oid = objective.id
        assert float(_value(part["objective"], oid, "magnification").get_attribute(
            "data-value")) == objective.nominal_magnification
        na = _value(part["objective"], oid, "na")
        assert float(na.get_attribute("data-value")) == objective.lens_na
        assert na.text == f"{objective.lens_na:g}"
        assert _value(part["objective"], oid, "immersion").text == objective.immersion.value

        if ch.pinhole_size is not None:
            size = _one(part["pinhole"], 'dd[data-field="pinhole_size"]')
            assert float(size.get_attribute("data-value")) == ch.pinhole_size
        else:
            assert part["pinhole"].get_attribute("data-state") == "none"

        ds = ch.detector_settings
        assert float(_value(part["detector"], ds.id, "gain").get_attribute(
            "data-value")) == ds.gain
        assert _value(part["detector"], ds.id, "binning").text == ds.binning.value
        exposures = {p.exposure_time for p in image.pixels.planes
                     if p.the_c == image.pixels.channels.index(ch)}
        assert len(exposures) == 1
        assert _value(part["detector"], ds.id, "exposure").text == f"{exposures.pop():g} ms"


@pytest.mark.parametrize("rig", RIGS)
def test_the_spectral_strip_draws_source_lines_and_filter_bands_on_one_axis(
        rig, browser, reports):
    source, page = reports[rig]
    _open(browser, page)
    ome = _ome(source)
    filters = {f.id: f for f in ome.instruments[0].filters}
    strips = _all(browser, "svg.spectrum")
    axes = {(s.get_attribute("data-axis-lo"), s.get_attribute("data-axis-hi")) for s in strips}
    assert len(axes) == 1  # every channel on the same axis
    for ch in ome.images[0].pixels.channels:
        svg = _one(browser, f'svg[data-spectrum="{ch.id}"]')
        x0, lo, hi, width = (float(svg.get_attribute(f"data-axis-{k}"))
                             for k in ("x0", "lo", "hi", "width"))

        def at(nm: float, x0: float = x0, lo: float = lo, hi: float = hi,
               width: float = width) -> float:
            return x0 + (nm - lo) / (hi - lo) * width

        wavelength = ch.light_source_settings.wavelength
        if wavelength is not None:
            line = _one(svg, f'line[data-mark="line"][data-component='
                             f'"{ch.light_source_settings.id}"]')
            assert lo <= wavelength <= hi
            assert float(line.get_attribute("x1")) == pytest.approx(at(wavelength), abs=0.02)
        for ref in [*ch.light_path.excitation_filters, *ch.light_path.emission_filters]:
            band = filters[ref.id].transmittance_range
            if band is None or band.cut_in is None:
                continue
            rect = _one(svg, f'rect[data-mark="band"][data-component="{ref.id}"]')
            assert float(rect.get_attribute("x")) == pytest.approx(at(band.cut_in), abs=0.02)
            right = at(band.cut_out) if band.cut_out is not None else x0 + width
            assert float(rect.get_attribute("x")) + float(rect.get_attribute("width")) == (
                pytest.approx(right, abs=0.05))


@pytest.mark.parametrize("rig", RIGS)
def test_the_page_loads_nothing_but_itself(rig, browser, reports):
    _, page = reports[rig]
    _open(browser, page)
    assert browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)") == []
    assert browser.execute_script(
        "return performance.getEntriesByType('navigation').map(e => e.name)") == [
        page.resolve().as_uri()]


def test_unknown_parts_are_drawn_as_such_with_the_reason_on_hover(browser, reports):
    source, page = reports["spinning-disk"]
    _open(browser, page)
    for element in _all(browser, '[data-state="unknown"], [data-state="none"], '
                                 '[data-unknown], [data-mark="unknown"]'):
        reason = element.get_attribute("title") or _one(element, "title").get_attribute(
            "textContent")
        assert reason.strip()
    # the quad dichroic: the file states no band for it, in the OME part or the NBO record
    with tifffile.TiffFile(source) as tf:
        xml = tf.pages.first.description
    nbo = next(e for e in _nbo_elements(xml) if e.get("ID") == "Dichroic:dc-w1-quad")
    assert all(not tr.attrib for tr in nbo.iter(f"{NBO_NS}TransmittanceRange"))
    for section in _all(browser, "section.channel"):
        part = _one(section, 'li[data-part="dichroic"]')
        assert part.get_attribute("data-state") == "unknown"
        band = _one(part, 'dd[data-field="band"]')
        assert band.get_attribute("data-unknown") == "true" and band.get_attribute("title")


def _nbo_elements(xml: str) -> list[Any]:
    import xml.etree.ElementTree as ET

    return [e for e in ET.fromstring(xml).iter() if e.tag.startswith(NBO_NS)]


@pytest.mark.parametrize("rig", RIGS)
def test_the_compliance_matrix_is_what_validate_says(rig, browser, reports, capsys):
    source, page = reports[rig]
    capsys.readouterr()
    main(["validate", str(source), "--json"])
    verdicts = json.loads(capsys.readouterr().out)["verdicts"]
    _open(browser, page)
    cells = {(c.get_attribute("data-tier"), c.get_attribute("data-extension")):
             c.get_attribute("data-verdict") for c in _all(browser, "td[data-verdict]")}
    assert cells == {(t.split()[1], ext): "pass" if ok else "fail"
                     for t, per_ext in verdicts.items() for ext, ok in per_ext.items()}


def test_the_timeline_lists_the_settings_that_changed_within_a_channel(browser, reports):
    source, page = reports["spinning-disk"]
    ome = _ome(source)
    maps = {a.id: {m.k: m.value for m in a.value.ms}
            for a in ome.structured_annotations.map_annotations}
    changed: set[tuple[str, str]] = set()
    pixels = ome.images[0].pixels
    for c, ch in enumerate(pixels.channels):
        base = _channel_settings(ome, ch)
        seen: dict[str, set[str]] = {}
        planes = [p for p in pixels.planes if p.the_c == c]
        for plane in planes:
            values = dict(base)
            for ref in plane.annotation_refs:
                values.update(maps[ref.id])
            for key in {*base, *values}:
                if not key.startswith("provenance."):
                    seen.setdefault(key, set()).add(values.get(key, ""))
        changed |= {(ch.name, key) for key, v in seen.items() if len(v) > 1}
    assert changed  # the lasers' start-up delay: emission state and power change
    _open(browser, page)
    shown = {(g.get_attribute("data-channel"), g.get_attribute("data-setting"))
             for g in _all(browser, "#timeline-tracks g.track")}
    assert shown == changed


@pytest.mark.parametrize("rig", RIGS)
def test_the_methods_paragraph_is_the_methods_command_s_with_a_copy_button(
        rig, browser, reports, capsys):
    from selenium.webdriver.support.ui import WebDriverWait

    source, page = reports[rig]
    capsys.readouterr()
    assert main(["methods", str(source)]) == 0
    paragraphs = [p for p in capsys.readouterr().out.strip().split("\n\n")
                  if not p.startswith("Not recorded in this file")]
    _open(browser, page)
    assert [p.text for p in _all(browser, "#methods-text p")] == paragraphs
    # the button hands the paragraphs to the clipboard API (stood in for here, since a
    # headless browser's clipboard cannot be read back)
    browser.execute_script(
        "window.copied = null; Object.defineProperty(navigator, 'clipboard', {configurable: "
        "true, value: {writeText: t => { window.copied = t; return Promise.resolve(); }}});")
    _one(browser, "#copy-methods").click()
    WebDriverWait(browser, 5).until(lambda b: _one(b, "#copy-state").text == "copied")
    assert browser.execute_script("return window.copied") == "\n\n".join(paragraphs)
