"""Build the OME-XML 2016-06 description of a run from its documents and the profile.

Instrument and Image headers (a few hundred elements) are built with ``ome-types`` and
serialised once. Planes and TiffData (one each per frame, up to hundreds of thousands) are
formatted directly as strings and spliced into each Pixels element: ``ome-types`` costs
~230 µs per Plane to serialise, which would make finalising a long time-lapse take minutes.
The spliced elements only ever contain numbers and IDs, so no escaping is needed there.

Values come only from the profile (static specs) and the observed snapshots. Each Channel
references a MapAnnotation with every setting observed for it (including those OME 2016-06
has no attribute for, such as light-source power in mW); a setting that was not observed is
omitted from the OME attributes and listed there as ``unknown (reason)``. A Plane whose
settings differ from its channel's references a MapAnnotation with just the differences.

The full 4DN-BINA-OME (NBO) v2.01 record (:mod:`nbo_recorder.render.nbo`) is embedded intact as one
XMLAnnotation in the NBO namespace, spliced in as text like the planes, and every Image refers
to it and to a MapAnnotation (``urn:nbo-recorder:nbo-compliance``) saying which NBO tier the
record reaches and how many MUST/SHOULD attributes it has per extension. The OME part stays
plain OME 2016-06: the OME schema does not look inside the XMLAnnotation's value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ome_types import model as m
from ome_types import to_xml

from nbo_recorder.capture.documents import FrameRecord, Run, StateSnapshot, Unknown
from nbo_recorder.capture.observed import ObservedSettings, interpret
from nbo_recorder.nbo import NBO_NAMESPACE
from nbo_recorder.profile.calibration import stale_calibrations
from nbo_recorder.profile.model import (
    LED,
    Arc,
    ChannelInfo,
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
from nbo_recorder.render.nbo import build_nbo_xml, compliance_of_view
from nbo_recorder.vocabulary import clean_text

NS_PLANE = "urn:nbo-recorder:plane-settings"
NS_CHANNEL = "urn:nbo-recorder:channel-settings"
NS_RUN = "urn:nbo-recorder:acquisition"
NS_NBO_COMPLIANCE = "urn:nbo-recorder:nbo-compliance"
#: ID of the XMLAnnotation holding the NBO record.
NBO_ANNOTATION_ID = "Annotation:nbo"

_PIXEL_TYPES = {
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "int8": "int8",
    "int16": "int16", "int32": "int32", "float32": "float", "float64": "double",
}
_BINNING = {"1": "1x1", "2": "2x2", "4": "4x4", "8": "8x8",
            "1x1": "1x1", "2x2": "2x2", "4x4": "4x4", "8x8": "8x8"}
_MEDIUM = {"Oil": "Oil", "Water": "Water", "WaterDipping": "Water", "Air": "Air",
           "Glycerol": "Glycerol"}


def ome_id(kind: str, component_id: str) -> str:
    """OME LSID-style id for a profile component (``Objective:obj-10x``)."""
    return f"{kind}:{component_id}"


def _ome_map_annotation(annotation_id: str, namespace: str,
                        values: dict[str, str]) -> m.MapAnnotation:
    return m.MapAnnotation(id=annotation_id, namespace=namespace,
                           value={clean_text(k): clean_text(v) for k, v in values.items()})


@dataclass
class _Interpreted:
    profile: Profile
    cache: dict[int, ObservedSettings]
    snapshots: Mapping[int, StateSnapshot]

    def __call__(self, uid: int) -> ObservedSettings:
        if uid not in self.cache:
            self.cache[uid] = interpret(self.snapshots[uid], self.profile)
        return self.cache[uid]


def build_instrument(profile: Profile) -> m.Instrument:
    """The OME Instrument: every profiled component OME 2016-06 has an element for."""
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
                id=ome_id("Objective", comp.id), **common,
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
                id=ome_id("Filter", comp.id), **common,
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
            inst.dichroics.append(m.Dichroic(id=ome_id("Dichroic", comp.id), **common))
        elif isinstance(comp, FilterSet):
            inst.filter_sets.append(m.FilterSet(
                id=ome_id("FilterSet", comp.id), **common,
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
            lid = ome_id("LightSource", comp.id)
            if isinstance(comp, Laser):
                inst.lasers.append(m.Laser(
                    id=lid, **common, **power, wavelength=comp.wavelength_nm,
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
                id=ome_id("Detector", comp.id), **common,
                type=comp.detector_type.value if comp.detector_type else None,
            ))
    return inst


def _num(v: object) -> float | None:
    return v if isinstance(v, float) else None


def _filter_center(profile: Profile, filter_ids: Sequence[str]) -> float | None:
    if len(filter_ids) != 1:
        return None
    f = profile.component(filter_ids[0])
    if not isinstance(f, Filter):
        return None
    if f.center_wavelength_nm is not None:
        return f.center_wavelength_nm
    tr = f.transmittance_range
    if tr and tr.cut_in_nm is not None and tr.cut_out_nm is not None:
        return (tr.cut_in_nm + tr.cut_out_nm) / 2
    return None


def _channel_info(profile: Profile, name: str | None) -> ChannelInfo:
    base = profile.channel_defaults.model_dump(exclude_none=True)
    if name is not None and name in profile.channels:
        base.update(profile.channels[name].model_dump(exclude_none=True))
    return ChannelInfo.model_validate(base)


def _build_channel(
    profile: Profile, p: int, c: int, name: str | None, obs: ObservedSettings | None,
    annotations: AnnotationRegistry[m.MapAnnotation],
) -> m.Channel:
    info = _channel_info(profile, name)
    ch = m.Channel(
        id=f"Channel:{p}:{c}", name=clean_text(name), samples_per_pixel=1,
        fluor=clean_text(info.fluor),
        illumination_type=info.illumination_type.value if info.illumination_type else None,
        contrast_method=info.contrast_method.value if info.contrast_method else None,
        acquisition_mode=info.acquisition_mode.value if info.acquisition_mode else None,
    )
    if info.color:
        ch.color = m.Color("#" + info.color.lstrip("#"))
    if obs is None:
        return ch
    if obs.light_sources:
        ls = obs.light_sources[0]
        ch.light_source_settings = m.LightSourceSettings(
            id=ome_id("LightSource", ls.component),
            wavelength=_num(ls.wavelength_nm),
            attenuation=_num(ls.attenuation),
        )
    ch.excitation_wavelength = (
        _num(obs.light_sources[0].wavelength_nm) if len(obs.light_sources) == 1 else None
    ) or _filter_center(profile, obs.excitation_filters)
    ch.emission_wavelength = _filter_center(profile, obs.emission_filters)
    if obs.detectors:
        det = obs.detectors[0]
        ch.detector_settings = m.DetectorSettings(
            id=ome_id("Detector", det.component),
            gain=_num(det.gain), offset=_num(det.offset),
            binning=_BINNING.get(det.binning, "Other") if isinstance(det.binning, str) else None,
            read_out_rate=_num(det.readout_rate_mhz),
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


def _fmt(x: float) -> str:
    return repr(float(x))


def _plane_xml(f: FrameRecord, ann_ref: str | None) -> str:
    attrs = (f'TheZ="{f.z}" TheT="{f.t}" TheC="{f.c}" DeltaT="{_fmt(f.elapsed_ms / 1000)}" '
             f'DeltaTUnit="s" ExposureTime="{_fmt(f.exposure_ms)}" ExposureTimeUnit="ms"')
    for axis, v in (("X", f.x_um), ("Y", f.y_um), ("Z", f.z_um)):
        if v is not None:
            attrs += f' Position{axis}="{_fmt(v)}" Position{axis}Unit="µm"'
    if ann_ref is None:
        return f"<Plane {attrs}/>"
    return f'<Plane {attrs}><AnnotationRef ID="{ann_ref}"/></Plane>'


def _pixel_size(frames: Iterable[FrameRecord]) -> float | None:
    for f in frames:
        return f.pixel_size_um if f.pixel_size_um > 0 else None
    return None


def build_ome_xml(run: Run, profile: Profile, software: str) -> str:
    """Return the complete OME-XML for the frames recorded in ``run``."""
    start = run.start
    settings = _Interpreted(profile, {}, run.snapshots)
    annotations = AnnotationRegistry(_ome_map_annotation)
    run_ref = annotations.ref(NS_RUN, _run_summary(run, software))
    instrument = build_instrument(profile)
    by_position: dict[int, list[FrameRecord]] = {}
    for f in run.frames:
        by_position.setdefault(f.p, []).append(f)
    nbo = build_nbo_xml(run, profile, frames_by_position=by_position, observed=settings)
    nbo_view = build_nbo_xml(run, profile, frames_by_position=by_position, observed=settings,
                             planes="first_per_channel")
    run_date = datetime.fromisoformat(start.started_at).date()
    stale = [s.calibration for s in stale_calibrations(profile, run_date)]
    image_refs = [m.AnnotationRef(id=run_ref), m.AnnotationRef(id=NBO_ANNOTATION_ID),
                  m.AnnotationRef(id=annotations.ref(NS_NBO_COMPLIANCE,
                                                     compliance_of_view(nbo_view, stale)))]
    seq_channels = [ch.get("config") for ch in start.sequence.get("channels", [])]
    images: list[m.Image] = []
    bodies: list[str] = []
    for p in sorted(by_position):
        frames = by_position[p]
        first = frames[0]
        size_c = max(f.c for f in frames) + 1
        size_z = max(f.z for f in frames) + 1
        size_t = max(f.t for f in frames) + 1
        first_of_c: dict[int, FrameRecord] = {}
        for f in frames:
            first_of_c.setdefault(f.c, f)
        image_obs = settings(first.snapshot)
        image_px = _pixel_size(frames)
        channels = []
        baselines: dict[int, dict[str, str]] = {}
        for c in range(size_c):
            fc = first_of_c.get(c)
            name = fc.channel if fc else (seq_channels[c] if c < len(seq_channels) else None)
            obs = settings(fc.snapshot) if fc else None
            channels.append(_build_channel(profile, p, c, name, obs, annotations))
            if obs is not None:
                base = obs.flat()
                base["objective"] = image_obs.flat().get("objective", "")
                base["pixel_size_um"] = repr(image_px)
                baselines[c] = base
        planes: list[str] = []
        tiffdata: list[str] = []
        # frames share few distinct (snapshot, channel, pixel size) combinations: compare
        # each combination with its channel's baseline once, not once per plane
        refs: dict[tuple[int, int, float], str | None] = {}
        for f in frames:
            key = (f.snapshot, f.c, f.pixel_size_um)
            if key not in refs:
                current = settings(f.snapshot).flat()
                current.setdefault("objective", "")
                current["pixel_size_um"] = repr(f.pixel_size_um if f.pixel_size_um > 0 else None)
                base = baselines.get(f.c, {})
                diff = {k: v for k, v in current.items() if base.get(k) != v}
                diff.update({k: "not observed" for k in base if k not in current})
                refs[key] = annotations.ref(NS_PLANE, diff) if diff else None
            planes.append(_plane_xml(f, refs[key]))
            tiffdata.append(f'<TiffData IFD="{f.index}" FirstZ="{f.z}" FirstT="{f.t}" '
                            f'FirstC="{f.c}" PlaneCount="1"/>')
        objective = image_obs.objective
        pos_name = start.position_names[p] if p < len(start.position_names) else None
        image = m.Image(
            id=f"Image:{p}",
            name=clean_text(pos_name) or f"Position {p}",
            acquisition_date=start.started_at,
            description=clean_text(f"Recorded by {software} with hardware profile "
                                   f"'{profile.name}'"),
            instrument_ref=m.InstrumentRef(id=instrument.id),
            objective_settings=_objective_settings(profile, objective),
            stage_label=m.StageLabel(
                name=clean_text(pos_name) or f"Position {p}",
                x=first.x_um, y=first.y_um, z=first.z_um,
                x_unit="µm", y_unit="µm", z_unit="µm",
            ) if first.x_um is not None or first.z_um is not None else None,
            pixels=m.Pixels(
                id=f"Pixels:{p}", dimension_order="XYZCT",
                type=_PIXEL_TYPES.get(start.dtype, start.dtype),
                size_x=start.width, size_y=start.height,
                size_z=size_z, size_c=size_c, size_t=size_t,
                physical_size_x=image_px, physical_size_y=image_px,
                physical_size_x_unit="µm", physical_size_y_unit="µm",
                physical_size_z=abs(start.z_step_um) if start.z_step_um and size_z > 1 else None,
                physical_size_z_unit="µm",
                time_increment=start.time_interval_s if start.time_interval_s else None,
                time_increment_unit="s",
                channels=channels,
                metadata_only=m.MetadataOnly(),
            ),
            annotation_refs=list(image_refs),
        )
        images.append(image)
        bodies.append("".join(tiffdata) + "".join(planes))
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
    head = to_xml(ome)
    parts = head.split("<MetadataOnly/>")
    if len(parts) != len(bodies) + 1:
        raise RuntimeError("unexpected OME-XML layout from ome-types; cannot place planes")
    out = [parts[0]]
    for body, rest in zip(bodies, parts[1:], strict=True):
        out.append(body)
        out.append(rest)
    return _embed_nbo("".join(out), nbo)


def _embed_nbo(xml: str, nbo: str) -> str:
    """Put the NBO document into the (empty) value of the NBO XMLAnnotation."""
    start = xml.find(f'<XMLAnnotation ID="{NBO_ANNOTATION_ID}"')
    value = xml.find("<Value/>", start) if start >= 0 else -1
    if value < 0:
        raise RuntimeError("unexpected OME-XML layout from ome-types; cannot embed the NBO record")
    return f"{xml[:value]}<Value>{nbo}</Value>{xml[value + len('<Value/>'):]}"


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


def _run_summary(run: Run, software: str) -> dict[str, str]:
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
    return summary
