"""Where a recording goes: the OME-TIFF and its journal, checked before either is created.

A run writes two files: the OME-TIFF named by the user and, beside it, its journal
(:func:`~nbo_recorder.store.journal.journal_path`, the TIFF's name plus ``.nbo-journal``).
:func:`check_output_paths` refuses, before the rig is loaded or any file created, every
output that would fail only once the acquisition starts: an output or journal path that is
a directory, a journal name longer than the volume allows although the TIFF's name fits,
and a journal an earlier run left behind (it may be all that can recover that run's file).

:func:`discard_empty_outputs` is for a run that stopped before its first frame reached the
disk (e.g. not even one frame fits): it removes the empty TIFF and its journal, which would
otherwise be left for a ``recover`` that can only say "not a TIFF file". It removes nothing
that could hold a frame.

An OME-Zarr output (``*.zarr``) is a folder: an existing store is replaced only with
``overwrite`` (the writer removes it only if it is a Zarr store), and an empty one is a store
without a single chunk file.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import tifffile

from nbo_recorder.store.formats import is_foreign_folder, is_zarr_path
from nbo_recorder.store.journal import journal_path

#: the longest file name most volumes allow, when the volume does not say
DEFAULT_NAME_MAX = 255


class OutputPathError(OSError):
    """An output path that cannot be written; the message names the path and the fix.

    Made as ``OutputPathError(errno_code, message)``; ``str()`` is the message alone.
    """

    def __str__(self) -> str:
        return str(self.strerror)


def name_max(directory: Path) -> int:
    """The longest file name (in bytes) the volume holding ``directory`` allows."""
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return DEFAULT_NAME_MAX


def check_output_paths(path: Path, overwrite: bool) -> None:
    """Raise :class:`OutputPathError` if ``path`` or its journal cannot be created as files.

    Checked: both names fit the volume's name limit (in bytes, as the file system counts
    them; first, as looking up a longer name fails); ``path`` is not a directory; its
    journal's path is not a directory; and no journal of an earlier run is there unless
    ``overwrite`` (such a journal is what ``nbo-recorder recover`` needs to repair that
    run's file). An OME-Zarr output may be an existing store (replaced with ``overwrite``),
    never another non-empty folder. Whether ``path`` itself may be replaced and its folder
    written is :func:`nbo_recorder.store.tiff_writer.check_output_path`.
    """
    journal = journal_path(path)
    parent = path.parent if str(path.parent) else Path(".")
    limit = name_max(parent) if parent.is_dir() else DEFAULT_NAME_MAX
    for what, candidate in (("output file", path), ("journal", journal)):
        size = len(os.fsencode(candidate.name))
        if size > limit:
            raise OutputPathError(
                errno.ENAMETOOLONG,
                f"{candidate}: the {what} name is {size} bytes, over the {limit} its volume "
                f"allows (the journal adds {len(journal.name) - len(path.name)} bytes to the "
                "output name); choose a shorter output name")
    if is_zarr_path(path) and is_foreign_folder(path):
        raise OutputPathError(errno.EEXIST, f"{path} is a folder that is not a Zarr store; "
                                            "not replacing it: choose another output name")
    if path.is_dir() and not is_zarr_path(path):
        raise OutputPathError(errno.EISDIR, f"{path} is a directory; the output must be a "
                                            "file name, e.g. " + str(path / "run.ome.tif"))
    if journal.is_dir():
        raise OutputPathError(errno.EISDIR, f"{journal} is a directory, where the run's "
                                            "journal must go; move it or choose another name")
    if journal.exists() and not overwrite:
        raise OutputPathError(
            errno.EEXIST, f"{journal} exists: an earlier run did not finish; run "
                          f"'nbo-recorder recover {path}' first, or pass --overwrite to "
                          "replace both")


def discard_empty_outputs(path: Path, frame_bytes: int) -> bool:
    """After a run that wrote no frame: remove ``path`` and its journal if ``path`` holds no
    page; True when removed.

    ``path`` is removed only when it cannot hold a frame of ``frame_bytes`` bytes, or when
    tifffile reads it and finds no page; anything else (a page the writer did not count)
    is kept with its journal, for ``recover``.
    """
    if is_zarr_path(path) and path.is_dir():
        if any(p.is_file() for p in path.glob("*/*/c/**/*")):
            return False
        shutil.rmtree(path)
        journal_path(path).unlink(missing_ok=True)
        return True
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    if size >= frame_bytes and not _holds_no_page(path):
        return False
    path.unlink(missing_ok=True)
    journal_path(path).unlink(missing_ok=True)
    return True


def _holds_no_page(path: Path) -> bool:
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages) == 0
    except Exception:  # not readable as a TIFF: it may still hold a frame, keep it
        return False
