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
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from nbo_recorder.nbo.xsd_index import compile_schema, schema_tree_without_keys
from nbo_recorder.vocabulary import NBO_NAMESPACE, UNKNOWN_TEXT

__all__ = ["MIN_PLANES", "CutRecord", "PlaneRun", "check_runs", "cut_runs", "feed",
           "first_planes"]

#: Pixels with fewer Planes are graded Plane by Plane (cutting saves nothing there)
MIN_PLANES = 256

#: how many threads check a run's Planes (and the fewest pieces it is cut into)
_PIECES = max(1, min(os.cpu_count() or 1, 4))
#: Planes per piece at most: a piece's tree is freed before the thread parses the next, so
#: its memory is used again (a new page costs this machine about 1 ms per MB)
_PIECE_PLANES = 12_500
#: characters of text fed to the parser at a time
_FEED = 1 << 20
_LOCAL = threading.local()

_PIXELS_TAG = "<Pixels"
_PLANE_TAG = "<Plane "
_XSD = {"xsd": "http://www.w3.org/2001/XMLSchema"}


@dataclass(frozen=True)
class PlaneRun:
    """The Planes of one Pixels of a record, after the first, cut out of its text."""

    #: which Pixels of the record (0-based, in document order)
    pixels: int
    #: how many Planes were cut out (the first stays in the record)
    count: int
    #: the Pixels' start tag, on a line of its own, to put before a piece of its Planes
    head: str
    #: where each piece of its Planes (the first one too) is in the text, and how many
    #: Planes it holds
    pieces: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class CutRecord:
    """A record's text with its long runs of Planes cut to their first Plane."""

    text: str
    runs: tuple[PlaneRun, ...]
    #: how many Pixels start tags the text has
    pixels: int


def cut_runs(xml: str, start: int = 0, end: int | None = None) -> CutRecord:
    """The NBO record ``xml[start:end]`` with each Pixels' Planes after the first cut out,
    for Pixels of at least :data:`MIN_PLANES` Planes that come first in their Pixels, as the
    NBO XSD orders them. The runs' pieces are places in ``xml``.

    Only text operations: whether the cut is sound is checked by parsing both parts (the
    caller parses the record, :func:`check_runs` the Planes) and by :func:`first_planes`.
    The text of a record with a comment, CDATA section or processing instruction must not
    be given (a ``<`` there is not a tag); a ``<`` elsewhere always starts one.
    """
    end = len(xml) if end is None else end
    out: list[str] = []
    runs: list[PlaneRun] = []
    done = start  # where the text not yet copied to ``out`` starts
    ordinal = -1
    at = xml.find(_PIXELS_TAG, start, end)
    while at >= 0:
        after = xml[at + len(_PIXELS_TAG): at + len(_PIXELS_TAG) + 1]
        if after not in (" ", "\t", "\r", "\n", ">", "/"):
            at = xml.find(_PIXELS_TAG, at + 1, end)
            continue
        ordinal += 1
        cut = _cut_one(xml, at, end, ordinal)
        if cut is not None:
            run, first_end, run_end = cut
            out += (xml[done:first_end],)
            done = run_end
            runs.append(run)
            at = run_end
        at = xml.find(_PIXELS_TAG, at + 1, end)
    out.append(xml[done:end])
    return CutRecord("".join(out), tuple(runs), ordinal + 1)


def _cut_one(xml: str, at: int, end: int, ordinal: int) -> tuple[PlaneRun, int, int] | None:
    """The run of the Pixels whose start tag is at ``at``, where its first Plane ends and
    where the run ends; None if it has too few Planes or is not laid out as expected."""
    tag_end = xml.find(">", at, end)
    if tag_end < 0 or xml[tag_end - 1] == "/":
        return None
    start = xml.find("<", tag_end + 1, end)
    if start < 0 or not xml.startswith(_PLANE_TAG, start) or xml[tag_end + 1: start].strip():
        return None
    pixels_end = xml.find("</Pixels>", start, end)
    last = xml.rfind(_PLANE_TAG, start, pixels_end)
    if pixels_end < 0 or last < 0:
        return None
    run_end = xml.find("<", last + 1, end)  # the tag after the last Plane's start tag
    if xml.startswith("</Plane>", run_end):
        run_end += len("</Plane>")
    total = xml.count(_PLANE_TAG, start, run_end)
    if total < MIN_PLANES:
        return None
    second = xml.find(_PLANE_TAG, start + 1, end)
    head = f'<Pixels xmlns="{NBO_NAMESPACE}"{xml[at + len(_PIXELS_TAG): tag_end + 1]}\n'
    count = max(_PIECES, -(-total // _PIECE_PLANES))
    bounds = [start]
    for k in range(1, count):
        split = xml.find(_PLANE_TAG, start + (run_end - start) * k // count, run_end)
        if split > bounds[-1]:
            bounds.append(split)
    bounds.append(run_end)
    pieces = tuple((a, b, xml.count(_PLANE_TAG, a, b)) for a, b in pairwise(bounds))
    return PlaneRun(ordinal, total - 1, head, pieces), second, run_end


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


def check_runs(xml: str, runs: Sequence[PlaneRun],
               firsts: Sequence[Any]) -> Callable[[], bool]:
    """Start checking that every Plane of ``runs`` (cut out of ``xml``) is well-formed,
    valid against the XSD, childless, free of values recorded as unknown and has the
    attribute names of its run's first Plane (``firsts``, from the cut record), in pieces,
    on as many threads as there are cores.

    Returns what waits for the checks and says whether all passed: the caller grades the
    cut record meanwhile (libxml2 releases the GIL while it parses and validates).
    """
    jobs = [(xml, piece, run.head, tuple(first.keys()))
            for run, first in zip(runs, firsts, strict=True) for piece in run.pieces]
    if not jobs:
        return lambda: True
    # imported here: 10 ms of every validate otherwise, of a small file too
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=min(len(jobs), _PIECES))
    checks = [pool.submit(_piece_passes, *job) for job in jobs]
    pool.shutdown(wait=False)

    def passed() -> bool:
        return all(check.result() for check in checks)
    return passed


def _piece_passes(xml: str, piece: tuple[int, int, int], head: str,
                  names: tuple[str, ...]) -> bool:
    """See :func:`check_runs`: ``piece`` is where in ``xml`` a number of Planes that must
    have the attribute ``names`` are, and how many; ``head`` the start tag of their Pixels."""
    schema = _thread_schema(names)
    if schema is None:
        return False
    start, end, size = piece
    # a value recorded as unknown is in the text as it is, unless written with character
    # references: reading each attribute of every Plane is otherwise spared
    unknown = (" or @* = $unknown" if xml.find(UNKNOWN_TEXT, start, end) >= 0
               or xml.find("&", start, end) >= 0 else "")
    # a parser of this thread's own: lxml shares one across threads at a cost
    parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=True)
    try:
        root = feed(parser, xml, ((head, None), (start, end), ("</Pixels>", None)))
    except etree.XMLSyntaxError:
        return False
    if root.tag != f"{{{NBO_NAMESPACE}}}Pixels" or not root.xpath(
            f"count(*) = {size} and count(n:Plane) = {size} and not(n:Plane[*{unknown}])",
            namespaces={"n": NBO_NAMESPACE}, unknown=UNKNOWN_TEXT):
        return False
    if schema.validate(etree.ElementTree(root)):
        return True
    # the Pixels itself lacks its other children here, and its own errors are the
    # record's to report: only errors below it, from line 2 on, are the Planes'
    return all(entry.line == 1 for entry in schema.error_log)


def feed(parser: Any, xml: str, parts: Iterable[tuple[int | str, int | None]]) -> Any:
    """Feed lxml's ``parser`` the text of ``parts`` in order, then close it and return what
    it made. A part is a span ``(start, end)`` of ``xml``, or ``(text, None)`` for a text of
    its own. A span is fed as UTF-8 a megabyte at a time, so a long run's text is never
    copied whole (a new megabyte costs this machine about 1 ms of page faults; copying the
    pieces and the rest of the text whole took 0.1 s). XMLSyntaxError if it is not
    well-formed."""
    for start, end in parts:
        if isinstance(start, str):
            parser.feed(start.encode())
            continue
        assert end is not None
        for at in range(start, end, _FEED):
            parser.feed(xml[at:min(at + _FEED, end)].encode())
    return parser.close()


def _thread_schema(names: tuple[str, ...]) -> Any:
    """:func:`_plane_schema` of ``names``, compiled once per thread (an lxml schema keeps
    the errors of its last validation: a thread's own needs no lock)."""
    cache: dict[tuple[str, ...], Any] = _LOCAL.__dict__.setdefault("schemas", {})
    if names not in cache:
        cache[names] = _plane_schema(names)
    return cache[names]


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
    return compile_schema(tree)
