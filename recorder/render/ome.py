"""Build the OME-XML 2016-06 description of a run from its documents and the profile.

Instrument and Image headers (a few hundred elements) are built with ``ome-types`` and
serialised once. Planes and TiffData (one each per frame, up to hundreds of thousands) are
formatted directly as strings and spliced into each Pixels element: ``ome-types`` costs
~230 µs per Plane to serialise, which would make finalising a long time-lapse take minutes.
The spliced elements only ever contain numbers and IDs, so no escaping is needed there.

Values come only from the profile (static specs) and the observed snapshots. A Laser's
Wavelength is the profile's, or the one line its binding labels or its bound ``wavelength``
property stated during the run (so OME readers such as bioio and OMERO show it); a Channel's
ExcitationWavelength is its one light source's line, else the centre of the one band its
excitation filters pass, and its EmissionWavelength the centre of the one band its emission
filters pass together (:func:`~nbo_recorder.render.nbo_elements.band_centre`); where no single
value is stated or observed the attribute is left out. The Creator is nbo-recorder, which
wrote the file; the software that ran the acquisition is listed in the run's MapAnnotation
and as the NBO record's AcquisitionSoftware. Each Channel
references a MapAnnotation with every setting observed for it (including those OME 2016-06
has no attribute for, such as light-source power in mW); a setting that was not observed is
omitted from the OME attributes and listed there as ``unknown (reason)``. A Plane whose
settings differ from its channel's references a MapAnnotation with just the differences.

Images, channels and planes follow the run's layout (:mod:`nbo_recorder.render.layout`),
which the NBO record shares. A plane number that is not finite (a DeltaT the acquisition did
not know) is left out of the Plane and marked unknown in the plane's MapAnnotation.

The full 4DN-BINA-OME (NBO) v2.01 record (:mod:`nbo_recorder.render.nbo`) is embedded intact as one
XMLAnnotation in the NBO namespace, spliced in as text like the planes, and every Image refers
to it and to a MapAnnotation (``urn:nbo-recorder:nbo-compliance``) saying which NBO tier the
record reaches and how many MUST/SHOULD attributes it has per extension. The OME part stays
plain OME 2016-06: the OME schema does not look inside the XMLAnnotation's value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from ome_types import model as m

from nbo_recorder.capture.documents import Run
from nbo_recorder.collector import collector_paused
from nbo_recorder.profile.calibration import stale_calibrations
from nbo_recorder.profile.model import (
    LED,
    Arc,
    Detector,
    Dichroic,
    Filter,
    FilterSet,
    GenericLightSource,
    Laser,
    Objective,
    Profile,
)
from nbo_recorder.render.annotations import AnnotationRegistry
from nbo_recorder.render.bindings import ome_to_xml
from nbo_recorder.render.compliance import compliance_of_view
from nbo_recorder.render.layout import (
    ChannelLayout,
    ImageLayout,
    PlaneLayout,
    layout_run,
    number_attributes,
)
from nbo_recorder.render.nbo import build_nbo_xml
from nbo_recorder.render.nbo_elements import band_centre, source_wavelengths
from nbo_recorder.render.nbo_instrument import source_lines
from nbo_recorder.vocabulary import (
    NBO_ANNOTATION_ID,
    NBO_NAMESPACE,
    NS_CHANNEL,
    NS_NBO_COMPLIANCE,
    NS_PLANE,
    NS_RUN,
    PIXEL_TYPES,
    Unknown,
    clean_text,
    component_id,
    finite,
    ome_binning,
    ome_id,
)

_MEDIUM = {"Oil": "Oil", "Water": "Water", "WaterDipping": "Water", "Air": "Air",
           "Glycerol": "Glycerol"}


def _ome_map_annotation(annotation_id: str, namespace: str,
                        values: dict[str, str]) -> m.MapAnnotation:
    return m.MapAnnotation(id=annotation_id, namespace=namespace,
                           value={clean_text(k): clean_text(v) for k, v in values.items()})


def build_instrument(profile: Profile,
                     reported: Mapping[str, Sequence[float]] | None = None) -> m.Instrument:
    """The OME Instrument: every profiled component OME 2016-06 has an element for.

    ``reported``: the wavelengths each light source reported during the run
    (:func:`~nbo_recorder.render.nbo_elements.source_wavelengths`); a laser with exactly one
    known line gets it as its Wavelength.
    """
    inst = m.Instrument(id="Instrument:0")
    mic = profile.microscope
    if any((mic.type, mic.manufacturer, mic.model, mic.serial_number, mic.lot_number)):
        inst.microscope = m.Microscope(
            type=mic.type.value if mic.type else None,
            manufacturer=clean_text(mic.manufacturer), model=clean_text(mic.model),
            serial_number=clean_text(mic.serial_number), lot_number=clean_text(mic.lot_number),
        )
    for comp in profile.components:
        common: dict[str, Any] = {
            "manufacturer": clean_text(comp.manufacturer), "model": clean_text(comp.model),
            "serial_number": clean_text(comp.serial_number),
            "lot_number": clean_text(comp.lot_number),
        }
        if isinstance(comp, Objective):
            inst.objectives.append(m.Objective(
                id=component_id(comp.kind, comp.id), **common,
                nominal_magnification=comp.nominal_magnification,
                calibrated_magnification=comp.calibrated_magnification,
                lens_na=comp.lens_na,
                immersion=comp.immersion.value if comp.immersion else None,
                correction=comp.correction.value if comp.correction else None,
                working_distance=comp.working_distance_um,
                working_distance_unit="µm",
                iris=comp.iris,
            ))
        elif isinstance(comp, Filter):
            tr = comp.transmittance_range
            inst.filters.append(m.Filter(
                id=component_id(comp.kind, comp.id), **common,
                type=comp.filter_type.value if comp.filter_type else None,
                filter_wheel=clean_text(comp.filter_wheel),
                transmittance_range=None if tr is None else m.TransmittanceRange(
                    cut_in=tr.cut_in_nm, cut_out=tr.cut_out_nm,
                    cut_in_tolerance=tr.cut_in_tolerance_nm,
                    cut_out_tolerance=tr.cut_out_tolerance_nm,
                    transmittance=tr.transmittance,
                ),
            ))
        elif isinstance(comp, Dichroic):
            inst.dichroics.append(m.Dichroic(id=component_id(comp.kind, comp.id), **common))
        elif isinstance(comp, FilterSet):
            inst.filter_sets.append(m.FilterSet(
                id=component_id(comp.kind, comp.id), **common,
                excitation_filters=[m.FilterRef(id=ome_id("Filter", f))
                                        for f in comp.excitation_filters],
                dichroic_ref=m.DichroicRef(id=ome_id("Dichroic", comp.dichroic))
                if comp.dichroic else None,
                emission_filters=[m.FilterRef(id=ome_id("Filter", f))
                                      for f in comp.emission_filters],
            ))
        elif isinstance(comp, Laser | LED | Arc | GenericLightSource):
            power: dict[str, Any] = {}
            if comp.rated_power_mw is not None:
                power = {"power": comp.rated_power_mw, "power_unit": "mW"}
            lid = component_id(comp.kind, comp.id)
            if isinstance(comp, Laser):
                lines = source_lines(profile, comp, reported or {})
                inst.lasers.append(m.Laser(
                    id=lid, **common, **power, wavelength=lines[0] if len(lines) == 1 else None,
                    type=comp.laser_type.value if comp.laser_type else None,
                    laser_medium=None,
                ))
            elif isinstance(comp, LED):
                inst.light_emitting_diodes.append(m.LightEmittingDiode(id=lid, **common, **power))
            elif isinstance(comp, Arc):
                inst.arcs.append(m.Arc(
                    id=lid, **common, **power,
                    type=comp.arc_type.value if comp.arc_type else None,
                ))
            else:
                inst.generic_excitation_sources.append(
                    m.GenericExcitationSource(id=lid, **common, **power)
                )
        elif isinstance(comp, Detector):
            inst.detectors.append(m.Detector(
                id=component_id(comp.kind, comp.id), **common,
                type=comp.detector_type.value if comp.detector_type else None,
            ))
    return inst


def _build_channel(
    profile: Profile, image_key: str, channel: ChannelLayout,
    annotations: AnnotationRegistry[m.MapAnnotation],
) -> m.Channel:
    info, obs = channel.info, channel.observed
    ch = m.Channel(
        id=f"Channel:{image_key}:{channel.index}", name=clean_text(channel.name),
        samples_per_pixel=1,
        fluor=clean_text(info.fluor),
        illumination_type=info.illumination_type.value if info.illumination_type else None,
        contrast_method=info.contrast_method.value if info.contrast_method else None,
        acquisition_mode=info.acquisition_mode.value if info.acquisition_mode else None,
    )
    if info.color:
        ch.color = m.Color("#" + info.color.lstrip("#"))
    if obs.light_sources:
        ls = obs.light_sources[0]
        ch.light_source_settings = m.LightSourceSettings(
            id=ome_id("LightSource", ls.component),
            wavelength=finite(ls.wavelength_nm),
            attenuation=finite(ls.attenuation),
        )
    ch.excitation_wavelength = (
        finite(obs.light_sources[0].wavelength_nm)
        if len(obs.light_sources) == 1 and not obs.light_sources_unknown else None
    ) or band_centre(profile, obs.excitation_filters)
    ch.emission_wavelength = band_centre(profile, obs.emission_filters)
    if obs.detectors:
        det = obs.detectors[0]
        ch.detector_settings = m.DetectorSettings(
            id=ome_id("Detector", det.component),
            gain=finite(det.gain), offset=finite(det.offset),
            binning=ome_binning(det.binning) if isinstance(det.binning, str) else None,
            read_out_rate=finite(det.readout_rate_mhz),
        )
    if obs.excitation_filters or obs.emission_filters or obs.dichroics:
        ch.light_path = m.LightPath(
            excitation_filters=[m.FilterRef(id=ome_id("Filter", f))
                                    for f in obs.excitation_filters],
            dichroic_ref=m.DichroicRef(id=ome_id("Dichroic", obs.dichroics[0]))
            if obs.dichroics else None,
            emission_filters=[m.FilterRef(id=ome_id("Filter", f))
                                  for f in obs.emission_filters],
        )
    if obs.filter_sets:
        ch.filter_set_ref = m.FilterSetRef(id=ome_id("FilterSet", obs.filter_sets[0]))
    if obs.pinholes:
        pinhole = profile.component(obs.pinholes[0])
        ch.pinhole_size = getattr(pinhole, "diameter_um", None)
    observed = obs.flat()
    if observed:
        ch.annotation_refs.append(m.AnnotationRef(id=annotations.ref(NS_CHANNEL, observed)))
    return ch


def _plane_xml(plane: PlaneLayout, ann_ref: str | None) -> str:
    """One Plane as text; a number that is not known is left out (with its unit)."""
    _, numbers, _, z, c, t = plane
    tail = "/>" if ann_ref is None else f'><AnnotationRef ID="{ann_ref}"/></Plane>'
    return f'<Plane TheZ="{z}" TheT="{t}" TheC="{c}"{number_attributes(numbers, "DeltaT")}{tail}'


class OmeDocument(NamedTuple):
    """A run's complete OME-XML, and the OME model it was serialised from.

    ``outline`` is that XML as :func:`~nbo_recorder.judge.reader.read_outline` reads it
    back: everything but the Planes and TiffData, with the NBO record's Value empty.
    """

    xml: str
    outline: m.OME


def build_ome_xml(run: Run, profile: Profile, software: str) -> str:
    """Return the complete OME-XML for the frames recorded in ``run``."""
    return build_ome(run, profile, software).xml


def build_ome(run: Run, profile: Profile, software: str) -> OmeDocument:
    """The complete OME-XML for the frames recorded in ``run``, with its outline."""
    with collector_paused():
        return _build_ome(run, profile, software)


def _build_ome(run: Run, profile: Profile, software: str) -> OmeDocument:
    start = run.start
    layout = layout_run(run, profile)
    annotations = AnnotationRegistry(_ome_map_annotation)
    run_ref = annotations.ref(NS_RUN, _run_summary(run, software, layout.cuts))
    reported = source_wavelengths(run, profile)
    instrument = build_instrument(profile, reported)
    nbo = build_nbo_xml(run, profile, layout=layout, reported=reported)
    nbo_view = build_nbo_xml(run, profile, layout=layout, planes="first_per_channel",
                             reported=reported)
    run_date = datetime.fromisoformat(start.started_at).date()
    stale = [s.calibration for s in stale_calibrations(profile, run_date)]
    image_refs = [m.AnnotationRef(id=run_ref), m.AnnotationRef(id=NBO_ANNOTATION_ID),
                  m.AnnotationRef(id=annotations.ref(NS_NBO_COMPLIANCE,
                                                     compliance_of_view(nbo_view, stale)))]
    images: list[m.Image] = []
    bodies: list[str] = []
    for image_layout in layout.images:
        images.append(_image(run, profile, software, image_layout, instrument, annotations,
                             image_refs))
        bodies.append(_image_body(image_layout, annotations))
    ome = m.OME(
        creator=clean_text(software),
        instruments=[instrument],
        images=images,
        structured_annotations=m.StructuredAnnotations(
            map_annotations=annotations.items,
            xml_annotations=[m.XMLAnnotation(id=NBO_ANNOTATION_ID, namespace=NBO_NAMESPACE,
                                             value=m.XMLAnnotation.Value())],
        ),
    )
    head = ome_to_xml(ome)
    parts = head.split("<MetadataOnly/>")
    if len(parts) != len(bodies) + 1:
        raise RuntimeError("unexpected OME-XML layout from ome-types; cannot place planes")
    out = [parts[0]]
    for body, rest in zip(bodies, parts[1:], strict=True):
        out.append(body)
        out.append(rest)
    # the NBO record goes into the XMLAnnotation, which follows the last Image: its text is
    # joined with the rest once, not copied into the last part first
    out[-1:] = _embed_nbo(out[-1], nbo)
    for image in ome.images:
        image.pixels.metadata_only = None  # the XML has TiffData in its place
    return OmeDocument("".join(out), ome)


def _image(run: Run, profile: Profile, software: str, layout: ImageLayout,
           instrument: m.Instrument, annotations: AnnotationRegistry[m.MapAnnotation],
           image_refs: Sequence[m.AnnotationRef]) -> m.Image:
    """One Image (per stage position, or part of one) with its channels; its planes are
    spliced in later. Its sizes, pixel size, z step and time increment are its frames'."""
    start = run.start
    key, first, pixel_size = layout.key, layout.first, layout.pixel_size_um
    channels = [_build_channel(profile, key, channel, annotations)
                for channel in layout.channels]
    name = clean_text(layout.title)
    part = f"; {layout.description}" if layout.description else ""
    return m.Image(
        id=f"Image:{key}",
        name=name,
        acquisition_date=start.started_at,
        description=clean_text(f"Recorded by {software} with hardware profile "
                               f"'{profile.name}'{part}"),
        instrument_ref=m.InstrumentRef(id=instrument.id),
        objective_settings=_objective_settings(profile, layout.objective),
        stage_label=m.StageLabel(
            name=name, x=finite(first.x_um), y=finite(first.y_um), z=finite(first.z_um),
            x_unit="µm", y_unit="µm", z_unit="µm",
        ) if first.x_um is not None or first.z_um is not None else None,
        pixels=m.Pixels(
            id=f"Pixels:{key}", dimension_order="XYZCT",
            type=PIXEL_TYPES.get(start.dtype, start.dtype),
            size_x=layout.size_x, size_y=layout.size_y,
            size_z=layout.size_z, size_c=layout.size_c, size_t=layout.size_t,
            physical_size_x=pixel_size, physical_size_y=pixel_size,
            physical_size_x_unit="µm", physical_size_y_unit="µm",
            physical_size_z=layout.z_step_um,
            physical_size_z_unit="µm",
            time_increment=layout.time_increment_s,
            time_increment_unit="s",
            channels=channels,
            metadata_only=m.MetadataOnly(),
        ),
        annotation_refs=list(image_refs),
    )


def _image_body(layout: ImageLayout, annotations: AnnotationRegistry[m.MapAnnotation]) -> str:
    """The TiffData and Plane elements of an image, as text (one each per frame)."""
    planes: list[str] = []
    tiffdata: list[str] = []
    refs: dict[int, str | None] = {}
    for plane in layout.planes:
        f, _, deviation, z, c, t = plane
        key = id(deviation)
        if key not in refs:
            diff = deviation.with_geometry
            refs[key] = annotations.ref(NS_PLANE, diff) if diff else None
        planes.append(_plane_xml(plane, refs[key]))
        tiffdata.append(f'<TiffData IFD="{f.index}" FirstZ="{z}" FirstT="{t}" FirstC="{c}" '
                        'PlaneCount="1"/>')
    tiffdata += planes  # one join: the text of a long run is tens of megabytes
    return "".join(tiffdata)


def _embed_nbo(xml: str, nbo: str) -> list[str]:
    """``xml`` with the NBO document in the (empty) value of the NBO XMLAnnotation, as the
    pieces that make it when joined."""
    start = xml.find(f'<XMLAnnotation ID="{NBO_ANNOTATION_ID}"')
    value = xml.find("<Value/>", start) if start >= 0 else -1
    if value < 0:
        raise RuntimeError("unexpected OME-XML layout from ome-types; cannot embed the NBO record")
    return [xml[:value], "<Value>", nbo, "</Value>", xml[value + len("<Value/>"):]]


def _objective_settings(
    profile: Profile, objective: str | Unknown | None
) -> m.ObjectiveSettings | None:
    if not isinstance(objective, str):
        return None
    comp = profile.component(objective)
    assert isinstance(comp, Objective)
    medium = _MEDIUM.get(comp.immersion.value) if comp.immersion else None
    return m.ObjectiveSettings(
        id=ome_id("Objective", objective),
        medium=medium,
        refractive_index=comp.immersion_refractive_index,
    )


def _run_summary(run: Run, software: str, cuts: Sequence[str]) -> dict[str, str]:
    """The run's MapAnnotation: how it ran, how it ended and what of it the file holds."""
    stop = run.stop
    summary = {
        "software": software,
        "started": run.start.started_at,
        "camera": run.start.camera,
        "frames written": str(len(run.frames)),
        "state snapshots": str(len(run.snapshots)),
    }
    summary.update({f"version {k}": v for k, v in run.start.versions.items()})
    if stop is None:
        summary["status"] = "incomplete: the run did not stop normally"
    else:
        complete = stop.reason == "completed" and (
            stop.frames_expected is None or stop.frames_written >= stop.frames_expected
        )
        if complete:
            summary["status"] = "complete"
        elif stop.reason == "completed" and stop.frames_expected is not None:
            summary["status"] = (
                f"incomplete: {stop.frames_written} of {stop.frames_expected} expected frames "
                f"reached the recorder ({stop.frames_expected - stop.frames_written} dropped "
                "before it, e.g. by the camera or the acquisition engine)")
        else:
            summary["status"] = f"incomplete: {stop.reason}"
        summary["stopped"] = stop.stopped_at
        if stop.frames_expected is not None:
            summary["frames expected"] = str(stop.frames_expected)
        for i, err in enumerate(stop.errors):
            summary[f"error {i + 1}"] = err
        for i, pause in enumerate(stop.pauses):
            summary[f"pause {i + 1}"] = pause
    for i, cut in enumerate(cuts):
        summary[f"cut {i + 1}"] = cut
    return summary
