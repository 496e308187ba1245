"""Inspect and trim the page chain of a TIFF that a crash left behind.

tifffile raises on a file whose last IFD or image data was cut off, and cannot say which
trailing pages are intact; recovery needs exactly that. This module walks the IFD chain
itself (classic and BigTIFF, either byte order), stops at the first page whose IFD or strip
data reaches past the end of the file, and can end the chain after the last intact page.
It only reads IFDs and rewrites one next-IFD pointer: pixel data are never touched.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_STRIP_OFFSETS = 273
_STRIP_BYTE_COUNTS = 279
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
               16: 8, 17: 8, 18: 8}
_INT_FORMATS = {1: "B", 3: "H", 4: "I", 16: "Q"}


class TiffStructureError(ValueError):
    """The file is not a TIFF, or its header is damaged."""


@dataclass(frozen=True)
class PageExtent:
    """Where one intact page lives in the file."""

    ifd_offset: int
    next_pointer_offset: int
    data_end: int


@dataclass(frozen=True)
class _Layout:
    order: str
    bigtiff: bool

    @property
    def offset_fmt(self) -> str:
        return "Q" if self.bigtiff else "I"

    @property
    def count_fmt(self) -> str:
        return "Q" if self.bigtiff else "H"

    @property
    def entry_size(self) -> int:
        return 20 if self.bigtiff else 12


def _layout(fh: BinaryIO, path: Path) -> tuple[_Layout, int]:
    head = fh.read(16)
    if head[:2] not in (b"II", b"MM"):
        raise TiffStructureError(f"{path}: not a TIFF file")
    order = "<" if head[:2] == b"II" else ">"
    magic = struct.unpack(order + "H", head[2:4])[0]
    if magic == 42:
        return _Layout(order, False), struct.unpack(order + "I", head[4:8])[0]
    if magic == 43:
        return _Layout(order, True), struct.unpack(order + "Q", head[8:16])[0]
    raise TiffStructureError(f"{path}: not a TIFF file (magic {magic})")


def _read(fh: BinaryIO, offset: int, size: int, file_size: int) -> bytes | None:
    if offset < 0 or offset + size > file_size:
        return None
    fh.seek(offset)
    data = fh.read(size)
    return data if len(data) == size else None


def _values(fh: BinaryIO, lay: _Layout, entry: bytes, file_size: int) -> list[int] | None:
    tag_type = struct.unpack(lay.order + "H", entry[2:4])[0]
    count = struct.unpack(lay.order + lay.offset_fmt,
                          entry[4:12] if lay.bigtiff else entry[4:8])[0]
    if tag_type not in _INT_FORMATS:
        return None
    size = _TYPE_SIZES[tag_type] * count
    inline = entry[12:20] if lay.bigtiff else entry[8:12]
    if size <= len(inline):
        raw = inline[:size]
    else:
        ptr = struct.unpack(lay.order + lay.offset_fmt, inline)[0]
        got = _read(fh, ptr, size, file_size)
        if got is None:
            return None
        raw = got
    return list(struct.unpack(lay.order + _INT_FORMATS[tag_type] * count, raw))


def intact_pages(path: Path, on_page: Callable[[int], None] | None = None) -> list[PageExtent]:
    """The pages whose IFD and image data lie wholly inside the file, in chain order.

    ``on_page`` is called with the number of intact pages found so far after each one, so
    a caller can show progress through a long file.
    """
    size = path.stat().st_size
    pages: list[PageExtent] = []
    with path.open("rb") as fh:
        lay, offset = _layout(fh, path)
        count_size = 8 if lay.bigtiff else 2
        ptr_size = 8 if lay.bigtiff else 4
        seen: set[int] = set()
        while offset and offset not in seen:
            seen.add(offset)
            head = _read(fh, offset, count_size, size)
            if head is None:
                break
            n = struct.unpack(lay.order + lay.count_fmt, head)[0]
            if not 0 < n < 4096:
                break
            body = _read(fh, offset + count_size, n * lay.entry_size + ptr_size, size)
            if body is None:
                break
            strips: dict[int, list[int] | None] = {}
            for i in range(n):
                entry = body[i * lay.entry_size:(i + 1) * lay.entry_size]
                tag = struct.unpack(lay.order + "H", entry[:2])[0]
                if tag in (_STRIP_OFFSETS, _STRIP_BYTE_COUNTS):
                    strips[tag] = _values(fh, lay, entry, size)
            offs, counts = strips.get(_STRIP_OFFSETS), strips.get(_STRIP_BYTE_COUNTS)
            if not offs or not counts or len(offs) != len(counts):
                break
            data_end = max(o + c for o, c in zip(offs, counts, strict=True))
            if data_end > size:
                break
            next_at = offset + count_size + n * lay.entry_size
            pages.append(PageExtent(offset, next_at, data_end))
            if on_page is not None:
                on_page(len(pages))
            offset = struct.unpack(lay.order + lay.offset_fmt, body[-ptr_size:])[0]
    return pages


def end_chain_after(path: Path, pages: list[PageExtent], keep: int) -> None:
    """Make page ``keep - 1`` the last page of the chain (``keep`` >= 1)."""
    if not 1 <= keep <= len(pages):
        raise ValueError(f"{path}: cannot keep {keep} of {len(pages)} intact pages")
    with path.open("r+b") as fh:
        lay, _ = _layout(fh, path)
        fh.seek(pages[keep - 1].next_pointer_offset)
        fh.write(struct.pack(lay.order + lay.offset_fmt, 0))


def drop_torn_tail(path: Path) -> int:
    """Keep every intact page, cut off whatever a failed write left after them.

    Returns the number of pages kept. The last intact page becomes the end of the chain
    (a failed write may already have pointed it at an IFD that never made it to disk) and
    the file is truncated after that page's data, so appending can carry on from there.
    With no intact page at all the file is emptied.
    """
    if path.stat().st_size < 16:
        os.truncate(path, 0)
        return 0
    pages = intact_pages(path)
    if not pages:
        os.truncate(path, 0)
        return 0
    end_chain_after(path, pages, len(pages))
    last = pages[-1]
    with path.open("rb") as fh:
        lay, _ = _layout(fh, path)
    ifd_end = last.next_pointer_offset + (8 if lay.bigtiff else 4)
    os.truncate(path, max(last.data_end, ifd_end))
    return len(pages)
