"""Parts the recorder could not observe are drawn as unknown, with the recorder's reason.

The file is written here with ome-types: a channel whose channel-settings annotation says,
as the recorder writes it, that the objective, the emission filter, which light source was
lit and the detector's gain could not be observed. Those texts are the ground truth.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import tifffile
from ome_types import OME
from ome_types.model import (
    Channel,
    Detector,
    DetectorSettings,
    Image,
    Instrument,
    InstrumentRef,
    MapAnnotation,
    Pixels,
    StructuredAnnotations,
    TiffData,
)
from ome_types.model import Map as OmeMap

from nbo_recorder.cli.main import main

REASONS = {
    "objective": "label 'Nikon 100x' of Objective-Turret is not described in the profile",
    "emission_filter[Emission]": "Emission.Label could not be read: device timed out",
    "light_sources": "LED: on/off: LED.State could not be read",
    "detector[cam].gain": "Camera.Gain = 'n/a' is not a number",
}


class _Parts(HTMLParser):
    """Each light-path part's attributes, and each unknown value's attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.parts: dict[str, dict[str, str]] = {}
        self.unknown: list[dict[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "li" and "data-part" in a:
            self.parts[a["data-part"]] = a
        if "data-unknown" in a:
            self.unknown.append(a)


def _file(path: Path) -> None:
    settings = MapAnnotation(
        id="Annotation:0", namespace="urn:nbo-recorder:channel-settings",
        value=OmeMap(ms=[OmeMap.M(k=k, value=f"unknown ({why})") for k, why in REASONS.items()]))
    pixels = Pixels(
        id="Pixels:0", dimension_order="XYZCT", type="uint8", size_x=8, size_y=8, size_z=1,
        size_c=1, size_t=1, tiff_data_blocks=[TiffData(plane_count=1)],
        channels=[Channel(id="Channel:0:0", name="GFP", samples_per_pixel=1,
                          detector_settings=DetectorSettings(id="Detector:cam"),
                          annotation_refs=[{"id": "Annotation:0"}])])
    ome = OME(instruments=[Instrument(id="Instrument:0", detectors=[
                  Detector(id="Detector:cam", model="DemoCamera")])],
              images=[Image(id="Image:0", pixels=pixels,
                            instrument_ref=InstrumentRef(id="Instrument:0"))],
              structured_annotations=StructuredAnnotations(map_annotations=[settings]))
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), description=ome.to_xml(),
                     metadata=None)


def test_each_unobserved_part_is_unknown_with_the_recorded_reason(tmp_path):
    source = tmp_path / "unobserved.ome.tif"
    _file(source)
    out = tmp_path / "unobserved.report.html"
    assert main(["report", str(source), "--out", str(out)]) == 0
    page = _Parts(out.read_text(encoding="utf-8"))
    for part, key in (("objective", "objective"), ("emission-filter", "emission_filter[Emission]"),
                      ("light-source", "light_sources")):
        assert page.parts[part]["data-state"] == "unknown"
        assert REASONS[key] in page.parts[part]["title"]
    assert page.parts["detector"]["data-state"] == "unknown"
    gain = next(a for a in page.unknown if a["data-field"] == "gain")
    assert gain["title"] == REASONS["detector[cam].gain"]
    # parts the file says nothing about are absent, not unknown
    assert page.parts["excitation-filter"]["data-state"] == "none"
