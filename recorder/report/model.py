"""Build what the report page shows from a file: :func:`build_report`.

The file is read once through the one reader (:func:`nbo_recorder.judge.reader.read`); the
compliance matrix is ``validate``'s grading (:func:`nbo_recorder.judge.validate.validate_file`)
and the methods paragraph is ``methods``'s (:func:`nbo_recorder.judge.methods.build_methods`),
so the page never says something those commands would not. A file another tool wrote (no
NBO record, no recorder annotations) gives a page that says what it lacks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from nbo_recorder.judge.methods import build_methods
from nbo_recorder.judge.reader import annotation_values, read
from nbo_recorder.judge.validate import AttributeRow, validate_file
from nbo_recorder.nbo.rules import EXTENSIONS, TIERS, check_tier
from nbo_recorder.report.instrument import NboComponents, instrument_rows
from nbo_recorder.report.lightpath import ChannelPath
from nbo_recorder.report.run import run_view
from nbo_recorder.report.spectra import Axis, axis_for, band, wavelength_colour
from nbo_recorder.report.views import (
    ChannelView,
    Compliance,
    Mark,
    MissingGroup,
    MissingRow,
    Report,
)
from nbo_recorder.vocabulary import NS_CHANNEL, NS_RUN

#: a component ID as ``validate`` names it in a row's subject (``Detector:cam-demo``)
_COMPONENT = re.compile(r"(?:^|, )(?P<id>[A-Za-z-]+:[^\s,']+)(?: '[^']*')?$")
#: a plane index in a subject or path
_PLANE = re.compile(r"plane \d+")
_PATH_INDEX = re.compile(r"Plane\[\d+\]")


def build_report(path: str | Path, tier: int = 1) -> Report:
    """Everything the page shows of the file at ``path``, with compliance graded at ``tier``.

    Raises :class:`~nbo_recorder.judge.reader.NotOmeTiffError` (a ValueError) when the file
    is not a readable OME-TIFF or OME-Zarr store.
    """
    check_tier(tier)
    recorded = read(path)
    ome = recorded.ome
    nbo = NboComponents(recorded.nbo)
    by_id: dict[str, Any] = {}
    for inst in ome.instruments:
        for group in (inst.objectives, inst.filters, inst.dichroics, inst.detectors,
                      inst.light_source_group, inst.filter_sets):
            by_id.update({item.id: item for item in group})
    channel_annotations = annotation_values(ome, NS_CHANNEL)
    channels: list[ChannelView] = []
    for i, image in enumerate(ome.images):
        for c, channel in enumerate(image.pixels.channels):
            observed: dict[str, str] = {}
            for ref in channel.annotation_refs:
                observed.update(channel_annotations.get(ref.id, {}))
            channels.append(ChannelPath(image, channel, observed, by_id, nbo).view(i, c))
    axis = axis_for(w for ch in channels for m in ch.marks
                    for w in (m.lo_nm, m.hi_nm) if w is not None)
    channels = [_placed(ch, axis) for ch in channels]
    methods = build_methods(ome, recorded.nbo)
    report = Report(
        file=str(recorded.path), name=recorded.path.name, creator=ome.creator,
        has_nbo=recorded.nbo is not None,
        images=tuple(f"{img.name or img.id}: {img.pixels.size_c} channels × "
                     f"{img.pixels.size_z} z × {img.pixels.size_t} t, "
                     f"{img.pixels.size_x}×{img.pixels.size_y} px" for img in ome.images),
        channels=tuple(channels), axis=(axis.lo_nm, axis.hi_nm), ticks=tuple(axis.ticks()),
        instrument=instrument_rows(ome, nbo), compliance=_compliance(recorded.path, tier),
        run=run_view(recorded), methods="\n\n".join(methods.paragraphs),
        methods_missing=tuple(methods.missing))
    report.missing.extend(_what_is_missing(report, bool(annotation_values(ome, NS_RUN))))
    return report


def _placed(channel: ChannelView, axis: Axis) -> ChannelView:
    """The channel with its marks placed on the shared axis."""
    placed: list[Mark] = []
    for mark in channel.marks:
        if mark.kind == "line" and mark.lo_nm is not None:
            placed.append(replace(mark, x=axis.x(mark.lo_nm),
                                  colour=wavelength_colour(mark.lo_nm)))
        elif mark.kind == "band" and (geometry := band(axis, mark.lo_nm, mark.hi_nm)):
            placed.append(replace(mark, x=geometry.x, width=geometry.width,
                                  open_left=geometry.open_left, open_right=geometry.open_right,
                                  colour=wavelength_colour(_middle(mark))))
        else:
            placed.append(mark)
    return replace(channel, marks=tuple(placed))


def _middle(mark: Mark) -> float | None:
    """The middle of a band (its one edge when open on a side)."""
    edges = [w for w in (mark.lo_nm, mark.hi_nm) if w is not None]
    return sum(edges) / len(edges) if edges else None


def _compliance(path: Path, tier: int) -> Compliance:
    """``validate``'s verdicts for every tier and extension, and its missing MUST rows at
    ``tier`` grouped by the component (or Image, channel, planes) they concern."""
    graded = validate_file(path, tier, EXTENSIONS)
    groups: dict[str, dict[tuple[Any, ...], list[AttributeRow]]] = {}
    for row in graded.failures:
        match = _COMPONENT.search(row.subject)
        component = match["id"] if match else _PLANE.sub("planes", row.subject) or row.element
        key = (row.tier, row.extension, row.element, row.attribute, row.status, row.reason)
        groups.setdefault(component, {}).setdefault(key, []).append(row)
    missing = tuple(
        MissingGroup(component, tuple(
            MissingRow(tier=rows[0].tier, extension=rows[0].extension, element=rows[0].element,
                       attribute=rows[0].attribute, path=_paths(r.path for r in rows),
                       status=rows[0].status, reason=rows[0].reason, count=len(rows))
            for rows in by_key.values()))
        for component, by_key in groups.items())
    return Compliance(tier=tier, tiers=TIERS, extensions=tuple(EXTENSIONS),
                      verdicts=graded.verdicts, passed=graded.passed, graded=graded.graded,
                      missing=missing, schema_errors=tuple(graded.schema_errors))


def _paths(paths: Iterable[str]) -> str:
    """The paths of alike rows: one, or their common form with plane indices as ``[*]``."""
    distinct = list(dict.fromkeys(paths))
    if len(distinct) == 1:
        return distinct[0]
    return "; ".join(dict.fromkeys(_PATH_INDEX.sub("Plane[*]", p) for p in distinct))


def _what_is_missing(report: Report, has_run: bool) -> list[str]:
    """What the page cannot show because the file does not hold it."""
    notes: list[str] = []
    if not report.has_nbo:
        notes.append("The file has no 4DN-BINA-OME (NBO) record: compliance is graded from its "
                     "OME part, and the specs' sources, pinholes and stages are not recorded.")
    if not has_run:
        notes.append("The file has no nbo-recorder acquisition record: the run's status, "
                     "frame counts, pauses and per-plane settings are not recorded.")
    if not report.instrument:
        notes.append("The file describes no instrument: no part of the light path is "
                     "recorded.")
    if not report.channels:
        notes.append("The file has no channels.")
    return notes
