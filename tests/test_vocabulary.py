"""The one number formatter every XML attribute goes through: exact, finite, XSD-valid."""

from __future__ import annotations

import math
import re

from hypothesis import given
from hypothesis import strategies as st

from nbo_recorder.vocabulary import xml_number

#: xs:double lexical space (finite values), from XML Schema Part 2, 3.2.5.1
XS_DOUBLE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_finite_numbers_round_trip_exactly_as_xs_double(value: float) -> None:
    text = xml_number(value)
    assert text is not None and XS_DOUBLE.fullmatch(text)
    assert float(text) == value


def test_non_finite_numbers_are_never_written() -> None:
    assert [xml_number(v) for v in (math.nan, math.inf, -math.inf)] == [None, None, None]


def test_negative_zero_is_written_as_zero() -> None:
    assert xml_number(-0.0) == "0.0"
    assert xml_number(0.0) == "0.0"
