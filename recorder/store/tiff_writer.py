"""Streaming OME-TIFF pixel writer (tifffile).

Each frame becomes one TIFF page, appended as it arrives, in acquisition order: nothing is
held in memory beyond the frame being written, and after each page the file on disk is a
valid TIFF holding every frame written so far. The OME-XML that says which page is which
plane of which image (``TiffData IFD=...``) goes into the first page's ImageDescription when
the run is finalised; until then that description holds a placeholder naming the run.

Finishing never leaves a file that cannot be finished: :func:`finish_description` appends
the new description (and flushes it) *before* one small write points the first page's
entry at it, and the placeholder stays valid until then. A kill before that switch leaves
the valid placeholder TIFF that ``recover`` finishes later; a failed step (a full disk)
undoes the steps before it.

tifffile's ``TiffWriter`` is used page by page (``contiguous=False``) rather than with a
whole-series shape because the number of frames and their order across positions are known
only as the acquisition proceeds. It writes the first page, and the first of each new frame
size or type; the pages after that repeat it (:mod:`~nbo_recorder.store.page_repeat`), the
same bytes for a fraction of tifffile's Python time per page.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tifffile

from nbo_recorder.store.page_repeat import PageRepeater, next_ifd_field
from nbo_recorder.store.tiff_pages import (
    Patch,
    description_patch,
    drop_torn_tail,
    first_description,
)
from nbo_recorder.store.write_behind import WriteBehind

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Written into the first page until the run is finalised; recovery looks for it.
PLACEHOLDER = "nbo-recorder: acquisition in progress; OME-XML is written at the end"
_RUN_ID = re.compile(rb"\(run ([0-9A-Za-z_-]{1,64})\)")

_BIGTIFF_THRESHOLD = 2**32 - 2**25  # leave 32 MiB of headroom for IFDs and the OME-XML


class WriterError(OSError):
    """Writing the OME-TIFF failed; names the path and how many bytes had been written."""


def free_bytes(path: Path) -> int | None:
    """Bytes free for this user on the volume holding ``path``, or None if unknown."""
    try:
        return shutil.disk_usage(path.parent if str(path.parent) else ".").free
    except OSError:
        return None


def placeholder(run_id: str | None) -> str:
    """The first page's description until the run is finalised: :data:`PLACEHOLDER`, and the
    run's id (the journal's) when there is one."""
    return PLACEHOLDER if run_id is None else f"{PLACEHOLDER} (run {run_id})"


def placeholder_run_id(description: bytes) -> str | None:
    """The run id in a placeholder description; None for any other description."""
    if not description.startswith(PLACEHOLDER.encode()):
        return None
    found = _RUN_ID.search(description)
    return found.group(1).decode() if found else None


def needs_bigtiff(expected_bytes: int | None) -> bool:
    """BigTIFF when the file may exceed classic TIFF's 4 GiB, or when its size is unknown."""
    return expected_bytes is None or expected_bytes >= _BIGTIFF_THRESHOLD


def check_output_path(path: Path, overwrite: bool) -> None:
    """Fail before the first frame if ``path`` exists (without ``overwrite``) or is unwritable."""
    if path.exists() and not overwrite:
        raise FileExistsError(
            errno.EEXIST, f"{path} exists; pass --overwrite (overwrite=True) to replace it"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"output directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"output directory {parent} is not writable")


class TiffPageWriter:
    """Appends frames as TIFF pages; finalises by writing the OME-XML description.

    The file is opened unbuffered, so when :meth:`write` returns, the page is in the
    operating system's hands: a process crash after that cannot lose it. A
    :class:`~nbo_recorder.store.write_behind.WriteBehind` thread then puts it on disk within
    a few MB and drops it from the page cache (on a busy 2-core PC, growing the page cache
    cost the acquisition more CPU than anything the recorder does). ``run_id`` (the
    journal's :attr:`~nbo_recorder.store.journal.JournalWriter.run_id`) goes into the
    placeholder description, so that recovery can check the journal belongs to this file.
    """

    def __init__(self, path: Path, *, bigtiff: bool, run_id: str | None = None) -> None:
        self.path = path
        self.pages = 0
        self._placeholder = placeholder(run_id)
        self._bigtiff = bigtiff
        self._broken = False
        self._fh = open(path, "w+b", buffering=0)  # read too: page_repeat reads a page back
        self._tw: tifffile.TiffWriter | None = tifffile.TiffWriter(self._fh, bigtiff=bigtiff)
        #: per frame shape and type, the page tifffile wrote that later ones repeat
        self._repeats: dict[tuple[tuple[int, ...], str], PageRepeater] = {}
        self._end = 0                       # where the file ends
        self._link_at: int | None = None    # where the last page's next-IFD pointer is
        self._tifffile_current = True       # tifffile wrote the last page
        self._behind: WriteBehind | None = WriteBehind(self._fh.fileno(), path.name)

    @property
    def bytes_written(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def fileno(self) -> int:
        return self._fh.fileno()

    def write(self, frame: NDArray[Any]) -> int:
        """Append ``frame`` as the next page; return its page (IFD) index."""
        if self._tw is None or self._broken:
            raise WriterError(errno.EBADF, f"{self.path}: writer is closed")
        failed = self._behind.error if self._behind is not None else None
        if failed is not None:
            self._broken = True  # what was written may not be on disk: reopen() checks it
            raise WriterError(failed.errno or errno.EIO,
                              f"flushing {self.path} to disk failed after "
                              f"{self.bytes_written} bytes: {failed.strerror or failed}")
        try:
            kind = (frame.shape, frame.dtype.str)
            repeat = self._repeats.get(kind)
            if repeat is not None and self._link_at is not None:
                self._end, self._link_at = repeat.write(self._fh, frame, self._end,
                                                        self._link_at)
                self._tifffile_current = False
            else:
                self._write_with_tifffile(frame, kind)
        except OSError as exc:
            self._broken = True  # the page may be torn: only reopen() may write again
            free = free_bytes(self.path)
            reason = exc.strerror or str(exc)
            code = exc.errno
            if code is None:
                # numpy's tofile reports a short write without an errno ("N requested and
                # M written"); a volume with less room than the frame explains it
                code = errno.ENOSPC if free is not None and free < frame.nbytes else errno.EIO
                reason = f"{os.strerror(code)} ({reason})"
            room = f"; {free} bytes free on its volume" if free is not None else ""
            raise WriterError(
                code,
                f"writing frame {self.pages} to {self.path} failed after "
                f"{self.bytes_written} bytes: {reason}{room}",
            ) from exc
        self.pages += 1
        if self._behind is not None:
            self._behind.written(self._end)
        return self.pages - 1

    def _forget_pages(self) -> None:
        """A new TiffWriter: no page to repeat yet, nor one to link after."""
        self._repeats = {}
        self._end = 0
        self._link_at = None
        self._tifffile_current = True

    def _write_with_tifffile(self, frame: NDArray[Any],
                             kind: tuple[tuple[int, ...], str]) -> None:
        """Append ``frame`` with tifffile. A page without the description becomes the one
        later pages of its shape and type repeat (:mod:`~nbo_recorder.store.page_repeat`)."""
        assert self._tw is not None
        if not self._tifffile_current:
            # pages were written past tifffile: it finds the last IFD again, once per new
            # kind of frame; ome=False, or it adds OME-XML of its own to a *.ome.tif's page
            self._fh.seek(0)
            self._tw = tifffile.TiffWriter(self._fh, bigtiff=self._bigtiff, append=True,
                                           ome=False)
            self._tifffile_current = True
        start = self._fh.tell()
        first = self.pages == 0
        self._tw.write(
            frame,
            description=self._placeholder if first else None,
            metadata=None,
            contiguous=False,
            photometric="minisblack",
            software="nbo-recorder",
        )
        self._end = self._fh.tell()
        ifd_at = start + start % 2  # tifffile starts an IFD on a word boundary
        fd, tiff = self._fh.fileno(), self._tw.tiff
        bigtiff = tiff.version == 43
        self._link_at = next_ifd_field(fd, ifd_at, tiff.byteorder, bigtiff)
        if not first:
            repeat = PageRepeater.of_page(fd, ifd_at, self._end - frame.nbytes, frame,
                                          tiff.byteorder, bigtiff)
            if repeat is not None:
                self._repeats[kind] = repeat

    def _stop_behind(self) -> None:
        behind, self._behind = self._behind, None
        if behind is not None:
            behind.close()

    def reopen(self) -> None:
        """After a failed write: drop the torn page and reopen to append after the intact ones.

        :attr:`pages` becomes the number of intact pages, so the caller can tell whether the
        frame whose write failed made it to disk after all. Raises :class:`WriterError` if
        the file cannot be repaired or reopened (e.g. the disk is still full).
        """
        self._tw = None
        self._broken = True
        self._stop_behind()
        try:
            self._fh.close()
        except OSError:
            pass  # closing flushes nothing (unbuffered); a torn page is dropped below
        try:
            self.pages = drop_torn_tail(self.path)
            self._fh = open(self.path, "r+b" if self.pages else "w+b", buffering=0)
            # tifffile's append mode finds the last IFD and links new pages after it;
            # ome=False, or it adds OME-XML of its own to the next page of a *.ome.tif
            self._tw = tifffile.TiffWriter(self._fh, bigtiff=self._bigtiff,
                                           append=self.pages > 0, ome=False)
            self._forget_pages()
            self._behind = WriteBehind(self._fh.fileno(), self.path.name)
        except (OSError, ValueError) as exc:
            raise WriterError(
                getattr(exc, "errno", None) or errno.EIO,
                f"reopening {self.path} after a failed write failed: {exc}",
            ) from exc
        self._broken = False

    def close(self) -> None:
        """Close the pixel stream; after a failed write, also cut off the torn page.

        Cutting it off gives its bytes back to a full disk, which the OME-XML written at
        the end then needs.
        """
        tw, self._tw = self._tw, None
        self._stop_behind()
        try:
            if tw is not None and not self._broken:
                tw.close()
        finally:
            self._fh.close()
        if self._broken:
            self.pages = drop_torn_tail(self.path)
            self._broken = False

    def finalise(self, ome_xml: str) -> None:
        """Close the pixel stream and put ``ome_xml`` into the first page's description.

        If that fails (:class:`WriterError`, e.g. a full disk), the file keeps its pages and
        its placeholder description, and the error says to run ``nbo-recorder recover``.
        """
        self.close()
        if self.pages == 0:
            return
        try:
            finish_description(self.path, ome_xml)
        except WriterError as exc:
            raise WriterError(
                exc.errno, f"{exc.strerror}; its {self.pages} frames are intact: once there "
                f"is room, run `nbo-recorder recover {self.path}`") from exc


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def _undo(fd: int, undo: list[Patch], size: int) -> None:
    """Cut the file back to ``size``, then put back the bytes ``undo`` saved (last first).

    In that order, a torn page that step 1 had unlinked is linked again only once the
    appended bytes that could complete its outline are gone.

    Best effort, as the error being handled matters more than a second one: a write that
    cannot be undone leaves the page chain ended early or the old description in place,
    both valid files that ``recover`` finishes.
    """
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
        for offset, old in reversed(undo):
            _write_at(fd, old, offset)
        os.fsync(fd)
    except OSError:
        pass


def finish_description(
    path: Path, ome_xml: str | bytes, *, relink: Sequence[Patch] = (),
    verify: Callable[[Path], None] | None = None,
) -> None:
    """Make ``ome_xml`` the first page's description, so that no failed step strands the file.

    ``ome_xml`` is the text, or the text already encoded as UTF-8 (a caller that has encoded
    it spares a second encoding of what can be tens of megabytes).

    1. ``relink`` (next-IFD pointers that end or mend the page chain) is written first: a
       torn page that was linked must be unlinked before anything is appended, or the new
       bytes would complete its outline with garbage.
    2. The description is appended at the end of the file and flushed (fsync). Nothing
       points at it yet: a kill here leaves a valid file with the old description.
    3. One write points the description entry at the new bytes.
    4. ``verify(path)`` (if given) checks the result.

    After each step the file is a valid TIFF holding every page kept. If a step fails, the
    bytes changed before it are put back and the file cut to its old size, and the error is
    raised again; a failed write (a full disk) as a :class:`WriterError` naming the path,
    the bytes needed and the bytes free.
    """
    data = (ome_xml.encode("utf-8") if isinstance(ome_xml, str) else ome_xml) + b"\0"
    entry = first_description(path)
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        offset = size + size % 2  # TIFF values start on a word boundary
        undo: list[Patch] = []
        try:
            _patch(fd, relink, undo)
            _write_at(fd, b"\0" * (offset - size), size)
            _write_at(fd, data, offset)
            os.fsync(fd)
            _patch(fd, [description_patch(path, entry, offset, data)], undo)
            os.fsync(fd)
            if verify is not None:
                verify(path)
        except OSError as exc:
            _undo(fd, undo, size)
            raise _finishing_error(path, exc, offset - size + len(data)) from exc
        except Exception:
            _undo(fd, undo, size)
            raise
    finally:
        os.close(fd)


def _patch(fd: int, patches: Sequence[Patch], undo: list[Patch]) -> None:
    """Write ``patches``, first saving the bytes each replaces in ``undo``."""
    for at, new in patches:
        undo.append((at, os.pread(fd, len(new), at)))
        _write_at(fd, new, at)


def _finishing_error(path: Path, exc: OSError, needed: int) -> WriterError:
    """The error of a failed finishing step: the path, the bytes needed and free, the cause."""
    free = free_bytes(path)
    room = f", {free} free on its volume" if free is not None else ""
    return WriterError(
        exc.errno or errno.EIO,
        f"writing the OME-XML into {path} failed: {exc.strerror or exc} "
        f"({needed} bytes needed{room}); the file is unchanged")
