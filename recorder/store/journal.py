"""Append-only journal of a run's documents, beside the OME-TIFF, for crash recovery.

One JSON document per line, written with a single unbuffered ``write`` each, so whatever
the process managed to hand to the operating system survives a ``kill -9``. Order matters:
a frame's line is written *before* its TIFF page, so every complete page on disk has its
metadata in the journal; :mod:`nbo_recorder.store.recovery` keeps the frames that have both.

Lines: ``{"start": ..., "run": ID}``, ``{"snapshot": ...}`` (before the first frame that
uses it), ``{"f": [FrameRecord fields in order]}``, ``{"stop": ...}``. ``ID`` names the run;
the TIFF's placeholder description carries the same one, so recovery can tell a journal that
belongs to another file. The journal is removed once the OME-XML has been written into the
file; a journal left beside a file means the run did not finish cleanly.

Reading checks every line against the documents' types (pydantic; a stretch of frame lines
at once with msgspec, which checks each value's type as it parses) and the order the writer
keeps (frame indices increasing, snapshots before their frames): a damaged or foreign line
is reported by its line number instead of being guessed at.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import MISSING, asdict, dataclass, fields
from functools import cache
from pathlib import Path
from types import GenericAlias
from typing import Any, get_type_hints

import msgspec
from pydantic import BaseModel, TypeAdapter, ValidationError

from nbo_recorder.capture.documents import (
    FrameRecord,
    RawValue,
    Run,
    RunStart,
    RunStop,
    StateSnapshot,
    frame_records,
)
from nbo_recorder.columns import exact_types
from nbo_recorder.vocabulary import Unknown

SUFFIX = ".nbo-journal"
_FRAME_FIELDS = tuple(f.name for f in fields(FrameRecord))
_FSYNC_INTERVAL_S = 2.0


def journal_path(tiff_path: Path) -> Path:
    """Where the journal of ``tiff_path`` lives."""
    return tiff_path.with_name(tiff_path.name + SUFFIX)


class JournalError(ValueError):
    """A journal that cannot be read; names the file and line."""


def _value(v: RawValue) -> Any:
    return {"unknown": v.reason} if isinstance(v, Unknown) else v


class JournalWriter:
    """Appends documents; fsyncs at most every couple of seconds (power-loss bound).

    :attr:`run_id` names the run (a new random id unless one is given); pass it to the
    :class:`~nbo_recorder.store.tiff_writer.TiffPageWriter` of the same run.
    """

    def __init__(self, path: Path, run_id: str | None = None) -> None:
        self.path = path
        self.run_id = run_id or uuid.uuid4().hex
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._written: set[int] = set()
        self._last_frame = -1
        self._size = 0
        self._last_sync = time.monotonic()

    def _line(self, doc: dict[str, Any]) -> None:
        """Append one line whole, or not at all.

        A full disk can accept part of a line (a short write) and then refuse the rest; the
        part is cut off again so that a journal whose run carries on after the error
        (``on_write_error="pause"``) holds no torn line in its middle.
        """
        data = (json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n").encode()
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass  # a torn last line is still readable: read_journal skips it
            raise
        self._size += len(data)

    def start(self, start: RunStart) -> None:
        self._line({"start": asdict(start), "run": self.run_id})
        os.fsync(self._fd)

    def frame(self, record: FrameRecord, snapshot: StateSnapshot) -> None:
        """Journal ``record`` (and its snapshot, the first time it is used).

        A frame already journaled is not journaled again: retrying a frame whose page could
        not be written must not duplicate its line.
        """
        if record.index <= self._last_frame:
            return
        if snapshot.uid not in self._written:
            self._line({"snapshot": {
                "uid": snapshot.uid, "elapsed_s": snapshot.elapsed_s,
                "trigger": snapshot.trigger,
                "values": [[d, p, _value(v)] for (d, p), v in snapshot.values.items()],
            }})
            self._written.add(snapshot.uid)
        # a positional list: this runs once per frame, and asdict() costs ~10x more
        self._line({"f": [getattr(record, name) for name in _FRAME_FIELDS]})
        self._last_frame = record.index

    def sync_if_due(self, *fds: int) -> None:
        """fsync the journal (and ``fds``) if the last sync is older than the interval."""
        now = time.monotonic()
        if now - self._last_sync >= _FSYNC_INTERVAL_S:
            for fd in (self._fd, *fds):
                os.fsync(fd)
            self._last_sync = now

    def stop(self, stop: RunStop) -> None:
        self._line({"stop": asdict(stop)})
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class _UnknownDoc(BaseModel):
    unknown: str


class _SnapshotDoc(BaseModel):
    """A snapshot line's shape (``values``: device, property, value or ``{"unknown": why}``)."""

    uid: int
    elapsed_s: float
    trigger: str
    values: list[tuple[str, str, str | _UnknownDoc]]


_START = TypeAdapter(RunStart)
_FRAME = TypeAdapter(FrameRecord)
_STOP = TypeAdapter(RunStop)
_REQUIRED_FRAME_FIELDS = sum(1 for f in fields(FrameRecord) if f.default is MISSING)


@dataclass
class Journal:
    """A journal as read: the run's documents and the id the writer gave the run.

    ``run_id`` is None in journals written before runs had one.
    """

    run: Run
    run_id: str | None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


#: per FrameRecord field, the JSON value types that are already what pydantic would return;
#: a field of another annotation takes none, so its lines go through pydantic
_FRAME_TYPES = exact_types(FrameRecord)


def _frame(doc: Any) -> FrameRecord:
    """A frame line's record. A line whose values are all of their field's own type (what
    :class:`JournalWriter` writes) is built directly, which is what pydantic would build;
    any other goes through pydantic, which converts it or says what is wrong. A journal
    has a line per frame, so this is most of the reading time of a long run."""
    if not isinstance(doc, list) or not _REQUIRED_FRAME_FIELDS <= len(doc) <= len(_FRAME_FIELDS):
        raise ValueError(f"a frame line holds a list of {_REQUIRED_FRAME_FIELDS} to "
                         f"{len(_FRAME_FIELDS)} values, not {json.dumps(doc)[:60]}")
    if all(type(value) in types for value, types in zip(doc, _FRAME_TYPES, strict=False)):
        return FrameRecord(*doc)
    return _FRAME.validate_python(dict(zip(_FRAME_FIELDS, doc, strict=False)))


def _document(doc: Any, run: Run | None) -> tuple[str, Any]:
    """The kind of journal line ``doc`` is and its document; ValueError if malformed."""
    if not isinstance(doc, dict):
        raise ValueError(f"not a journal document (a JSON object), but {json.dumps(doc)[:60]}")
    kinds = [k for k in ("start", "snapshot", "f", "stop") if k in doc]
    if len(kinds) != 1:
        raise ValueError(f"expected one of start/snapshot/f/stop, found keys {sorted(doc)}")
    kind, body = kinds[0], doc[kinds[0]]
    if kind == "start":
        if run is not None:
            raise ValueError("a second start document")
        if not isinstance(body, dict):
            raise ValueError("the start document is not an object")
        run_id = doc.get("run")
        if run_id is not None and not isinstance(run_id, str):
            raise ValueError("the run id is not a string")
        return kind, (_START.validate_python(body), run_id)
    if run is None:
        raise ValueError("the journal does not begin with a start document")
    if kind == "snapshot":
        s = _SnapshotDoc.model_validate(body)
        return kind, StateSnapshot(
            uid=s.uid, elapsed_s=s.elapsed_s, trigger=s.trigger,
            values={(d, p): v if isinstance(v, str) else Unknown(v.unknown)
                    for d, p, v in s.values})
    if kind == "f":
        record = _frame(body)
        if run.frames and record.index <= run.frames[-1].index:
            raise ValueError(f"frame {record.index} after frame {run.frames[-1].index}")
        if record.index < 0 or record.snapshot not in run.snapshots:
            raise ValueError(f"frame {record.index} (snapshot {record.snapshot}) has no "
                             "page index or snapshot before it")
        return kind, record
    return kind, _STOP.validate_python(body)


def load_journal(path: Path) -> Journal:
    """Read and check a journal; a torn last line (the one being written at a crash) is ignored.

    Raises :class:`JournalError` naming the file and line of anything else that is not what
    :class:`JournalWriter` writes. Each stretch of frame lines is first read at once
    (:func:`_frames_at_once`); a stretch with anything unusual in it is read line by line,
    which is what says what is wrong and where.
    """
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise JournalError(f"{path}: cannot read journal: {exc.strerror or exc}") from None
    reader = _Reader(path, len(lines))
    reader.read(lines)
    if reader.run is None:
        raise JournalError(f"{path}: empty journal (the run never started)")
    return Journal(reader.run, reader.run_id)


#: how every frame line :class:`JournalWriter` writes begins and ends, and where its list is
_FRAME_HEAD, _FRAME_TAIL = b'{"f":[', b"]}"
_FRAME_LIST = slice(len(_FRAME_HEAD) - 1, 1 - len(_FRAME_TAIL))
_INDEX, _SNAPSHOT = _FRAME_FIELDS.index("index"), _FRAME_FIELDS.index("snapshot")


def _is_frame_line(raw: bytes) -> bool:
    """True if ``raw`` is shaped like a frame line as the writer writes it (compact JSON)."""
    return raw.startswith(_FRAME_HEAD) and raw.endswith(_FRAME_TAIL)


def _frames_at_once(raws: list[bytes], run: Run) -> list[FrameRecord] | None:
    """The records of consecutive frame lines ``raws`` (each :func:`_is_frame_line`), parsed
    as one JSON array; None unless each line is a list of values of its field's own type
    that follows the frames before it as :func:`_document` requires.

    The lists are joined with a newline, which no JSON string may hold, so no value spans two
    lines; a line that is no single list of plain values would need a nested list, or would
    change the count, to parse here, and either sends the stretch back to the line-by-line
    reading. msgspec parses the array and checks each value's type in C (:func:`_rows`): a
    long run's journal is read so in a third of the time line by line takes.
    """
    try:
        fields_in_line = len(json.loads(raws[0])["f"])
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError):
        return None
    if not _REQUIRED_FRAME_FIELDS <= fields_in_line <= len(_FRAME_FIELDS):
        return None
    try:
        rows = _rows(fields_in_line).decode(
            b"[" + b",\n".join([raw[_FRAME_LIST] for raw in raws]) + b"]")
    except msgspec.DecodeError:  # not JSON, or a value not of its field's type
        return None
    if len(rows) != len(raws):
        return None
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True))
    indices, snapshots = columns[_INDEX], columns[_SNAPSHOT]
    after = run.frames[-1].index if run.frames else -1
    if (indices[0] <= after or indices[0] < 0 or len(set(indices)) != len(indices)
            or list(indices) != sorted(indices) or not set(snapshots) <= run.snapshots.keys()):
        return None
    return frame_records(columns)


@cache
def _rows(fields_in_line: int) -> msgspec.json.Decoder[Any]:
    """A decoder of a JSON array of frame lists of ``fields_in_line`` values each, every
    value of its :class:`FrameRecord` field's type. An integer is taken for a float (as
    pydantic converts it), nothing else is converted: a bool is not an int, nor 1.0 an int.
    """
    hints = get_type_hints(FrameRecord)
    row = GenericAlias(tuple, tuple(hints[name] for name in _FRAME_FIELDS[:fields_in_line]))
    return msgspec.json.Decoder(GenericAlias(list, row))


class _Reader:
    """The documents of a journal as its lines are read, in order."""

    def __init__(self, path: Path, lines: int) -> None:
        self.path, self.lines = path, lines
        self.run: Run | None = None
        self.run_id: str | None = None

    def read(self, lines: list[bytes]) -> None:
        """Read the journal's ``lines``: each stretch of frame lines at once if it can be, any
        other line (and the lines of a stretch that cannot) one by one."""
        frame_lines = [*map(_is_frame_line, lines), False]  # False ends the last stretch
        n = 0
        while n < len(lines):
            end = n if self.run is None else frame_lines.index(False, n)
            if end - n > 1 and self.frames_at_once(lines[n:end]):
                n = end
                continue
            for k in range(n, max(end, n + 1)):
                if not self.line(k + 1, lines[k]):
                    return
            n = max(end, n + 1)

    def frames_at_once(self, raws: list[bytes]) -> bool:
        """Add the frames of ``raws`` if :func:`_frames_at_once` reads them; False if not."""
        if self.run is None:
            return False
        records = _frames_at_once(raws, self.run)
        if records is None:
            return False
        self.run.frames.extend(records)
        return True

    def line(self, n: int, raw: bytes) -> bool:
        """Add the document of line ``n``; False at a torn last line (the reading ends)."""
        path = self.path
        if not raw.strip():
            return True
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if n >= self.lines - 1:  # the line being written when the process died
                return False
            raise JournalError(f"{path}:{n}: not a journal line (not JSON)") from None
        try:
            kind, value = _document(doc, self.run)
        except ValidationError as exc:
            raise JournalError(f"{path}:{n}: malformed {_kind(doc)} line: "
                               f"{_first_error(exc)}") from None
        except (ValueError, TypeError) as exc:
            raise JournalError(f"{path}:{n}: malformed {_kind(doc)} line: {exc}") from None
        run = self.run
        if kind == "start":
            self.run, self.run_id = Run(start=value[0]), value[1]
        elif run is not None and kind == "snapshot":
            run.snapshots[value.uid] = value
        elif run is not None and kind == "f":
            run.frames.append(value)
        elif run is not None:
            run.stop = value
        return True


def _kind(doc: Any) -> str:
    names = {"start": "start", "snapshot": "snapshot", "f": "frame", "stop": "stop"}
    if isinstance(doc, dict):
        return next((names[k] for k in names if k in doc), "journal")
    return "journal"


def recovered_status(previous: RunStop | None, given: str | None = None) -> str:
    """How a run finished by ``recover`` ended, as its status says: ``given`` if the user gave
    a reason, else the journal's own stop reason (or "interrupted" when the journal has none
    or says it completed), marked as recovered. Shared by the TIFF and the Zarr recovery."""
    if given:
        return given
    if previous is None or previous.reason == "completed":
        return "interrupted: recovered from the journal by nbo-recorder recover"
    return f"{previous.reason}; recovered from the journal"


def read_journal(path: Path) -> Run:
    """Rebuild the run's documents from a journal (see :func:`load_journal`)."""
    return load_journal(path).run
