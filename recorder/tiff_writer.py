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
from pathlib import Path

import numpy as np
import tifffile

#: Written into the first page until the run is finalised; recovery looks for it.
PLACEHOLDER = "nbo-recorder: acquisition in progress; OME-XML is written at the end"

_BIGTIFF_THRESHOLD = 2**32 - 2**25  # leave 32 MiB of headroom for IFDs and the OME-XML


class WriterError(OSError):
    """Writing the OME-TIFF failed; names the path and how many bytes had been written."""


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

    def write(self, frame: np.ndarray) -> int:
        """Append ``frame`` as the next page; return its page (IFD) index."""
        if self._tw is None:
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
            raise WriterError(
                exc.errno or errno.EIO,
                f"writing frame {self.pages} to {self.path} failed after "
                f"{self.bytes_written} bytes: {exc.strerror or exc}",
            ) from exc
        self.pages += 1
        return self.pages - 1

    def close(self) -> None:
        if self._tw is not None:
            tw, self._tw = self._tw, None
            try:
                tw.close()
            finally:
                self._fh.close()

    def finalise(self, ome_xml: str) -> None:
        """Close the pixel stream and put ``ome_xml`` into the first page's description."""
        self.close()
        if self.pages == 0:
            return
        write_description(self.path, ome_xml)


def write_description(path: Path, ome_xml: str) -> None:
    """Replace the first page's ImageDescription (appended at the end if it does not fit)."""
    tifffile.tiffcomment(path, ome_xml.encode("utf-8"), pageindex=0)
