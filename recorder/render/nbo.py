"""Build the 4DN-BINA-OME (NBO) v2.01 record of a run from its documents and the profile.

The OME-XML 2016-06 written by :mod:`nbo_recorder.render.ome` is what Bio-Formats and OMERO
read; it has no place for most of what NBO asks for (stand type, filter coating, camera
settings such as the effective bit depth, pinholes, calibrations). :func:`build_nbo_xml`
therefore writes a second, complete document in the NBO namespace, which the OME builder
embeds as one XMLAnnotation. It is built in parts:

* :mod:`~nbo_recorder.render.nbo_instrument` — the **Instrument**: every profiled component in
  its NBO element (objective -> ``Objective``, filter -> ``ExcitationFilter``/
  ``EmissionFilter`` by how the bindings and filter sets use it, laser -> ``Laser`` with an
  ``IlluminationWavelengthRange``, detector -> ``CCD``/``CMOS``/``PhotoMultiplierTube``/...
  by its type, pinhole -> ``Pinhole``, spinning disk -> ``SpinningDisk``, stage ->
  ``Z-Drive`` or ``MechanicalStage``, filter set -> ``FilterCube``), the stand, and
  ``AcquisitionSoftware`` for the software that drove the instrument (MMCore, pymmcore,
  pymmcore-plus) with the versions the run reported. nbo-recorder, which only wrote the
  metadata, is the document's ``Creator``;
* :mod:`~nbo_recorder.render.nbo_image` — the **Experiment**, **Sample**, **Experimenter**
  and one **Image** per stage position (or part of one) with its channels, light paths and
  planes, laid out by :mod:`~nbo_recorder.render.layout` exactly as in the OME part;
* :mod:`~nbo_recorder.render.nbo_elements` — the maps from the profile's OME 2016-06
  vocabularies to NBO's and the XML helpers both parts use.

Rules. A value comes from the profile (static specs), from the observed snapshots, or from what
the experimenter stated in the sequence metadata; nothing is invented. A required NBO attribute
nobody stated is left out, so :func:`nbo_recorder.nbo.schema.validate_nbo` reports it (deferred
when its tier is above the target tier). Values NBO needs but the profile model has no field
for are taken from a component's ``extra`` under their NBO attribute name (``CoatingMethod:
HardCoated``, ``TransmittanceRange[0].FWHMBandwidth: 40``, ``CameraSettings.SensorExposureMode:
Rolling shutter``); :func:`nbo_recorder.render.nbo_checks.check_nbo_profile` rejects values NBO
does not allow, naming the allowed ones. Units are written next to every quantity the XSD gives
a unit attribute for.

Elements the XSD requires but the recorder cannot know (the Experiment, its Sample and the
channel's Fluorophore) are written with their required free-text attributes set to
:data:`~nbo_recorder.vocabulary.UNKNOWN_TEXT` (required yes/no and list-valued ones are left
out), unless the sequence metadata states them (``metadata: {nbo: {Experiment: {...}, Sample:
{...}, Experimenter: {...}, Fluorophore: {<channel>: {...}}}}``).
:func:`nbo_recorder.render.compliance.nbo_compliance` treats those markers as missing, so a
file never claims a tier it does not reach.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

from nbo_recorder.capture.documents import Run
from nbo_recorder.profile import calibration
from nbo_recorder.profile.model import Profile
from nbo_recorder.render.annotations import AnnotationRegistry
from nbo_recorder.render.layout import RunLayout, layout_run
from nbo_recorder.render.nbo_elements import map_annotation, source_wavelengths, xml_element
from nbo_recorder.render.nbo_image import (
    ImageContext,
    PlaneSelection,
    experiment_elements,
    image_element,
    splice_planes,
    study_of,
)
from nbo_recorder.render.nbo_instrument import build_rig
from nbo_recorder.vocabulary import NBO_NAMESPACE, NS_CALIBRATION


def run_date(run: Run) -> datetime.date:
    """The day the run started: NBO dates (AcquisitionDate) and calibration ages use it."""
    return datetime.datetime.fromisoformat(run.start.started_at).date()


def build_nbo_xml(
    run: Run,
    profile: Profile,
    *,
    layout: RunLayout | None = None,
    planes: PlaneSelection = "all",
    reported: Mapping[str, Sequence[float]] | None = None,
) -> str:
    """Return the NBO v2.01 document (root ``OME`` in the NBO namespace) for ``run``.

    ``layout`` lets :func:`nbo_recorder.render.ome.build_ome_xml` share the layout it has
    already computed; by default it is computed here. ``planes="first_per_channel"`` writes
    only the first plane of each channel per image — a small view of the same document, for
    validation: all planes are written by one template from numbers and IDs. ``reported``
    lets it share the light sources' reported wavelengths
    (:func:`~nbo_recorder.render.nbo_elements.source_wavelengths`) the same way.
    """
    if layout is None:
        layout = layout_run(run, profile)
    annotations = AnnotationRegistry(map_annotation)
    study = study_of(run)
    day = run_date(run)
    calibration_refs = {
        cal.id: annotations.ref(NS_CALIBRATION, calibration.summary(
            cal, day, profile.calibration_max_age_days))
        for cal in profile.calibrations
    }
    if reported is None:
        reported = source_wavelengths(run, profile)
    rig = build_rig(profile, run.start.versions, annotations, reported)
    ctx = ImageContext(profile, rig, annotations, study, day, calibration_refs)
    version = run.start.versions.get("nbo-recorder")
    root = xml_element("OME", {"xmlns": NBO_NAMESPACE,
                               "Creator": f"nbo-recorder {version}" if version else None})
    for node in experiment_elements(study):
        root.append(node)
    root.append(rig.instrument)
    bodies: dict[int, str] = {}
    for image_layout in layout.images:
        image, body = image_element(ctx, run, image_layout, planes)
        root.append(image)
        bodies[image_layout.number] = body
    if annotations.items:
        structured = xml_element("StructuredAnnotations", parent=root)
        structured.extend(annotations.items)
    return splice_planes(ET.tostring(root, encoding="unicode"), bodies)
