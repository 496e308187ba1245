"""The Methods text meets the QUAREP-LiMi bare-minimum checklist on the spinning-disk demo.

Every checklist item the file holds appears with the file's value; the values are read here
from the file's raw OME-XML and embedded NBO record with ElementTree (not through the reader
the text is written from); what the file lacks is listed as missing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import tifffile

from nbo_recorder.cli.main import main
from nbo_recorder.judge.methods import build_methods, methods_of
from nbo_recorder.judge.methods_parts import a
from nbo_recorder.judge.reader import read

OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"
#: how the text names the OME AcquisitionModes the demo rigs record
MODALITY = {"SpinningDiskConfocal": "spinning-disk confocal", "BrightField": "bright-field",
            "WideField": "wide-field"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ET.Element, ET.Element]:
    """The spinning-disk demo file, its OME-XML and its NBO record, parsed independently."""
    out = tmp_path_factory.mktemp("checklist") / "sd.ome.tif"
    assert main(["demo", "--rig", "spinning-disk", "--out", str(out)]) == 0
    with tifffile.TiffFile(out) as tf:
        root = ET.fromstring(str(tf.pages.first.description))
    value = next(x for x in root.iter(f"{OME}XMLAnnotation")
                 if "NBO" in (x.get("Namespace") or "")).find(f"{OME}Value")
    assert value is not None and len(value) == 1
    return out, root, value[0]


@pytest.fixture(scope="module")
def text(recorded: tuple[Path, ET.Element, ET.Element]) -> tuple[str, str]:
    """The Methods body and its 'Not recorded' list."""
    body, _, missing = methods_of(recorded[0]).text().partition("Not recorded in this file: ")
    return body, missing


def _sentence(body: str, channel: str) -> str:
    return next(line for line in body.splitlines() if line.startswith(f"{channel}:"))


def _by_id(root: ET.Element, ident: str) -> ET.Element:
    """The element defining ``ident`` (not a reference to it, nor settings naming it)."""
    return next(el for el in root.iter() if el.get("ID") == ident
                and not el.tag.endswith(("Ref", "Settings")))


def _map(root: ET.Element, element: ET.Element, ns: str) -> dict[str, str]:
    """Key -> value of the map annotations ``element`` refers to."""
    out: dict[str, str] = {}
    for ref in element.iter(f"{ns}AnnotationRef"):
        for m in _by_id(root, ref.get("ID", "")).iter(f"{ns}M"):
            out[m.get("K", "")] = m.text or ""
    return out


def test_stand_modality_modules_and_objective(recorded, text):
    _, root, nbo = recorded
    body, missing = text
    intro = next(line for line in body.splitlines() if line.startswith("Images were acquired"))
    mic = root.find(f"{OME}Instrument/{OME}Microscope")
    assert mic is not None
    assert f"{mic.get('Type', '').lower()} microscope stand made by {mic.get('Manufacturer')}" \
        in intro and f"model {mic.get('Model')}" in intro
    channels = root.findall(f".//{OME}Channel")
    for ch in channels:
        assert f"{MODALITY[ch.get('AcquisitionMode', '')]} microscopy" in intro
    ns = nbo.tag.partition("}")[0] + "}"
    disks = list(nbo.iter(f"{ns}SpinningDisk"))
    assert disks, "the spinning-disk rig records its disk unit"
    unit = _map(nbo, disks[0], ns)
    assert f"{a(unit['Manufacturer'])} {unit['Manufacturer']} {unit['Model']} spinning-disk " \
           "unit" in intro
    image = root.find(f"{OME}Image")
    assert image is not None
    settings = image.find(f"{OME}ObjectiveSettings")
    assert settings is not None
    obj = _by_id(root, settings.get("ID", ""))
    for phrase in (f"{obj.get('Model')} objective",
                   f"{float(obj.get('NominalMagnification', '')):g}×",
                   f"NA {float(obj.get('LensNA', '')):g}",
                   f"{obj.get('Immersion', '').lower()} immersion",
                   f"{obj.get('Correction')} correction"):
        assert phrase in intro
    if not list(nbo.iter(f"{ns}MagnificationChanger")):
        assert "additional magnification (optovar, camera adapter) or 'none'" in missing
    # grammar: "an" before a vowel, and the stand is never the article's noun by its make
    assert not re.search(r"\ba [aeiouAEIOU]", body) and " a nbo" not in body
    assert not re.search(r"\b(Filter|LightSource|Dichroic|Detector|Objective):", body)


def test_each_channel_states_its_light_path_detector_and_exposure(recorded, text):
    _, root, nbo = recorded
    body, missing = text
    anns = {m.get("ID"): {x.get("K"): x.text for x in m.iter(f"{OME}M")}
            for m in root.iter(f"{OME}MapAnnotation")}
    planes = root.findall(f".//{OME}Plane")
    for c, ch in enumerate(root.findall(f".//{OME}Channel")):
        name = ch.get("Name", "")
        sentence = _sentence(body, name)
        ls_settings = ch.find(f"{OME}LightSourceSettings")
        assert ls_settings is not None
        source = _by_id(root, ls_settings.get("ID", ""))
        kind = {"Laser": "laser", "LightEmittingDiode": "LED"}[source.tag.removeprefix(OME)]
        assert kind in sentence
        assert f"({source.get('Manufacturer')} {source.get('Model')})" in sentence
        assert f"at {float(ls_settings.get('Wavelength', '')):g} nm" in sentence
        observed: dict[str, str | None] = {}
        for ref in ch.findall(f"{OME}AnnotationRef"):
            observed.update(anns[ref.get("ID")])
        component = source.get("ID", "").split(":", 1)[1]
        power = observed.get(f"light_source[{component}].power_mw")
        intensity = observed.get(f"light_source[{component}].intensity_percent")
        assert (f"{power} set at the source" if power else f"{intensity} intensity") in sentence
        path = ch.find(f"{OME}LightPath")
        assert path is not None
        bands = []
        for ref in path.findall(f"{OME}EmissionFilterRef"):
            f = _by_id(root, ref.get("ID", ""))
            assert f"emission filter {' '.join(v for v in (f.get('Manufacturer'), f.get('Model')) if v)}" in sentence  # noqa: E501
            tr = f.find(f"{OME}TransmittanceRange")
            assert tr is not None
            bands.append((float(tr.get("CutIn", "0")), float(tr.get("CutOut", "inf"))))
        if not bands:
            assert f"{name}: emission filter band or detection window" in missing
        dichroic = path.find(f"{OME}DichroicRef")
        assert dichroic is not None
        assert f"dichroic mirror {_by_id(root, dichroic.get('ID', '')).get('Model')}" in sentence
        det_settings = ch.find(f"{OME}DetectorSettings")
        assert det_settings is not None
        det = _by_id(root, det_settings.get("ID", ""))
        assert f"{det.get('Manufacturer')} {det.get('Model')}" in sentence
        if det.get("Type") is None:
            assert f"{name}: detector type" in missing
        else:
            kind = {"PMT": "photomultiplier tube", "APD": "avalanche photodiode"}.get(
                det.get("Type", ""), det.get("Type", "").lower())
            assert kind in sentence.lower()
        exposures = {float(p.get("ExposureTime", "")) for p in planes if p.get("TheC") == str(c)}
        assert {p.get("ExposureTimeUnit") for p in planes} == {"ms"}
        assert len(exposures) == 1 and f"exposure {exposures.pop():g} ms" in sentence
        if ch.get("PinholeSize") is not None:
            _check_airy(root, nbo, ch, bands, sentence)


def _check_airy(root: ET.Element, nbo: ET.Element, ch: ET.Element,
                bands: list[tuple[float, float]], sentence: str) -> None:
    """The pinhole in Airy units: d / (1.22 λ_em / NA × M), λ_em the channel's emission
    wavelength or the centre of the emission window its filters leave, M the objective's
    magnification times that of the magnification changers in the channel's light path."""
    image = root.find(f"{OME}Image")
    assert image is not None
    settings = image.find(f"{OME}ObjectiveSettings")
    assert settings is not None
    obj = _by_id(root, settings.get("ID", ""))
    if ch.get("EmissionWavelength"):
        wavelength = float(ch.get("EmissionWavelength", ""))
    else:
        wavelength = (max(b[0] for b in bands) + min(b[1] for b in bands)) / 2
    assert ch.get("PinholeSizeUnit", "µm") == "µm"
    ns = nbo.tag.partition("}")[0] + "}"
    magnification = float(obj.get("NominalMagnification", ""))
    for lens in _by_id(nbo, ch.get("ID", "")).iter(f"{ns}LensSettings"):
        changer = _by_id(nbo, lens.get("ID", ""))
        if changer.tag == f"{ns}MagnificationChanger":
            magnification *= float(changer.get("Magnification", ""))
    airy = 1.22 * wavelength / 1000 / float(obj.get("LensNA", "")) * magnification
    au = float(ch.get("PinholeSize", "")) / airy
    assert f"pinhole {float(ch.get('PinholeSize', '')):g} µm ({au:.1f} AU at λ_em " \
           f"{wavelength:g} nm)" in sentence


def test_acquisition_geometry_channel_mode_and_software(recorded, text):
    _, root, nbo = recorded
    body, _ = text
    assert "1 AU = 1.22·λ_em/NA in the sample plane" in body
    px = root.find(f".//{OME}Pixels")
    assert px is not None
    assert f"pixel size in the sample plane was {float(px.get('PhysicalSizeX', '')):g} µm" in body
    assert f"acquired at {float(px.get('PhysicalSizeZ', '')):g} µm steps" in body
    assert f"every {float(px.get('TimeIncrement', '')):g} s" in body
    stamps: dict[tuple[str | None, str | None], set[str | None]] = {}
    for p in px.findall(f"{OME}Plane"):
        stamps.setdefault((p.get("TheT"), p.get("TheZ")), set()).add(p.get("DeltaT"))
    sequential = all(len(s) == int(px.get("SizeC", "")) for s in stamps.values())
    assert sequential and "The channels were acquired sequentially" in body
    ns = nbo.tag.partition("}")[0] + "}"
    software = list(nbo.iter(f"{ns}AcquisitionSoftware"))
    assert software
    for el in software:
        if el.get("Name") == "nbo-recorder":
            assert f"the metadata were recorded by nbo-recorder {el.get('Version')}" in body
        else:
            assert f"{el.get('Name')} {el.get('Version')} ({el.get('Developer')}" in body


def test_specimen_gaps_are_listed_and_labels_named(recorded, text):
    _, root, nbo = recorded
    body, missing = text
    ns = nbo.tag.partition("}")[0] + "}"
    if not list(nbo.iter(f"{ns}CoverGlass")):
        assert "cover glass (number, thickness, coating) or 'not applicable'" in missing
    if not list(nbo.iter(f"{ns}MountingMedium")):
        assert "mounting or imaging medium (name and maker)" in missing
    for ch in root.iter(f"{OME}Channel"):
        if ch.get("Fluor"):
            assert re.search(rf"{re.escape(ch.get('Fluor', ''))}[^;]*channel [^;]*"
                             rf"{re.escape(ch.get('Name', ''))}", body)


def test_unnamed_filters_are_never_named_by_their_id(recorded):
    """A profile skeleton's filters have IDs but no make or model: the text says unnamed."""
    ome = read(recorded[0]).ome
    for f in ome.instruments[0].filters:
        f.manufacturer = f.model = None
    text = build_methods(ome).text()
    assert "Filter:" not in text and "an unnamed emission filter (500–550 nm)" in text


@pytest.mark.parametrize(("phrase", "article"), [
    ("inverted microscope stand", "an"), ("LED", "an"), ("sCMOS camera", "an"),
    ("nbo-recorder (simulated)", "an"), ("CCD camera", "a"), ("Nikon", "a"),
    ("semiconductor laser", "a"), ("EMCCD camera", "an"), ("Yokogawa", "a")])
def test_articles(phrase, article):
    assert a(phrase) == article
