"""How the run went, as the report shows it: status, frames, pauses and changed settings.

The recorder writes the run's summary in the ``urn:nbo-recorder:acquisition`` annotation
(``status``, ``frames expected``/``written``, ``pause N``, ``error N``, ``cut N``; a file
finished by ``nbo-recorder recover`` says so in its status) and, per plane, the settings in
force (:func:`nbo_recorder.judge.reader.plane_settings`). The timeline lists, per channel,
each setting whose value differed between that channel's planes, plane by plane in the
order they were taken; what differs only between channels is the channels' design, not a
change, and is left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from nbo_recorder.judge.reader import RecordedFile, annotation_values
from nbo_recorder.report.instrument import enum_text
from nbo_recorder.report.views import RunView, Segment, Track
from nbo_recorder.store.formats import is_zarr_path
from nbo_recorder.vocabulary import NS_RUN, unknown_reason

#: SVG units the timeline spans
TIMELINE_WIDTH = 600.0
#: annotation keys of the run summary shown as facts, in this order
_FACTS = ("started", "stopped", "frames expected", "frames written", "state snapshots",
          "software")
#: run summary keys (before their number) listed as events
_EVENTS = ("pause", "error", "cut")


def run_view(recorded: RecordedFile) -> RunView:
    """The run's status, frame counts, events and the settings that changed."""
    summaries = list(annotation_values(recorded.ome, NS_RUN).values())
    summary = summaries[0] if summaries else {}
    status = summary.get("status")
    facts = [(key, summary[key]) for key in _FACTS if key in summary]
    facts.append(("planes described", str(len(recorded.planes))))
    if not is_zarr_path(recorded.path):
        facts.append(("pages in the file", str(recorded.pages)))
    events = [(key, value) for key, value in summary.items()
              if key.split(" ", 1)[0] in _EVENTS]
    expected, written = summary.get("frames expected"), summary.get("frames written")
    if expected and written and expected.isdigit() and written.isdigit() \
            and int(written) < int(expected):
        events.append(("dropped or not taken", f"{int(expected) - int(written)} of {expected} "
                                               "expected frames are not in the file"))
    if not is_zarr_path(recorded.path):
        blind = [p for p in recorded.planes if p.ifd < 0]
        if blind:
            events.append(("planes without pixels", f"{len(blind)} planes have no TIFF page"))
        described = {p.ifd for p in recorded.planes if p.ifd >= 0}
        if recorded.pages > len(described):
            events.append(("pages without a plane", f"{recorded.pages - len(described)} pages "
                                                    "are kept without plane metadata"))
    return RunView(status, status == "complete", tuple(facts), tuple(events),
                   tuple(_tracks(recorded)), TIMELINE_WIDTH)


def _tracks(recorded: RecordedFile) -> list[Track]:
    """Per image and channel, each setting that took more than one value over its planes."""
    tracks: list[Track] = []
    views = list(recorded.planes)
    start = 0
    for i, image in enumerate(recorded.ome.images):
        planes = image.pixels.planes
        mine = views[start:start + len(planes)]
        start += len(planes)
        if not planes:
            continue
        timed = all(p.delta_t is not None for p in planes)
        order = sorted(range(len(planes)),
                       key=lambda k: (planes[k].delta_t or 0.0, k) if timed else (0.0, k))
        slot = TIMELINE_WIDTH / len(planes)
        position = {k: n for n, k in enumerate(order)}
        for c, channel in enumerate(image.pixels.channels):
            in_channel = [k for k in order if planes[k].the_c == c]
            rows = []
            for k in in_channel:
                plane = planes[k]
                row = {key: value for key, value in mine[k].annotated.items()
                       if not key.startswith("provenance.")}
                if plane.exposure_time is not None:
                    row["exposure"] = (f"{plane.exposure_time:g} "
                                       f"{enum_text(plane.exposure_time_unit)}")
                rows.append(row)
            keys = sorted({key for row in rows for key in row})
            values = {key: [row.get(key, "—") for row in rows] for key in keys}
            for setting, seen in sorted(values.items()):
                if len(set(seen)) < 2:
                    continue
                tracks.append(_track(i, channel.name or channel.id, setting, seen, in_channel,
                                     position, slot, planes, timed))
    return tracks


def _track(image: int, channel: str, setting: str, seen: Sequence[str], planes_of: list[int],
           position: dict[int, int], slot: float, planes: Sequence[object],
           timed: bool) -> Track:
    """One setting's values over a channel's planes, runs of one value merged."""
    distinct = list(dict.fromkeys(seen))
    segments: list[Segment] = []
    n = 0
    while n < len(seen):
        m = n
        while m + 1 < len(seen) and seen[m + 1] == seen[n]:
            m += 1
        first, last = planes_of[n], planes_of[m]
        x = position[first] * slot
        width = (position[last] + 1) * slot - x
        delta = getattr(planes[first], "delta_t", None) if timed else None
        segments.append(Segment(round(x, 2), round(max(width, 1.0), 2), seen[n],
                                distinct.index(seen[n]) % 6,
                                unknown_reason(seen[n]) is not None, first, last,
                                None if delta is None else float(delta)))
        n = m + 1
    shown = ["unknown" if unknown_reason(v) is not None else v for v in seen]
    changes = [v for n, v in enumerate(shown) if n == 0 or v != shown[n - 1]]
    return Track(image, channel, setting, tuple(segments), tuple(changes))
