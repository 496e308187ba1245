import math

import pytest

from nbo_recorder.units import UnitError, canonical_unit, percent_to_fraction, to_canonical


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
