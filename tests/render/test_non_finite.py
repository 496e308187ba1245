"""A frame whose timing or exposure is not a finite number: left out, marked unknown, valid XML.

OME 2016-06 has no spelling for NaN in a float attribute (``nan`` is invalid against its XSD)
and a value that is not a number is not known, so both parts of the file leave such an
attribute out and the plane's settings annotation says it is unknown.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from nbo_recorder.capture.documents import FrameRecord, Run, RunStart, StateSnapshot
from nbo_recorder.judge.reader import nbo_text
from nbo_recorder.render.layout import NOT_FINITE
from nbo_recorder.render.nbo import build_nbo_xml
from nbo_recorder.render.ome import build_ome_xml
from nbo_recorder.vocabulary import NBO_NAMESPACE, NS_PLANE, OME_NAMESPACE
from tests.helpers import demo_profile

OME = {"o": OME_NAMESPACE}
NBO = {"n": NBO_NAMESPACE}
NOT_NUMBERS = {"nan", "inf", "-inf", "infinity", "-infinity"}


def _run() -> Run:
    """Three frames of one channel: finite, NaN DeltaT + infinite exposure, NaN position."""
    start = RunStart(started_at="2026-01-02T03:04:05.000+00:00", profile={}, sequence={},
                     width=8, height=8, dtype="uint16", camera="Camera",
                     versions={"nbo-recorder": "0.1.0"})
    run = Run(start=start, snapshots={0: StateSnapshot(uid=0, values={}, elapsed_s=0.0,
                                                       trigger="test")})
    run.frames += [
        FrameRecord(0, 0, 0, 0, 0, None, 0.0, 10.0, 1.0, 2.0, 3.0, 1.0, 0),
        FrameRecord(1, 0, 1, 0, 0, None, math.nan, math.inf, 1.0, 2.0, 3.0, 1.0, 0),
        FrameRecord(2, 0, 2, 0, 0, None, 20.0, 10.0, 1.0, 2.0, math.nan, 1.0, 0),
    ]
    return run


def _plane_annotations(root: ET.Element, prefix: str, ns: dict[str, str]) -> dict[str, dict]:
    """Plane-settings MapAnnotations by ID: key -> value."""
    out = {}
    for ann in root.iter(f"{{{ns[prefix]}}}MapAnnotation"):
        if ann.get("Namespace") == NS_PLANE:
            out[ann.get("ID")] = {m.get("K"): m.text for m in ann.iter(f"{{{ns[prefix]}}}M")}
    return out


def _attribute_values(root: ET.Element) -> set[str]:
    return {v.lower() for e in root.iter() for v in e.attrib.values()}


def test_non_finite_plane_numbers_are_left_out_and_the_ome_part_is_valid(ome_schema):
    xml = build_ome_xml(_run(), demo_profile(), "nbo-recorder test")
    ome_schema.validate(xml)
    root = ET.fromstring(xml)
    planes = root.findall(".//o:Plane", OME)
    assert [p.get("DeltaT") for p in planes] == ["0.0", None, "0.02"]
    assert [p.get("DeltaTUnit") for p in planes] == ["s", None, "s"]
    assert [p.get("ExposureTime") for p in planes] == ["10.0", None, "10.0"]
    assert [p.get("PositionZ") for p in planes] == ["3.0", "3.0", None]
    assert not _attribute_values(root) & NOT_NUMBERS
    notes = _plane_annotations(root, "o", OME)
    refs = [p.find("o:AnnotationRef", OME) for p in planes]
    assert refs[0] is None
    assert refs[1] is not None and refs[2] is not None
    assert notes[refs[1].get("ID")] == {"delta_t": NOT_FINITE, "exposure_time": NOT_FINITE}
    assert notes[refs[2].get("ID")] == {"position_z": NOT_FINITE}


def test_non_finite_plane_numbers_never_reach_the_nbo_record():
    text = build_nbo_xml(_run(), demo_profile())
    root = ET.fromstring(text)
    assert not _attribute_values(root) & NOT_NUMBERS
    assert "NaN" not in text and "INF" not in text
    planes = root.findall(".//n:Plane", NBO)
    assert [p.get("Timestamp") for p in planes] == ["0.0", None, "0.02"]
    assert [p.get("ExposureTime") for p in planes] == ["10.0", None, "10.0"]
    assert [p.get("PositionZ") for p in planes] == ["3.0", "3.0", None]
    notes = _plane_annotations(root, "n", NBO)
    refs = [p.find("n:AnnotationRef", NBO) for p in planes]
    assert refs[0] is None
    assert refs[1] is not None and refs[2] is not None
    assert notes[refs[1].get("ID")] == {"delta_t": NOT_FINITE, "exposure_time": NOT_FINITE}
    assert notes[refs[2].get("ID")] == {"position_z": NOT_FINITE}


def test_the_embedded_record_is_the_nbo_builders(ome_schema):
    """The OME builder embeds exactly what the NBO builder writes for the same run."""
    run, profile = _run(), demo_profile()
    root = ET.fromstring(build_ome_xml(run, profile, "nbo-recorder test"))
    embedded = root.find(f".//o:XMLAnnotation/o:Value/{{{NBO_NAMESPACE}}}OME", OME)
    assert embedded is not None
    assert nbo_text(embedded) == nbo_text(ET.fromstring(build_nbo_xml(run, profile)))
