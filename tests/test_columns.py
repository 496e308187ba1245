"""Records made a column at a time are the records the class's constructor makes."""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
from typing import Any

import pytest

from nbo_recorder.columns import exact_types, from_columns, of_types


@dataclass(frozen=True, slots=True)
class _Row:
    name: str
    size: int
    scale: float | None = None
    flag: bool = False


def test_records_equal_the_constructors_with_defaults_for_columns_left_out() -> None:
    rows = [("a", 1, 0.5, True), ("b", -2, None, False), ("c", 3, -0.0, True)]
    columns = list(zip(*rows, strict=True))
    made = from_columns(_Row, columns)
    assert made == [_Row(*row) for row in rows]
    assert [astuple(r) for r in made] == rows
    assert from_columns(_Row, columns[:2]) == [_Row(n, s) for n, s, _, _ in rows]
    with pytest.raises(AttributeError):  # still frozen
        made[0].size = 5  # type: ignore[misc]


def test_too_few_or_too_many_columns_are_refused() -> None:
    columns = [("a",), (1,), (None,), (False,)]
    for wrong in (columns[:1], [*columns, (0,)]):
        with pytest.raises(ValueError, match="columns for a _Row, which has 4 fields "
                                             r"\(2 without a default\)"):
            from_columns(_Row, wrong)


def test_a_class_it_cannot_fill_is_refused() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            raise AssertionError("skipped by from_columns")

    @dataclass(slots=True)
    class Factory:
        a: list[int] = field(default_factory=list)

    for cls in (NoSlots, PostInit):
        with pytest.raises(TypeError, match="not a dataclass with slots and no __post_init__"):
            from_columns(cls, [(1,)])
    with pytest.raises(TypeError, match="default factory"):
        from_columns(Factory, [])


def test_values_are_taken_as_they_are_only_when_already_of_their_field_s_type() -> None:
    @dataclass(frozen=True, slots=True)
    class Other:
        when: Any
        names: tuple[str, ...] = ()

    assert exact_types(_Row) == ((str,), (int,), (float, type(None)), (bool,))
    assert exact_types(Other) == ((), ())  # no value of an unlisted annotation is taken
    assert exact_types(Other, {"tuple[str, ...]": (list,)}) == ((), (list,))
    types = exact_types(_Row)
    assert of_types([("a", "b"), (1, 2), (0.5, None), (True, False)], types)
    assert not of_types([("a",), (True,)], types)  # a bool is not taken for an int
    assert not of_types([("a",), (1,), (1,)], types)  # nor an int for a float
    assert not of_types([("a", None)], types)  # None only where the field allows it
    assert of_types([("a",), (1,), (None,), (True,), ("past the fields",)], types)
