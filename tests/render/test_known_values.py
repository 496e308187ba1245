"""Everything the recorder knows is written, in every NBO/OME slot that holds it — and no more.

One file is recorded per module with ``nbo-recorder demo --rig spinning-disk`` (through the
command line's ``main``). The values it must carry are taken independently of the renderer:

* the software that ran the acquisition from the installed packages' own metadata
  (``importlib.metadata``) and from a bare ``pymmcore.CMMCore``;
* the settings from the simulated devices themselves: the same rig configuration is loaded
  into a second core, each channel preset applied, and the camera gain, laser power and
  wavelength, LED intensity and wavelength, and emission filter labels read back;
* what the profile does not state (an LED's rated power, a detector type) from the shipped
  profile file, to check that such a slot stays empty.
"""

from __future__ import annotations

import importlib.metadata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymmcore
import pytest
import yaml

from nbo_recorder.cli.acquisition import bundled_rig_config
from nbo_recorder.cli.main import main
from nbo_recorder.judge.reader import nbo_record, read_ome_xml
from nbo_recorder.nbo import NBO_NAMESPACE
from nbo_recorder.rig import load_core, release_core

N = {"n": NBO_NAMESPACE}
OME = {"o": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}
PROFILE = Path(__file__).resolve().parents[2] / "hardware_profiles" / "sim_spinning_disk.yaml"
#: channel preset -> (laser device or None, light-source component id)
CHANNELS = {"488-GFP": ("Laser488", "laser-488"), "561-mCherry": ("Laser561", "laser-561"),
            "BF-LED": (None, "led-pe300-b")}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[ET.Element, ET.Element]:
    """(OME root, NBO record) of the spinning-disk demo file."""
    out = tmp_path_factory.mktemp("known") / "spinning-disk.ome.tif"
    assert main(["demo", "--rig", "spinning-disk", "--out", str(out)]) == 0
    ome = ET.fromstring(read_ome_xml(out))
    nbo = nbo_record(ome)
    assert nbo is not None
    return ome, nbo


@pytest.fixture(scope="module")
def device() -> Iterator[dict[str, dict[str, str]]]:
    """What the simulated devices report under each channel preset (and the LED lines)."""
    core = load_core(bundled_rig_config("sim_spinning_disk.cfg"))
    found: dict[str, dict[str, str]] = {}
    try:
        for preset, (laser, _) in CHANNELS.items():
            core.setConfig("Channel", preset)
            core.waitForSystem()
            values = {"gain": core.getProperty("Camera", "Gain"),
                      "emission": core.getProperty("W1-Emission", "Label"),
                      "emission2": core.getProperty("Emission2", "Label"),
                      "intensity": core.getProperty("LED", "Intensity-B")}
            if laser is not None:
                values |= {"power": core.getProperty(laser, "PowerSetpoint"),
                           "wavelength": core.getProperty(laser, "Wavelength")}
            found[preset] = values
        found["led"] = {line: core.getProperty("LED", f"Wavelength-{line}") for line in "ABC"}
    finally:
        release_core(core)
    yield found


def channel_path(nbo: ET.Element, name: str) -> ET.Element:
    path = nbo.find(f".//n:Channel[@Name='{name}']/n:LightPath", N)
    assert path is not None, name
    return path


def profile_component(component_id: str) -> dict[str, Any]:
    data = yaml.safe_load(PROFILE.read_text())
    (comp,) = [c for c in data["components"] if c["id"] == component_id]
    return dict(comp)


def test_acquisition_software_is_what_ran_with_its_own_metadata(recorded):
    ome, nbo = recorded
    software = {s.get("Name"): s for s in nbo.iterfind("n:Instrument/n:AcquisitionSoftware", N)}
    assert set(software) == {"Micro-Manager MMCore", "pymmcore", "pymmcore-plus"}
    core_version = pymmcore.CMMCore().getVersionInfo().removeprefix("MMCore version ").strip()
    assert software["Micro-Manager MMCore"].get("Version") == core_version
    for name in ("pymmcore", "pymmcore-plus"):
        meta = importlib.metadata.metadata(name)
        assert software[name].get("Version") == importlib.metadata.version(name)
        authors = " ".join(meta.get_all("Author") or []) + " ".join(
            meta.get_all("Author-email") or [])
        developer = software[name].get("Developer")
        assert developer and all(part.strip() in authors for part in developer.split(","))
        urls = [u.partition(",")[2].strip() for u in meta.get_all("Project-URL") or []]
        assert software[name].get("WebsiteURL") in [*urls, *(meta.get_all("Home-page") or [])]
    refs = {r.get("ID") for r in nbo.iterfind("n:Image/n:AcquisitionSoftwareRef", N)}
    assert refs == {s.get("ID") for s in software.values()}
    # nbo-recorder wrote the metadata: it is the documents' Creator, not acquisition software
    writer = f"nbo-recorder {importlib.metadata.version('nbo-recorder')}"
    assert nbo.get("Creator") == writer and ome.get("Creator") == writer


def test_observed_gain_and_power_fill_their_nbo_settings(recorded, device):
    _, nbo = recorded
    for preset, (laser, source_id) in CHANNELS.items():
        path = channel_path(nbo, preset)
        detector = path.find("n:GenericDetectorSettings", N)
        assert detector is not None
        assert float(detector.get("AmplificationGain", "nan")) == float(device[preset]["gain"])
        assert float(detector.get("AnalogGain", "nan")) == float(device[preset]["gain"])
        source = path.find("n:LightSourceSettings", N)
        assert source is not None and source.get("ID") == f"LightSource:{source_id}"
        power, unit = ((device[preset]["power"], "mW") if laser is not None
                       else (device[preset]["intensity"], "%"))
        assert float(source.get("IlluminationPowerSettings", "nan")) == float(power)
        assert source.get("lluminationPowerSettingsUnit") == unit  # the XSD's spelling


def test_laser_wavelength_is_on_the_instrument_for_ome_readers(recorded, device):
    ome, nbo = recorded
    for preset, (laser, source_id) in CHANNELS.items():
        if laser is None:
            continue
        wavelength = float(device[preset]["wavelength"])
        element = ome.find(f"o:Instrument/o:Laser[@ID='LightSource:{source_id}']", OME)
        assert element is not None and float(element.get("Wavelength", "nan")) == wavelength
        lines = nbo.findall(f"n:Instrument/n:Laser[@ID='LightSource:{source_id}']"
                            "/n:IlluminationWavelengthRange", N)
        assert [float(r.get("PeakWavelength", "nan")) for r in lines] == [wavelength]
        channel = ome.find(f".//o:Channel[@Name='{preset}']", OME)
        assert channel is not None
        assert float(channel.get("ExcitationWavelength", "nan")) == wavelength


def test_each_led_has_its_module_and_nothing_unstated(recorded, device):
    _, nbo = recorded
    for line in "ABC":
        component = f"led-pe300-{line.lower()}"
        modules = nbo.findall(
            f"n:Instrument/n:LightEmittingDiode[@ID='LightSource:{component}']/n:LEDModule", N)
        assert [float(m.get("PeakWavelength", "nan")) for m in modules] == [
            float(device["led"][line])]
        if "rated_power_mw" not in profile_component(component):
            assert modules[0].get("IlluminationPower") is None


def test_emission_wavelength_is_the_centre_of_the_one_band_the_filters_pass(recorded, device):
    ome, _ = recorded

    def emission(preset: str) -> str | None:
        channel = ome.find(f".//o:Channel[@Name='{preset}']", OME)
        assert channel is not None
        return channel.get("EmissionWavelength")

    # "525/50": a 525 nm centre, 50 nm wide, alone in the path
    assert device["488-GFP"]["emission"] == "525/50" and device["488-GFP"]["emission2"] == "Open"
    assert float(emission("488-GFP") or "nan") == 525
    # "617/73" (580.5-653.5 nm) behind the BLP01-568R long-pass (568 nm edge): the band is
    # the band-pass's own, centred on 617 nm
    assert (device["561-mCherry"]["emission"], device["561-mCherry"]["emission2"]) == (
        "617/73", "BLP01-568R")
    assert float(emission("561-mCherry") or "nan") == 617
    # no emission filter in the path: no band, no wavelength
    assert (device["BF-LED"]["emission"], device["BF-LED"]["emission2"]) == ("Open", "Open")
    assert emission("BF-LED") is None


def test_detector_type_is_written_only_as_the_profile_states_it(recorded):
    ome, _ = recorded
    detector = ome.find("o:Instrument/o:Detector[@ID='Detector:cam-demo']", OME)
    assert detector is not None
    assert detector.get("Type") == profile_component("cam-demo").get("detector_type")
