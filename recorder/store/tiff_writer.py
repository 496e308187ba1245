"""Streaming OME-TIFF pixel writer (tifffile).

Each frame becomes one TIFF page, appended as it arrives, in acquisition order: nothing is
held in memory beyond the frame being written, and after each page the file on disk is a
valid TIFF holding every frame written so far. The OME-XML that says which page is which
plane of which image (``TiffData IFD=...``) goes into the first page's ImageDescription when
the run is finalised; until then that description holds a placeholder.

tifffile's ``TiffWriter`` is used page by page (``contiguous=False``) rather than with a
whole-series shape because the number of frames and their order across positions are known
only as the acquisition proceeds.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tifffile

from nbo_recorder.store.tiff_pages import drop_torn_tail

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Written into the first page until the run is finalised; recovery looks for it.
PLACEHOLDER = "nbo-recorder: acquisition in progress; OME-XML is written at the end"

_BIGTIFF_THRESHOLD = 2**32 - 2**25  # leave 32 MiB of headroom for IFDs and the OME-XML


class WriterError(OSError):
    """Writing the OME-TIFF failed; names the path and how many bytes had been written."""


def free_bytes(path: Path) -> int | None:
    """Bytes free for this user on the volume holding ``path``, or None if unknown."""
    try:
        return shutil.disk_usage(path.parent if str(path.parent) else ".").free
    except OSError:
        return None


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
    operating system's hands: a process crash after that cannot lose it.
    """

    def __init__(self, path: Path, *, bigtiff: bool) -> None:
        self.path = path
        self.pages = 0
        self._bigtiff = bigtiff
        self._broken = False
        self._fh = open(path, "wb", buffering=0)
        self._tw: tifffile.TiffWriter | None = tifffile.TiffWriter(self._fh, bigtiff=bigtiff)

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
        try:
            self._tw.write(
                frame,
                description=PLACEHOLDER if self.pages == 0 else None,
                metadata=None,
                contiguous=False,
                photometric="minisblack",
                software="nbo-recorder",
            )
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
        return self.pages - 1

    def reopen(self) -> None:
        """After a failed write: drop the torn page and reopen to append after the intact ones.

        :attr:`pages` becomes the number of intact pages, so the caller can tell whether the
        frame whose write failed made it to disk after all. Raises :class:`WriterError` if
        the file cannot be repaired or reopened (e.g. the disk is still full).
        """
        self._tw = None
        self._broken = True
        try:
            self._fh.close()
        except OSError:
            pass  # closing flushes nothing (unbuffered); a torn page is dropped below
        try:
            self.pages = drop_torn_tail(self.path)
            self._fh = open(self.path, "r+b" if self.pages else "wb", buffering=0)
            # tifffile's append mode finds the last IFD and links new pages after it
            self._tw = tifffile.TiffWriter(self._fh, bigtiff=self._bigtiff,
                                           append=self.pages > 0)
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
        try:
            if tw is not None and not self._broken:
                tw.close()
        finally:
            self._fh.close()
        if self._broken:
            self.pages = drop_torn_tail(self.path)
            self._broken = False

    def finalise(self, ome_xml: str) -> None:
        """Close the pixel stream and put ``ome_xml`` into the first page's description."""
        self.close()
        if self.pages == 0:
            return
        write_description(self.path, ome_xml)


def write_description(path: Path, ome_xml: str) -> None:
    """Replace the first page's ImageDescription (appended at the end if it does not fit)."""
    tifffile.tiffcomment(path, ome_xml.encode("utf-8"), pageindex=0)
