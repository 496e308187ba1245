"""Deduplicated MapAnnotations, shared by the OME and the NBO documents."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class AnnotationRegistry(Generic[T]):
    """Hands out one annotation ID per distinct (namespace, key/value set), in order of use.

    ``make(annotation_id, namespace, values)`` builds the annotation element in whichever
    model the document uses (ome-types for the OME part, ElementTree for the NBO record);
    many planes or channels with the same settings then share one annotation.
    """

    def __init__(self, make: Callable[[str, str, dict[str, str]], T]) -> None:
        self._make = make
        self._by_key: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self.items: list[T] = []

    def ref(self, namespace: str, values: Mapping[str, str]) -> str:
        """The ID of the annotation holding ``values`` in ``namespace`` (made on first use)."""
        ordered = tuple(sorted(values.items()))
        key = (namespace, ordered)
        if key not in self._by_key:
            annotation_id = f"Annotation:{len(self.items)}"
            self._by_key[key] = annotation_id
            self.items.append(self._make(annotation_id, namespace, dict(ordered)))
        return self._by_key[key]
