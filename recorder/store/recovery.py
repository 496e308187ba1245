"""Turn what a crash left (partial OME-TIFF + journal) into a valid, honest OME-TIFF.

The guarantee (see README): every frame whose TIFF page was completely handed to the
operating system is recovered with the metadata observed up to that frame. Pixel data are
not rewritten: recovery ends the page chain after the last intact page, drops a torn
trailing page, and writes OME-XML that describes exactly the frames present, with the run
marked incomplete.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nbo_recorder.capture.documents import RunStop
from nbo_recorder.profile.load import parse_profile
from nbo_recorder.render.ome import build_ome_xml
from nbo_recorder.store.journal import journal_path, read_journal
from nbo_recorder.store.tiff_pages import end_chain_after, intact_pages
from nbo_recorder.store.tiff_writer import write_description


class RecoveryError(RuntimeError):
    """Nothing recoverable, or the inputs are not what a crashed recording leaves."""


@dataclass(frozen=True)
class RecoveryReport:
    path: Path
    frames_recovered: int
    frames_journaled: int
    intact_pages: int
    frames_expected: int | None


def recover(
    partial: Path, out: Path | None = None, *, reason: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RecoveryReport:
    """Make ``partial`` (in place, or a copy at ``out``) a valid OME-TIFF of its intact frames.

    ``progress(done, total)`` is called as the file's pages are checked: ``total`` is the
    number of frames the journal holds (or the pages found so far, if more) while the pages
    are walked, and the last call, once the file is finished, has ``done == total`` = the
    intact pages found.
    """
    partial = Path(partial)
    jpath = journal_path(partial)
    if not partial.is_file():
        raise RecoveryError(f"{partial}: no such file")
    if not jpath.is_file():
        raise RecoveryError(
            f"{partial}: no journal ({jpath.name}) beside it; either the recording finished "
            "cleanly (nothing to recover) or it was not written by nbo-recorder"
        )
    run = read_journal(jpath)
    journaled = len(run.frames)
    on_page = None if progress is None else (lambda n: progress(n, max(journaled, n)))
    pages = intact_pages(partial, on_page)
    frames = [f for f in run.frames if f.index < len(pages)]
    if not frames:
        raise RecoveryError(f"{partial}: no frame was completely written before the crash")
    keep = max(f.index for f in frames) + 1
    target = partial if out is None else Path(out)
    if out is not None:
        if target.exists():
            raise RecoveryError(f"{target} exists; choose another --out")
        shutil.copyfile(partial, target)
    end_chain_after(target, pages, keep)
    if run.stop is None:
        # died while acquiring: anything after the last intact page is a torn page
        os.truncate(target, pages[keep - 1].data_end)
    previous = run.stop
    if previous is None or previous.reason == "completed":
        ended = "interrupted: recovered from the journal by nbo-recorder recover"
    else:
        ended = f"{previous.reason}; recovered from the journal"
    run.frames = frames
    run.stop = RunStop(
        stopped_at=previous.stopped_at if previous else "unknown (the process died)",
        frames_written=len(frames),
        frames_expected=run.start.frames_expected,
        reason=reason or ended,
        errors=previous.errors if previous else (),
        pauses=previous.pauses if previous else (),
    )
    profile = parse_profile(dict(run.start.profile), f"{jpath} (profile)")
    software = f"nbo-recorder {run.start.versions.get('nbo-recorder', '?')}"
    write_description(target, build_ome_xml(run, profile, software))
    if out is None:
        jpath.unlink()
    if progress is not None:
        progress(len(pages), len(pages))
    return RecoveryReport(target, len(frames), journaled, len(pages), run.start.frames_expected)
