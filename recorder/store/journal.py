"""Append-only journal of a run's documents, beside the OME-TIFF, for crash recovery.

One JSON document per line, written with a single unbuffered ``write`` each, so whatever
the process managed to hand to the operating system survives a ``kill -9``. Order matters:
a frame's line is written *before* its TIFF page, so every complete page on disk has its
metadata in the journal; :mod:`nbo_recorder.store.recovery` keeps the frames that have both.

Lines: ``{"start": ...}``, ``{"snapshot": ...}`` (before the first frame that uses it),
``{"f": [FrameRecord fields in order]}``, ``{"stop": ...}``. The journal is removed once the
OME-XML has been written into the file; a journal left beside a file means the run did not
finish cleanly.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from nbo_recorder.capture.documents import (
    FrameRecord,
    RawValue,
    Run,
    RunStart,
    RunStop,
    StateSnapshot,
)
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


def _unvalue(v: Any) -> RawValue:
    return Unknown(str(v["unknown"])) if isinstance(v, dict) else str(v)


class JournalWriter:
    """Appends documents; fsyncs at most every couple of seconds (power-loss bound)."""

    def __init__(self, path: Path) -> None:
        self.path = path
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
        self._line({"start": asdict(start)})
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


def read_journal(path: Path) -> Run:
    """Rebuild the run's documents from a journal; a torn last line is ignored."""
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise JournalError(f"{path}: cannot read journal: {exc.strerror or exc}") from None
    run: Run | None = None
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError:
            if n >= len(lines) - 1:  # the line being written when the process died
                break
            raise JournalError(f"{path}:{n}: not a journal line") from None
        if "start" in doc:
            s = doc["start"]
            s["position_names"] = tuple(s.get("position_names", ()))
            run = Run(start=RunStart(**s))
        elif run is None:
            raise JournalError(f"{path}:{n}: journal does not begin with a start document")
        elif "snapshot" in doc:
            s = doc["snapshot"]
            run.snapshots[s["uid"]] = StateSnapshot(
                uid=s["uid"], elapsed_s=s["elapsed_s"], trigger=s["trigger"],
                values={(d, p): _unvalue(v) for d, p, v in s["values"]},
            )
        elif "f" in doc:
            run.frames.append(FrameRecord(*doc["f"]))
        elif "stop" in doc:
            s = doc["stop"]
            s["errors"] = tuple(s.get("errors", ()))
            s["pauses"] = tuple(s.get("pauses", ()))
            run.stop = RunStop(**s)
    if run is None:
        raise JournalError(f"{path}: empty journal (the run never started)")
    return run
