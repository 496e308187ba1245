"""Interop: Bio-Formats (an independent reader) sees the instrument and channel settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import useq

from nbo_recorder.capture.recorder import Recorder
from tests.helpers import DEMO_PROFILE, REPO

OME_NS = {"ome": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}


def _jar() -> Path:
    jar = Path(os.environ.get("NBO_BIOFORMATS_JAR", REPO / ".ci/cache/bioformats_package.jar"))
    if not jar.is_file() or shutil.which("java") is None:
        if os.environ.get("CI"):
            pytest.fail(f"Bio-Formats is required in CI: jar {jar} or java missing (.ci/run)")
        pytest.skip("Bio-Formats jar or java not installed (bash .ci/run installs them)")
    return jar


def bioformats_ome_xml(path: Path) -> ET.Element:
    """What Bio-Formats' ImageInfo re-serialises from the file (offline, no pixels)."""
    result = subprocess.run(
        ["java", "-cp", str(_jar()), "loci.formats.tools.ImageInfo", "-nopix",
         "-omexml-only", str(path)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    text = result.stdout
    return ET.fromstring(text[text.index("<OME"):text.rindex("</OME>") + len("</OME>")])


def test_bioformats_reads_instrument_and_channel_settings(demo_core, tmp_path):
    _jar()
    demo_core.setProperty("Camera", "Gain", "2")
    demo_core.setConfig("Objective", "20X")
    out = tmp_path / "bf.ome.tif"
    seq = useq.MDASequence(
        channels=[{"config": "DAPI", "group": "Channel"},
                  {"config": "FITC", "group": "Channel-Multiband"}],
        z_plan={"range": 1, "step": 1},
    )
    demo_core.mda.run(seq, output=Recorder(demo_core, DEMO_PROFILE).sink(out))
    root = bioformats_ome_xml(out)

    objectives = {o.get("ID"): o for o in root.iterfind(".//ome:Objective", OME_NS)}
    obj = objectives["Objective:obj-nikon-20x-pf-elwd"]
    assert obj.get("LensNA") == "0.45" and float(obj.get("NominalMagnification")) == 20
    assert root.find(".//ome:Detector[@ID='Detector:cam-demo']", OME_NS) is not None
    assert root.find(".//ome:LightEmittingDiode[@ID='LightSource:led-demo']", OME_NS) is not None
    assert root.find(".//ome:Image/ome:ObjectiveSettings", OME_NS).get("ID") == obj.get("ID")
    channels = {c.get("Name"): c for c in root.iterfind(".//ome:Channel", OME_NS)}
    fitc = channels["FITC"]
    assert fitc.find("ome:LightSourceSettings", OME_NS).get("Wavelength") == "470.0"
    assert float(fitc.find("ome:DetectorSettings", OME_NS).get("Gain")) == 2.0
    dapi_path = channels["DAPI"].find("ome:LightPath", OME_NS)
    refs = {e.get("ID") for e in dapi_path}
    assert {"Filter:ex-chroma-d360-40x", "Filter:em-chroma-hq620",
            "Dichroic:dc-chroma-400dclp"} <= refs
    assert len(root.findall(".//ome:Plane", OME_NS)) == 4
