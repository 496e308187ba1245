"""A long run's Planes: checked in C, graded as the first of them.

A record of 100,000 Planes is nearly all Planes that differ only in their values, and
building lxml's tree of them, walking it in Python and validating it took most of
``validate``'s time. :func:`cut_runs` cuts each Pixels' Planes after the first out of the
record's text; the rest is parsed and graded as any record is. Worker threads meanwhile
parse the Planes on their own, in a few pieces, and libxml2 checks, with its GIL released,
that each has the first Plane's attribute names, no child element, no value recorded as
unknown, and nothing the XSD (without its identity constraints, none of which selects a
Plane) rejects (:func:`check_runs`). Every Plane of a run that passes is graded as the
first one is: the grades of a Plane depend on nothing else. When a check fails the caller
grades the whole record as before, and so reports each offending Plane where it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from nbo_recorder.nbo.xsd_index import schema_tree_without_keys
from nbo_recorder.vocabulary import NBO_NAMESPACE, UNKNOWN_TEXT

__all__ = ["MIN_PLANES", "CutRecord", "PlaneRun", "check_runs", "cut_runs", "first_planes"]

#: Pixels with fewer Planes are graded Plane by Plane (cutting saves nothing there)
MIN_PLANES = 256

#: how many pieces a run's Planes are checked in, each in its own thread
_PIECES = max(1, min(os.cpu_count() or 1, 4))

_PIXELS_TAG = "<Pixels"
_PLANE_TAG = "<Plane "
_XSD = {"xsd": "http://www.w3.org/2001/XMLSchema"}
_UNKNOWN = UNKNOWN_TEXT.encode()


@dataclass(frozen=True)
class PlaneRun:
    """The Planes of one Pixels of a record, after the first, cut out of its text."""

    #: which Pixels of the record (0-based, in document order)
    pixels: int
    #: how many Planes were cut out (the first stays in the record)
    count: int
    #: the Pixels' start tag and its Planes (the first one too) in pieces, each a document
    #: of its own
    pieces: tuple[bytes, ...]
    #: how many Planes each piece holds
    sizes: tuple[int, ...]


@dataclass(frozen=True)
class CutRecord:
    """A record's text with its long runs of Planes cut to their first Plane."""

    text: str
    runs: tuple[PlaneRun, ...]
    #: how many Pixels start tags the text has
    pixels: int


def cut_runs(record: str) -> CutRecord:
    """``record`` (an NBO record's text) with each Pixels' Planes after the first cut out,
    for Pixels of at least :data:`MIN_PLANES` Planes that come first in their Pixels, as the
    NBO XSD orders them.

    Only text operations: whether the cut is sound is checked by parsing both parts (the
    caller parses the record, :func:`check_runs` the Planes) and by :func:`first_planes`.
    The text of a record with a comment, CDATA section or processing instruction must not
    be given (a ``<`` there is not a tag); a ``<`` elsewhere always starts one.
    """
    out: list[str] = []
    runs: list[PlaneRun] = []
    done = 0  # where the text not yet copied to ``out`` starts
    ordinal = -1
    at = record.find(_PIXELS_TAG)
    while at >= 0:
        after = record[at + len(_PIXELS_TAG): at + len(_PIXELS_TAG) + 1]
        if after not in (" ", "\t", "\r", "\n", ">", "/"):
            at = record.find(_PIXELS_TAG, at + 1)
            continue
        ordinal += 1
        cut = _cut_one(record, at, ordinal)
        if cut is not None:
            run, first_end, run_end = cut
            out += (record[done:first_end],)
            done = run_end
            runs.append(run)
            at = run_end
        at = record.find(_PIXELS_TAG, at + 1)
    out.append(record[done:])
    return CutRecord("".join(out), tuple(runs), ordinal + 1)


def _cut_one(record: str, at: int, ordinal: int) -> tuple[PlaneRun, int, int] | None:
    """The run of the Pixels whose start tag is at ``at``, where its first Plane ends and
    where the run ends; None if it has too few Planes or is not laid out as expected."""
    tag_end = record.find(">", at)
    if tag_end < 0 or record[tag_end - 1] == "/":
        return None
    start = record.find("<", tag_end + 1)
    if start < 0 or not record.startswith(_PLANE_TAG, start) or record[tag_end + 1: start].strip():
        return None
    end = record.find("</Pixels>", start)
    last = record.rfind(_PLANE_TAG, start, end)
    if end < 0 or last < 0:
        return None
    run_end = record.find("<", last + 1)  # the tag after the last Plane's start tag
    if record.startswith("</Plane>", run_end):
        run_end += len("</Plane>")
    if record.count(_PLANE_TAG, start, run_end) < MIN_PLANES:
        return None
    second = record.find(_PLANE_TAG, start + 1)
    head = f'<Pixels xmlns="{NBO_NAMESPACE}"{record[at + len(_PIXELS_TAG): tag_end + 1]}\n'
    bounds = [start]
    for k in range(1, _PIECES):
        split = record.find(_PLANE_TAG, start + (run_end - start) * k // _PIECES, run_end)
        if split > bounds[-1]:
            bounds.append(split)
    bounds.append(run_end)
    pieces = tuple(f"{head}{record[a:b]}</Pixels>".encode() for a, b in pairwise(bounds))
    sizes = tuple(record.count(_PLANE_TAG, a, b) for a, b in pairwise(bounds))
    return PlaneRun(ordinal, sum(sizes) - 1, pieces, sizes), second, run_end


def first_planes(root: Any, cut: CutRecord) -> list[Any] | None:
    """The Plane left of each run of ``cut`` in ``root`` (its text, parsed), in the order of
    its runs; None if the record's Pixels are not the Pixels start tags of its text, or a
    run's Pixels does not hold just that one Plane (the cut did not take all of them)."""
    pixels = list(root.iter(f"{{{NBO_NAMESPACE}}}Pixels"))
    if len(pixels) != cut.pixels:
        return None
    plane = f"{{{NBO_NAMESPACE}}}Plane"
    found = []
    for run in cut.runs:
        planes = pixels[run.pixels].findall(plane)
        if len(planes) != 1 or pixels[run.pixels][0] is not planes[0]:
            return None
        found.append(planes[0])
    return found


def check_runs(runs: Sequence[PlaneRun], firsts: Sequence[Any]) -> Callable[[], bool]:
    """Start checking that every Plane of ``runs`` is well-formed, valid against the XSD,
    childless, free of values recorded as unknown and has the attribute names of its run's
    first Plane (``firsts``, from the cut record), each piece in a thread of its own.

    Returns what waits for the checks and says whether all passed: the caller grades the
    cut record meanwhile (libxml2 releases the GIL while it parses and validates).
    """
    jobs = [(piece, size, tuple(first.keys()))
            for run, first in zip(runs, firsts, strict=True)
            for piece, size in zip(run.pieces, run.sizes, strict=True)]
    if not jobs:
        return lambda: True
    pool = ThreadPoolExecutor(max_workers=min(len(jobs), _PIECES))
    checks = [pool.submit(_piece_passes, *job) for job in jobs]
    pool.shutdown(wait=False)

    def passed() -> bool:
        return all(check.result() for check in checks)
    return passed


def _piece_passes(piece: bytes, size: int, names: Sequence[str]) -> bool:
    """See :func:`check_runs`: ``piece`` is a Pixels start tag, on a line of its own, and
    ``size`` Planes that must have the attribute ``names``."""
    schema = _plane_schema(names)
    if schema is None:
        return False
    # a parser of this thread's own: lxml shares one parser across threads at a cost
    parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=True)
    try:
        root = etree.fromstring(piece, parser)
    except etree.XMLSyntaxError:
        return False
    # a value recorded as unknown is in the text as it is, unless written with character
    # references: reading each attribute of 50,000 Planes is then spared
    unknown = " or @* = $unknown" if _UNKNOWN in piece or b"&" in piece else ""
    if root.tag != f"{{{NBO_NAMESPACE}}}Pixels" or not root.xpath(
            f"count(*) = {size} and count(n:Plane) = {size} and not(n:Plane[*{unknown}])",
            namespaces={"n": NBO_NAMESPACE}, unknown=UNKNOWN_TEXT):
        return False
    if schema.validate(etree.ElementTree(root)):
        return True
    # the Pixels itself lacks its other children here, and its own errors are the
    # record's to report: only errors below it, from line 2 on, are the Planes'
    return all(entry.line == 1 for entry in schema.error_log)


def _plane_schema(names: Sequence[str]) -> Any:
    """The NBO XSD without identity constraints, in which a Plane must have exactly the
    attributes ``names``: libxml2 then checks that the Planes have the same attributes as
    the first while it validates them (asking XPath about each name took as long as the
    validation). None if a name is not among the Plane's own attributes (it may not hold
    it, or holds it through a group this does not change)."""
    tree = schema_tree_without_keys()
    declared = tree.xpath("/xsd:schema/xsd:element[@name = 'Plane']/xsd:complexType"
                          "/xsd:attribute[@name]", namespaces=_XSD)
    if not set(names) <= {attribute.get("name") for attribute in declared}:
        return None
    for attribute in declared:
        attribute.attrib.pop("default", None)  # not allowed with either use
        if attribute.get("name") in names:
            attribute.set("use", "required")
        else:
            attribute.attrib.pop("fixed", None)
            attribute.set("use", "prohibited")
    return etree.XMLSchema(tree)
