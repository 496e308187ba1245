"""The Instrument of the NBO record: the stand, the software stack and every profiled component.

Each component becomes its NBO element (:func:`~nbo_recorder.render.nbo_elements.nbo_element_name`)
with its manufacturer specs, the attributes of its kind and its spectral children
(transmittance ranges, illumination wavelength ranges, LED modules), completed (never
overridden) by the NBO attributes its ``extra`` names. A light source's wavelengths are the
profile's, its binding labels', and those its bound ``wavelength`` property reported during the
run (:func:`~nbo_recorder.render.nbo_elements.source_wavelengths`). A spectral child the XSD
requires (a filter's ``TransmittanceRange``, an LED's ``LEDModule``) is written even when
nothing of it is known, empty: its required attributes are then reported missing instead of
the record being malformed. Facts NBO has no attribute for (serial number, spec source, filter
wheel) go into an inline MapAnnotation. The stand is written when the profile says whether it
is inverted or upright.

``AcquisitionSoftware`` is the software that drove the instrument: Micro-Manager's MMCore, its
Python binding pymmcore and pymmcore-plus, each with the version the run reported and the
developer and website its own package metadata states (:func:`software_contact`).
nbo-recorder only wrote the metadata: it is named in the document's ``Creator`` attribute
(:func:`nbo_recorder.render.nbo.build_nbo_xml`), the XSD's slot for "the creating application
of the OME-XML". Filter wheels and turrets are not written: NBO requires their manufacturer,
model and catalogue number, and the profile does not describe them.
"""

from __future__ import annotations

import importlib.metadata
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

from nbo_recorder.nbo.schema import local_name, xsd_attribute
from nbo_recorder.profile.model import (
    LED,
    Arc,
    Component,
    Detector,
    Dichroic,
    Filter,
    FilterSet,
    GenericLightSource,
    Laser,
    Objective,
    Pinhole,
    Profile,
    SpinningDisk,
    Stage,
)
from nbo_recorder.render.annotations import AnnotationRegistry
from nbo_recorder.render.nbo_elements import (
    ARC_TYPE,
    BIT_DEPTHS,
    CAMERAS,
    CORRECTION,
    DETECTOR_ELEMENT,
    FILTER_TYPE,
    IMMERSION_TYPE,
    LASER_TYPE,
    STAND_ELEMENT,
    STAND_TYPE,
    Extra,
    filter_roles,
    map_annotation,
    merged,
    nbo_element_name,
    split_extra,
    xml_element,
)
from nbo_recorder.vocabulary import NS_COMPONENT, component_id, ome_id

#: Acquisition software the run reports a version of -> (NBO name, Python distribution that
#: ships it; MMCore is compiled into pymmcore, whose metadata names its developer).
_SOFTWARE: tuple[tuple[str, str, str], ...] = (
    ("MMCore", "Micro-Manager MMCore", "pymmcore"),
    ("pymmcore", "pymmcore", "pymmcore"),
    ("pymmcore-plus", "pymmcore-plus", "pymmcore-plus"),
)


#: No wavelengths reported: a profile checked on its own, before any run.
NOTHING_REPORTED: Mapping[str, Sequence[float]] = MappingProxyType({})


#: NBO element -> the spectral child its XSD requires at least once.
_REQUIRED_CHILD = {name: "TransmittanceRange" for name in (
    "ExcitationFilter", "EmissionFilter", "GenericFilter", "NeutralDensityFilter",
    "StandardDichroic")} | {"LightEmittingDiode": "LEDModule"}


_URL_LABELS = ("homepage", "source", "repository", "documentation")



def manufacturer_specs(comp: Component) -> dict[str, object]:
    """NBO ManufacturerSpecs attributes of a component."""
    return {"Manufacturer": comp.manufacturer, "Model": comp.model,
            "CatalogNumber": comp.catalog_number, "LotNumber": comp.lot_number,
            "Name": comp.name}


def _component_notes(comp: Component, notes: Mapping[str, object]) -> ET.Element:
    """Inline MapAnnotation with profile facts NBO has no attribute for (serial number, ...)."""
    return map_annotation(f"Annotation:component:{comp.id}", NS_COMPONENT,
                           _notes_text(comp, notes))


def _notes_text(comp: Component, notes: Mapping[str, object]) -> dict[str, str]:
    """Profile id, serial number, spec source and ``notes`` that are set, as text."""
    values = {"profile id": comp.id}
    for key, value in (("serial number", comp.serial_number), ("source", comp.source),
                       *notes.items()):
        if value is not None:
            values[key] = str(value)
    return values


def _transmittance(comp: Filter) -> dict[str, object]:
    """NBO TransmittanceRange from OME-style 50 % cut-in/cut-out points (FWHM = out - in)."""
    tr = comp.transmittance_range
    centre = comp.center_wavelength_nm
    fwhm = None
    if tr is not None and tr.cut_in_nm is not None and tr.cut_out_nm is not None:
        fwhm = tr.cut_out_nm - tr.cut_in_nm
        if centre is None:
            centre = (tr.cut_in_nm + tr.cut_out_nm) / 2
    transmittance = tr.transmittance if tr is not None else None
    if centre is None and fwhm is None and transmittance is None:
        return {}
    return {"Wavelength": centre, "WavelengthUnit": "nm", "FWHMBandwidth": fwhm,
            "Transmittance": transmittance}


def _add_ranges(parent: ET.Element, name: str, derived: Sequence[Mapping[str, object]],
                extra: Extra) -> None:
    """``name`` children from the profile (index order) completed by ``extra`` ``name[i].*``;
    one empty child when none is known and the XSD requires one (:data:`_REQUIRED_CHILD`)."""
    given = extra.indexed(name)
    written = 0
    for index in range(max(len(derived), max(given, default=-1) + 1)):
        base = derived[index] if index < len(derived) else {}
        attributes = merged(base, given.get(index, {}))
        if any(v is not None for v in attributes.values()):
            xml_element(name, attributes, parent)
            written += 1
    if not written and _REQUIRED_CHILD.get(local_name(parent.tag)) == name:
        xml_element(name, parent=parent)


@dataclass
class Rig:
    """The Instrument and what the Image part needs to refer to it."""

    instrument: ET.Element
    elements: dict[str, str]
    extras: dict[str, Extra]
    stand_id: str | None
    software_ids: list[str]


def source_lines(profile: Profile, comp: LED | Laser,
                 reported: Mapping[str, Sequence[float]]) -> list[float]:
    """A light source's wavelengths (nm): its own when the profile states it, else those its
    binding labels state per line and those it ``reported`` during the run."""
    if comp.wavelength_nm is not None:
        return [comp.wavelength_nm]
    found = list(reported.get(comp.id, ()))
    for binding in profile.bindings:
        for target in (binding.labels or {}).values():
            if target is not None and target.component == comp.id and target.wavelength_nm:
                found.append(target.wavelength_nm)
    return sorted(set(found))


def _objective_attributes(comp: Objective) -> tuple[dict[str, object], dict[str, object]]:
    """Objective attributes; OME "Oil" is noted, NBO's ImmersionType then comes from extra."""
    immersion = comp.immersion.value if comp.immersion else None
    attributes: dict[str, object] = {
        "Magnification": comp.nominal_magnification,
        "CalibratedMagnification": comp.calibrated_magnification,
        "LensNA": comp.lens_na,
        "Correction": CORRECTION.get(comp.correction.value) if comp.correction else None,
        "ImmersionType": IMMERSION_TYPE.get(immersion or ""),
        "DippingMedium": "Water-based" if immersion == "WaterDipping" else None,
        "WorkingDistance": comp.working_distance_um,
        "WorkingDistanceUnit": "µm" if comp.working_distance_um is not None else None,
        "Iris": comp.iris,
    }
    notes: dict[str, object] = {}
    if immersion == "Oil":
        notes["immersion (OME)"] = "Oil (mineral or silicone oil not stated)"
    return attributes, notes


def _detector_attributes(comp: Detector, element: str,
                         ) -> tuple[dict[str, object], dict[str, object]]:
    """Detector attributes; pixel size and array size only exist on NBO cameras."""
    detector_type = comp.detector_type.value if comp.detector_type else None
    attributes: dict[str, object] = dict(DETECTOR_ELEMENT.get(detector_type or "", ("", {}))[1])
    notes: dict[str, object] = {}
    if comp.bit_depth in BIT_DEPTHS:
        attributes["MaxBitDepth"] = f"{comp.bit_depth}bit"
    if element in CAMERAS:
        size = comp.pixel_size_um
        attributes.update({"PixelWidth": size, "PixelHeight": size,
                           "PixelWidthUnit": "µm" if size else None,
                           "PixelHeightUnit": "µm" if size else None,
                           "ArrayWidth": comp.sensor_width_px,
                           "ArrayHeight": comp.sensor_height_px})
    elif comp.pixel_size_um is not None:
        notes["pixel size"] = f"{comp.pixel_size_um:g} µm"
    if detector_type is not None and element == "GenericDetector":
        notes["detector type (OME)"] = detector_type
    return attributes, notes


def _stage_attributes(comp: Stage, element: str) -> dict[str, object]:
    """Axes and travel ranges (max - min of the profile's limits, in µm)."""
    attributes: dict[str, object] = {"MovementAxes": comp.axes.upper()}
    for axis, low, high in zip(comp.axes, comp.min_um or (), comp.max_um or (), strict=False):
        name = f"{axis.upper()}TravelRange"
        if xsd_attribute(element, name) is not None:
            attributes.update({name: high - low, f"{name}Unit": "µm"})
    return attributes


def kind_attributes(profile: Profile, comp: Component, element: str,
                    reported: Mapping[str, Sequence[float]] = NOTHING_REPORTED,
                    ) -> tuple[dict[str, object], dict[str, object]]:
    """NBO attributes specific to the component's kind, and facts NBO has no attribute for.

    ``reported``: wavelengths the light sources reported during a run (none when checking a
    profile on its own).
    """
    if isinstance(comp, Objective):
        return _objective_attributes(comp)
    if isinstance(comp, Detector):
        return _detector_attributes(comp, element)
    if isinstance(comp, Stage):
        return _stage_attributes(comp, element), {}
    if isinstance(comp, Filter):
        return ({"Type": FILTER_TYPE.get(comp.filter_type.value) if comp.filter_type else None},
                {"filter wheel": comp.filter_wheel})
    if isinstance(comp, Dichroic):
        return {}, {"cut-on": f"{comp.cut_on_nm:g} nm" if comp.cut_on_nm else None}
    if isinstance(comp, Laser):
        return {"Type": LASER_TYPE.get(comp.laser_type.value) if comp.laser_type else None,
                "LaserMedium": comp.laser_medium}, {}
    if isinstance(comp, Pinhole):
        return ({"MaxDiameter": comp.diameter_um,
                 "MaxDiameterUnit": "µm" if comp.diameter_um is not None else None},
                {"pinhole pitch": f"{comp.pitch_um:g} µm" if comp.pitch_um else None})
    if isinstance(comp, LED | Arc | GenericLightSource):
        placed = isinstance(comp, LED) and len(source_lines(profile, comp, reported)) == 1
        power = f"{comp.rated_power_mw:g} mW" if comp.rated_power_mw and not placed else None
        kind: dict[str, object] = {}
        if isinstance(comp, Arc) and comp.arc_type is not None:
            kind["Type"] = ARC_TYPE.get(comp.arc_type.value)
        return kind, {"rated power": power}
    return {}, {}


def _add_children(profile: Profile, comp: Component, element: str, extra: Extra,
                  node: ET.Element, reported: Mapping[str, Sequence[float]]) -> None:
    """Spectral children (transmittance, wavelength ranges, LED modules) and required maps."""
    if isinstance(comp, Filter):
        derived = _transmittance(comp)
        _add_ranges(node, "TransmittanceRange", [derived] if derived else [], extra)
    elif isinstance(comp, Dichroic):
        _add_ranges(node, "TransmittanceRange", [], extra)
    elif isinstance(comp, Laser):
        lines = source_lines(profile, comp, reported)
        power = comp.rated_power_mw if len(lines) <= 1 else None
        ranges: list[dict[str, object]] = [
            {"PeakWavelength": w, "IlluminationPower": power} for w in lines]
        if not ranges and power is not None:
            ranges.append({"IlluminationPower": power})
        _add_ranges(node, "IlluminationWavelengthRange", ranges, extra)
    elif isinstance(comp, Arc | GenericLightSource):
        _add_ranges(node, "IlluminationWavelengthRange", [], extra)
    elif isinstance(comp, LED):
        wavelengths = source_lines(profile, comp, reported)
        power = comp.rated_power_mw if len(wavelengths) == 1 else None
        _add_ranges(node, "LEDModule", [{"PeakWavelength": w, "IlluminationPower": power}
                                        for w in wavelengths], extra)
    elif element == "GenericDetector":
        xml_element("Map", parent=node)


def _component_element(profile: Profile, comp: Component, element: str, extra: Extra,
                       annotations: AnnotationRegistry[ET.Element],
                       reported: Mapping[str, Sequence[float]]) -> ET.Element:
    """One profiled component as its NBO element (see :func:`nbo_element_name`).

    Profile facts NBO has no attribute for go into an inline MapAnnotation; a SpinningDisk
    has no place for one (nor for manufacturer specs) and refers to a StructuredAnnotation.
    """
    attributes, notes = kind_attributes(profile, comp, element, reported)
    specs = manufacturer_specs(comp)
    if isinstance(comp, SpinningDisk):
        notes = {**{k: specs.pop(k) for k in ("Manufacturer", "Model", "CatalogNumber",
                                              "LotNumber")},
                 "pinholes": ", ".join(ome_id("Pinhole", p) for p in comp.pinholes) or None}
    node = xml_element(element, merged(
        {**specs, "ID": component_id(comp.kind, comp.id), **attributes}, extra.attributes))
    if isinstance(comp, SpinningDisk):
        ref = annotations.ref(NS_COMPONENT, _notes_text(comp, notes))
        xml_element("AnnotationRef", {"ID": ref}, node)
        return node
    node.append(_component_notes(comp, notes))
    _add_children(profile, comp, element, extra, node, reported)
    return node


def set_refs(comp: FilterSet, elements: Mapping[str, str], parent: ET.Element) -> None:
    """References to a filter set's parts; NBO holds at most one filter per side."""
    for refs, kind in ((comp.excitation_filters, "ExcitationFilter"),
                       ((comp.dichroic,) if comp.dichroic else (), "StandardDichroic"),
                       (comp.emission_filters, "EmissionFilter")):
        if len(refs) == 1 and elements.get(refs[0]) == kind:
            prefix = "Dichroic" if kind == "StandardDichroic" else "Filter"
            xml_element(f"{kind}Ref", {"ID": ome_id(prefix, refs[0])}, parent)


def _filter_cube(comp: FilterSet, elements: Mapping[str, str], extra: Extra) -> ET.Element:
    """A filter set as an NBO FilterCube (a set with several filters per side lists them)."""
    node = xml_element("FilterCube", merged(
        {**manufacturer_specs(comp), "ID": component_id(comp.kind, comp.id)}, extra.attributes))
    several = len(comp.excitation_filters) > 1 or len(comp.emission_filters) > 1
    node.append(_component_notes(comp, {
        "filters": ("excitation: " + ", ".join(comp.excitation_filters) + "; emission: "
                    + ", ".join(comp.emission_filters)) if several else None}))
    set_refs(comp, elements, node)
    return node


def _stand(profile: Profile, extra: Extra) -> ET.Element | None:
    """The stand, when the profile says whether it is inverted or upright."""
    mic = profile.microscope
    kind = mic.type.value if mic.type else None
    element = STAND_ELEMENT.get(kind or "")
    if element is None:
        return None
    derived = {"ID": "MicroscopeStand:0", "Manufacturer": mic.manufacturer, "Model": mic.model,
               "LotNumber": mic.lot_number, "Type": STAND_TYPE.get(kind or "")}
    node = xml_element(element, merged(derived, extra.attributes))
    values = {k: v for k, v in (("serial number", mic.serial_number), ("source", mic.source))
              if v is not None}
    if values:
        node.append(map_annotation("Annotation:component:stand", NS_COMPONENT, values))
    return node


@cache
def software_contact(distribution: str) -> tuple[str | None, str | None]:
    """(developer, website) that an installed Python distribution's own metadata states.

    Read from its ``Author``/``Author-email`` and ``Project-URL``/``Home-page`` fields; either
    is None when the metadata does not state it (nbo-recorder's pyproject has neither yet).
    """
    try:
        meta = importlib.metadata.metadata(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None, None

    def first(key: str) -> str | None:
        values = meta.get_all(key)
        return str(values[0]) if values else None

    developer = first("Author")
    emails = first("Author-email")
    if not developer and emails:
        names = [part.split("<")[0].strip() for part in emails.split(",")]
        developer = ", ".join(n for n in names if n) or None
    urls: dict[str, str] = {}
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = str(entry).partition(",")
        urls.setdefault(label.strip().lower(), url.strip())
    website = next((urls[label] for label in _URL_LABELS if label in urls), None)
    return developer, website or first("Home-page")


def _software(versions: Mapping[str, str]) -> list[ET.Element]:
    """AcquisitionSoftware for each part of the stack the run reported a version of."""
    out = []
    for key, name, distribution in _SOFTWARE:
        version = versions.get(key)
        if not version or version.startswith("not installed"):
            continue
        developer, website = software_contact(distribution)
        out.append(xml_element("AcquisitionSoftware", {
            "ID": f"Software:{key}", "Name": name, "Version": version,
            "Developer": developer, "WebsiteURL": website, "OpenSource": True,
        }))
    return out


#: Instrument children in XSD order (element name -> slot number).
_SLOT = {name: i for i, names in enumerate((
    ("InvertedMicroscopeStand", "UprightMicroscopeStand"), ("AcquisitionSoftware",),
    ("Laser", "LightEmittingDiode", "Arc", "GenericExcitationSource"), ("Objective",),
    ("Pinhole",), ("Z-Drive", "MechanicalStage"), ("FilterCube",),
    ("ExcitationFilter", "EmissionFilter", "GenericFilter", "NeutralDensityFilter"),
    ("StandardDichroic",),
    ("CCD", "CMOS", "IntensifiedCamera", "AnalogVideo", "PhotoMultiplierTube", "PhotoDiode",
     "GenericDetector"),
    ("SpinningDisk",),
)) for name in names}


def build_rig(profile: Profile, versions: Mapping[str, str],
              annotations: AnnotationRegistry[ET.Element],
              reported: Mapping[str, Sequence[float]]) -> Rig:
    """The Instrument: stand, software, then every component, in the XSD's child order.

    ``reported``: the wavelengths each light source reported during the run
    (:func:`~nbo_recorder.render.nbo_elements.source_wavelengths`).
    """
    roles = filter_roles(profile)
    elements = {comp.id: nbo_element_name(comp, roles) for comp in profile.components}
    extras = {comp.id: split_extra(elements[comp.id], comp.extra) for comp in profile.components}
    instrument = xml_element("Instrument", {"ID": "Instrument:0", "Name": profile.name})
    children: list[tuple[int, ET.Element]] = []
    stand_extra_element = STAND_ELEMENT.get(
        profile.microscope.type.value if profile.microscope.type else "", "")
    stand = _stand(profile, split_extra(stand_extra_element, profile.microscope.extra))
    if stand is not None:
        children.append((_SLOT[stand.tag], stand))
    software = _software(versions)
    children.extend((_SLOT["AcquisitionSoftware"], s) for s in software)
    for comp in profile.components:
        element = elements[comp.id]
        if isinstance(comp, FilterSet):
            node = _filter_cube(comp, elements, extras[comp.id])
        else:
            node = _component_element(profile, comp, element, extras[comp.id], annotations,
                                      reported)
        children.append((_SLOT[element], node))
    for _, node in sorted(children, key=lambda item: item[0]):
        instrument.append(node)
    return Rig(instrument, elements, extras, stand.get("ID") if stand is not None else None,
                [s.get("ID", "") for s in software])

