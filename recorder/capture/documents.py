"""An acquisition as a stream of documents: start, state snapshots, frames, stop.

Following bluesky's event-model idea, what the recorder observed is kept as small immutable
documents rather than as a growing OME model. The OME/NBO metadata is *derived* from them
at the end (or, after a crash, from whatever documents made it to disk), so one code path
serves writing, recovery and re-export.

* :class:`RunStart` — once: profile, sequence, image geometry, software versions.
* :class:`StateSnapshot` — each time the observed device state changes: raw property values
  as the devices reported them, or :class:`~nbo_recorder.vocabulary.Unknown` with the reason a
  value could not be read.
* :class:`FrameRecord` — per frame: its indices, timing, position, and which snapshot was in
  force when it was taken. Cheap to create: it only points at a snapshot.
* :class:`RunStop` — once: how the run ended.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from itertools import repeat, zip_longest
from typing import Any

from nbo_recorder.vocabulary import Unknown

#: A raw device property value as reported (a string, as Micro-Manager reports them).
RawValue = str | Unknown
PropertyKey = tuple[str, str]

#: the pseudo device under which a snapshot says how its values are known
PROVENANCE = "nbo-recorder provenance"
#: its properties: the frame/time the values were read; what changed since (by an event, or
#: found by a re-read); changes left for the next frame (their events came after this frame's
#: exposure); silent values re-read by the verify policy; silent values assumed unchanged
PROVENANCE_KEYS = ("read", "events", "after_exposure", "verified", "assumed")


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """The observed values of every watched property at one moment."""

    uid: int
    values: Mapping[PropertyKey, RawValue]
    elapsed_s: float
    trigger: str


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One acquired frame. ``index`` is its page (IFD) number in the TIFF file.

    ``p``, ``t``, ``c``, ``z`` and ``g`` are the sequence's indices of the event (``g``: the
    grid position). ``width`` and ``height`` are the frame's own size in pixels, taken from
    the image array (binning and ROI included); 0 in journals written before they were
    recorded, where the run's first frame size stands for them. ``pixel_size_um`` is the
    pixel size in force for this frame (binning included; 0 when not known).
    """

    index: int
    p: int
    t: int
    c: int
    z: int
    channel: str | None
    elapsed_ms: float
    exposure_ms: float
    x_um: float | None
    y_um: float | None
    z_um: float | None
    pixel_size_um: float
    snapshot: int
    hardware_triggered: bool = False
    g: int = 0
    width: int = 0
    height: int = 0


def frame_records(columns: Sequence[Sequence[Any]]) -> list[FrameRecord]:
    """The FrameRecords whose field values are ``columns``: one sequence per field, in the
    fields' order, all of the same length; fields left out at the end take their defaults.
    Each record equals ``FrameRecord(*row)`` of its row, and the values are taken as they
    are (the caller has checked their types). ValueError for too few or too many columns.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, and a
    long run's journal has a record per frame: setting the fields a column at a time through
    their slots takes less than half that time. FrameRecord has no ``__post_init__`` to run.
    """
    required = sum(default is MISSING for _, default in _FRAME_SLOTS)
    if not required <= len(columns) <= len(_FRAME_SLOTS):
        raise ValueError(f"{len(columns)} columns for a FrameRecord, which has "
                         f"{len(_FRAME_SLOTS)} fields ({required} without a default)")
    records = list(map(FrameRecord.__new__, repeat(FrameRecord, len(columns[0]))))
    for (setter, default), column in zip_longest(_FRAME_SLOTS, columns):
        deque(map(setter, records, repeat(default) if column is None else column), maxlen=0)
    return records


#: each FrameRecord field's slot setter and default (MISSING where it has none)
_FRAME_SLOTS: tuple[tuple[Callable[[FrameRecord, Any], None], Any], ...] = tuple(
    (vars(FrameRecord)[f.name].__set__, f.default) for f in fields(FrameRecord))


@dataclass(frozen=True, slots=True)
class RunStart:
    """Everything fixed for the whole run.

    ``width``/``height``, ``z_step_um`` and ``time_interval_s`` are those of the run's first
    frame and outer sequence; the geometry of each Image comes from its own frames and the
    (sub-)sequence that produced them (:mod:`nbo_recorder.render.layout`).
    """

    started_at: str
    profile: Mapping[str, Any]
    sequence: Mapping[str, Any]
    width: int
    height: int
    dtype: str
    camera: str
    versions: Mapping[str, str]
    position_names: tuple[str | None, ...] = ()
    frames_expected: int | None = None
    z_step_um: float | None = None
    time_interval_s: float | None = None


@dataclass(frozen=True, slots=True)
class RunStop:
    """How the run ended."""

    stopped_at: str
    frames_written: int
    frames_expected: int | None
    reason: str
    errors: tuple[str, ...] = ()
    #: times the acquisition was held because a frame could not be written, and why
    pauses: tuple[str, ...] = ()


@dataclass
class Run:
    """The documents of one acquisition, in memory."""

    start: RunStart
    snapshots: dict[int, StateSnapshot] = field(default_factory=dict)
    frames: list[FrameRecord] = field(default_factory=list)
    stop: RunStop | None = None
