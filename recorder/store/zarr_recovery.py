"""Finish an OME-Zarr store whose run did not finish, from the journal beside it.

Chunks are written whole (a temporary file renamed into place), so every chunk file in the
store is a complete frame. The journal says which frame each line is and, placed exactly as
the writer placed them (:func:`~nbo_recorder.store.zarr_layout.place_run`), where its chunk
is; the frames whose chunk is there are the ones recovered, and the store is finished with
metadata describing exactly them (:func:`~nbo_recorder.store.zarr_writer.finish_store`),
its acquisition status incomplete. :func:`nbo_recorder.store.recovery.recover` calls this for
a ``*.zarr`` path and reports in its own terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nbo_recorder.capture.documents import RunStop
from nbo_recorder.profile.load import parse_profile
from nbo_recorder.store.journal import (
    JournalError,
    journal_path,
    load_journal,
    recovered_status,
)
from nbo_recorder.store.zarr_layout import ATTRIBUTE_KEY, LEVEL, place_run, stream_name
from nbo_recorder.store.zarr_writer import finish_store, read_attributes


class StoreRecoveryError(ValueError):
    """The store cannot be recovered; the message says why (nothing was changed)."""


@dataclass(frozen=True)
class StoreRecovery:
    """What recovery kept: frames with their chunk, frames journaled, and those never written."""

    frames_recovered: int
    frames_journaled: int
    frames_expected: int | None
    unwritten_frames: tuple[int, ...]


def recover_store(path: Path, *, reason: str | None = None,
                  dry_run: bool = False) -> StoreRecovery:
    """Finish the store at ``path`` from its journal (see the module docstring)."""
    jpath = journal_path(path)
    if not path.is_dir() or not (path / "zarr.json").is_file():
        raise StoreRecoveryError(f"{path}: no such OME-Zarr store")
    if not jpath.is_file():
        raise StoreRecoveryError(
            f"{path}: no journal ({jpath.name}) beside it; either the recording finished "
            "cleanly (nothing to recover) or it was not written by nbo-recorder")
    try:
        journal = load_journal(jpath)
    except JournalError as exc:
        raise StoreRecoveryError(f"{exc}; nothing was changed") from None
    ours = read_attributes(path).get(ATTRIBUTE_KEY, {})
    store_id = ours.get("run") if isinstance(ours, dict) else None
    if journal.run_id is not None and store_id is not None and journal.run_id != store_id:
        raise StoreRecoveryError(
            f"{jpath.name} is the journal of run {journal.run_id}, but {path} was written by "
            f"run {store_id}: not recovering with another run's journal; nothing was changed")
    run = journal.run
    placements = place_run(run)
    kept = []
    for frame in run.frames:
        at = placements[frame.index]
        chunk = path / stream_name(at.stream) / LEVEL / "c" / str(at.t) / str(at.c) / str(at.z)
        if (chunk / "0" / "0").is_file():
            kept.append(frame)
    unwritten = tuple(f.index for f in run.frames if f not in kept)
    journaled = len(run.frames)
    if not kept:
        raise StoreRecoveryError(f"{path}: no frame was completely written before the crash")
    result = StoreRecovery(len(kept), journaled, run.start.frames_expected, unwritten)
    if dry_run:
        return result
    previous = run.stop
    ended = recovered_status(previous, reason)
    if unwritten:
        ended += f"; {len(unwritten)} journaled frames never reached the store"
    run.frames = kept
    run.stop = RunStop(
        stopped_at=previous.stopped_at if previous else "unknown (the process died)",
        frames_written=len(kept), frames_expected=run.start.frames_expected, reason=ended,
        errors=previous.errors if previous else (), pauses=previous.pauses if previous else ())
    profile = parse_profile(dict(run.start.profile), f"{jpath} (profile)")
    software = f"nbo-recorder {run.start.versions.get('nbo-recorder', '?')}"
    finish_store(path, run, profile, software, {f.index: placements[f.index] for f in kept},
                 journal.run_id)
    jpath.unlink()
    return result
