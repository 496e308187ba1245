"""What Micro-Meta App requires of a microscope file, per component schema and tier.

Micro-Meta App (model 2.01) validates each component of a microscope file against its
component schema, adapted to the file's tiers (MicroMetaApp-React ``createAdaptedSchema``): for
a file at ``Tier`` T validated at ``ValidationTier`` V (at most T), a property whose ``tier`` is
above T is dropped and one above V is no longer required, also inside the items of child
arrays. :data:`APP_SCHEMAS` holds, for every schema the exporter writes, the facts of that
rule: the schema's own tier, its Extension and Category, which properties it requires with
each one's tier, and which item properties each child array requires. The values were read
from the app's schemas (WU-BIMAC/MicroMetaApp-Electron ``schemas/``, model 2.01.1); the tests
compare this table with those schema files, so it cannot drift from them unnoticed.

:func:`missing_fields` lists what a record lacks at a tier; the exporter uses it to choose the
highest tier a profile satisfies, and ``profile check --for micrometa`` to report it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Micro-Meta App release whose files this exporter writes (the version the shared example
#: file names); written as ``AppVersion`` so the app does not migrate the file as a pre-0.45
#: one (which overwrites Extension, Domain and Category).
APP_VERSION = "1.2.2-b1"
DOMAIN = "MicroscopeHardwareSpecifications"
TIERS = (1, 2, 3)


@dataclass(frozen=True)
class AppSchema:
    """One Micro-Meta App component schema, as far as validation and bookkeeping need it."""

    tier: int
    extension: str
    category: str
    #: required property -> its tier
    required: Mapping[str, int]
    #: child array -> (the array's tier, required item property -> its tier)
    items: Mapping[str, tuple[int, Mapping[str, int]]]


_FILTER_REQ = {"ID": 1, "Type": 1, "CoatingMethod": 1, "LightPathLocation": 1,
               "AttenuationMethod": 2, "Manufacturer": 1, "Model": 1, "CatalogNumber": 1,
               "TransmittanceRange": 1, "Tier": 1}
_RANGE = {"TransmittanceRange": (1, {"Wavelength": 1, "FWHMBandwidth": 1})}
_DICHROIC_REQ = {**_FILTER_REQ, "MirrorType": 3}
_DICHROIC_ITEMS = {**_RANGE, "ReflectanceRange": (3, {"Wavelength": 3, "FWHMBandwidth": 3})}
_MAKER = {"ID": 1, "Manufacturer": 1, "Model": 1, "CatalogNumber": 1, "Tier": 1}
_LED_REQ = {**_MAKER, "Type": 2, "LEDModule": 1}
_LED_ITEMS = {"LEDModule": (1, {"IlluminationPower": 1, "PeakWavelength": 2})}
_SOURCE_ITEMS = {"IlluminationWavelengthRange": (1, {"IlluminationPower": 1,
                                                       "PeakWavelength": 2})}
_DETECTOR_REQ = {**_MAKER, "MaxBitDepth": 2, "QuantumEfficiency": 2,
                 "ElectronicConversionFactor": 2, "ReadOutNoise": 2, "DetectorNoiseModel": 2,
                 "DarkCurrentRate": 2}
_CAMERA_REQ = {**_DETECTOR_REQ, "PixelWidth": 1, "PixelHeight": 1, "Illumination": 2,
               "PixelWellCapacity": 3, "MaximumFrameRate": 3, "MaximumReadoutRate": 3}
_DETECTOR_ITEMS = {"WavelengthRange": (2, {"CutOn": 3, "CutOff": 3, "WavelengthProfile": 3})}
_FOCUS_REQ = {**_MAKER, "Encoded": 1, "Motorized": 1, "ZRepeatability": 1, "MovementAxes": 2,
              "BuiltIn": 2}
_STAGE_REQ = {**_FOCUS_REQ, "XYRepeatability": 1, "XTravelRange": 2, "YTravelRange": 2}
_STAND_REQ = {**_MAKER, "Type": 1}

#: Schema_ID -> what the app requires of a record of that schema
APP_SCHEMAS: dict[str, AppSchema] = {
    "Instrument.json": AppSchema(1, "", "", {"ID": 1, "Name": 1, "Tier": 1}, {}),
    "InvertedMicroscopeStand.json": AppSchema(1, "Basic", "MicroscopeStand", _STAND_REQ, {}),
    "UprightMicroscopeStand.json": AppSchema(1, "Core", "MicroscopeStand", _STAND_REQ, {}),
    "Objective.json": AppSchema(1, "Core", "Magnification", {
        **_MAKER, "Magnification": 1, "LensNA": 1, "Correction": 1, "ImmersionType": 1,
        "InfinityCorrected": 1, "ContrastModulation": 1, "DIC": 1, "WorkingDistance": 2,
        "CorrectionCollar": 2, "ObjectiveViewField": 3, "ImageDistance": 3}, {}),
    "ExcitationFilter.json": AppSchema(1, "Core", "FluorescenceLightPath", _FILTER_REQ, _RANGE),
    "EmissionFilter.json": AppSchema(1, "Core", "FluorescenceLightPath", _FILTER_REQ, _RANGE),
    "NeutralDensityFilter.json": AppSchema(1, "Basic", "Filter", {
        **_FILTER_REQ, "NDType": 2, "OpticalDensity": 3}, _RANGE),
    "GenericFilter.json": AppSchema(1, "Basic", "Filter", _FILTER_REQ, _RANGE),
    "StandardDichroic.json": AppSchema(1, "Core", "FluorescenceLightPath", _DICHROIC_REQ,
                                       _DICHROIC_ITEMS),
    "GenericDichroic.json": AppSchema(1, "Basic", "MirroringDevice", _DICHROIC_REQ,
                                      _DICHROIC_ITEMS),
    "FilterCube.json": AppSchema(1, "Core", "FluorescenceLightPath", _MAKER, {}),
    "FilterSet.json": AppSchema(1, "Core", "LightPath", {"ID": 1, "Tier": 1}, {}),
    "Fluorescence_LightSource_LightEmittingDiode.json": AppSchema(
        1, "Core", "Fluorescence_LightSource", _LED_REQ, _LED_ITEMS),
    "Transmitted_LightSource_LightEmittingDiode.json": AppSchema(
        1, "Core", "Transmitted_LightSource", _LED_REQ, _LED_ITEMS),
    "Fluorescence_LightSource_Laser.json": AppSchema(1, "Core", "Fluorescence_LightSource", {
        **_MAKER, "Tuneable": 1, "ModulationMechanism": 1, "Pulse": 1, "IsPumped": 2,
        "IsPump": 2}, _SOURCE_ITEMS),
    "Fluorescence_LightSource_Arc.json": AppSchema(
        1, "Core", "Fluorescence_LightSource", {**_MAKER, "Type": 2}, _SOURCE_ITEMS),
    "Fluorescence_LightSource_GenericExcitationSource.json": AppSchema(
        1, "Core", "Fluorescence_LightSource", _MAKER, _SOURCE_ITEMS),
    "CCD.json": AppSchema(1, "Basic", "Detector.Camera", _CAMERA_REQ, _DETECTOR_ITEMS),
    "CMOS.json": AppSchema(1, "Basic", "Detector.Camera", _CAMERA_REQ, _DETECTOR_ITEMS),
    "IntensifiedCamera.json": AppSchema(1, "Basic", "Detector.Camera", {
        **_CAMERA_REQ, "SensorType": 2, "IntensifierType": 2}, _DETECTOR_ITEMS),
    "AnalogVideo.json": AppSchema(1, "Basic", "Detector.Camera", _CAMERA_REQ, _DETECTOR_ITEMS),
    "PhotoMultiplierTube.json": AppSchema(1, "Basic", "Detector.PointDetector", {
        **_DETECTOR_REQ, "CollectionEfficiency": 2, "Multianode": 2, "Coating": 1},
        _DETECTOR_ITEMS),
    "PhotoDiode.json": AppSchema(1, "Basic", "Detector.PointDetector", {
        **_DETECTOR_REQ, "Coating": 1}, _DETECTOR_ITEMS),
    "GenericDetector.json": AppSchema(1, "Core", "Detector", _DETECTOR_REQ, _DETECTOR_ITEMS),
    "MechanicalStage.json": AppSchema(1, "Basic", "SamplePositioning.Stage", _STAGE_REQ, {}),
    "PiezoElectricStage.json": AppSchema(1, "Basic", "SamplePositioning.Stage", _STAGE_REQ, {}),
    "Z-Drive.json": AppSchema(2, "Basic", "SamplePositioning.Focusing",
                              {**_FOCUS_REQ, "Tier": 2}, {}),
}


def _absent(value: Any) -> bool:
    return value is None


def missing_fields(rec: Mapping[str, Any], schema: str, tier: int,
                   validation_tier: int | None = None) -> list[str]:
    """Keys the app requires of ``rec`` at these tiers and that it lacks, in schema order.

    A child array the app requires counts as present when it is a list; each of its items must
    then hold the item properties the app requires (``"LEDModule[1].PeakWavelength"``).
    ``validation_tier`` defaults to ``tier`` and is capped by it, as the app does.
    """
    app = APP_SCHEMAS[schema]
    vtier = min(tier if validation_tier is None else validation_tier, tier)
    out: list[str] = []
    for key, key_tier in app.required.items():
        if key_tier > vtier:
            continue
        if _absent(rec.get(key)):
            out.append(key)
    for array, (array_tier, wanted) in app.items.items():
        items = rec.get(array)
        if array_tier > tier or not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            for key, key_tier in wanted.items():
                if key_tier <= vtier and not (isinstance(item, dict)
                                              and not _absent(item.get(key))):
                    out.append(f"{array}[{i}].{key}")
    return out
