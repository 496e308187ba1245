"""The Image part of the NBO record: study, images, channels, light paths and planes.

* **Experiment**, its **Sample** and the **Experimenter**, from what the sequence metadata
  states under ``nbo``; required free-text attributes nobody stated are
  :data:`~nbo_recorder.vocabulary.UNKNOWN_TEXT`.
* **Image** per stage position (from the run's :mod:`~nbo_recorder.render.layout`) —
  ``ObjectiveSettings`` (+ ``ImmersionLiquid``), ``MicroscopeStandSettings``,
  ``ImagingEnvironment``, ``OpticalCalibration``, and per channel a ``LightPath`` with the
  settings in force at the channel's first frame: ``LightSourceSettings`` (power in mW, or LED
  intensity in %), filter/dichroic/filter-set references, ``ApertureRef`` to the pinhole disk
  in the path, and ``CameraSettings`` (or the point/generic detector settings) with gain,
  offset, binning, bit depth and readout rate. ``ExcitationCalibration`` carries the
  light-power meter readings of the channel's source. The observed camera gain is both the
  ``AnalogGain`` (NBO: "also known as ... simply as Gain") and, unless an EM gain was observed,
  the ``AmplificationGain`` (NBO: "electronic gain ... set during the Acquisition"): it is the
  one gain setting the device reports. The NBO XSD requires one ``AdditionalDimensionMap``
  per Pixels: an image with no dimension beyond XYZCT gets a map of size 1 saying so
  (:func:`_singleton_dimension`), as OME writes ``SizeZ="1"`` for an image with no z.
* **Plane** per frame — built as strings (100 000 planes in well under a second) and spliced
  in by :func:`splice_planes`; a plane whose observed settings differ from its channel's
  references a MapAnnotation with the differences. A plane number that is not finite is left
  out (the differences say it is unknown).
"""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nbo_recorder.capture.documents import Run
from nbo_recorder.capture.observed import DetectorObserved, LightSourceInPath, ObservedSettings
from nbo_recorder.nbo.schema import xsd_attribute
from nbo_recorder.profile import calibration
from nbo_recorder.profile.model import ChannelInfo, FilterSet, Objective, Profile
from nbo_recorder.render.annotations import AnnotationRegistry
from nbo_recorder.render.layout import (
    ChannelLayout,
    ImageLayout,
    PlaneLayout,
    number_attributes,
)
from nbo_recorder.render.nbo_elements import (
    BIT_DEPTHS,
    CONTRAST_METHOD,
    IMAGING_METHOD_BY_MODE,
    IMMERSION_LIQUID,
    TRANSMITTED_METHOD,
    Extra,
    Scalar,
    merged,
    settings_element,
    xml_element,
)
from nbo_recorder.render.nbo_instrument import Rig, set_refs
from nbo_recorder.vocabulary import (
    NS_CHANNEL,
    NS_PLANE,
    PIXEL_TYPES,
    UNKNOWN_TEXT,
    clean_text,
    finite,
    ome_binning,
    ome_id,
)

#: Which planes an NBO document holds: all, or the first of each channel per image.
PlaneSelection = Literal["all", "first_per_channel"]

def study_of(run: Run) -> Mapping[str, Any]:
    """What the experimenter stated in the sequence metadata under ``nbo`` (may be empty)."""
    metadata = run.start.sequence.get("metadata")
    nbo = metadata.get("nbo") if isinstance(metadata, Mapping) else None
    return nbo if isinstance(nbo, Mapping) else {}


def stated(study: Mapping[str, Any], element: str, *path: str) -> dict[str, Scalar]:
    """Scalar attributes of ``element`` stated in the study metadata (at ``path``)."""
    node: Any = study
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        return {}
    return {k: v for k, v in node.items() if isinstance(k, str) and k != "ID"
            and isinstance(v, str | bool | int | float) and xsd_attribute(element, k) is not None}


def experiment_elements(study: Mapping[str, Any]) -> list[ET.Element]:
    """Experiment (with its Sample) and Experimenter: the Image must refer to both."""
    experiment = xml_element("Experiment", {
        "ID": "Experiment:0", "LabellingMethod": UNKNOWN_TEXT,
        **stated(study, "Experiment", "Experiment")})
    xml_element("ExperimenterRef", {"ID": "Experimenter:0"}, experiment)
    sample = xml_element("Sample", {"ID": "Sample:0", "Name": UNKNOWN_TEXT,
                                    "Organism": UNKNOWN_TEXT,
                                    **stated(study, "Sample", "Sample")}, experiment)
    for child in ("MountingMedium", "CoverGlass"):  # the specimen's mounting, in XSD order
        attributes = stated(study, child, "Sample", child)
        if attributes:
            xml_element(child, {"ID": f"{child}:0", **attributes}, sample)
    experimenter = xml_element("Experimenter", {
        "ID": "Experimenter:0", **stated(study, "Experimenter", "Experimenter")})
    return [experiment, experimenter]


def imaging_method(info: ChannelInfo) -> str | None:
    """NBO Channel@IlluminationType from the OME acquisition mode, illumination and contrast."""
    mode = info.acquisition_mode.value if info.acquisition_mode else None
    illumination = info.illumination_type.value if info.illumination_type else None
    contrast = info.contrast_method.value if info.contrast_method else None
    if mode in IMAGING_METHOD_BY_MODE:
        return IMAGING_METHOD_BY_MODE[mode]
    if mode == "WideField" and illumination == "Epifluorescence":
        return "Wide-field_Fluorescence"
    if mode in (None, "WideField", "BrightField") and illumination == "Transmitted":
        return TRANSMITTED_METHOD.get(contrast or "")
    return None


def _color(text: str | None) -> int | None:
    """OME/NBO Color: RGBA packed into a signed 32-bit integer."""
    if text is None:
        return None
    digits = text.lstrip("#")
    value = int(digits + ("FF" if len(digits) == 6 else ""), 16)
    return value - (1 << 32) if value >= 1 << 31 else value


@dataclass
class ImageContext:
    profile: Profile
    rig: Rig
    annotations: AnnotationRegistry[ET.Element]
    study: Mapping[str, Any]
    run_date: datetime.date
    calibration_refs: dict[str, str]


def _light_source_settings(ctx: ImageContext, source: LightSourceInPath,
                           parent: ET.Element) -> None:
    """Power as observed in mW; for a source with only an intensity setting, that in %."""
    power, unit = finite(source.power_mw), "mW"
    if power is None:
        power, unit = finite(source.intensity_percent), "%"
    fixed = ctx.rig.extras.get(source.component, Extra()).child("LightSourceSettings")
    xml_element("LightSourceSettings", merged({
        "ID": ome_id("LightSource", source.component),
        "IlluminationPowerSettings": power,
        # the XSD spells this unit attribute without the leading "I"
        "lluminationPowerSettingsUnit": unit if power is not None else None,
        "Attenuation": finite(source.attenuation),
    }, fixed), parent)


def _detector_settings(ctx: ImageContext, detector: DetectorObserved,
                       parent: ET.Element) -> None:
    """Observed gain, offset, binning, bit depth, readout rate, completed by fixed settings."""
    element = settings_element(ctx.rig.elements.get(detector.component, "GenericDetector"))
    depth = finite(detector.bit_depth)
    binning = detector.binning if isinstance(detector.binning, str) else None
    rate = finite(detector.readout_rate_mhz)
    temperature = finite(detector.temperature_c)
    observed: dict[str, object] = {
        "ID": ome_id("Detector", detector.component),
        "EffectiveBitDepth": f"{int(depth)}bit" if depth is not None and depth in BIT_DEPTHS
        else None,
        "AnalogGain": finite(detector.gain),
        "AmplificationGain": finite(detector.em_gain) if detector.em_gain is not None
        else finite(detector.gain),
        "Offset": finite(detector.offset),
    }
    if element == "CameraSettings":
        observed.update({
            "Binning": ome_binning(binning) if binning is not None else None,
            "PixelReadOutRate": rate, "PixelReadOutRateUnit": "MHz" if rate is not None else None,
            "OperatingTemperature": temperature,
            "OperatingTemperatureUnit": "°C" if temperature is not None else None,
        })
    fixed = ctx.rig.extras.get(detector.component, Extra()).child(element)
    xml_element(element, merged(observed, fixed), parent)


_FILTER_REF = {"ExcitationFilter": "ExcitationFilterRef", "EmissionFilter": "EmissionFilterRef"}


def _light_path(ctx: ImageContext, p: str, c: int, obs: ObservedSettings | None,
                parent: ET.Element) -> None:
    """The channel's light path as observed at its first frame (children in XSD order)."""
    path = xml_element("LightPath", {"ID": f"LightPath:{p}:{c}"}, parent)
    if obs is None:
        return
    for source in obs.light_sources:
        _light_source_settings(ctx, source, path)
    filters = (*obs.excitation_filters, *obs.emission_filters)
    tags = {f: _FILTER_REF.get(ctx.rig.elements.get(f, ""), "GenericFilterRef") for f in filters}
    for filter_id in filters:
        if tags[filter_id] == "ExcitationFilterRef":
            xml_element("ExcitationFilterRef", {"ID": ome_id("Filter", filter_id)}, path)
    for dichroic in obs.dichroics:
        xml_element("StandardDichroicRef", {"ID": ome_id("Dichroic", dichroic)}, path)
    for filter_id in filters:
        if tags[filter_id] == "EmissionFilterRef":
            xml_element("EmissionFilterRef", {"ID": ome_id("Filter", filter_id)}, path)
    for set_id in obs.filter_sets:
        comp = ctx.profile.component(set_id)
        node = xml_element("FilterSet", {"ID": ome_id("FilterSet", set_id), "Name": comp.name},
                           path)
        if isinstance(comp, FilterSet):
            set_refs(comp, ctx.rig.elements, node)
    for filter_id in filters:
        if tags[filter_id] == "GenericFilterRef":
            xml_element("GenericFilterRef", {"ID": ome_id("Filter", filter_id)}, path)
    for pinhole in obs.pinholes:
        xml_element("ApertureRef", {"ID": ome_id("Pinhole", pinhole)}, path)
    for detector in obs.detectors:
        _detector_settings(ctx, detector, path)
    observed = obs.flat()
    if observed:
        xml_element("AnnotationRef", {"ID": ctx.annotations.ref(NS_CHANNEL, observed)}, path)


def _excitation_calibrations(ctx: ImageContext, p: str, c: int, obs: ObservedSettings | None,
                             parent: ET.Element) -> None:
    """Light-power readings of the channel's light sources (per line, when they say which).

    The element's ID contains the calibration id; its MapAnnotation (with the stale verdict)
    is referenced from the Image, because the XSD's AnnotationRef inside calibration elements
    has no ID attribute.
    """
    if obs is None:
        return
    for cal in ctx.profile.calibrations:
        if cal.kind != "light_power":
            continue
        source = next((s for s in obs.light_sources if s.component == cal.component), None)
        if source is None:
            continue
        attributes = calibration.nbo_attributes(cal).get("ExcitationCalibration", {})
        observed_line = attributes.get("ObservedEx-Wavelength")
        line = finite(source.wavelength_nm)
        if isinstance(observed_line, float) and line is not None and abs(observed_line - line) > 10:
            continue
        xml_element("ExcitationCalibration", {
            "ID": f"ExcitationCalibration:{cal.id}:{p}:{c}", "Date": cal.date.isoformat(),
            "Method": calibration.method_text(cal),
            "NominalEx-Wavelength": line, "NominalEx-WavelengthUnit": "nm" if line else None,
            **attributes}, parent)


def _channel(ctx: ImageContext, p: str, layout: ChannelLayout) -> ET.Element:
    """A Channel with its Fluorophore, LightPath and excitation calibrations."""
    c, name, info, obs = layout.index, layout.name, layout.info, layout.observed
    channel = xml_element("Channel", {
        "ID": f"Channel:{p}:{c}", "Name": name, "IlluminationType": imaging_method(info),
        "ContrastMethod": CONTRAST_METHOD.get(info.contrast_method.value)
        if info.contrast_method else None,
        "Color": _color(info.color), "SamplesPerPixel": 1,
    })
    given = stated(ctx.study, "Fluorophore", "Fluorophore", name or "")
    xml_element("Fluorophore", {
        "ID": f"Fluorophore:{p}:{c}", "Manufacturer": UNKNOWN_TEXT, "Model": UNKNOWN_TEXT,
        "CatalogNumber": UNKNOWN_TEXT, "Name": info.fluor, **given}, channel)
    _light_path(ctx, p, c, obs, channel)
    _excitation_calibrations(ctx, p, c, obs, channel)
    return channel


def _objective_settings(ctx: ImageContext, objective: object, parent: ET.Element) -> None:
    """The objective in use and, for immersion objectives, its ImmersionLiquid."""
    if not isinstance(objective, str):
        return
    comp = ctx.profile.component(objective)
    node = xml_element("ObjectiveSettings", {"ID": ome_id("Objective", objective)}, parent)
    if not isinstance(comp, Objective):
        return
    immersion = comp.immersion.value if comp.immersion else None
    given = ctx.rig.extras.get(objective, Extra()).child("ImmersionLiquid")
    liquid_type = IMMERSION_LIQUID.get(immersion or "")
    if immersion == "Air" or not (liquid_type or given or comp.immersion_refractive_index):
        return
    xml_element("ImmersionLiquid", merged({
        "ID": f"ImmersionLiquid:{objective}", "Type": liquid_type,
        "RefractiveIndex": comp.immersion_refractive_index}, given), node)


def _environment(profile: Profile, parent: ET.Element) -> None:
    """ImagingEnvironment from the profile (NBO types these as text; units stay explicit)."""
    env = profile.environment
    if env is None:
        return
    xml_element("ImagingEnvironment", {
        "Temperature": env.temperature_c,
        "TemperatureUnit": "°C" if env.temperature_c is not None else None,
        "CO2Percent": env.co2_percent, "Humidity": env.humidity_percent,
        "AirPressure": env.air_pressure_hpa,
        "AirPressureUnit": "hPa" if env.air_pressure_hpa is not None else None,
    }, parent)


def _optical_calibrations(ctx: ImageContext, p: str, objective: object,
                          parent: ET.Element) -> None:
    """PSF, chromatic registration and field-uniformity results that apply to this image.

    Linked to their MapAnnotation like :func:`_excitation_calibrations`.
    """
    for cal in ctx.profile.calibrations:
        if calibration.NBO_ELEMENT.get(cal.kind) != "OpticalCalibration":
            continue
        if cal.component is not None and cal.component != objective and isinstance(
                ctx.profile.component(cal.component), Objective):
            continue
        attributes = calibration.nbo_attributes(cal)
        node = xml_element("OpticalCalibration", {
            "ID": f"OpticalCalibration:{cal.id}:{p}", "Date": cal.date.isoformat(),
            **attributes.get("OpticalCalibration", {})}, parent)
        if cal.kind == "chromatic_registration":
            xml_element("ChromaticRegistrationEvaluation", {
                "ID": f"ChromaticRegistrationEvaluation:{cal.id}:{p}",
                **attributes.get("ChromaticRegistrationEvaluation", {})}, node)
        if cal.kind == "field_uniformity":
            xml_element("FieldUniformityEvaluation", {
                "ID": f"FieldUniformityEvaluation:{cal.id}:{p}",
                **attributes.get("FieldUniformityEvaluation", {})}, node)


#: Namespace of the annotation that explains the size-1 additional dimension.
NS_ADDITIONAL_DIMENSION = "urn:nbo-recorder:additional-dimension"

_NO_DIMENSION = ("none: the image has no dimension beyond XYZCT; the NBO v2.01 XSD requires one "
                 "AdditionalDimensionMap per Pixels, so this one has a single sample")


def _singleton_dimension(ctx: ImageContext, p: str, pixels: ET.Element) -> None:
    """The size-1 AdditionalDimensionMap the XSD requires of every Pixels (see module doc)."""
    node = xml_element("AdditionalDimensionMap", {
        "ID": f"AdditionalDimensionMap:{p}", "Name": "none", "Size": 1, "Type": "Other",
        "TypeDescription": _NO_DIMENSION, "Order": 0, "Unit": "none"}, pixels)
    xml_element("TheAdditionalDimension", {
        "ID": f"TheAdditionalDimension:{p}:1", "TheAdditionalDimensionIndex": 1}, node)
    xml_element("Description", parent=node).text = _NO_DIMENSION
    xml_element("AnnotationRef", {"ID": ctx.annotations.ref(
        NS_ADDITIONAL_DIMENSION, {"additional dimension": _NO_DIMENSION})}, node)


def _plane(p: str, plane: PlaneLayout, ref: str | None) -> str:
    """One Plane as text (IDs carry the frame's TIFF page number).

    A number that is not known is left out with its unit; NBO requires the Timestamp, so
    validation reports a plane without one as what it is: not known.
    """
    f, numbers, _, z, c, t = plane
    tail = " />" if ref is None else f'><AnnotationRef ID="{ref}" /></Plane>'
    return (f'<Plane ID="Plane:{p}:{f.index}" TheZ="{z}" TheT="{t}" TheC="{c}"'
            f'{number_attributes(numbers, "Timestamp")}{tail}')


def _planes_marker(number: int) -> str:
    """Tag of the empty element standing in for image ``number``'s planes until spliced."""
    return f"nbo-recorder-planes-{number}"


_PLANES_MARKER = re.compile(r"<nbo-recorder-planes-(\d+) />")


def splice_planes(document: str, bodies: Mapping[int, str]) -> str:
    """``document`` with each image's planes marker replaced by the text of its planes."""
    parts = _PLANES_MARKER.split(document)
    for i in range(1, len(parts), 2):
        parts[i] = bodies[int(parts[i])]
    return "".join(parts)


def image_element(ctx: ImageContext, run: Run, layout: ImageLayout,
                  selection: PlaneSelection) -> tuple[ET.Element, str]:
    """One Image (per stage position, or part of one) and the text of its planes.

    Its sizes, pixel size, z step and time increment are its own frames' (the layout's)."""
    start = run.start
    p, objective, pixel_size = layout.key, layout.objective, layout.pixel_size_um
    z_step, interval = layout.z_step_um, layout.time_increment_s
    image = xml_element("Image", {"ID": f"Image:{p}", "Name": layout.title,
                                  "AcquisitionDate": ctx.run_date.isoformat()})
    xml_element("InstrumentRef", {"ID": "Instrument:0"}, image)
    xml_element("ExperimentRef", {"ID": "Experiment:0"}, image)
    xml_element("ExperimenterRef", {"ID": "Experimenter:0"}, image)
    xml_element("SampleRef", {"ID": "Sample:0"}, image)
    for software_id in ctx.rig.software_ids:
        xml_element("AcquisitionSoftwareRef", {"ID": software_id}, image)
    xml_element("Description", parent=image).text = clean_text(
        f"Recorded with hardware profile '{ctx.profile.name}'"
        + (f"; {layout.description}" if layout.description else ""))
    _environment(ctx.profile, image)
    if ctx.rig.stand_id is not None:
        xml_element("MicroscopeStandSettings", {"ID": ctx.rig.stand_id}, image)
    _objective_settings(ctx, objective, image)
    _optical_calibrations(ctx, p, objective, image)
    pixels = xml_element("Pixels", {
        "ID": f"Pixels:{p}", "DimensionOrder": "XYZCT",
        "SizeX": layout.size_x, "SizeY": layout.size_y, "SizeZ": layout.size_z,
        "SizeC": layout.size_c,
        "SizeT": layout.size_t, "PhysicalSizeX": pixel_size, "PhysicalSizeY": pixel_size,
        "PhysicalSizeXUnit": "µm" if pixel_size else None,
        "PhysicalSizeYUnit": "µm" if pixel_size else None,
        "PhysicalSizeZ": z_step, "PhysicalSizeZUnit": "µm" if z_step else None,
        "TimeIncrement": interval, "TimeIncrementUnit": "s" if interval else None,
        "PixelType": PIXEL_TYPES.get(start.dtype),
    }, image)
    ET.SubElement(pixels, _planes_marker(layout.number))
    for channel in layout.channels:
        pixels.append(_channel(ctx, p, channel))
    _singleton_dimension(ctx, p, pixels)
    xml_element("MetadataOnly", parent=pixels)
    for ref in ctx.calibration_refs.values():
        xml_element("AnnotationRef", {"ID": ref}, image)
    refs: dict[int, str | None] = {}
    planes: list[str] = []
    for plane in layout.planes:
        f, key = plane.frame, id(plane.deviation)
        if selection == "first_per_channel":
            if len(planes) == len(layout.channels):
                break  # each channel's first plane is in: no later plane is one
            if layout.channels[plane.the_c].first is not f:
                continue
        if key not in refs:
            diff = plane.deviation.settings
            refs[key] = ctx.annotations.ref(NS_PLANE, diff) if diff else None
        planes.append(_plane(p, plane, refs[key]))
    return image, "".join(planes)
