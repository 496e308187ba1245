"""Turn what a crash left (partial OME-TIFF + journal) into a valid, honest OME-TIFF.

The guarantee (see README): every frame whose TIFF page was completely handed to the
operating system is recovered with the metadata observed up to that frame, and recovery
never loses a page it cannot account for. Before anything is written it checks:

* that the journal is this file's: the run id in the placeholder description (when both
  carry one), and the first page's shape, dtype and bytes against the journal's first frame;
  otherwise it refuses, changing nothing;
* every intact page with tifffile. A page tifffile cannot read is unlinked from the page
  chain (its bytes stay in the file); a readable page the journal has no line for (a journal
  cut short), or whose IFD disagrees with its line, is kept as it is, without plane metadata,
  and the file's acquisition status says so: its pixels stay readable as a TIFF page.
  tifffile reads one page of each distinct IFD
  (:func:`~nbo_recorder.store.tiff_pages.read_page_geometry`).

Pixel data are never rewritten and nothing is truncated: the new OME-XML is appended and
switched in by :func:`~nbo_recorder.store.tiff_writer.finish_description`, which undoes its
own steps when one fails and verifies the result by reading it back with tifffile. In place,
a failure (a full disk) leaves the file as it was; with ``out`` the copy is made under a
temporary name and only renamed to ``out`` once it is finished and verified.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tifffile

from nbo_recorder.capture.documents import FrameRecord, Run, RunStop
from nbo_recorder.collector import collector_paused
from nbo_recorder.profile.load import parse_profile
from nbo_recorder.render.ome import build_ome
from nbo_recorder.store.formats import is_zarr_path
from nbo_recorder.store.journal import (
    JournalError,
    journal_path,
    load_journal,
    recovered_status,
)
from nbo_recorder.store.tiff_pages import (
    PageExtent,
    PageGeometry,
    Patch,
    TiffStructureError,
    first_description,
    intact_pages,
    next_pointer_patch,
    read_page_geometry,
)
from nbo_recorder.store.tiff_writer import (
    WriterError,
    finish_description,
    free_bytes,
    placeholder_run_id,
)

if TYPE_CHECKING:
    from ome_types.model import OME


class RecoveryError(RuntimeError):
    """Nothing recoverable, or the inputs are not what a crashed recording leaves."""


@dataclass(frozen=True)
class RecoveryReport:
    """What recovery did (or, with ``dry_run``, would do) to a file.

    ``dropped_pages`` says which intact-looking pages were unlinked and why;
    ``undescribed_pages`` are the (new) page indices kept without plane metadata, ``notes``
    why a journaled page among them was not described;
    ``unwritten_frames`` the journaled frames whose page never reached the file;
    ``bytes_needed`` what the new OME-XML adds to the file;
    ``outline``, once the file is finished and read back, its page count and the OME model
    its description was written from, as :func:`~nbo_recorder.judge.reader.read_outline`
    reads it (None for a dry run and an OME-Zarr store).
    """

    path: Path
    frames_recovered: int
    frames_journaled: int
    intact_pages: int
    frames_expected: int | None
    dropped_pages: tuple[str, ...] = ()
    undescribed_pages: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()
    unwritten_frames: tuple[int, ...] = ()
    bytes_needed: int = 0
    dry_run: bool = False
    outline: tuple[int, OME] | None = field(default=None, repr=False, compare=False)

    def lines(self) -> list[str]:
        """The report as sentences for a person, one per line."""
        verb = "would keep" if self.dry_run else "kept"
        out = [f"{self.path}: {verb} {self.frames_recovered} frames with their metadata "
               f"({self.frames_journaled} journaled, {self.intact_pages} intact pages, "
               f"{self.frames_expected if self.frames_expected is not None else 'unknown'} "
               "planned)"]
        if self.undescribed_pages:
            out.append(f"{verb} {len(self.undescribed_pages)} pages without plane metadata "
                       f"(IFD {_ranges(self.undescribed_pages)}): the journal does not describe "
                       "them")
        out += list(self.notes)
        out += [f"{'would drop' if self.dry_run else 'dropped'} {d}" for d in self.dropped_pages]
        if self.unwritten_frames:
            out.append(f"{len(self.unwritten_frames)} journaled frames never reached the file "
                       f"(frames {_ranges(self.unwritten_frames)})")
        if self.dry_run:
            out.append(f"the OME-XML would add {self.bytes_needed} bytes; nothing was changed")
        return out


@dataclass
class _Plan:
    """Which pages stay, how the chain is mended, and the frames that describe them."""

    keep: list[int]
    relink: list[Patch]
    frames: list[FrameRecord]
    dropped: list[str] = field(default_factory=list)
    undescribed: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the (new) page indices whose next-IFD pointer ``relink`` changes
    seams: list[int] = field(default_factory=list)


def _ranges(indices: tuple[int, ...]) -> str:
    """``0-3, 7`` for (0, 1, 2, 3, 7)."""
    parts: list[str] = []
    start = prev = indices[0]
    for i in (*indices[1:], None):
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)


def _expected(run: Run, frame: FrameRecord) -> tuple[tuple[int, int], str, int]:
    """The shape, dtype and bytes of ``frame``'s page as its journal line describes it."""
    h, w = frame.height or run.start.height, frame.width or run.start.width
    dtype = np.dtype(run.start.dtype)
    return (h, w), dtype.name, h * w * dtype.itemsize


def _fits(run: Run, frame: FrameRecord, geometry: PageGeometry) -> bool:
    shape, dtype, nbytes = _expected(run, frame)
    return (geometry.shape == shape and np.dtype(geometry.dtype).name == dtype
            and geometry.nbytes == nbytes)


def _check_identity(partial: Path, jpath: Path, run: Run, run_id: str | None,
                    geometries: list[PageGeometry | str]) -> None:
    """Refuse a journal that belongs to another file: a different run id or first page."""
    try:
        entry = first_description(partial)
    except TiffStructureError as exc:
        raise RecoveryError(f"{exc}; recover cannot write the OME-XML into it") from None
    file_id = placeholder_run_id(entry.value) if entry.value is not None else None
    if run_id is not None and file_id is not None and run_id != file_id:
        raise RecoveryError(f"{jpath.name} is the journal of run {run_id}, but {partial} was "
                            f"written by run {file_id}: not recovering with another run's "
                            "journal; nothing was changed")
    first = geometries[0]
    if isinstance(first, str):
        raise RecoveryError(f"{partial}: page 0 cannot be read: {first}; recover needs it "
                            "for the OME-XML; nothing was changed")
    if not run.frames or run.frames[0].index != 0:
        return
    if not _fits(run, run.frames[0], first):
        (h, w), dtype, nbytes = _expected(run, run.frames[0])
        raise RecoveryError(
            f"{jpath.name} does not belong to {partial}: the journal's frame 0 is {w}x{h} "
            f"{dtype} ({nbytes} bytes per page), the file's page 0 is "
            f"{'x'.join(map(str, first.shape[::-1]))} {np.dtype(first.dtype).name} "
            f"({first.nbytes} bytes); nothing was changed")


def _plan(partial: Path, run: Run, pages: list[PageExtent],
          geometries: list[PageGeometry | str]) -> _Plan:
    by_index = {f.index: f for f in run.frames}
    keep: list[int] = []
    plan = _Plan(keep=keep, relink=[], frames=[])
    # alike pages share one geometry object (read_page_geometry): each pairing is
    # judged once
    fits: dict[tuple[int, int, int], bool] = {}
    for k, (geometry, frame) in enumerate(zip(geometries, map(by_index.get, range(len(pages))),
                                              strict=True)):
        if isinstance(geometry, str):
            plan.dropped.append(f"page {k}{' and its frame' if frame else ''}: {geometry}")
            continue
        new = len(keep)
        keep.append(k)
        if frame is None:
            plan.undescribed.append(new)
            continue
        pairing = (frame.height, frame.width, id(geometry))
        fit = fits.get(pairing)
        if fit is None:
            fit = fits[pairing] = _fits(run, frame, geometry)
        if fit:
            plan.frames.append(frame if frame.index == new else replace(frame, index=new))
        else:
            (h, w), dtype, _ = _expected(run, frame)
            plan.undescribed.append(new)
            plan.notes.append(f"page {k}'s IFD says {geometry.shape} {geometry.dtype}, its "
                              f"journal line {w}x{h} {dtype}")
    kept = [pages[k] for k in keep]
    targets = [page.ifd_offset for page in kept[1:]] + [0]
    for new, (page, target) in enumerate(zip(kept, targets, strict=True)):
        if page.next_ifd != target:
            plan.relink.append(next_pointer_patch(partial, page, target))
            plan.seams.append(new)
    return plan


def _reason(run: Run, plan: _Plan, given: str | None) -> str:
    """The acquisition status recovery writes: how the run ended and what recovery changed."""
    ended = recovered_status(run.stop, given)
    if plan.undescribed:
        ended += (f"; {len(plan.undescribed)} intact pages (IFD "
                  f"{_ranges(tuple(plan.undescribed))}) have no usable journal line and are "
                  "kept in the file without plane metadata")
    if plan.dropped:
        ended += f"; {len(plan.dropped)} unreadable pages unlinked"
    return ended


def _verifier(run: Run, plan: _Plan, pages: list[PageExtent],
              xml: str) -> Callable[[Path], None]:
    """A check that tifffile, an independent reader, reads the finished file as recovery
    planned it, in one opening: as an OME-TIFF whose description is ``xml``, its page chain,
    and pixels.

    The chain is checked where recovery changed it: tifffile must find as many pages as were
    kept, and the first and last page and the pages on both sides of each mended link at
    the IFDs planned for them, with the shape their journal lines give. The links between
    are the file's own (unchanged), each from a page to the next intact one, so this places
    every page; each page's geometry was read with tifffile before anything was written.

    tifffile's OME series is not built here: for 100,000 planes that parses the whole
    OME-XML and makes an object per page, seconds for nothing these checks miss. The
    description tifffile reads back is the XML recovery wrote (tifffile strips surrounding
    whitespace, as any reader of it does), and that XML's TiffData map is the layout's own:
    :func:`~nbo_recorder.render.ome.build_ome_xml` numbers the planes by the kept pages,
    which are the pages this check places. Reading recovered files as OME series, with
    tifffile and Bio-Formats, is what the tests do.
    """
    kept = len(plan.keep)
    by_index = {f.index: f for f in run.frames}
    checks = sorted({0, kept - 1, *plan.seams, *(i + 1 for i in plan.seams if i + 1 < kept)})

    def verify(path: Path) -> None:
        try:
            with tifffile.TiffFile(path) as tf:
                if not tf.is_ome:
                    raise RecoveryError("tifffile does not read it as an OME-TIFF")
                if tf.pages.first.description != xml.strip():
                    raise RecoveryError("the description tifffile reads is not the OME-XML "
                                        "written")
                if len(tf.pages) != kept:
                    raise RecoveryError(f"tifffile finds {len(tf.pages)} pages, not {kept}")
                for k in checks:
                    page = tf.pages[k]
                    if page.offset != pages[plan.keep[k]].ifd_offset:
                        raise RecoveryError(f"tifffile finds page {k} at byte {page.offset}, "
                                            f"not {pages[plan.keep[k]].ifd_offset}")
                    frame = by_index.get(k)
                    if frame is not None and page.shape != _expected(run, frame)[0]:
                        raise RecoveryError(f"tifffile reads page {k} as {page.shape}")
                for k in {0, kept - 1}:
                    tf.pages[k].asarray()
        except RecoveryError as exc:
            raise RecoveryError(f"{path}: the recovered file does not read back ({exc})") from None
        except Exception as exc:
            raise RecoveryError(f"{path}: the recovered file does not read back "
                                f"({type(exc).__name__}: {exc})") from exc
    return verify


@collector_paused()
def recover(
    partial: Path, out: Path | None = None, *, reason: str | None = None,
    progress: Callable[[int, int], None] | None = None, dry_run: bool = False,
) -> RecoveryReport:
    """Make ``partial`` (in place, or a copy at ``out``) a valid OME-TIFF of its intact frames.

    ``progress(done, total)`` is called as the file's pages are checked (every
    :data:`~nbo_recorder.store.tiff_pages.PROGRESS_EVERY` pages): ``total`` is the
    number of frames the journal holds (or the pages found so far, if more) while the pages
    are walked, and the last call, once the file is finished, has ``done == total`` = the
    intact pages found. With ``dry_run`` nothing is written; the report says what would be.
    Raises :class:`RecoveryError` (nothing changed) when the journal or the file cannot be
    trusted, the result would not read back, or there is no room for the OME-XML.
    """
    partial = Path(partial)
    if is_zarr_path(partial):
        return _recover_store(partial, out, reason=reason, progress=progress, dry_run=dry_run)
    jpath = journal_path(partial)
    if not partial.is_file():
        raise RecoveryError(f"{partial}: no such file")
    if not jpath.is_file():
        raise RecoveryError(
            f"{partial}: no journal ({jpath.name}) beside it; either the recording finished "
            "cleanly (nothing to recover) or it was not written by nbo-recorder"
        )
    try:
        journal = load_journal(jpath)
    except JournalError as exc:
        raise RecoveryError(f"{exc}; nothing was changed") from None
    run = journal.run
    journaled = len(run.frames)
    on_page = None if progress is None else (lambda n: progress(n, max(journaled, n)))
    try:
        pages = intact_pages(partial, on_page) if partial.stat().st_size >= 8 else []
    except TiffStructureError as exc:
        raise RecoveryError(f"{exc}; nothing was changed") from None
    if not pages:
        raise RecoveryError(f"{partial}: no frame was completely written before the crash")
    geometries = read_page_geometry(partial, pages)
    _check_identity(partial, jpath, run, journal.run_id, geometries)
    plan = _plan(partial, run, pages, geometries)
    if not plan.frames:
        raise RecoveryError(
            f"{partial}: the journal describes none of its {len(plan.keep)} readable pages, "
            "so there is nothing to write OME-XML for; the file is left as it is (its pages "
            "read as plain TIFF pages)")
    unwritten = tuple(f.index for f in run.frames if f.index >= len(pages))
    run.frames = plan.frames
    previous = run.stop
    run.stop = RunStop(
        stopped_at=previous.stopped_at if previous else "unknown (the process died)",
        frames_written=len(plan.frames),
        frames_expected=run.start.frames_expected,
        reason=_reason(run, plan, reason),
        errors=previous.errors if previous else (),
        pauses=previous.pauses if previous else (),
    )
    profile = parse_profile(dict(run.start.profile), f"{jpath} (profile)")
    software = f"nbo-recorder {run.start.versions.get('nbo-recorder', '?')}"
    xml, outline = build_ome(run, profile, software)
    encoded = xml.encode()
    target = partial if out is None else Path(out)
    report = RecoveryReport(
        target, len(plan.frames), journaled, len(pages), run.start.frames_expected,
        dropped_pages=tuple(plan.dropped), undescribed_pages=tuple(plan.undescribed),
        notes=tuple(plan.notes), unwritten_frames=unwritten,
        bytes_needed=len(encoded) + 2, dry_run=dry_run)
    if dry_run:
        return report
    verify = _verifier(run, plan, pages, xml)
    if out is None:
        _finish(partial, encoded, plan.relink, verify)
        jpath.unlink()
    else:
        _finish_copy(partial, target, encoded, plan.relink, verify)
    if progress is not None:
        progress(len(pages), len(pages))
    # the verifier has read back this XML as the file's description, over this many pages
    return replace(report, outline=(len(plan.keep), outline))


def _recover_store(path: Path, out: Path | None, *, reason: str | None,
                   progress: Callable[[int, int], None] | None,
                   dry_run: bool) -> RecoveryReport:
    """The OME-Zarr case (:mod:`nbo_recorder.store.zarr_recovery`), reported like a file's."""
    from nbo_recorder.store.zarr_recovery import StoreRecoveryError, recover_store

    if out is not None:
        raise RecoveryError(f"{path}: --out is not supported for an OME-Zarr store; recover it "
                            "in place (or copy the folder and its journal first)")
    try:
        done = recover_store(path, reason=reason, dry_run=dry_run)
    except StoreRecoveryError as exc:
        raise RecoveryError(str(exc)) from None
    if progress is not None:
        progress(done.frames_recovered, done.frames_recovered)
    return RecoveryReport(path, done.frames_recovered, done.frames_journaled,
                          done.frames_recovered, done.frames_expected,
                          unwritten_frames=done.unwritten_frames, dry_run=dry_run)


def _finish(path: Path, xml: bytes, relink: list[Patch],
            verify: Callable[[Path], None]) -> None:
    """Write the OME-XML ``xml`` (UTF-8) into ``path``; a failure as a RecoveryError."""
    try:
        finish_description(path, xml, relink=relink, verify=verify)
    except WriterError as exc:
        raise RecoveryError(f"{exc.strerror or exc}; recover again once there is room, or "
                            "with --out on another volume") from None
    except RecoveryError as exc:
        raise RecoveryError(f"{exc}; the file was put back as it was") from None


def _finish_copy(partial: Path, out: Path, xml: bytes, relink: list[Patch],
                 verify: Callable[[Path], None]) -> None:
    """Finish a copy under a temporary name beside ``out``; rename it only once it reads back."""
    if out.exists():
        raise RecoveryError(f"{out} exists; choose another --out")
    tmp = out.with_name(f".{out.name}.recovering-{os.getpid()}")
    try:
        try:
            shutil.copyfile(partial, tmp)
        except OSError as exc:
            free = free_bytes(out)
            need = partial.stat().st_size + len(xml) + 2
            room = f", {free} free" if free is not None else ""
            raise RecoveryError(
                f"cannot write {out}: {exc.strerror or exc} ({need} bytes needed{room}); "
                f"{partial} is unchanged") from None
        _finish(tmp, xml, relink, verify)
        if out.exists():
            raise RecoveryError(f"{out} appeared while recovering; choose another --out")
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()

