"""Frozen records made a column at a time.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``. For the
100,000 frame records of a long run's journal, or the 3,600 rows of the NBO rules table that
every ``validate`` reads, that is most of the time the reading takes. :func:`from_columns`
makes the same records by setting each field's slot a column at a time, which takes less
than half that time.

It converts and checks nothing: the caller has checked every value's type (the rules table
with :func:`exact_types` and :func:`of_types`, the journal reader as msgspec parses its frame
lines), falling back to the class's own constructor when a value is not of its field's type.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, fields, is_dataclass
from functools import cache
from itertools import repeat, zip_longest
from typing import Any, TypeVar, cast

__all__ = ["EXACT_TYPES", "exact_types", "from_columns", "of_types"]

T = TypeVar("T")

#: by a field's annotation as written, the types of the values a JSON parser returns that
#: are already what the field holds (``type(value) in ...``: a bool is not taken for an int,
#: nor an int for a float)
EXACT_TYPES: Mapping[str, tuple[type, ...]] = {
    "int": (int,), "float": (float,), "bool": (bool,), "str": (str,),
    "str | None": (str, type(None)), "float | None": (float, type(None))}


def exact_types(cls: type, more: Mapping[str, tuple[type, ...]] | None = None,
                ) -> tuple[tuple[type, ...], ...]:
    """For each field of the dataclass ``cls``, in order, the value types taken as they are:
    :data:`EXACT_TYPES` and ``more`` by the field's annotation, none for another annotation
    (so that no value of such a field is taken without its class's own conversion)."""
    known = {**EXACT_TYPES, **(more or {})}
    return tuple(known.get(str(f.type), ()) for f in fields(cls))


def of_types(columns: Sequence[Sequence[Any]], types: Sequence[tuple[type, ...]]) -> bool:
    """True when every value of each column is of one of its types (``types`` in the same
    order; a column past the end of ``types`` is not checked)."""
    return all(set(map(type, column)) <= set(allowed)
               for column, allowed in zip(columns, types, strict=False))


def from_columns(cls: type[T], columns: Sequence[Sequence[Any]]) -> list[T]:
    """The ``cls`` records whose field values are ``columns``: one sequence per field, in the
    fields' order, all of the same length; fields left out at the end take their defaults.

    Each record equals ``cls(*row)`` of its row. ``cls`` is a dataclass with slots and no
    ``__post_init__`` (TypeError otherwise); ValueError for too few or too many columns.
    """
    slots = _slots(cast("type", cls))  # a class is hashable; mypy cannot tell of type[T]
    required = sum(default is MISSING for _, default in slots)
    if not required <= len(columns) <= len(slots):
        raise ValueError(f"{len(columns)} columns for a {cls.__name__}, which has "
                         f"{len(slots)} fields ({required} without a default)")
    records: list[T] = list(map(cls.__new__, repeat(cls, len(columns[0]) if columns else 0)))
    for (setter, default), column in zip_longest(slots, columns):
        deque(map(setter, records, repeat(default) if column is None else column), maxlen=0)
    return records


@cache
def _slots(cls: type) -> tuple[tuple[Callable[[Any, Any], None], Any], ...]:
    """Each field's slot setter and default (MISSING where it has none); a field with a
    default factory is refused, as a column left out would share one value."""
    if not is_dataclass(cls) or "__slots__" not in vars(cls) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} is not a dataclass with slots and no __post_init__")
    if any(f.default_factory is not MISSING for f in fields(cls)):
        raise TypeError(f"{cls.__name__} has a field with a default factory")
    return tuple((vars(cls)[f.name].__set__, f.default) for f in fields(cls))
