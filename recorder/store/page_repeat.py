"""Append a TIFF page that repeats the previous one's tags, as tifffile would write it.

tifffile's ``TiffWriter.write`` works out a page's tags afresh on every call. On the 2-core
rig PC this project is tested on (issue #17), 600 pages of 512² took 0.18-0.26 s of CPU
through it against 0.08-0.09 s to write the same bytes alone, and on the writer thread that
Python time is taken, under the GIL, from the acquisition thread draining the camera. A
burst's pages all have the same tags but for where each lies in the file, so after tifffile
has written one page without a description, :class:`PageRepeater` writes the next pages of
the same shape and type from its bytes: the IFD with its offsets moved, the padding tifffile
puts before the data, and the data. The file is the same, byte for byte, as tifffile's
(``tests/store/test_page_repeat.py`` compares them). As tifffile does, it sets the previous
page's next-IFD pointer first, so a crash leaves what it leaves with tifffile: at worst a
page linked before its bytes are complete, which recovery drops as torn.

Only what this needs of the TIFF format is read here: the IFD's entry count, its entries'
value types and counts (to find the values stored outside the IFD), StripOffsets and the
next-IFD pointer. A page with more than one strip, or a layout other than tifffile's (IFD,
its values, data aligned to 16 bytes), is not repeated: :meth:`PageRepeater.of_page` returns
None and tifffile writes every page of that kind.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

import numpy as np

from nbo_recorder.store.tiff_pages import STRIP_OFFSETS, TYPE_SIZES, IfdFormat

#: tifffile starts a page's image data on a multiple of this many bytes (its ``align``)
_DATA_ALIGN = 16


class PageRepeater:
    """Writes pages that repeat one page tifffile wrote (see the module docstring)."""

    def __init__(self, lay: IfdFormat, ifd: bytes, moved: tuple[int, ...], strip_at: int,
                 next_at: int) -> None:
        self._lay = lay
        self._ifd = ifd             # the IFD and its values, as at offset 0
        self._moved = moved         # where in it offsets to its values are kept
        self._strip_at = strip_at   # where in it the page's data offset is kept
        self._next_at = next_at     # where in it the next-IFD pointer is kept

    @classmethod
    def of_page(cls, fd: int, ifd_at: int, data_at: int, frame: np.ndarray[Any, Any],
                byteorder: str, bigtiff: bool) -> PageRepeater | None:
        """A repeater of the page whose IFD is at ``ifd_at`` and whose data (``frame``'s
        bytes, the file's last) start at ``data_at``; None if it cannot be repeated."""
        if not frame.dtype.isnative:  # tifffile may have swapped its bytes for the file
            return None
        lay = IfdFormat(byteorder, bigtiff)
        head = os.pread(fd, data_at - ifd_at, ifd_at)
        if len(head) != data_at - ifd_at or len(head) < lay.count.size:
            return None
        (n,) = lay.count.unpack_from(head)
        next_at = lay.count.size + n * lay.entry.size
        if next_at + lay.offset.size > len(head):
            return None
        ifd = bytearray(head)
        lay.offset.pack_into(ifd, next_at, 0)
        values_end = next_at + lay.offset.size
        moved: list[int] = []
        strip_at = -1
        for k in range(n):
            at = lay.count.size + k * lay.entry.size
            tag, kind, count, _ = lay.entry.unpack_from(head, at)
            size = TYPE_SIZES.get(kind)
            if size is None:
                return None
            field = at + lay.entry.size - lay.offset.size
            if tag == STRIP_OFFSETS:
                if count != 1 or lay.offset.unpack_from(head, field)[0] != data_at:
                    return None
                strip_at = field
            elif size * count > lay.offset.size:  # the value lies outside the entry
                (where,) = lay.offset.unpack_from(head, field)
                start = where - ifd_at
                if start < next_at + lay.offset.size or start + size * count > len(head):
                    return None
                values_end = max(values_end, start + size * count)
                moved.append(field)
                lay.offset.pack_into(ifd, field, start)
        # tifffile pads the values to an even size, then the data to _DATA_ALIGN bytes
        ifd_size = values_end + values_end % 2
        if strip_at < 0 or _data_offset(ifd_at, ifd_size) != data_at:
            return None
        return cls(lay, bytes(ifd[:ifd_size]), tuple(moved), strip_at, next_at)

    def write(self, fh: BinaryIO, frame: np.ndarray[Any, Any], end: int,
              link_at: int) -> tuple[int, int]:
        """Append ``frame`` as a page at ``end``, the end of the file open as ``fh``
        (unbuffered), and link it from the last page's next-IFD pointer at ``link_at``;
        return where the file ends now and where the new page's pointer is.

        Written through ``fh`` as tifffile writes, and linked first, as tifffile links;
        ``fh`` is left at the end of the file.
        """
        at = end
        if at % 2:  # an IFD starts on a word boundary
            _write_all(fh, b"\0", at)
            at += 1
        lay = self._lay
        _write_all(fh, lay.offset.pack(at), link_at)
        data_at = _data_offset(at, len(self._ifd))
        ifd = bytearray(self._ifd)
        for field in self._moved:
            lay.offset.pack_into(ifd, field, lay.offset.unpack_from(ifd, field)[0] + at)
        lay.offset.pack_into(ifd, self._strip_at, data_at)
        ifd += bytes(data_at - at - len(ifd))
        data = np.ascontiguousarray(frame)
        _write_all(fh, ifd, at)
        _write_all(fh, data.data.cast("B"), data_at)
        return data_at + data.nbytes, at + self._next_at


def next_ifd_field(fd: int, ifd_at: int, byteorder: str, bigtiff: bool) -> int:
    """Where the next-IFD pointer of the IFD at ``ifd_at`` (in the file open as ``fd``) is."""
    lay = IfdFormat(byteorder, bigtiff)
    (n,) = lay.count.unpack(os.pread(fd, lay.count.size, ifd_at))
    return ifd_at + lay.count.size + int(n) * lay.entry.size


def _data_offset(ifd_at: int, ifd_size: int) -> int:
    """Where tifffile starts the data of a page whose IFD and values take ``ifd_size``."""
    after = ifd_at + ifd_size
    return after + (_DATA_ALIGN - after % _DATA_ALIGN) % _DATA_ALIGN


def _write_all(fh: BinaryIO, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (an unbuffered file may write part of it)."""
    fh.seek(offset)
    view = memoryview(data)
    while view:
        view = view[fh.write(view):]
