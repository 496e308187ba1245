"""Where a libxml2 validation error points, and what a content-model error is missing.

libxml2 (through lxml) reports each XSD error with a node path (``/*/*[3]/*[4]``) or, for
a dangling reference, only a line; :class:`ErrorLocator` finds the element either names in an
lxml tree. libxml2 says where an element's content stopped matching its model but cuts its
list of what it expected at ten names; :func:`missing_particle` reads what is missing there
from the content model in :mod:`nbo_recorder.nbo.xsd_index`. Used by
:func:`nbo_recorder.nbo.schema.validate_nbo`.
"""

from __future__ import annotations

from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from nbo_recorder.nbo.xsd_index import Particle

#: libxml2's line numbers are 16 bit: elements past this one are located by path only.
_MAX_LINE = 65534


class ErrorLocator:
    """Finds the working-copy element a libxml2 error is about."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.by_line: list[Any] = []
        self.children: dict[tuple[Any, str], list[Any]] = {}

    def number(self) -> None:
        """Give each element its document-order number as its line, for errors without a
        path (libxml2 reports a dangling reference by line only)."""
        self.children.clear()
        self.by_line = list(self.root.iter(etree.Element))
        for number, element in enumerate(self.by_line[:_MAX_LINE], start=1):
            element.sourceline = number

    def find(self, entry: Any) -> Any:
        """The element of ``entry`` (an lxml error-log entry), or None."""
        if entry.path:
            return self._resolve(entry.path)
        if 0 < entry.line <= min(len(self.by_line), _MAX_LINE):
            return self.by_line[entry.line - 1]
        return None

    def _resolve(self, path: str) -> Any:
        """Follow a libxml2 node path: ``*[k]`` is the k-th element child, ``name[k]`` (or
        ``prefix:name[k]``) the k-th child of that name; no index means the only one."""
        node = self.root
        for step in path.split("/")[2:]:
            name, _, index = step.partition("[")
            position = int(index.rstrip("]")) if index else 1
            key = (node, name)
            candidates = self.children.get(key)
            if candidates is None:
                candidates = [c for c in node.iterchildren(etree.Element)
                              if name == "*" or _step_name(c) == name]
                self.children[key] = candidates
            if position > len(candidates):
                return None
            node = candidates[position - 1]
        return node


def _step_name(element: Any) -> str:
    """How libxml2 names ``element`` in a node path when it does not use ``*``."""
    name = element.tag.rsplit("}", 1)[-1]
    return f"{element.prefix}:{name}" if element.prefix else name


def missing_particle(particles: tuple[Particle, ...], names: list[str],
                      index: int) -> Particle | None:
    """The first required particle the children before ``index`` leave unfilled.

    ``names`` are the element's children; libxml2 accepted ``names[:index]`` and could
    not go on at ``index``. The children are matched greedily (XSD content models are
    deterministic). None when nothing required is missing there: the child at ``index``
    is then out of place, not preceded by a gap.
    """
    position, count = 0, 0
    for name in names[:index]:
        while position < len(particles) and not (
            particles[position].takes(name) and _room(particles[position], count)
        ):
            position, count = position + 1, 0
        if position == len(particles):
            return None
        count += 1
    following = names[index] if index < len(names) else None
    for offset, particle in enumerate(particles[position:]):
        filled = count if offset == 0 else 0
        if filled < particle.min_occurs:
            return particle
        if following is not None and particle.takes(following) and _room(particle, filled):
            return None
    return None


def _room(particle: Particle, count: int) -> bool:
    return particle.max_occurs is None or count < particle.max_occurs
