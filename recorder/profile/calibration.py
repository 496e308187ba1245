"""Calibration and performance records of a rig: age, result files, and their NBO attributes.

A profile's ``calibrations:`` list what was measured on the rig and when (light-power meter
readings per laser line, bead PSF, chromatic registration, field-uniformity maps). This module
answers the questions the recorder asks about them:

* :func:`stale_calibrations` — which records are older than ``calibration_max_age_days`` on a
  given date (the run's start date), so a file says when its calibration was out of date;
* :func:`check_calibration_files` — whether every result file a record cites exists, before a
  run relies on it;
* :func:`calibration_problems` — measured values the NBO export reads whose unit does not fit;
* :func:`nbo_attributes` — the NBO Calibration & Performance attributes a record fills, with
  the values converted to the unit written next to them.

The NBO elements themselves are built in :mod:`nbo_recorder.render.nbo`. Measured values are named
as microscopists name them; :data:`MEASURED` says which name fills which NBO attribute. A name
it does not list is still recorded (in the calibration's MapAnnotation), just not as an NBO
attribute.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.model import CalibrationRecord, MeasuredValue, Profile
from nbo_recorder.units import CANONICAL, UnitError, quantity_of, to_canonical

#: Which NBO element a calibration kind becomes (``None``: MapAnnotation only).
NboCalibrationElement = Literal["ExcitationCalibration", "OpticalCalibration"]


@dataclass(frozen=True, slots=True)
class MeasuredField:
    """Where one named measured value goes in NBO.

    ``element`` is the NBO element holding ``attribute``; ``quantity`` the physical quantity
    the value must measure (see :mod:`nbo_recorder.units`); ``unit`` the unit the value is written
    in and ``unit_attribute`` the attribute stating it (``None`` where the XSD has no usable
    unit attribute, e.g. percentages).
    """

    element: str
    attribute: str
    quantity: str
    unit: str | None = None
    unit_attribute: str | None = None


_OPTICAL = "OpticalCalibration"
_CHROMATIC = "ChromaticRegistrationEvaluation"
_UNIFORMITY = "FieldUniformityEvaluation"
_EXCITATION = "ExcitationCalibration"

#: measured-value name -> NBO attribute, per calibration kind. Attribute and unit-attribute
#: names are the XSD's own spellings (``ObseredIlluminationPowerAtSample`` included).
MEASURED: Mapping[str, Mapping[str, MeasuredField]] = {
    "light_power": {
        "power_at_sample": MeasuredField(
            _EXCITATION, "ObseredIlluminationPowerAtSample", "power", "mW",
            "ObseredIlluminationPowerAtSampleUnit"),
        "power_at_objective_back": MeasuredField(
            _EXCITATION, "ObservedIlluminationPowerAtBackOfObjective", "power", "mW",
            "ObservedIlluminationPowerAtBackObjectiveUnit"),
        "wavelength": MeasuredField(
            _EXCITATION, "ObservedEx-Wavelength", "wavelength", "nm", "ObservedEx-WavelengthUnit"),
        "setpoint": MeasuredField(_EXCITATION, "PercentageNominalPowerSettings", "percent"),
        "short_term_stability": MeasuredField(
            _EXCITATION, "ShortTermIlluminationStability", "percent"),
        "long_term_stability": MeasuredField(
            _EXCITATION, "LongTermIlluminationStability", "percent"),
        "linearity": MeasuredField(_EXCITATION, "IlluminationLinearity", "dimensionless"),
        "sample_size": MeasuredField(_EXCITATION, "SampleSize", "dimensionless"),
    },
    "psf": {
        "theoretical_fwhm_xy": MeasuredField(
            _OPTICAL, "TheoreticalXYSpotSize_FWHM", "length", "nm",
            "TheoreticalXYSpotSize_FWHMUnit"),
        "median_fwhm_xy": MeasuredField(
            _OPTICAL, "MedianXYSpotSize_FWHM", "length", "nm", "MedianXYSpotSize_FWHMUnit"),
        "min_fwhm_xy": MeasuredField(
            _OPTICAL, "MinXYSpotSize_FWHM", "length", "nm", "MinXYSpotSize_FWHMUnit"),
        "theoretical_fwhm_z": MeasuredField(
            _OPTICAL, "TheoreticaZSpotSize_FWHM", "length", "nm", "TheoreticaZSpotSize_FWHMUnit"),
        "sample_size": MeasuredField(_OPTICAL, "SampleSize", "dimensionless"),
        "nyquist_rate": MeasuredField(_OPTICAL, "NyquistRate", "dimensionless"),
    },
    "chromatic_registration": {
        "reference_wavelength": MeasuredField(
            _CHROMATIC, "ReferenceWavelength", "wavelength", "nm", "ReferenceWavelengthUnit"),
        "test_wavelength": MeasuredField(
            _CHROMATIC, "TestWavelength", "wavelength", "nm", "TestWavelengthUnit"),
        "x_shift": MeasuredField(
            _CHROMATIC, "XChromaticShift_RT", "length", "nm", "XChromaticShift_RTUnit"),
        "y_shift": MeasuredField(
            _CHROMATIC, "YChromaticShift_RT", "length", "nm", "YChromaticShift_RTUnit"),
        "z_shift": MeasuredField(
            _CHROMATIC, "AxialChromaticShift_RT", "length", "nm", "AxialChromaticShift_RTUnit"),
    },
    "field_uniformity": {
        "max_intensity_x": MeasuredField(_UNIFORMITY, "MaxIntensityPixelXCoordinate",
                                         "dimensionless"),
        "max_intensity_y": MeasuredField(_UNIFORMITY, "MaxIntensityPixelYCoordinate",
                                         "dimensionless"),
        "mean_max_to_corner_ratio": MeasuredField(
            _UNIFORMITY, "MeanMaxtoCornerIntensityRatio", "dimensionless"),
        "sd_max_to_corner_ratio": MeasuredField(
            _UNIFORMITY, "SDMaxtoCornerIntensityRatio", "dimensionless"),
    },
}

#: The NBO element a calibration kind is exported as (kinds not listed: MapAnnotation only).
NBO_ELEMENT: Mapping[str, NboCalibrationElement] = {
    "light_power": "ExcitationCalibration",
    "psf": "OpticalCalibration",
    "chromatic_registration": "OpticalCalibration",
    "field_uniformity": "OpticalCalibration",
}

#: NBO integer attributes (PositiveInt): written without a decimal point.
_INTEGER_ATTRIBUTES = frozenset({"SampleSize"})

#: Units the NBO unit attributes use that are not the recorder's canonical ones.
_FROM_CANONICAL = {("length", "nm"): 1000.0}


@dataclass(frozen=True, slots=True)
class StaleCalibration:
    """A calibration older than the profile's ``calibration_max_age_days`` on some date."""

    index: int
    calibration: CalibrationRecord
    age_days: int
    max_age_days: float


def age_days(calibration: CalibrationRecord, on: datetime.date) -> int:
    """Whole days between the calibration and ``on`` (negative if it is dated later)."""
    return (on - calibration.date).days


def stale_calibrations(profile: Profile, on: datetime.date) -> list[StaleCalibration]:
    """The calibrations older than ``profile.calibration_max_age_days`` on ``on``.

    Empty when the profile sets no maximum age: nothing can then be called stale.
    """
    limit = profile.calibration_max_age_days
    if limit is None:
        return []
    return [
        StaleCalibration(i, cal, age_days(cal, on), limit)
        for i, cal in enumerate(profile.calibrations)
        if age_days(cal, on) > limit
    ]


def calibration_file(calibration: CalibrationRecord, base_dir: str | Path) -> Path | None:
    """The result file a calibration cites, resolved against ``base_dir`` (the profile's)."""
    if calibration.file is None:
        return None
    path = Path(calibration.file).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def check_calibration_files(profile: Profile, base_dir: str | Path) -> None:
    """Raise :class:`ProfileError` naming every ``calibrations[i].file`` that does not exist.

    ``base_dir`` is the folder of the profile file: relative paths are resolved against it.
    """
    problems = []
    for i, cal in enumerate(profile.calibrations):
        path = calibration_file(cal, base_dir)
        if path is not None and not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            problems.append(f"calibrations[{i}].file: {path} {what} "
                            f"(calibration {cal.id!r}, resolved against {base_dir})")
    if problems:
        raise ProfileError("calibration result files are missing:\n  " + "\n  ".join(problems))


def calibration_problems(calibrations: Iterable[CalibrationRecord]) -> list[str]:
    """Measured values that :data:`MEASURED` maps to NBO but whose unit or form does not fit.

    Each message names ``calibrations[i].measured.<name>`` and what was expected.
    """
    problems = []
    for i, cal in enumerate(calibrations):
        fields = MEASURED.get(cal.kind, {})
        for name, value in cal.measured.items():
            target = fields.get(name)
            if target is None:
                continue
            where = f"calibrations[{i}].measured.{name}"
            if not isinstance(value, MeasuredValue):
                problems.append(f"{where}: expected {{value, unit}} measuring {target.quantity} "
                                f"(NBO {target.element}@{target.attribute}), got {value!r}")
                continue
            try:
                quantity = quantity_of(value.unit)
            except UnitError as exc:
                problems.append(f"{where}.unit: {exc}")
                continue
            if quantity != target.quantity:
                problems.append(
                    f"{where}.unit: {value.unit!r} measures {quantity}, but {name} is a "
                    f"{target.quantity} (e.g. {CANONICAL[target.quantity]!r})")
            elif target.attribute in _INTEGER_ATTRIBUTES and not (
                value.value >= 1 and float(value.value).is_integer()
            ):
                problems.append(f"{where}.value: a sample size is a positive whole number, "
                                f"got {value.value!r}")
    return problems


def _converted(value: MeasuredValue, target: MeasuredField) -> float | int:
    canonical = to_canonical(value.value, value.unit)
    factor = _FROM_CANONICAL.get((target.quantity, target.unit or ""), 1.0)
    converted = canonical * factor
    if target.attribute in _INTEGER_ATTRIBUTES:
        return int(converted)
    return converted


def nbo_attributes(calibration: CalibrationRecord) -> dict[str, dict[str, float | int | str]]:
    """NBO attributes the record's measured values fill, grouped by NBO element.

    Values are converted to the unit of :class:`MeasuredField` and come with their unit
    attribute. Values whose unit does not fit (see :func:`calibration_problems`) are left out.
    """
    out: dict[str, dict[str, float | int | str]] = {}
    for name, value in calibration.measured.items():
        target = MEASURED.get(calibration.kind, {}).get(name)
        if target is None or not isinstance(value, MeasuredValue):
            continue
        try:
            if quantity_of(value.unit) != target.quantity:
                continue
        except UnitError:
            continue
        attrs = out.setdefault(target.element, {})
        attrs[target.attribute] = _converted(value, target)
        if target.unit_attribute is not None and target.unit is not None:
            attrs[target.unit_attribute] = target.unit
    return out


def method_text(calibration: CalibrationRecord) -> str | None:
    """What the profile says about how the calibration was done (NBO ``Method``)."""
    parts = []
    if calibration.tool:
        parts.append(f"tool: {calibration.tool}")
    if calibration.notes:
        parts.append(calibration.notes)
    return "; ".join(parts) or None


def summary(
    calibration: CalibrationRecord, on: datetime.date, max_age_days: float | None
) -> dict[str, str]:
    """Everything the record states, as text, with its age on ``on`` and whether it is stale.

    Used for the calibration's MapAnnotation, so that values without an NBO attribute and
    the staleness verdict are kept in the file too.
    """
    age = age_days(calibration, on)
    out = {
        "id": calibration.id,
        "kind": calibration.kind,
        "date": calibration.date.isoformat(),
        "age on run date": f"{age} d",
    }
    if max_age_days is None:
        out["stale"] = "not checked (the profile sets no calibration_max_age_days)"
    elif age > max_age_days:
        out["stale"] = f"yes: {age} d old on {on.isoformat()}, maximum {max_age_days:g} d"
    else:
        out["stale"] = f"no: {age} d old on {on.isoformat()}, maximum {max_age_days:g} d"
    for key in ("tool", "component", "file", "notes"):
        value = getattr(calibration, key)
        if value is not None:
            out[key] = str(value)
    for name, value in calibration.measured.items():
        if isinstance(value, MeasuredValue):
            out[f"measured {name}"] = f"{value.value:g} {value.unit}".strip()
        else:
            out[f"measured {name}"] = value
    return out
