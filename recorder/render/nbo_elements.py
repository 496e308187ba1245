"""The vocabulary and the XML helpers of the NBO record, shared by its instrument and image parts.

* **Maps** from the profile's OME 2016-06 words to NBO v2.01's (identity where NBO has the same
  word). A value missing from a map has no single NBO equivalent: the NBO attribute is then
  left to the component's ``extra``.
* **Element names**: which NBO element a profile component is written as
  (:func:`nbo_element_name`), from its kind and from how bindings and filter sets use it.
* **extra**: a component's ``extra`` names NBO attributes (``CoatingMethod``) or attributes of
  allowed children (``TransmittanceRange[0].FWHMBandwidth``, ``CameraSettings.X``);
  :func:`split_extra` sorts them by where they go.
* **Elements**: :func:`xml_element` writes only attributes that have a value, with the unit the XSD
  defaults to made explicit, in the one spelling of :func:`~nbo_recorder.vocabulary.attribute_text`.
* **Spectra** both parts write: the wavelengths a light source reported during the run
  (:func:`source_wavelengths`) and the centre of the one pass band a set of filters leaves
  (:func:`band_centre`).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from nbo_recorder.capture.documents import Run
from nbo_recorder.nbo.schema import xsd_attribute
from nbo_recorder.profile.model import (
    SETTINGS,
    Component,
    Detector,
    Filter,
    FilterSet,
    Profile,
    Stage,
)
from nbo_recorder.units import CANONICAL, to_canonical
from nbo_recorder.vocabulary import attribute_text, clean_text

#: A value a profile's ``extra`` or the study metadata can give an NBO attribute.
Scalar = str | bool | int | float

# --- OME 2016-06 (profile) vocabularies -> NBO v2.01 vocabularies ---------------------------

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


CAMERAS = frozenset({"CCD", "CMOS", "IntensifiedCamera", "AnalogVideo"})


POINT_DETECTORS = frozenset({"PhotoMultiplierTube", "PhotoDiode", "HybridPhotoDetector"})


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


#: Children of an element a component's ``extra`` may fill (``Child[i].Attr`` or
#: ``Child.Attr``), per NBO element. Settings elements hold settings the profile states as
#: fixed for the component (used when the run did not observe them).
EXTRA_CHILDREN: Mapping[str, tuple[str, ...]] = {
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


EXTRA_KEY = re.compile(
    r"^(?P<child>[A-Za-z][\w-]*)(?:\[(?P<index>\d+)\])?\.(?P<attr>[A-Za-z][\w-]*)$")



# --- element names -------------------------------------------------------------------------


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


def settings_element(detector_element: str) -> str:
    """The LightPath settings element that goes with a detector element."""
    if detector_element in CAMERAS:
        return "CameraSettings"
    if detector_element in POINT_DETECTORS:
        return "PointDetectorSettings"
    return "GenericDetectorSettings"



# --- XML elements and extra ----------------------------------------------------------------


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


def xml_element(tag: str, attributes: Mapping[str, object] | None = None,
                parent: ET.Element | None = None) -> ET.Element:
    """An element with the attributes whose value is not None, appended to ``parent``.

    A quantity given without its unit attribute gets the unit the XSD defaults to written
    out (e.g. a ``ZRepeatability`` from a profile's ``extra`` is in nm), so every unit is
    explicit in the file.
    """
    attrs: dict[str, str] = {}
    for key, value in (attributes or {}).items():
        text = attribute_text(value)
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


def map_annotation(annotation_id: str, namespace: str, values: Mapping[str, str]) -> ET.Element:
    """An NBO MapAnnotation (used inline in components and in StructuredAnnotations)."""
    annotation = xml_element("MapAnnotation", {"ID": annotation_id, "Namespace": namespace})
    value = xml_element("Value", parent=annotation)
    for key, text in values.items():
        xml_element("M", {"K": key}, value).text = clean_text(text)
    return annotation


def merged(derived: Mapping[str, object], extra: Mapping[str, Scalar]) -> dict[str, object]:
    """Attributes from profile fields, completed (never overridden) by ``extra``."""
    out = dict(derived)
    for key, value in extra.items():
        if out.get(key) is None:
            out[key] = value
    return out


@dataclass
class Extra:
    """A component's ``extra`` split into the NBO attributes and children it fills."""

    attributes: dict[str, Scalar] = field(default_factory=dict)
    children: dict[tuple[str, int], dict[str, Scalar]] = field(default_factory=dict)

    def child(self, name: str) -> dict[str, Scalar]:
        """Attributes given for ``name`` without an index (``CameraSettings.X``)."""
        return self.children.get((name, -1), {})

    def indexed(self, name: str) -> dict[int, dict[str, Scalar]]:
        """Attributes given for ``name[i]``, by index."""
        return {i: a for (n, i), a in sorted(self.children.items()) if n == name and i >= 0}


def split_extra(element: str, extra: Mapping[str, Scalar | None] | None) -> Extra:
    """The keys of ``extra`` that name attributes of ``element`` or of its allowed children."""
    out = Extra()
    for key, value in (extra or {}).items():
        if value is None:
            continue
        if xsd_attribute(element, key) is not None:
            out.attributes[key] = value
            continue
        match = EXTRA_KEY.match(key)
        if match and match["child"] in EXTRA_CHILDREN.get(element, ()):
            if xsd_attribute(match["child"], match["attr"]) is not None:
                index = int(match["index"]) if match["index"] is not None else -1
                out.children.setdefault((match["child"], index), {})[match["attr"]] = value
    return out


# --- spectra -------------------------------------------------------------------------------


def source_wavelengths(run: Run, profile: Profile) -> dict[str, tuple[float, ...]]:
    """Light source id -> the distinct wavelengths (nm) its bound ``wavelength`` property
    reported in any of the run's snapshots, in or out of the light path.

    These are the instrument's own statements (an OBIS laser's ``Wavelength``, a pE-300
    channel's LED line); a value that could not be read, or is not a finite number, is left
    out. Sources bound without a ``wavelength`` setting are absent.
    """
    found: dict[str, set[float]] = {}
    for binding in profile.bindings:
        source = binding.settings.get("wavelength")
        if binding.role != "light_source" or binding.component is None or source is None:
            continue
        unit = source.unit if source.unit is not None else CANONICAL[SETTINGS["wavelength"][0]]
        key = (binding.device, source.property)
        for raw in {snapshot.values.get(key) for snapshot in run.snapshots.values()}:
            try:
                value = to_canonical(float(raw), unit) if isinstance(raw, str) else math.nan
            except ValueError:
                continue
            if math.isfinite(value) and value > 0:
                found.setdefault(binding.component, set()).add(value)
    return {component: tuple(sorted(values)) for component, values in found.items()}


#: Filter types that do not bound the band (a neutral-density filter dims every wavelength).
_PASS_ALL = frozenset({"NeutralDensity"})


def _band(comp: Filter) -> tuple[float, float] | None:
    """The one pass band of a filter (``inf`` for an open side); None when not one band.

    A long-pass filter passes from its cut-in, a short-pass filter up to its cut-out, a
    band-pass filter (or one of no stated type) between both; a multi-pass, dichroic,
    tuneable or "other" filter, or one whose edges the profile does not state, defines none.
    """
    kind = comp.filter_type.value if comp.filter_type else None
    if kind in _PASS_ALL:
        return 0.0, math.inf
    tr = comp.transmittance_range
    cut_in = tr.cut_in_nm if tr is not None else None
    cut_out = tr.cut_out_nm if tr is not None else None
    if kind == "LongPass" and cut_in is not None:
        return cut_in, math.inf
    if kind == "ShortPass" and cut_out is not None:
        return 0.0, cut_out
    if kind in (None, "BandPass") and cut_in is not None and cut_out is not None:
        return cut_in, cut_out
    return None


def band_centre(profile: Profile, filter_ids: Sequence[str]) -> float | None:
    """Centre (nm) of the single pass band that the filters ``filter_ids`` leave together.

    The band is the intersection of each filter's pass band (:func:`_band`); its centre is
    the midpoint of its edges, or the stated centre wavelength when one band-pass filter alone
    defines it (a filter labelled "525/50" states its centre even where its edges are not
    stated). None when no filter is given, one of them has no single stated band, or the
    intersection is open on one side or empty: the wavelength is then not written.
    """
    filters = [c for c in map(profile.component, filter_ids) if isinstance(c, Filter)]
    if not filters or len(filters) != len(filter_ids):
        return None
    alone = filters[0] if len(filters) == 1 else None
    if alone is not None and alone.center_wavelength_nm is not None and (
            alone.filter_type is not None and alone.filter_type.value == "BandPass"):
        return alone.center_wavelength_nm
    low, high = 0.0, math.inf
    for comp in filters:
        band = _band(comp)
        if band is None:
            return None
        low, high = max(low, band[0]), min(high, band[1])
    return (low + high) / 2 if 0.0 < low < high < math.inf else None
