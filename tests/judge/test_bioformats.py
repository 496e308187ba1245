"""Interop: Bio-Formats (an independent reader) sees the instrument and channel settings."""

from __future__ import annotations

import useq

from nbo_recorder.capture.recorder import Recorder
from tests.helpers import DEMO_PROFILE, bioformats_jar, bioformats_ome_xml

OME_NS = {"ome": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}


def test_bioformats_reads_instrument_and_channel_settings(demo_core, tmp_path):
    bioformats_jar()
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
