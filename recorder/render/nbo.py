"""Build the 4DN-BINA-OME (NBO) v2.01 record of a run from its documents and the profile.

The OME-XML 2016-06 written by :mod:`nbo_recorder.render.ome` is what Bio-Formats and OMERO read; it
has no place for most of what NBO asks for (stand type, filter coating, camera settings such as
the effective bit depth, pinholes, calibrations). :func:`build_nbo_xml` therefore writes a second,
complete document in the NBO namespace, which ``ome_xml`` embeds as one XMLAnnotation:

* **Instrument** — every profiled component in its NBO element (objective -> ``Objective``,
  filter -> ``ExcitationFilter``/``EmissionFilter`` by how the bindings and filter sets use it,
  laser -> ``Laser`` with an ``IlluminationWavelengthRange``, detector -> ``CCD``/``CMOS``/
  ``PhotoMultiplierTube``/... by its type, pinhole -> ``Pinhole``, spinning disk ->
  ``SpinningDisk``, stage -> ``Z-Drive`` or ``MechanicalStage``, filter set -> ``FilterCube``),
  the stand (inverted or upright), and ``AcquisitionSoftware`` for the software stack with the
  versions the run itself reported. Filter wheels and turrets are not written: NBO requires
  their manufacturer, model and catalogue number, and the profile does not describe them.
* **Image** per stage position — ``ObjectiveSettings`` (+ ``ImmersionLiquid``),
  ``MicroscopeStandSettings``, ``ImagingEnvironment``, ``OpticalCalibration``, and per channel
  a ``LightPath`` with the settings in force at the channel's first frame:
  ``LightSourceSettings`` (power in mW, or LED intensity in %), filter/dichroic/filter-set
  references, ``ApertureRef`` to the pinhole disk in the path, and ``CameraSettings`` (or the
  point/generic detector settings) with gain, offset, binning, bit depth and readout rate.
  ``ExcitationCalibration`` carries the light-power meter readings of the channel's source.
* **Plane** per frame — built as strings (100 000 planes in well under a second); a plane whose
  observed settings differ from its channel's references a MapAnnotation with the differences.

Rules. A value comes from the profile (static specs), from the observed snapshots, or from what
the experimenter stated in the sequence metadata; nothing is invented. A required NBO attribute
nobody stated is left out, so :func:`nbo_recorder.nbo.schema.validate_nbo` reports it (deferred when
its tier is above the target tier). Profile fields use OME 2016-06 vocabularies; the maps below
translate them to NBO's, and values NBO needs but the profile model has no field for are taken
from a component's ``extra`` under their NBO attribute name (``CoatingMethod: HardCoated``,
``TransmittanceRange[0].FWHMBandwidth: 40``, ``CameraSettings.SensorExposureMode: Rolling
shutter``); :func:`check_nbo_profile` rejects values NBO does not allow, naming the allowed
ones. Units are written next to every quantity the XSD gives a unit attribute for.

Elements the XSD requires but the recorder cannot know (the Experiment, its Sample and the
channel's Fluorophore) are written with their required free-text attributes set to
:data:`UNKNOWN_TEXT` (required yes/no and list-valued ones are left out), unless the sequence
metadata states them (``metadata: {nbo: {Experiment: {...}, Sample: {...},
Experimenter: {...}, Fluorophore: {<channel>: {...}}}}``). :func:`nbo_compliance` treats those
markers as missing, so a file never claims a tier it does not reach.
"""

from __future__ import annotations

import copy
import datetime
import importlib.metadata
import math
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from nbo_recorder.capture.documents import FrameRecord, Run
from nbo_recorder.capture.observed import (
    DetectorObserved,
    LightSourceInPath,
    ObservedSettings,
    interpret,
)
from nbo_recorder.nbo import NBO_NAMESPACE
from nbo_recorder.nbo.rules import EXTENSIONS, TIERS
from nbo_recorder.nbo.schema import ValidationResult, attribute_compliance, get_schema, validate_nbo
from nbo_recorder.profile import calibration
from nbo_recorder.profile.model import (
    LED,
    Arc,
    CalibrationRecord,
    ChannelInfo,
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
    ProfileError,
    SpinningDisk,
    Stage,
)
from nbo_recorder.render.annotations import AnnotationRegistry
from nbo_recorder.vocabulary import clean_text

#: Written for free-text attributes of elements the XSD requires but nobody stated.
UNKNOWN_TEXT = "unknown (not stated to nbo-recorder)"

NS_COMPONENT = "urn:nbo-recorder:component"
NS_CHANNEL = "urn:nbo-recorder:channel-settings"
NS_PLANE = "urn:nbo-recorder:plane-settings"
NS_CALIBRATION = "urn:nbo-recorder:calibration"

Scalar = str | bool | int | float
PlaneSelection = Literal["all", "first_per_channel"]

# --- OME 2016-06 (profile) vocabularies -> NBO v2.01 vocabularies ---------------------------
# Identity where NBO has the same word. A value missing from a map has no single NBO
# equivalent: the NBO attribute is then left to the component's ``extra``.

#: OME Immersion -> NBO Objective@ImmersionType. OME "Oil" does not say mineral or silicone oil.
IMMERSION_TYPE = {"Air": "Air", "Water": "Water", "WaterDipping": "Dipping",
                  "Glycerol": "Glycerol", "Multi": "Multi", "Other": "Other"}
#: OME Immersion -> NBO ImmersionLiquid@Type (no liquid for "Air").
IMMERSION_LIQUID = {"Water": "Water", "WaterDipping": "Water", "Glycerol": "Glycerol",
                    "Multi": "Multi", "Other": "Other"}
#: Every OME Correction is also an NBO ObjectiveCorrection.
CORRECTION = {c: c for c in ("UV", "PlanApo", "PlanFluor", "SuperFluor", "VioletCorrected",
                             "Achro", "Achromat", "Fluor", "Fl", "Fluar", "Neofluar",
                             "Fluotar", "Apo", "PlanNeofluar", "Other")}
#: OME FilterType -> NBO FilterType (NBO has no dichroic/ND/tuneable *transmission* type).
FILTER_TYPE = {"BandPass": "BandPass", "LongPass": "LongPass", "ShortPass": "ShortPass",
               "MultiPass": "MultiPass", "Dichroic": "Other", "NeutralDensity": "Other",
               "Tuneable": "Other", "Other": "Other"}
#: OME LaserType -> NBO LaserType (an excimer laser is a gas laser).
LASER_TYPE = {"Excimer": "Gas", "Gas": "Gas", "MetalVapor": "MetalVapor",
              "SolidState": "SolidState", "Dye": "Dye", "Semiconductor": "SemiconductorLaserDiode",
              "FreeElectron": "Other", "Other": "Other"}
ARC_TYPE = {"Hg": "Hg", "Xe": "Xe", "HgXe": "HgXe", "Other": "Other"}
#: OME MicroscopeType -> NBO stand element; Dissection/Electrophysiology stands may be either.
STAND_ELEMENT = {"Inverted": "InvertedMicroscopeStand", "Upright": "UprightMicroscopeStand"}
#: OME MicroscopeType -> NBO stand @Type where the OME word says it.
STAND_TYPE = {"Dissection": "Dissection", "Electrophysiology": "Electrophysiology",
              "Other": "Other"}
#: OME DetectorType -> (NBO element, fixed attributes the OME type implies).
DETECTOR_ELEMENT: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "CCD": ("CCD", {}),
    "EMCCD": ("CCD", {"Type": "EMCCD"}),
    "CMOS": ("CMOS", {}),
    "IntensifiedCCD": ("IntensifiedCamera", {"SensorType": "CCD"}),
    "EBCCD": ("IntensifiedCamera", {"SensorType": "CCD", "IntensifierType": "EBCCD"}),
    "AnalogVideo": ("AnalogVideo", {}),
    "PMT": ("PhotoMultiplierTube", {}),
    "Photodiode": ("PhotoDiode", {}),
    "APD": ("PhotoDiode", {}),
}
_CAMERAS = frozenset({"CCD", "CMOS", "IntensifiedCamera", "AnalogVideo"})
_POINT_DETECTORS = frozenset({"PhotoMultiplierTube", "PhotoDiode", "HybridPhotoDetector"})
#: OME ContrastMethod -> NBO ChannelContrastMethod.
CONTRAST_METHOD = {"Brightfield": "Brightfield", "Phase": "PhaseContrast",
                   "DIC": "Differential Intensity Contrast (DIC)",
                   "HoffmanModulation": "HoffmanModulation",
                   "ObliqueIllumination": "ObliqueIllumination",
                   "PolarizedLight": "PolarizedLight", "Darkfield": "Darkfield",
                   "Fluorescence": "Fluorescence", "Other": "Other"}
#: OME AcquisitionMode -> NBO Channel@IlluminationType (the imaging method).
IMAGING_METHOD_BY_MODE = {
    "SpinningDiskConfocal": "Confocal_Fluorescence_spinning disk",
    "LaserScanningConfocalMicroscopy": "Confocal_Fluorescence_single-spot-raster-scan",
    "SlitScanConfocal": "Confocal_Fluorescence_slit-raster-scan",
    "SweptFieldConfocal": "Confocal_Fluorescence_swept-field",
    "MultiPhotonMicroscopy": "Confocal_Fluorescence_Multi-photon laser scanning microscopy",
    "TotalInternalReflection": "TIRF (Total Total Internal Reflection Fluorescence)",
    "TIRF": "TIRF (Total Total Internal Reflection Fluorescence)",
    "StructuredIllumination": "Super-Resolution_SIM (Structured Illumination Microscopy)",
    "PALM": "Super-Resolution_PALM (Photoactivation Localization Microscopy)",
    "STORM": "Super-Resolution_STORM (Stochastic Optical Reconstruction Microscopy)",
    "STED": "Super-Resolution_STED (Stimulated Emission Depletion)",
    "SPIM": "SPIM (Selective or Single Plane Illumination Microscopy) ",
    "FluorescenceCorrelationSpectroscopy": "Fluorescence Correlation Spectroscopy (FCS)",
    "NearFieldScanningOpticalMicroscopy": "Near Field Scanning Optical Microscopy (NSOM)",
    "SecondHarmonicGenerationImaging": "Second-Harmonic Imaging Microscopy (SHIM)",
    "SpectralImaging": "Spectral Imaging",
    "Other": "Other",
}
#: OME ContrastMethod -> NBO imaging method for transmitted-light wide-field channels.
TRANSMITTED_METHOD = {
    "Brightfield": "Transmitted_Bright-field", "Darkfield": "Transmitted_Dark-field",
    "DIC": "Transmitted_Differential Intensity Contrast (DIC; Nomarski)",
    "Phase": "Transmitted_Phase contrast (Zernicke)",
    "HoffmanModulation": "Transmitted_Hoffman modulation",
    "PolarizedLight": "Transmitted_Polarization",
    "ObliqueIllumination": "Transmitted_Oblique illumination",
}
#: NBO DigitizerType (MaxBitDepth, EffectiveBitDepth) values, in bits.
BIT_DEPTHS = (8, 12, 14, 16, 32, 64)
_BINNING = {"1": "1x1", "2": "2x2", "4": "4x4", "8": "8x8",
            "1x1": "1x1", "2x2": "2x2", "4x4": "4x4", "8x8": "8x8"}
_PIXEL_TYPES = {"uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "int8": "int8",
                "int16": "int16", "int32": "int32", "float32": "float", "float64": "double"}

#: Children of an element a component's ``extra`` may fill (``Child[i].Attr`` or
#: ``Child.Attr``), per NBO element. Settings elements hold settings the profile states as
#: fixed for the component (used when the run did not observe them).
_EXTRA_CHILDREN: Mapping[str, tuple[str, ...]] = {
    "Objective": ("ImmersionLiquid",),
    "ExcitationFilter": ("TransmittanceRange",),
    "EmissionFilter": ("TransmittanceRange",),
    "GenericFilter": ("TransmittanceRange",),
    "NeutralDensityFilter": ("TransmittanceRange",),
    "StandardDichroic": ("TransmittanceRange",),
    "Laser": ("IlluminationWavelengthRange", "LightSourceSettings"),
    "Arc": ("IlluminationWavelengthRange", "LightSourceSettings"),
    "GenericExcitationSource": ("IlluminationWavelengthRange", "LightSourceSettings"),
    "LightEmittingDiode": ("LEDModule", "LightSourceSettings"),
    "CCD": ("CameraSettings",), "CMOS": ("CameraSettings",),
    "IntensifiedCamera": ("CameraSettings",), "AnalogVideo": ("CameraSettings",),
    "PhotoMultiplierTube": ("PointDetectorSettings",),
    "PhotoDiode": ("PointDetectorSettings",),
    "GenericDetector": ("GenericDetectorSettings",),
}
_EXTRA_KEY = re.compile(
    r"^(?P<child>[A-Za-z][\w-]*)(?:\[(?P<index>\d+)\])?\.(?P<attr>[A-Za-z][\w-]*)$")

#: Software the run reports a version of -> (NBO name, Python distribution that ships it).
_SOFTWARE: tuple[tuple[str, str, str], ...] = (
    ("MMCore", "Micro-Manager MMCore", "pymmcore"),
    ("pymmcore", "pymmcore", "pymmcore"),
    ("pymmcore-plus", "pymmcore-plus", "pymmcore-plus"),
    ("nbo-recorder", "nbo-recorder", "nbo-recorder"),
)
_URL_LABELS = ("homepage", "source", "repository", "documentation")

# --- XSD lookups -------------------------------------------------------------------------------


@cache
def _xsd_element(name: str) -> Any:
    """The global NBO XSD declaration of element ``name`` (None if there is none)."""
    return get_schema().maps.elements.get(f"{{{NBO_NAMESPACE}}}{name}")


def xsd_attribute(element: str, attribute: str) -> Any:
    """The XSD declaration of ``element``'s ``attribute`` (None if it has no such attribute)."""
    declaration = _xsd_element(element)
    if declaration is None:
        return None
    return declaration.type.attributes.get(attribute)


def xsd_allows(element: str, item: str, *, child: bool = False) -> bool:
    """Whether the NBO XSD lets ``element`` carry ``item`` (an attribute or a child element).

    The spreadsheet lists a few items the XSD has no place for (e.g. Pixels
    SequentialAcquisition); a valid record cannot hold them. Elements the XSD does not
    declare globally are given the benefit of the doubt.
    """
    declaration = _xsd_element(element)
    if declaration is None or not declaration.type.is_complex():
        return declaration is None
    if not child:
        return item in declaration.type.attributes
    content = declaration.type.content
    if not hasattr(content, "iter_elements"):
        return False
    return any(e.local_name == item for e in content.iter_elements())


def allowed_values(element: str, attribute: str) -> tuple[str, ...]:
    """The XSD enumeration of an attribute (empty when it is not enumerated)."""
    declaration = xsd_attribute(element, attribute)
    enumeration = getattr(getattr(declaration, "type", None), "enumeration", None)
    return tuple(str(v) for v in enumeration or ())


def _value_problem(element: str, attribute: str, value: Scalar) -> str | None:
    """Why ``value`` is not allowed for ``element@attribute`` (None when it is)."""
    declaration = xsd_attribute(element, attribute)
    text = _text(value)
    if declaration is None or text is None:
        return None
    if declaration.type.is_valid(text):
        return None
    choices = allowed_values(element, attribute)
    if choices:
        listed = ", ".join(repr(c) for c in choices)
        return f"{value!r} is not an NBO v2.01 {element}@{attribute}; allowed: {listed}"
    kind = getattr(declaration.type.primitive_type, "local_name", None) or "value"
    return f"{value!r} is not a valid {kind} for NBO {element}@{attribute}"


# --- small XML helpers -------------------------------------------------------------------------


def _number(value: float) -> str | None:
    """An xs:float/xs:double literal; None for non-finite values (never written)."""
    if not math.isfinite(value):
        return None
    return repr(float(value))


def _text(value: object) -> str | None:
    """Attribute text for a profile or observed value (None: leave the attribute out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    return clean_text(str(value))


#: Unit attributes the XSD names other than ``<attribute>Unit``.
_UNIT_ATTRIBUTE = {
    ("LightSourceSettings", "IlluminationPowerSettings"): "lluminationPowerSettingsUnit",
    ("ExcitationCalibration", "ObservedIlluminationPowerAtBackOfObjective"):
        "ObservedIlluminationPowerAtBackObjectiveUnit",
}


def _default_unit(tag: str, attribute: str) -> tuple[str, str] | None:
    """(unit attribute, XSD default unit) of a quantity attribute, if the XSD has both."""
    name = _UNIT_ATTRIBUTE.get((tag, attribute), f"{attribute}Unit")
    declaration = xsd_attribute(tag, name)
    default = getattr(declaration, "default", None)
    return (name, str(default)) if default is not None else None


def _element(tag: str, attributes: Mapping[str, object] | None = None,
             parent: ET.Element | None = None) -> ET.Element:
    """An element with the attributes whose value is not None, appended to ``parent``.

    A quantity given without its unit attribute gets the unit the XSD defaults to written
    out (e.g. a ``ZRepeatability`` from a profile's ``extra`` is in nm), so every unit is
    explicit in the file.
    """
    attrs: dict[str, str] = {}
    for key, value in (attributes or {}).items():
        text = _text(value)
        if text is not None:
            attrs[key] = text
    for key in [k for k in attrs if not k.endswith("Unit")]:
        unit = _default_unit(tag, key)
        if unit is not None and unit[0] not in attrs:
            attrs[unit[0]] = unit[1]
    element = ET.Element(tag, attrs)
    if parent is not None:
        parent.append(element)
    return element


def _map_annotation(annotation_id: str, namespace: str, values: Mapping[str, str]) -> ET.Element:
    """An NBO MapAnnotation (used inline in components and in StructuredAnnotations)."""
    annotation = _element("MapAnnotation", {"ID": annotation_id, "Namespace": namespace})
    value = _element("Value", parent=annotation)
    for key, text in values.items():
        _element("M", {"K": key}, value).text = clean_text(text)
    return annotation



# --- profile components -> NBO elements ---------------------------------------------------------


def _bound_components(profile: Profile, roles: Iterable[str]) -> dict[str, set[str]]:
    """Component id -> the binding roles that reveal it."""
    wanted = set(roles)
    found: dict[str, set[str]] = {}
    for binding in profile.bindings:
        if binding.role not in wanted:
            continue
        ids = ([binding.component] if binding.component else
               [t.component for t in (binding.labels or {}).values() if t is not None])
        for component_id in ids:
            if component_id is not None:
                found.setdefault(component_id, set()).add(binding.role)
    return found


def filter_roles(profile: Profile) -> dict[str, set[str]]:
    """Filter id -> ``excitation_filter`` / ``emission_filter``, from bindings and filter sets."""
    roles = _bound_components(profile, ("excitation_filter", "emission_filter"))
    for comp in profile.components:
        if isinstance(comp, FilterSet):
            for ref in comp.excitation_filters:
                roles.setdefault(ref, set()).add("excitation_filter")
            for ref in comp.emission_filters:
                roles.setdefault(ref, set()).add("emission_filter")
    return roles


#: profile kinds whose NBO element does not depend on anything else
_FIXED_ELEMENT = {
    "objective": "Objective", "dichroic": "StandardDichroic", "filter_set": "FilterCube",
    "laser": "Laser", "led": "LightEmittingDiode", "arc": "Arc",
    "generic_light_source": "GenericExcitationSource", "pinhole": "Pinhole",
    "spinning_disk": "SpinningDisk",
}


def nbo_element_name(comp: Component, roles: Mapping[str, set[str]]) -> str:
    """The NBO element a profile component is written as.

    Filters are excitation or emission filters by how the bindings and filter sets use them
    (a filter used both ways, or not at all, is a ``GenericFilter``); detectors follow their
    OME detector type; a z stage is a ``Z-Drive`` (focus drive), other stages are
    ``MechanicalStage``.
    """
    if comp.kind in _FIXED_ELEMENT:
        return _FIXED_ELEMENT[comp.kind]
    if isinstance(comp, Filter):
        if comp.filter_type is not None and comp.filter_type.value == "NeutralDensity":
            return "NeutralDensityFilter"
        used = roles.get(comp.id, set())
        if used == {"excitation_filter"}:
            return "ExcitationFilter"
        if used == {"emission_filter"}:
            return "EmissionFilter"
        return "GenericFilter"
    if isinstance(comp, Detector):
        kind = comp.detector_type.value if comp.detector_type else ""
        return DETECTOR_ELEMENT[kind][0] if kind in DETECTOR_ELEMENT else "GenericDetector"
    assert isinstance(comp, Stage)
    return "Z-Drive" if comp.axes == "z" else "MechanicalStage"


def nbo_id(comp: Component) -> str:
    """The NBO ID of a component; the same ``Kind:id`` form as in the OME part where it exists."""
    if isinstance(comp, Objective):
        return f"Objective:{comp.id}"
    if isinstance(comp, Filter):
        return f"Filter:{comp.id}"
    if isinstance(comp, Dichroic):
        return f"Dichroic:{comp.id}"
    if isinstance(comp, FilterSet):
        return f"FilterSet:{comp.id}"
    if isinstance(comp, Laser | LED | Arc | GenericLightSource):
        return f"LightSource:{comp.id}"
    if isinstance(comp, Detector):
        return f"Detector:{comp.id}"
    if isinstance(comp, Pinhole):
        return f"Pinhole:{comp.id}"
    if isinstance(comp, SpinningDisk):
        return f"SpinningDisk:{comp.id}"
    return f"Stage:{comp.id}"


def _settings_element(detector_element: str) -> str:
    """The LightPath settings element that goes with a detector element."""
    if detector_element in _CAMERAS:
        return "CameraSettings"
    if detector_element in _POINT_DETECTORS:
        return "PointDetectorSettings"
    return "GenericDetectorSettings"


@dataclass
class _Extra:
    """A component's ``extra`` split into the NBO attributes and children it fills."""

    attributes: dict[str, Scalar] = field(default_factory=dict)
    children: dict[tuple[str, int], dict[str, Scalar]] = field(default_factory=dict)

    def child(self, name: str) -> dict[str, Scalar]:
        """Attributes given for ``name`` without an index (``CameraSettings.X``)."""
        return self.children.get((name, -1), {})

    def indexed(self, name: str) -> dict[int, dict[str, Scalar]]:
        """Attributes given for ``name[i]``, by index."""
        return {i: a for (n, i), a in sorted(self.children.items()) if n == name and i >= 0}


def _split_extra(element: str, extra: Mapping[str, Scalar | None] | None) -> _Extra:
    """The keys of ``extra`` that name attributes of ``element`` or of its allowed children."""
    out = _Extra()
    for key, value in (extra or {}).items():
        if value is None:
            continue
        if xsd_attribute(element, key) is not None:
            out.attributes[key] = value
            continue
        match = _EXTRA_KEY.match(key)
        if match and match["child"] in _EXTRA_CHILDREN.get(element, ()):
            if xsd_attribute(match["child"], match["attr"]) is not None:
                index = int(match["index"]) if match["index"] is not None else -1
                out.children.setdefault((match["child"], index), {})[match["attr"]] = value
    return out


def _extra_problems(where: str, element: str,
                    extra: Mapping[str, Scalar | None] | None) -> list[str]:
    """Messages for ``extra`` values NBO does not allow at the attribute their key names."""
    problems = []
    for key, value in (extra or {}).items():
        if value is None:
            continue
        target: tuple[str, str] | None = None
        if xsd_attribute(element, key) is not None:
            target = (element, key)
        else:
            match = _EXTRA_KEY.match(key)
            if match and match["child"] in _EXTRA_CHILDREN.get(element, ()):
                target = (match["child"], match["attr"])
        if target is not None:
            problem = _value_problem(*target, value)
            if problem is not None:
                problems.append(f"{where}.extra.{key}: {problem}")
    return problems


def _merged(derived: Mapping[str, object], extra: Mapping[str, Scalar]) -> dict[str, object]:
    """Attributes from profile fields, completed (never overridden) by ``extra``."""
    out = dict(derived)
    for key, value in extra.items():
        if out.get(key) is None:
            out[key] = value
    return out


def _manufacturer_specs(comp: Component) -> dict[str, object]:
    """NBO ManufacturerSpecs attributes of a component."""
    return {"Manufacturer": comp.manufacturer, "Model": comp.model,
            "CatalogNumber": comp.catalog_number, "LotNumber": comp.lot_number,
            "Name": comp.name}


def _component_notes(comp: Component, notes: Mapping[str, object]) -> ET.Element:
    """Inline MapAnnotation with profile facts NBO has no attribute for (serial number, ...)."""
    return _map_annotation(f"Annotation:component:{comp.id}", NS_COMPONENT,
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
                extra: _Extra) -> None:
    """``name`` children from the profile (index order) completed by ``extra`` ``name[i].*``."""
    given = extra.indexed(name)
    for index in range(max(len(derived), max(given, default=-1) + 1)):
        base = derived[index] if index < len(derived) else {}
        attributes = _merged(base, given.get(index, {}))
        if any(v is not None for v in attributes.values()):
            _element(name, attributes, parent)


@dataclass
class _Rig:
    """The Instrument and what the Image part needs to refer to it."""

    instrument: ET.Element
    elements: dict[str, str]
    extras: dict[str, _Extra]
    stand_id: str | None
    software_ids: list[str]


def _led_wavelengths(profile: Profile, comp: LED) -> list[float]:
    """The LED's peak wavelengths: its own, and those its binding labels state per line."""
    found = [comp.wavelength_nm] if comp.wavelength_nm is not None else []
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
    if element in _CAMERAS:
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


def _kind_attributes(profile: Profile, comp: Component, element: str,
                     ) -> tuple[dict[str, object], dict[str, object]]:
    """NBO attributes specific to the component's kind, and facts NBO has no attribute for."""
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
        placed = isinstance(comp, LED) and len(_led_wavelengths(profile, comp)) == 1
        power = f"{comp.rated_power_mw:g} mW" if comp.rated_power_mw and not placed else None
        kind: dict[str, object] = {}
        if isinstance(comp, Arc) and comp.arc_type is not None:
            kind["Type"] = ARC_TYPE.get(comp.arc_type.value)
        return kind, {"rated power": power}
    return {}, {}


def _add_children(profile: Profile, comp: Component, element: str, extra: _Extra,
                  node: ET.Element) -> None:
    """Spectral children (transmittance, wavelength ranges, LED modules) and required maps."""
    if isinstance(comp, Filter):
        derived = _transmittance(comp)
        _add_ranges(node, "TransmittanceRange", [derived] if derived else [], extra)
    elif isinstance(comp, Dichroic):
        _add_ranges(node, "TransmittanceRange", [], extra)
    elif isinstance(comp, Laser):
        line = {"PeakWavelength": comp.wavelength_nm, "IlluminationPower": comp.rated_power_mw}
        known = any(v is not None for v in line.values())
        _add_ranges(node, "IlluminationWavelengthRange", [line] if known else [], extra)
    elif isinstance(comp, Arc | GenericLightSource):
        _add_ranges(node, "IlluminationWavelengthRange", [], extra)
    elif isinstance(comp, LED):
        wavelengths = _led_wavelengths(profile, comp)
        power = comp.rated_power_mw if len(wavelengths) == 1 else None
        _add_ranges(node, "LEDModule", [{"PeakWavelength": w, "IlluminationPower": power}
                                        for w in wavelengths], extra)
    elif element == "GenericDetector":
        _element("Map", parent=node)


def _component_element(profile: Profile, comp: Component, element: str, extra: _Extra,
                       annotations: AnnotationRegistry[ET.Element]) -> ET.Element:
    """One profiled component as its NBO element (see :func:`nbo_element_name`).

    Profile facts NBO has no attribute for go into an inline MapAnnotation; a SpinningDisk
    has no place for one (nor for manufacturer specs) and refers to a StructuredAnnotation.
    """
    attributes, notes = _kind_attributes(profile, comp, element)
    specs = _manufacturer_specs(comp)
    if isinstance(comp, SpinningDisk):
        notes = {**{k: specs.pop(k) for k in ("Manufacturer", "Model", "CatalogNumber",
                                              "LotNumber")},
                 "pinholes": ", ".join(f"Pinhole:{p}" for p in comp.pinholes) or None}
    node = _element(element, _merged({**specs, "ID": nbo_id(comp), **attributes},
                                     extra.attributes))
    if isinstance(comp, SpinningDisk):
        ref = annotations.ref(NS_COMPONENT, _notes_text(comp, notes))
        _element("AnnotationRef", {"ID": ref}, node)
        return node
    node.append(_component_notes(comp, notes))
    _add_children(profile, comp, element, extra, node)
    return node


def _set_refs(comp: FilterSet, elements: Mapping[str, str], parent: ET.Element) -> None:
    """References to a filter set's parts; NBO holds at most one filter per side."""
    for refs, kind in ((comp.excitation_filters, "ExcitationFilter"),
                       ((comp.dichroic,) if comp.dichroic else (), "StandardDichroic"),
                       (comp.emission_filters, "EmissionFilter")):
        if len(refs) == 1 and elements.get(refs[0]) == kind:
            prefix = "Dichroic" if kind == "StandardDichroic" else "Filter"
            _element(f"{kind}Ref", {"ID": f"{prefix}:{refs[0]}"}, parent)


def _filter_cube(comp: FilterSet, elements: Mapping[str, str], extra: _Extra) -> ET.Element:
    """A filter set as an NBO FilterCube (a set with several filters per side lists them)."""
    node = _element("FilterCube", _merged({**_manufacturer_specs(comp), "ID": nbo_id(comp)},
                                          extra.attributes))
    several = len(comp.excitation_filters) > 1 or len(comp.emission_filters) > 1
    node.append(_component_notes(comp, {
        "filters": ("excitation: " + ", ".join(comp.excitation_filters) + "; emission: "
                    + ", ".join(comp.emission_filters)) if several else None}))
    _set_refs(comp, elements, node)
    return node


def _stand(profile: Profile, extra: _Extra) -> ET.Element | None:
    """The stand, when the profile says whether it is inverted or upright."""
    mic = profile.microscope
    kind = mic.type.value if mic.type else None
    element = STAND_ELEMENT.get(kind or "")
    if element is None:
        return None
    derived = {"ID": "MicroscopeStand:0", "Manufacturer": mic.manufacturer, "Model": mic.model,
               "LotNumber": mic.lot_number, "Type": STAND_TYPE.get(kind or "")}
    node = _element(element, _merged(derived, extra.attributes))
    values = {k: v for k, v in (("serial number", mic.serial_number), ("source", mic.source))
              if v is not None}
    if values:
        node.append(_map_annotation("Annotation:component:stand", NS_COMPONENT, values))
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
        out.append(_element("AcquisitionSoftware", {
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


def _instrument(profile: Profile, versions: Mapping[str, str],
                annotations: AnnotationRegistry[ET.Element]) -> _Rig:
    """The Instrument: stand, software, then every component, in the XSD's child order."""
    roles = filter_roles(profile)
    elements = {comp.id: nbo_element_name(comp, roles) for comp in profile.components}
    extras = {comp.id: _split_extra(elements[comp.id], comp.extra) for comp in profile.components}
    instrument = _element("Instrument", {"ID": "Instrument:0", "Name": profile.name})
    children: list[tuple[int, ET.Element]] = []
    stand_extra_element = STAND_ELEMENT.get(
        profile.microscope.type.value if profile.microscope.type else "", "")
    stand = _stand(profile, _split_extra(stand_extra_element, profile.microscope.extra))
    if stand is not None:
        children.append((_SLOT[stand.tag], stand))
    software = _software(versions)
    children.extend((_SLOT["AcquisitionSoftware"], s) for s in software)
    for comp in profile.components:
        element = elements[comp.id]
        if isinstance(comp, FilterSet):
            node = _filter_cube(comp, elements, extras[comp.id])
        else:
            node = _component_element(profile, comp, element, extras[comp.id], annotations)
        children.append((_SLOT[element], node))
    for _, node in sorted(children, key=lambda item: item[0]):
        instrument.append(node)
    return _Rig(instrument, elements, extras, stand.get("ID") if stand is not None else None,
                [s.get("ID", "") for s in software])


# --- the Image part -----------------------------------------------------------------------------


def _study(run: Run) -> Mapping[str, Any]:
    """What the experimenter stated in the sequence metadata under ``nbo`` (may be empty)."""
    metadata = run.start.sequence.get("metadata")
    nbo = metadata.get("nbo") if isinstance(metadata, Mapping) else None
    return nbo if isinstance(nbo, Mapping) else {}


def _stated(study: Mapping[str, Any], element: str, *path: str) -> dict[str, Scalar]:
    """Scalar attributes of ``element`` stated in the study metadata (at ``path``)."""
    node: Any = study
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        return {}
    return {k: v for k, v in node.items() if isinstance(k, str) and k != "ID"
            and isinstance(v, str | bool | int | float) and xsd_attribute(element, k) is not None}


def study_problems(metadata: Mapping[str, Any] | None) -> list[str]:
    """Values in a sequence's ``metadata.nbo`` that NBO does not allow, one message each."""
    nbo = (metadata or {}).get("nbo")
    if nbo is None:
        return []
    if not isinstance(nbo, Mapping):
        return [f"metadata.nbo: expected a mapping of NBO elements, got {type(nbo).__name__}"]
    problems = []
    for element in ("Experiment", "Sample", "Experimenter"):
        for key, value in _stated(nbo, element, element).items():
            problem = _value_problem(element, key, value)
            if problem:
                problems.append(f"metadata.nbo.{element}.{key}: {problem}")
    fluorophores = nbo.get("Fluorophore")
    for channel in fluorophores if isinstance(fluorophores, Mapping) else {}:
        for key, value in _stated(nbo, "Fluorophore", "Fluorophore", channel).items():
            problem = _value_problem("Fluorophore", key, value)
            if problem:
                problems.append(f"metadata.nbo.Fluorophore.{channel}.{key}: {problem}")
    return problems


def _experiment(study: Mapping[str, Any]) -> list[ET.Element]:
    """Experiment (with its Sample) and Experimenter: the Image must refer to both."""
    experiment = _element("Experiment", {
        "ID": "Experiment:0", "LabellingMethod": UNKNOWN_TEXT,
        **_stated(study, "Experiment", "Experiment")})
    _element("ExperimenterRef", {"ID": "Experimenter:0"}, experiment)
    _element("Sample", {"ID": "Sample:0", "Name": UNKNOWN_TEXT, "Organism": UNKNOWN_TEXT,
                        **_stated(study, "Sample", "Sample")}, experiment)
    experimenter = _element("Experimenter", {
        "ID": "Experimenter:0", **_stated(study, "Experimenter", "Experimenter")})
    return [experiment, experimenter]


def _channel_info(profile: Profile, name: str | None) -> ChannelInfo:
    """The profile's channel defaults overlaid with what it says about channel ``name``."""
    base = profile.channel_defaults.model_dump(exclude_none=True)
    if name is not None and name in profile.channels:
        base.update(profile.channels[name].model_dump(exclude_none=True))
    return ChannelInfo.model_validate(base)


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


def _num(value: object) -> float | None:
    """An observed number, or None when it was not observed, unknown or not finite."""
    return value if isinstance(value, float) and math.isfinite(value) else None


@dataclass
class _ImageContext:
    profile: Profile
    rig: _Rig
    annotations: AnnotationRegistry[ET.Element]
    study: Mapping[str, Any]
    run_date: datetime.date
    calibration_refs: dict[str, str]


def _light_source_settings(ctx: _ImageContext, source: LightSourceInPath,
                           parent: ET.Element) -> None:
    """Power as observed in mW; for a source with only an intensity setting, that in %."""
    power, unit = _num(source.power_mw), "mW"
    if power is None:
        power, unit = _num(source.intensity_percent), "%"
    fixed = ctx.rig.extras.get(source.component, _Extra()).child("LightSourceSettings")
    _element("LightSourceSettings", _merged({
        "ID": f"LightSource:{source.component}",
        "IlluminationPowerSettings": power,
        # the XSD spells this unit attribute without the leading "I"
        "lluminationPowerSettingsUnit": unit if power is not None else None,
        "Attenuation": _num(source.attenuation),
    }, fixed), parent)


def _detector_settings(ctx: _ImageContext, detector: DetectorObserved,
                       parent: ET.Element) -> None:
    """Observed gain, offset, binning, bit depth, readout rate, completed by fixed settings."""
    element = _settings_element(ctx.rig.elements.get(detector.component, "GenericDetector"))
    depth = _num(detector.bit_depth)
    binning = detector.binning if isinstance(detector.binning, str) else None
    rate = _num(detector.readout_rate_mhz)
    temperature = _num(detector.temperature_c)
    observed: dict[str, object] = {
        "ID": f"Detector:{detector.component}",
        "EffectiveBitDepth": f"{int(depth)}bit" if depth is not None and depth in BIT_DEPTHS
        else None,
        "AnalogGain": _num(detector.gain),
        "AmplificationGain": _num(detector.em_gain),
        "Offset": _num(detector.offset),
    }
    if element == "CameraSettings":
        observed.update({
            "Binning": _BINNING.get(binning, "Other") if binning is not None else None,
            "PixelReadOutRate": rate, "PixelReadOutRateUnit": "MHz" if rate is not None else None,
            "OperatingTemperature": temperature,
            "OperatingTemperatureUnit": "°C" if temperature is not None else None,
        })
    fixed = ctx.rig.extras.get(detector.component, _Extra()).child(element)
    _element(element, _merged(observed, fixed), parent)


_FILTER_REF = {"ExcitationFilter": "ExcitationFilterRef", "EmissionFilter": "EmissionFilterRef"}


def _light_path(ctx: _ImageContext, p: int, c: int, obs: ObservedSettings | None,
                parent: ET.Element) -> None:
    """The channel's light path as observed at its first frame (children in XSD order)."""
    path = _element("LightPath", {"ID": f"LightPath:{p}:{c}"}, parent)
    if obs is None:
        return
    for source in obs.light_sources:
        _light_source_settings(ctx, source, path)
    filters = (*obs.excitation_filters, *obs.emission_filters)
    tags = {f: _FILTER_REF.get(ctx.rig.elements.get(f, ""), "GenericFilterRef") for f in filters}
    for filter_id in filters:
        if tags[filter_id] == "ExcitationFilterRef":
            _element("ExcitationFilterRef", {"ID": f"Filter:{filter_id}"}, path)
    for dichroic in obs.dichroics:
        _element("StandardDichroicRef", {"ID": f"Dichroic:{dichroic}"}, path)
    for filter_id in filters:
        if tags[filter_id] == "EmissionFilterRef":
            _element("EmissionFilterRef", {"ID": f"Filter:{filter_id}"}, path)
    for set_id in obs.filter_sets:
        comp = ctx.profile.component(set_id)
        node = _element("FilterSet", {"ID": f"FilterSet:{set_id}", "Name": comp.name}, path)
        if isinstance(comp, FilterSet):
            _set_refs(comp, ctx.rig.elements, node)
    for filter_id in filters:
        if tags[filter_id] == "GenericFilterRef":
            _element("GenericFilterRef", {"ID": f"Filter:{filter_id}"}, path)
    for pinhole in obs.pinholes:
        _element("ApertureRef", {"ID": f"Pinhole:{pinhole}"}, path)
    for detector in obs.detectors:
        _detector_settings(ctx, detector, path)
    observed = obs.flat()
    if observed:
        _element("AnnotationRef", {"ID": ctx.annotations.ref(NS_CHANNEL, observed)}, path)


def _excitation_calibrations(ctx: _ImageContext, p: int, c: int, obs: ObservedSettings | None,
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
        line = _num(source.wavelength_nm)
        if isinstance(observed_line, float) and line is not None and abs(observed_line - line) > 10:
            continue
        _element("ExcitationCalibration", {
            "ID": f"ExcitationCalibration:{cal.id}:{p}:{c}", "Date": cal.date.isoformat(),
            "Method": calibration.method_text(cal),
            "NominalEx-Wavelength": line, "NominalEx-WavelengthUnit": "nm" if line else None,
            **attributes}, parent)


def _channel(ctx: _ImageContext, p: int, c: int, name: str | None,
             obs: ObservedSettings | None) -> ET.Element:
    """A Channel with its Fluorophore, LightPath and excitation calibrations."""
    info = _channel_info(ctx.profile, name)
    channel = _element("Channel", {
        "ID": f"Channel:{p}:{c}", "Name": name, "IlluminationType": imaging_method(info),
        "ContrastMethod": CONTRAST_METHOD.get(info.contrast_method.value)
        if info.contrast_method else None,
        "Color": _color(info.color), "SamplesPerPixel": 1,
    })
    stated = _stated(ctx.study, "Fluorophore", "Fluorophore", name or "")
    _element("Fluorophore", {
        "ID": f"Fluorophore:{p}:{c}", "Manufacturer": UNKNOWN_TEXT, "Model": UNKNOWN_TEXT,
        "CatalogNumber": UNKNOWN_TEXT, "Name": info.fluor, **stated}, channel)
    _light_path(ctx, p, c, obs, channel)
    _excitation_calibrations(ctx, p, c, obs, channel)
    return channel


def _objective_settings(ctx: _ImageContext, objective: object, parent: ET.Element) -> None:
    """The objective in use and, for immersion objectives, its ImmersionLiquid."""
    if not isinstance(objective, str):
        return
    comp = ctx.profile.component(objective)
    node = _element("ObjectiveSettings", {"ID": f"Objective:{objective}"}, parent)
    if not isinstance(comp, Objective):
        return
    immersion = comp.immersion.value if comp.immersion else None
    stated = ctx.rig.extras.get(objective, _Extra()).child("ImmersionLiquid")
    liquid_type = IMMERSION_LIQUID.get(immersion or "")
    if immersion == "Air" or not (liquid_type or stated or comp.immersion_refractive_index):
        return
    _element("ImmersionLiquid", _merged({
        "ID": f"ImmersionLiquid:{objective}", "Type": liquid_type,
        "RefractiveIndex": comp.immersion_refractive_index}, stated), node)


def _environment(profile: Profile, parent: ET.Element) -> None:
    """ImagingEnvironment from the profile (NBO types these as text; units stay explicit)."""
    env = profile.environment
    if env is None:
        return
    _element("ImagingEnvironment", {
        "Temperature": env.temperature_c,
        "TemperatureUnit": "°C" if env.temperature_c is not None else None,
        "CO2Percent": env.co2_percent, "Humidity": env.humidity_percent,
        "AirPressure": env.air_pressure_hpa,
        "AirPressureUnit": "hPa" if env.air_pressure_hpa is not None else None,
    }, parent)


def _optical_calibrations(ctx: _ImageContext, p: int, objective: object,
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
        node = _element("OpticalCalibration", {
            "ID": f"OpticalCalibration:{cal.id}:{p}", "Date": cal.date.isoformat(),
            **attributes.get("OpticalCalibration", {})}, parent)
        if cal.kind == "chromatic_registration":
            _element("ChromaticRegistrationEvaluation", {
                "ID": f"ChromaticRegistrationEvaluation:{cal.id}:{p}",
                **attributes.get("ChromaticRegistrationEvaluation", {})}, node)
        if cal.kind == "field_uniformity":
            _element("FieldUniformityEvaluation", {
                "ID": f"FieldUniformityEvaluation:{cal.id}:{p}",
                **attributes.get("FieldUniformityEvaluation", {})}, node)


def _fmt(value: float) -> str:
    """xs:float literal for a plane attribute (the XSD spells non-finite values NaN/INF)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    return repr(float(value))


def _plane(p: int, f: FrameRecord, ref: str | None) -> str:
    """One Plane as text (IDs carry the frame's TIFF page number)."""
    attrs = (f'ID="Plane:{p}:{f.index}" TheZ="{f.z}" TheT="{f.t}" TheC="{f.c}" '
             f'Timestamp="{_fmt(f.elapsed_ms / 1000)}" TimestampUnit="s" '
             f'ExposureTime="{_fmt(f.exposure_ms)}" ExposureTimeUnit="ms"')
    for axis, v in (("X", f.x_um), ("Y", f.y_um), ("Z", f.z_um)):
        if v is not None:
            attrs += f' Position{axis}="{_fmt(v)}" Position{axis}Unit="µm"'
    if ref is None:
        return f"<Plane {attrs} />"
    return f'<Plane {attrs}><AnnotationRef ID="{ref}" /></Plane>'


def _planes_marker(p: int) -> str:
    """Tag of the empty element standing in for image ``p``'s planes until they are spliced."""
    return f"nbo-recorder-planes-{p}"


_PLANES_MARKER = re.compile(r"<nbo-recorder-planes-(\d+) />")


def _image(ctx: _ImageContext, run: Run, p: int, frames: Sequence[FrameRecord],
           observed: Callable[[int], ObservedSettings], selection: PlaneSelection,
           ) -> tuple[ET.Element, str]:
    """One Image (per stage position) and the text of its planes."""
    start = run.start
    first = frames[0]
    first_of_c: dict[int, FrameRecord] = {}
    for f in frames:
        first_of_c.setdefault(f.c, f)
    size_c = max(f.c for f in frames) + 1
    size_z = max(f.z for f in frames) + 1
    size_t = max(f.t for f in frames) + 1
    objective = observed(first.snapshot).objective
    position = start.position_names[p] if p < len(start.position_names) else None
    image = _element("Image", {"ID": f"Image:{p}", "Name": position or f"Position {p}",
                               "AcquisitionDate": ctx.run_date.isoformat()})
    _element("InstrumentRef", {"ID": "Instrument:0"}, image)
    _element("ExperimentRef", {"ID": "Experiment:0"}, image)
    _element("ExperimenterRef", {"ID": "Experimenter:0"}, image)
    _element("SampleRef", {"ID": "Sample:0"}, image)
    for software_id in ctx.rig.software_ids:
        _element("AcquisitionSoftwareRef", {"ID": software_id}, image)
    _element("Description", parent=image).text = clean_text(
        f"Recorded with hardware profile '{ctx.profile.name}'")
    _environment(ctx.profile, image)
    if ctx.rig.stand_id is not None:
        _element("MicroscopeStandSettings", {"ID": ctx.rig.stand_id}, image)
    _objective_settings(ctx, objective, image)
    _optical_calibrations(ctx, p, objective, image)
    pixel_size = next((f.pixel_size_um for f in frames if f.pixel_size_um > 0), None)
    pixels = _element("Pixels", {
        "ID": f"Pixels:{p}", "DimensionOrder": "XYZCT",
        "SizeX": start.width, "SizeY": start.height, "SizeZ": size_z, "SizeC": size_c,
        "SizeT": size_t, "PhysicalSizeX": pixel_size, "PhysicalSizeY": pixel_size,
        "PhysicalSizeXUnit": "µm" if pixel_size else None,
        "PhysicalSizeYUnit": "µm" if pixel_size else None,
        "PhysicalSizeZ": abs(start.z_step_um) if start.z_step_um and size_z > 1 else None,
        "PhysicalSizeZUnit": "µm" if start.z_step_um and size_z > 1 else None,
        "TimeIncrement": start.time_interval_s or None,
        "TimeIncrementUnit": "s" if start.time_interval_s else None,
        "PixelType": _PIXEL_TYPES.get(start.dtype),
    }, image)
    ET.SubElement(pixels, _planes_marker(p))
    names = [ch.get("config") for ch in start.sequence.get("channels", [])]
    baselines: dict[int, dict[str, str]] = {}
    for c in range(size_c):
        fc = first_of_c.get(c)
        name = fc.channel if fc else (names[c] if c < len(names) else None)
        obs = observed(fc.snapshot) if fc else None
        pixels.append(_channel(ctx, p, c, name, obs))
        if obs is not None:
            baselines[c] = obs.flat()
    _element("MetadataOnly", parent=pixels)
    for ref in ctx.calibration_refs.values():
        _element("AnnotationRef", {"ID": ref}, image)
    deviations: dict[tuple[int, int], str | None] = {}
    planes = []
    for f in frames:
        if selection == "first_per_channel" and first_of_c.get(f.c) is not f:
            continue
        key = (f.c, f.snapshot)
        if key not in deviations:
            base = baselines.get(f.c, {})
            current = observed(f.snapshot).flat()
            diff = {k: v for k, v in current.items() if base.get(k) != v}
            diff.update({k: "not observed" for k in base if k not in current})
            deviations[key] = ctx.annotations.ref(NS_PLANE, diff) if diff else None
        planes.append(_plane(p, f, deviations[key]))
    return image, "".join(planes)


def _run_date(run: Run) -> datetime.date:
    """The day the run started: NBO dates (AcquisitionDate) and calibration ages use it."""
    return datetime.datetime.fromisoformat(run.start.started_at).date()


def build_nbo_xml(
    run: Run,
    profile: Profile,
    *,
    frames_by_position: Mapping[int, Sequence[FrameRecord]] | None = None,
    observed: Callable[[int], ObservedSettings] | None = None,
    planes: PlaneSelection = "all",
) -> str:
    """Return the NBO v2.01 document (root ``OME`` in the NBO namespace) for ``run``.

    ``frames_by_position`` and ``observed`` (snapshot uid -> interpreted settings) let
    :func:`nbo_recorder.render.ome.build_ome_xml` share the work it has already done; by default
    they are computed here. ``planes="first_per_channel"`` writes only the first plane of
    each channel per image — a small view of the same document, for validation: all planes
    are written by one template from numbers and IDs.
    """
    if frames_by_position is None:
        grouped: dict[int, list[FrameRecord]] = {}
        for f in run.frames:
            grouped.setdefault(f.p, []).append(f)
        frames_by_position = grouped
    if observed is None:
        cache_: dict[int, ObservedSettings] = {}

        def observed(uid: int) -> ObservedSettings:
            if uid not in cache_:
                cache_[uid] = interpret(run.snapshots[uid], profile)
            return cache_[uid]

    annotations = AnnotationRegistry(_map_annotation)
    study = _study(run)
    run_date = _run_date(run)
    calibration_refs = {
        cal.id: annotations.ref(NS_CALIBRATION, calibration.summary(
            cal, run_date, profile.calibration_max_age_days))
        for cal in profile.calibrations
    }
    rig = _instrument(profile, run.start.versions, annotations)
    ctx = _ImageContext(profile, rig, annotations, study, run_date, calibration_refs)
    version = run.start.versions.get("nbo-recorder")
    root = _element("OME", {"xmlns": NBO_NAMESPACE,
                            "Creator": f"nbo-recorder {version}" if version else None})
    for node in _experiment(study):
        root.append(node)
    root.append(rig.instrument)
    bodies: dict[str, str] = {}
    for p in sorted(frames_by_position):
        frames = frames_by_position[p]
        if not frames:
            continue
        image, body = _image(ctx, run, p, frames, observed, planes)
        root.append(image)
        bodies[str(p)] = body
    if annotations.items:
        structured = _element("StructuredAnnotations", parent=root)
        structured.extend(annotations.items)
    parts = _PLANES_MARKER.split(ET.tostring(root, encoding="unicode"))
    for i in range(1, len(parts), 2):
        parts[i] = bodies[parts[i]]
    return "".join(parts)


# --- checks and compliance -----------------------------------------------------------------------


def check_nbo_profile(profile: Profile) -> None:
    """Raise :class:`ProfileError` for profile values NBO v2.01 cannot hold.

    Checks what the profile model itself cannot know is wrong for NBO: ``extra`` values (and
    the stand's) against the XSD type and allowed values of the NBO attribute their key names,
    a laser medium outside NBO's list, a detector bit depth NBO has no value for, and measured
    calibration values whose unit does not fit the NBO attribute they fill. Every message names
    the profile field; enumerations list the allowed values.
    """
    problems: list[str] = []
    roles = filter_roles(profile)
    mic = profile.microscope
    stand = STAND_ELEMENT.get(mic.type.value if mic.type else "", "InvertedMicroscopeStand")
    problems += _extra_problems("microscope", stand, mic.extra)
    for i, comp in enumerate(profile.components):
        element = nbo_element_name(comp, roles)
        problems += _extra_problems(f"components[{i}]", element, comp.extra)
        own = {**_manufacturer_specs(comp), **_kind_attributes(profile, comp, element)[0]}
        for key, value in (comp.extra or {}).items():
            if own.get(key) is not None and value is not None and _text(own[key]) != _text(value):
                problems.append(f"components[{i}].extra.{key}: {value!r} contradicts the "
                                f"profile's own {_text(own[key])!r}; keep one of them")
        if isinstance(comp, Laser) and comp.laser_medium is not None:
            problem = _value_problem("Laser", "LaserMedium", comp.laser_medium)
            if problem:
                problems.append(f"components[{i}].laser_medium: {problem}")
        if isinstance(comp, Detector) and comp.bit_depth is not None \
                and comp.bit_depth not in BIT_DEPTHS:
            problems.append(f"components[{i}].bit_depth: {comp.bit_depth} bit is not an NBO "
                            f"v2.01 {element}@MaxBitDepth; allowed: "
                            + ", ".join(str(b) for b in BIT_DEPTHS))
    problems += calibration.calibration_problems(profile.calibrations)
    if problems:
        raise ProfileError("profile values NBO v2.01 does not allow:\n  " + "\n  ".join(problems))


def _without_unknown_markers(root: ET.Element) -> ET.Element:
    """A copy of ``root`` without the attributes set to :data:`UNKNOWN_TEXT`."""
    work = copy.deepcopy(root)
    for element in work.iter():
        for key in [k for k, v in element.attrib.items() if v == UNKNOWN_TEXT]:
            del element.attrib[key]
    return work


def _describe(result: ValidationResult, limit: int = 25) -> str:
    items = [f"{e.path}" + (f"@{e.attribute}" if e.attribute else f": {e.message}")
             for e in result.errors[:limit]]
    more = len(result.errors) - limit
    return "; ".join(items) + (f"; and {more} more" if more > 0 else "")


def _tier_reached(root: ET.Element) -> tuple[int, list[ValidationResult]]:
    """Highest tier ``root`` validates at (0: none), and the results up to the first failure."""
    results = []
    for tier in TIERS:
        result = validate_nbo(root, tier)
        results.append(result)
        if not result.ok:
            return tier - 1, results
    return max(TIERS), results


#: compliance results by view text with the plane counts removed (see compliance_of_view)
_COMPLIANCE_CACHE: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}
_COMPLIANCE_LOCK = threading.Lock()
_SIZES = re.compile(r' Size[XYZCT]="\d+"')


def compliance_of_view(view: str, stale: Sequence[CalibrationRecord] = ()) -> dict[str, str]:
    """:func:`nbo_compliance` of a ``planes="first_per_channel"`` view, remembered.

    Validating against the NBO XSD takes about 0.1 s (1.3 s the first time, to load it),
    too long to add to every file's finalisation. The view of a run does not change once
    every position and channel has its first frame, except for the Pixels sizes, which
    compliance does not look at; so the recorder computes it on a background thread while
    acquiring, and finalisation finds it here.
    """
    key = (_SIZES.sub("", view), tuple(c.id for c in stale))
    with _COMPLIANCE_LOCK:
        cached = _COMPLIANCE_CACHE.get(key)
    if cached is None:
        cached = nbo_compliance(view, stale)
        with _COMPLIANCE_LOCK:
            if len(_COMPLIANCE_CACHE) >= 16:
                _COMPLIANCE_CACHE.clear()
            _COMPLIANCE_CACHE[key] = cached
    return dict(cached)


def nbo_compliance(document: str | ET.Element,
                   stale: Sequence[CalibrationRecord] = ()) -> dict[str, str]:
    """How far an NBO document gets: the tier reached and MUST/SHOULD coverage per extension.

    ``tier reached`` is the highest tier at which :func:`validate_nbo` accepts the document
    when attributes set to :data:`UNKNOWN_TEXT` count as missing (``none`` if not even tier 1);
    the errors of the first tier it fails are listed. ``tier reached with unknown
    placeholders`` accepts those placeholders (it shows what the rig description alone
    achieves when the experiment, sample and fluorophores were not stated). Coverage counts
    distinct element/attribute pairs of the rules table (present when every element of that
    kind in the document has it; placeholders count as missing), per extension and
    requirement, for the items introduced at each tier. ``stale`` calibrations are named.
    """
    root = ET.fromstring(document) if isinstance(document, str) else document
    work = _without_unknown_markers(root)
    out = {"specification": "4DN-BINA-OME (NBO) v2.01"}
    reached, results = _tier_reached(work)
    for result in results:
        if result.ok:
            out[f"tier {result.tier} deferred to higher tiers"] = str(len(result.deferred))
        else:
            out[f"tier {result.tier} errors"] = str(len(result.errors))
            out[f"tier {result.tier} missing or invalid"] = _describe(result)
    out["tier reached"] = str(reached) if reached else "none"
    lenient = _tier_reached(root)[0]
    out["tier reached with unknown placeholders"] = str(lenient) if lenient else "none"
    present: dict[tuple[str, str, int, str, str], bool] = {}
    for entry in attribute_compliance(work, max(TIERS)):
        kind = re.sub(r"\[\d+\]", "", entry.path)
        for status in entry.attributes:
            key = (status.extension, status.requirement, status.tier, kind, status.name)
            present[key] = present.get(key, True) and status.present
    for extension in EXTENSIONS:
        for requirement in ("MUST", "SHOULD"):
            parts = []
            for tier in TIERS:
                found = [v for (e, r, t, _, _), v in present.items()
                         if (e, r, t) == (extension, requirement, tier)]
                if found:
                    parts.append(f"tier {tier}: {sum(found)} present, "
                                 f"{len(found) - sum(found)} missing")
            if parts:
                out[f"{extension} {requirement} attributes"] = "; ".join(parts)
    if stale:
        out["stale calibrations"] = ", ".join(f"{c.id} ({c.date.isoformat()})" for c in stale)
    return out
