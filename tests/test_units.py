import math

import pytest

from nbo_recorder.units import (
    UnitError,
    canonical_unit,
    convert,
    percent_to_fraction,
    to_canonical,
)


@pytest.mark.parametrize(
    ("value", "unit", "expected", "canonical"),
    [
        (0.05, "W", 50.0, "mW"),
        (250.0, "µW", 0.25, "mW"),
        (1.2, "mm", 1200.0, "µm"),
        (0.02, "s", 20.0, "ms"),
        (500.0, "us", 0.5, "ms"),
        (20e6, "Hz", 20.0, "MHz"),
        (488.0, "nm", 488.0, "nm"),
    ],
)
def test_conversions_to_canonical_units(value, unit, expected, canonical):
    assert math.isclose(to_canonical(value, unit), expected)
    assert canonical_unit(unit) == canonical


def test_unknown_unit_is_an_error_naming_it():
    with pytest.raises(UnitError, match="'furlong'"):
        to_canonical(1.0, "furlong")


def test_percent_to_fraction():
    assert percent_to_fraction(25.0) == 0.25


@pytest.mark.parametrize(("value", "unit", "target", "expected"), [
    (0.5, "µm", "nm", 500.0),       # a wavelength written in µm, said in nm
    (525.0, "nm", "µm", 0.525),
    (50.0, "µm", "mm", 0.05),       # a pinhole diameter
    (1.0, "cm", "µm", 10_000.0),
    (2.0, "min", "s", 120.0),       # a time-lapse interval
    (20.0, "ms", "s", 0.02),
    (5.0, "Å", "nm", 0.5),
])
def test_convert_between_units_of_one_quantity(value, unit, target, expected):
    assert convert(value, unit, target) == expected


def test_convert_refuses_units_of_different_quantities_or_unknown_ones():
    with pytest.raises(UnitError, match="cannot convert 'ms'"):
        convert(1.0, "ms", "nm")
    with pytest.raises(UnitError, match="unknown unit 'furlong'"):
        convert(1.0, "furlong", "m")
