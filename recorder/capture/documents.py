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

import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, overload

from nbo_recorder.columns import from_columns
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

    Made a column at a time (:func:`~nbo_recorder.columns.from_columns`): a long run's
    journal has a record per frame.
    """
    return from_columns(FrameRecord, columns)


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
    #: a list, or (as an acquisition keeps them) a :class:`FrameTable`
    frames: list[FrameRecord] | FrameTable = field(default_factory=list)
    stop: RunStop | None = None


class FrameTable(Sequence[FrameRecord]):
    """FrameRecords kept as packed rows of machine numbers, compressed: about 18 bytes a
    frame.

    An acquisition keeps every frame's record until it writes the OME-XML at the end. As
    FrameRecords, with the int and float objects they point at, they took about 230 to 330
    bytes a frame: 28 MiB over 100,000 frames, over a gigabyte in a week at 10 frames a
    second. Here a record is one row of 93 bytes (:mod:`struct`), its channel an index into
    the names seen, and it is made again when asked for, equal to the one appended. A record
    whose values a row cannot hold as they are (a number of another type or range, or a NaN
    where a row keeps None as NaN) is kept whole. Every :data:`_CHUNK_ROWS` rows are
    compressed (zlib's fastest level, about 2 ms, with the GIL released; a long run's rows
    differ little: a fifth of their size).

    Only one thread appends. The rows are one state, replaced in one step when a chunk is
    compressed, and a row is appended in one step, so a thread that reads while frames are
    appended sees only whole records.
    """

    def __init__(self, records: Iterable[FrameRecord] = ()) -> None:
        #: the compressed chunks and the rows after them
        self._state: tuple[tuple[bytes, ...], bytearray] = ((), bytearray())
        #: the last chunk decompressed, by its number
        self._chunk: tuple[int, bytes] = (-1, b"")
        self._names: list[str | None] = []
        self._name_at: dict[str | None, int] = {}
        self._whole: dict[int, FrameRecord] = {}  # by position: records kept as they are
        self.extend(records)

    def append(self, record: FrameRecord) -> None:
        """Keep ``record`` after the others."""
        (index, p, t, c, z, channel, elapsed, exposure, x, y, z_um, pixel, snapshot,
         triggered, g, width, height) = values = _VALUES(record)
        row = None
        if tuple(map(type, values)) in _PACKABLE and x == x and y == y and z_um == z_um:
            at = self._name_at.get(channel)  # a str or None, as the types were checked
            if at is None:
                at = self._name_at[channel] = len(self._names)
                self._names.append(channel)
            try:
                row = _ROW.pack(index, p, t, c, z, snapshot, g, width, height, elapsed,
                                exposure, pixel, _NAN if x is None else x,
                                _NAN if y is None else y, _NAN if z_um is None else z_um,
                                at, triggered)
            except struct.error:  # a number out of the row's range
                row = None
        chunks, rows = self._state
        if row is None:
            self._whole[len(self)] = record
            row = _EMPTY_ROW
        rows += row
        if len(rows) == _CHUNK_ROWS * _ROW.size:
            self._state = ((*chunks, zlib.compress(rows, 1)), bytearray())

    def extend(self, records: Iterable[FrameRecord]) -> None:
        for record in records:
            self.append(record)

    def __len__(self) -> int:
        return _count(*self._state)

    @overload
    def __getitem__(self, at: int) -> FrameRecord: ...
    @overload
    def __getitem__(self, at: slice) -> list[FrameRecord]: ...
    def __getitem__(self, at: int | slice) -> FrameRecord | list[FrameRecord]:
        if isinstance(at, slice):
            return [self[k] for k in range(*at.indices(len(self)))]
        chunks, rows = self._state  # one state: the count and the rows read agree
        count = _count(chunks, rows)
        k = at + count if at < 0 else at
        if not 0 <= k < count:
            raise IndexError(f"frame {at} of {count}")
        whole = self._whole.get(k)
        if whole is not None:
            return whole
        number, k_in = divmod(k, _CHUNK_ROWS)
        if number < len(chunks):
            cached, data = self._chunk
            if cached != number:
                data = zlib.decompress(chunks[number])
                self._chunk = (number, data)
            row = _ROW.unpack_from(data, k_in * _ROW.size)
        else:
            row = _ROW.unpack_from(rows, k_in * _ROW.size)
        (index, p, t, c, z, snapshot, g, width, height, elapsed, exposure, pixel, x, y, z_um,
         channel, triggered) = row
        return FrameRecord(index, p, t, c, z, self._names[channel], elapsed, exposure,
                           _none_if_nan(x), _none_if_nan(y), _none_if_nan(z_um), pixel,
                           snapshot, bool(triggered), g, width, height)

    def __iter__(self) -> Iterator[FrameRecord]:
        """The records in order, made a column at a time (:func:`frame_records`)."""
        chunks, open_rows = self._state
        # a copy of the rows: appends may go on meanwhile
        rows = b"".join([*map(zlib.decompress, chunks),
                         open_rows[:len(open_rows) // _ROW.size * _ROW.size]])
        if not rows:
            return iter(())
        (index, p, t, c, z, snapshot, g, width, height, elapsed, exposure, pixel, x, y, z_um,
         channel, triggered) = zip(*_ROW.iter_unpack(rows), strict=True)
        names = self._names
        records = frame_records([
            index, p, t, c, z, [names[k] for k in channel], elapsed, exposure,
            *([None if v != v else v for v in column] for column in (x, y, z_um)), pixel,
            snapshot, [bool(v) for v in triggered], g, width, height])
        # a copy (one step): the appending thread may add to it while this loop runs
        for k, whole in self._whole.copy().items():
            if k < len(records):
                records[k] = whole
        return iter(records)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FrameTable({len(self)} frames)"


#: a FrameTable row: index; p, t, c, z, snapshot, g, width, height; elapsed_ms,
#: exposure_ms, pixel_size_um, x_um, y_um, z_um (None as NaN); channel; hardware_triggered
_ROW = struct.Struct("<q8i6dib")
#: rows compressed together (380 KB of rows)
_CHUNK_ROWS = 4096
_EMPTY_ROW = bytes(_ROW.size)


def _count(chunks: tuple[bytes, ...], rows: bytearray) -> int:
    """How many whole records a FrameTable state holds."""
    return len(chunks) * _CHUNK_ROWS + len(rows) // _ROW.size

_NAN = float("nan")
#: a FrameRecord's values in field order, in one call
_VALUES = attrgetter(*(f.name for f in fields(FrameRecord)))
#: the types of the values a row holds as they are, in field order
_PACKABLE = frozenset(
    (int, int, int, int, int, channel, float, float, x, y, z, float, int, bool, int, int, int)
    for channel in (str, type(None)) for x in (float, type(None)) for y in (float, type(None))
    for z in (float, type(None)))


def _none_if_nan(value: float) -> float | None:
    return None if value != value else value
