"""Inspect and relink the page chain of a TIFF that a crash left behind.

tifffile raises on a file whose last IFD or image data was cut off, and cannot say which
trailing pages are intact; recovery needs exactly that. This module walks the IFD chain
itself (classic and BigTIFF, either byte order), stops at the first page whose IFD or strip
data reaches past the end of the file, and can end the chain after the last intact page.
It also finds the first page's ImageDescription entry, whose value may point past the end
of the file (a description that was never written), and packs the few bytes that relink a
page or repoint that entry as :data:`Patch` es, for the caller to write in a safe order.
Pixel data are never touched; :func:`read_page_geometry` asks tifffile itself how it reads
each page, so that a page tifffile cannot read is known before a file is declared finished.
"""

from __future__ import annotations

import functools
import math
import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

#: ``(offset, bytes)``: bytes to write over the file's bytes at offset
Patch = tuple[int, bytes]

_IMAGE_DESCRIPTION = 270
_ASCII = 2
#: the StripOffsets tag
STRIP_OFFSETS = 273
_STRIP_BYTE_COUNTS = 279
#: TIFF field type -> size in bytes of one value (TIFF 6.0 and BigTIFF)
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
              13: 4, 16: 8, 17: 8, 18: 8}
_INT_FORMATS = {1: "B", 3: "H", 4: "I", 16: "Q"}

#: :func:`intact_pages` reports progress after this many pages
PROGRESS_EVERY = 1000
_new_tuple = tuple.__new__


class TiffStructureError(ValueError):
    """The file is not a TIFF, or its header is damaged."""


class NoDescriptionError(TiffStructureError):
    """The first page has no ImageDescription entry (a TIFF, but not an OME-TIFF)."""


class PageExtent(NamedTuple):
    """Where one intact page lives in the file; ``next_ifd``: the chain's next IFD offset.

    A tuple: a file can have hundreds of thousands of pages.
    """

    ifd_offset: int
    next_pointer_offset: int
    data_end: int
    next_ifd: int = 0


@dataclass(frozen=True)
class DescriptionEntry:
    """The first page's ImageDescription entry.

    ``fields_offset`` is where the entry's type, count and value fields start (the bytes a
    :func:`description_patch` replaces). ``value`` is the description's bytes, or None when
    they lie (partly) past the end of the file: a description that was never written.
    """

    fields_offset: int
    value: bytes | None


@dataclass(frozen=True)
class PageGeometry:
    """How tifffile reads one page: shape, dtype, and bytes of uncompressed image data."""

    shape: tuple[int, ...]
    dtype: str
    nbytes: int


@dataclass(frozen=True)
class IfdFormat:
    """How a TIFF's IFDs are encoded: byte order (``order``, ``"<"`` or ``">"``) and
    classic TIFF or BigTIFF.

    What tifffile's ``TiffFormat`` says, without importing tifffile (and numpy) to say it:
    reading the first page's description, as ``validate`` does, needs neither.
    """

    order: str
    bigtiff: bool

    @property
    def offset_fmt(self) -> str:
        """The struct format of an offset (next-IFD pointer, strip offset) and of a count."""
        return "Q" if self.bigtiff else "I"

    @property
    def count_fmt(self) -> str:
        """The struct format of an IFD's number of entries."""
        return "Q" if self.bigtiff else "H"

    @property
    def entry_size(self) -> int:
        """Bytes in one IFD entry."""
        return 20 if self.bigtiff else 12

    @functools.cached_property
    def count(self) -> struct.Struct:
        """An IFD's number of entries."""
        return struct.Struct(self.order + self.count_fmt)

    @functools.cached_property
    def entry(self) -> struct.Struct:
        """One IFD entry: tag, type, count, and its value or the offset of its value (bytes)."""
        return struct.Struct(f"{self.order}HH{self.offset_fmt}{8 if self.bigtiff else 4}s")

    @functools.cached_property
    def kind_and_count(self) -> struct.Struct:
        """An IFD entry's field type and value count (the entry after its tag)."""
        return struct.Struct(self.order + "H" + self.offset_fmt)

    @functools.cached_property
    def offset(self) -> struct.Struct:
        """One offset: a next-IFD pointer, a strip offset."""
        return struct.Struct(self.order + self.offset_fmt)


def _layout(fh: BinaryIO, path: Path) -> tuple[IfdFormat, int]:
    head = fh.read(16)
    if head[:2] not in (b"II", b"MM"):
        raise TiffStructureError(f"{path}: not a TIFF file")
    order = "<" if head[:2] == b"II" else ">"
    magic = struct.unpack(order + "H", head[2:4])[0]
    if magic == 42:
        return IfdFormat(order, False), struct.unpack(order + "I", head[4:8])[0]
    if magic == 43:
        return IfdFormat(order, True), struct.unpack(order + "Q", head[8:16])[0]
    raise TiffStructureError(f"{path}: not a TIFF file (magic {magic})")


def _read(fh: BinaryIO, offset: int, size: int, file_size: int) -> bytes | None:
    if offset < 0 or offset + size > file_size:
        return None
    fh.seek(offset)
    data = fh.read(size)
    return data if len(data) == size else None


class _Integers:
    """Reads the integers of IFD entries (strip offsets and byte counts) from a mapped file.

    The unpacking of each distinct type and count is prepared once: a run's pages all have
    one strip of the same type.
    """

    def __init__(self, buf: mmap.mmap, lay: IfdFormat, file_size: int) -> None:
        self._buf, self._order, self._size = buf, lay.order, file_size
        self._head = lay.kind_and_count
        self._pointer = lay.offset
        self._value_at = 2 + self._head.size
        self._inline = self._pointer.size
        self._formats: dict[tuple[int, int], struct.Struct | None] = {}

    def _format(self, key: tuple[int, int]) -> struct.Struct | None:
        tag_type, count = key
        if tag_type not in _INT_FORMATS or TYPE_SIZES[tag_type] * count > self._size:
            found = None
        else:
            found = struct.Struct(f"{self._order}{count}{_INT_FORMATS[tag_type]}")
        self._formats[key] = found
        return found

    def at(self, entry: int) -> tuple[int, ...] | None:
        """The integers of the entry at byte ``entry``, or None if they are not integers or
        lie (partly) past the end of the file."""
        key = self._head.unpack_from(self._buf, entry + 2)
        fmt = self._formats[key] if key in self._formats else self._format(key)
        if fmt is None:
            return None
        value_at = entry + self._value_at
        if fmt.size > self._inline:
            value_at = self._pointer.unpack_from(self._buf, value_at)[0]
            if value_at + fmt.size > self._size:
                return None
        return fmt.unpack_from(self._buf, value_at)


def intact_pages(path: Path, on_page: Callable[[int], None] | None = None) -> list[PageExtent]:
    """The pages whose IFD and image data lie wholly inside the file, in chain order.

    ``on_page`` is called with the number of intact pages found so far every
    :data:`PROGRESS_EVERY` pages and once more after the last one (unless that count was
    just reported), so a caller can show progress through a long file.

    The file is read through a memory map, and where a page's strip tags sit among its
    entries is worked out once per distinct list of tags: a run's pages all have the same
    tags, and taking 100,000 IFDs apart entry by entry cost a second.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        lay, offset = _layout(fh, path)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            pages = _walk(buf, lay, offset, size, on_page)
    if on_page is not None and pages and len(pages) % PROGRESS_EVERY:
        on_page(len(pages))
    return pages


def _walk(buf: mmap.mmap, lay: IfdFormat, offset: int, size: int,
          on_page: Callable[[int], None] | None) -> list[PageExtent]:
    """:func:`intact_pages` of the mapped file ``buf`` whose first IFD is at ``offset``.

    Where two pages in a row have the same tags, one inline strip each, and the next page
    the same distance on, the pages after them are checked a stretch at a time
    (:func:`_alike_pages`) and the page-by-page walk resumes where the stretch ends.
    """
    count, pointer = lay.count, lay.offset
    integers = _Integers(buf, lay, size)
    entry_size, count_size, ptr_size = lay.entry_size, count.size, pointer.size
    # per list of tags (the low and the high bytes of each entry's tag code): where in the
    # entries the strip offsets and byte counts are (see _StripEntries)
    strip_entries: dict[bytes, _StripEntries] = {}
    pages: list[PageExtent] = []
    seen: set[int] = set()
    # the highest IFD offset walked: a stretch starts beyond it, so it meets no page twice
    highest = previous = -1
    # a stretch that ended at once is not tried again for this many pages
    tried_at = -_RETRY_AFTER
    while offset and offset not in seen:
        seen.add(offset)
        if offset + count_size > size:
            break
        n = count.unpack_from(buf, offset)[0]
        if not 0 < n < 4096:
            break
        start = offset + count_size
        next_at = start + n * entry_size
        if next_at + ptr_size > size:
            break
        tags = buf[start:next_at:entry_size] + buf[start + 1:next_at:entry_size]
        found = strip_entries.get(tags)
        if found is None:
            found = strip_entries[tags] = _strip_entries(buf, lay, start, next_at)
        data_end = None
        inline = False
        if found.both is not None:
            head_a, value_a, head_b, value_b = found.both.unpack_from(buf, start)
            if (head_a, head_b) == found.heads:
                data_end = value_a + value_b  # one strip: its offset plus its byte count
                inline = True
        if data_end is None:
            data_end = _data_end(integers, start, found)
        if data_end is None or data_end > size:
            break
        next_ifd = pointer.unpack_from(buf, next_at)[0]
        # tuple.__new__ makes the tuple PageExtent(...) makes, without the Python function
        # that is its __new__ (and a frozen dataclass cost half the walk)
        pages.append(_new_tuple(PageExtent, (offset, next_at, data_end, next_ifd)))
        if on_page is not None and len(pages) % PROGRESS_EVERY == 0:
            on_page(len(pages))
        highest = max(highest, offset)
        stride = next_ifd - offset
        if (inline and stride > 0 and offset - previous == stride and next_ifd > highest
                and len(pages) - tried_at >= _RETRY_AFTER):
            alike = _alike_pages(buf, lay, offset, found, size)
            _report_stretch(on_page, len(pages), len(alike))
            pages += alike
            seen.update(range(next_ifd, next_ifd + len(alike) * stride, stride))
            if alike:
                highest = offset = alike[-1].ifd_offset
                next_ifd = alike[-1].next_ifd
            else:
                tried_at = len(pages)
        previous, offset = offset, next_ifd
    return pages


#: pages a stretch checks in its first block (each further block is twice the last, up to
#: _LAST_BLOCK: a file of millions of pages is checked in blocks of bounded memory)
_FIRST_BLOCK, _LAST_BLOCK = 16, 1 << 16
#: see ``tried_at`` in :func:`_walk`
_RETRY_AFTER = 16


def _alike_pages(buf: mmap.mmap, lay: IfdFormat, template: int, found: _StripEntries,
                 size: int) -> list[PageExtent]:
    """The intact pages that follow the page at ``template`` at its own distance, one after
    another, each as the page-by-page walk would find it: IFDs of the template's entry
    count and tags, one inline strip of the template's type, the data inside the file, and
    each page's next IFD the same distance on. The first page that is not so ends the
    stretch (that page is not among them).

    numpy reads the fields of a block of pages at once through a view of the mapped file
    (no copy); a block is twice the last (up to 65,536 pages), so a stretch that ends soon
    costs little.
    """
    import numpy as np

    order, count_size, entry_size = lay.order, lay.count.size, lay.entry_size
    n = lay.count.unpack_from(buf, template)[0]
    start = template + count_size
    stride = lay.offset.unpack_from(buf, start + n * entry_size)[0] - template
    ifd_bytes = count_size + n * entry_size + lay.offset.size
    if stride < ifd_bytes or found.offsets_at is None or found.counts_at is None:
        return []
    head = lay.kind_and_count
    # the bytes every page of the stretch must share with the template: the entry count,
    # each entry's tag, the strip entries' type and count
    fixed = [(0, lay.count_fmt)]
    fixed += [(count_size + k * entry_size, "H") for k in range(n)]
    values = []
    for at in (found.offsets_at, found.counts_at):
        kind, _ = head.unpack_from(buf, start + at + 2)
        fixed += [(count_size + at + 2, "H"), (count_size + at + 4, lay.offset_fmt)]
        values.append((count_size + at + 2 + head.size, _INT_FORMATS[kind]))
    next_field = (count_size + n * entry_size, lay.offset_fmt)
    fields = [*fixed, *values, next_field]
    row = np.dtype({"names": [f"f{k}" for k in range(len(fields))],
                    "formats": [order + fmt for _, fmt in fields],
                    "offsets": [at for at, _ in fields], "itemsize": stride})
    pointer_at = count_size + n * entry_size
    # the template itself is row 0: the fields every page must share are read from it
    rows = np.ndarray(((size - template) // stride,), dtype=row, buffer=buf, offset=template)
    if len(rows) < 2:
        return []
    shared = [rows[f"f{k}"][0] for k in range(len(fixed))]
    strip = [f"f{len(fixed)}", f"f{len(fixed) + 1}"]
    nxt = f"f{len(fields) - 1}"
    pages: list[PageExtent] = []
    at, block = 1, _FIRST_BLOCK
    while at < len(rows):
        part = rows[at:at + block]
        offsets = np.arange(at, at + len(part), dtype=np.uint64) * np.uint64(stride) + \
            np.uint64(template)
        strip_at, strip_bytes = part[strip[0]], part[strip[1]]
        # in 64 bits: two 32-bit values each inside a file of 3 GiB can add up past 2**32
        data_end = strip_at.astype(np.uint64) + strip_bytes
        good = ((strip_at <= size) & (strip_bytes <= size) & (data_end <= size)
                & (part[nxt] == offsets + np.uint64(stride)))
        for k, value in enumerate(shared):
            good &= part[f"f{k}"] == value
        bad = np.flatnonzero(~good)
        ok = int(bad[0]) if bad.size else len(part)
        begin = template + at * stride
        ends = data_end[:ok].tolist()
        pages += [_new_tuple(PageExtent, (o, o + pointer_at, end, o + stride))
                  for o, end in zip(range(begin, begin + ok * stride, stride), ends,
                                    strict=True)]
        if ok < len(part):
            break
        at, block = at + len(part), min(block * 2, _LAST_BLOCK)
    return pages


def _report_stretch(on_page: Callable[[int], None] | None, before: int, more: int) -> None:
    """Call ``on_page`` as the page-by-page walk would have for ``more`` pages found after
    ``before``: at each multiple of :data:`PROGRESS_EVERY` they pass."""
    if on_page is None:
        return
    for done in range((before // PROGRESS_EVERY + 1) * PROGRESS_EVERY, before + more + 1,
                      PROGRESS_EVERY):
        on_page(done)


class _StripEntries(NamedTuple):
    """Where the entries of one list of tags hold the strip offsets and byte counts (bytes
    from the first entry; the last of each if a tag repeats; None if there is none).

    ``both`` reads the two entries at once, in the order they come: each one's type and
    count as bytes and its value. It is made when the page the list was first seen on has
    one strip whose offset and byte count are inline integers, and applies to a page whose
    two type-and-count fields are ``heads``: the pages of a run, one strip each, are read
    with one unpacking instead of four.
    """

    offsets_at: int | None
    counts_at: int | None
    both: struct.Struct | None = None
    heads: tuple[bytes, bytes] = (b"", b"")


def _strip_entries(buf: mmap.mmap, lay: IfdFormat, start: int, next_at: int) -> _StripEntries:
    """The :class:`_StripEntries` of the IFD whose entries span ``start`` to ``next_at``."""
    tag = struct.Struct(lay.order + "H")
    at = {tag.unpack_from(buf, e)[0]: e - start for e in range(start, next_at, lay.entry_size)}
    offsets_at, counts_at = at.get(STRIP_OFFSETS), at.get(_STRIP_BYTE_COUNTS)
    if offsets_at is None or counts_at is None:
        return _StripEntries(offsets_at, counts_at)
    head = lay.kind_and_count
    inline = struct.calcsize(lay.offset_fmt)
    fmt, end, heads = lay.order, 0, []
    for entry in sorted((offsets_at, counts_at)):
        kind, n = head.unpack_from(buf, start + entry + 2)
        if n != 1 or kind not in _INT_FORMATS or TYPE_SIZES[kind] > inline:
            return _StripEntries(offsets_at, counts_at)
        fmt += (f"{entry + 2 - end}x{head.size}s{_INT_FORMATS[kind]}"
                f"{inline - TYPE_SIZES[kind]}x")
        end = entry + lay.entry_size
        heads.append(buf[start + entry + 2:start + entry + 2 + head.size])
    return _StripEntries(offsets_at, counts_at, struct.Struct(fmt), (heads[0], heads[1]))


def _data_end(integers: _Integers, start: int, found: _StripEntries) -> int | None:
    """Where the image data of the IFD whose entries start at ``start`` end; None if its
    strip entries are missing, not integers, or do not pair up."""
    if found.offsets_at is None or found.counts_at is None:
        return None
    offs, counts = integers.at(start + found.offsets_at), integers.at(start + found.counts_at)
    if not offs or not counts or len(offs) != len(counts):
        return None
    return (offs[0] + counts[0] if len(offs) == 1 else
            max(o + c for o, c in zip(offs, counts, strict=True)))


def first_description(path: Path) -> DescriptionEntry:
    """The first page's ImageDescription entry; :class:`NoDescriptionError` if there is
    none, TiffStructureError if the file or its first IFD is damaged."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        lay, offset = _layout(fh, path)
        count_size = 8 if lay.bigtiff else 2
        head = _read(fh, offset, count_size, size)
        n = lay.count.unpack(head)[0] if head else 0
        body = _read(fh, offset + count_size, n * lay.entry_size, size) if 0 < n < 4096 else None
        if body is None:
            raise TiffStructureError(f"{path}: the first page's IFD is damaged")
        for i in range(n):
            entry = body[i * lay.entry_size:(i + 1) * lay.entry_size]
            if struct.unpack(lay.order + "H", entry[:2])[0] != _IMAGE_DESCRIPTION:
                continue
            fields_offset = offset + count_size + i * lay.entry_size + 2
            count = lay.offset.unpack(entry[4:12] if lay.bigtiff else entry[4:8])[0]
            inline = entry[12:20] if lay.bigtiff else entry[8:12]
            if count <= len(inline):
                return DescriptionEntry(fields_offset, inline[:count])
            ptr = lay.offset.unpack(inline)[0]
            return DescriptionEntry(fields_offset, _read(fh, ptr, count, size))
    raise NoDescriptionError(f"{path}: the first page has no ImageDescription entry")


def description_patch(path: Path, entry: DescriptionEntry, offset: int, value: bytes) -> Patch:
    """The bytes that make ``entry`` the ASCII description ``value``, written at ``offset``.

    One write of 10 (classic) or 18 (BigTIFF) bytes: the switch from the old description to
    the new one cannot be half done. A value short enough to sit in the entry itself (as
    TIFF requires of 4 or 8 bytes or fewer) is put there. ValueError if ``offset`` is beyond
    classic TIFF's 4 GiB.
    """
    with path.open("rb") as fh:
        lay, _ = _layout(fh, path)
    inline = 8 if lay.bigtiff else 4
    head = lay.kind_and_count.pack(_ASCII, len(value))
    if len(value) <= inline:
        return entry.fields_offset, head + value.ljust(inline, b"\0")
    try:
        packed = head + lay.offset.pack(offset)
    except struct.error:
        raise ValueError(f"{path}: a description at byte {offset} is beyond what a classic "
                         "(non-Big) TIFF can address") from None
    return entry.fields_offset, packed


def next_pointer_patch(path: Path, page: PageExtent, target: int) -> Patch:
    """The bytes that make ``target`` (an IFD offset, 0 for none) follow ``page``."""
    with path.open("rb") as fh:
        lay, _ = _layout(fh, path)
    return page.next_pointer_offset, lay.offset.pack(target)


def read_page_geometry(path: Path, pages: list[PageExtent]) -> list[PageGeometry | str]:
    """tifffile's reading of each page's IFD: its geometry, or why tifffile cannot read it.

    Each IFD is read at its own offset, so one damaged page does not hide the ones after it.
    A page counts as readable when tifffile finds an uncompressed image whose strips lie in
    the file and hold exactly its shape's bytes, which is what reading its pixels needs.
    ``pages`` are those :func:`intact_pages` found; tifffile reads one page of each distinct
    IFD (:func:`_same_ifds`) and alike pages share its answer, the same object: the pages of
    a run differ only in where their strips and tag values lie, and reading 100,000 alike
    IFDs one by one cost most of a large file's recovery.
    """
    firsts = _same_ifds(path, pages)
    distinct = sorted(set(firsts))
    read = dict(zip(distinct, _read_geometries(path, [pages[k] for k in distinct]),
                    strict=True))
    return [read[k] for k in firsts]


def _read_geometries(path: Path, pages: list[PageExtent]) -> list[PageGeometry | str]:
    """:func:`read_page_geometry` for each of ``pages``, each asked of tifffile."""
    # tifffile (with numpy, a tenth of a second to import) only when pages are read:
    # reading the first page's description, as ``validate`` does, needs neither
    import tifffile

    size = path.stat().st_size
    result: list[PageGeometry | str] = []
    try:
        tf = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, KeyError, struct.error) as exc:
        return [f"tifffile cannot open the file ({exc})"] * len(pages)
    with tf:
        for k, extent in enumerate(pages):
            tf.filehandle.seek(extent.ifd_offset)
            try:
                page = tifffile.TiffPage(tf, k)
                shape, dtype = tuple(int(n) for n in page.shape), page.dtype
                counts = [int(c) for c in page.databytecounts]
                ends = [int(o) + int(c) for o, c in
                        zip(page.dataoffsets, page.databytecounts, strict=True)]
            except (tifffile.TiffFileError, ValueError, KeyError, struct.error) as exc:
                result.append(f"tifffile cannot read its IFD ({exc})")
                continue
            if dtype is None or not shape:
                result.append("tifffile finds no image in it")
            elif page.compression != 1:
                result.append(f"tifffile reads it as compressed ({page.compression!r})")
            elif sum(counts) != dtype.itemsize * math.prod(shape):
                result.append(f"its strips hold {sum(counts)} bytes, not the "
                              f"{shape} {dtype} image its IFD declares")
            elif max(ends, default=size + 1) > size:
                result.append("its image data reach past the end of the file")
            else:
                result.append(PageGeometry(shape, str(dtype), sum(counts)))
    return result


def _same_ifds(path: Path, pages: list[PageExtent]) -> list[int]:
    """For each page, the first page whose IFD tifffile reads the same way.

    Two IFDs read the same when they hold the same entries and values, except where their
    image strips lie (:func:`intact_pages` has checked that
    each page's strips are inside the file) and where out-of-line values are stored (the
    values themselves are compared). A page whose IFD cannot be taken apart here is its
    own representative, so tifffile judges it alone; page 0 (which carries the description)
    is always its own.
    """
    firsts: list[int] = []
    with path.open("rb") as fh:
        lay, _ = _layout(fh, path)
        size = os.fstat(fh.fileno()).st_size
        layouts: dict[tuple[bytes, tuple[bytes, ...]], int] = {}
        last: _IfdLayout | None = None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            alike = _like_the_second(path, buf, lay, pages, size)
            for k, page in enumerate(pages):
                if alike[k]:
                    firsts.append(firsts[1])
                    continue
                raw = buf[page.ifd_offset:page.next_pointer_offset]
                if last is None or not last.matches(raw):
                    last = _IfdLayout.parse(raw, lay) if k else None
                values = None if last is None else last.values(buf, raw, size)
                if last is None or values is None:
                    firsts.append(k)
                    continue
                firsts.append(layouts.setdefault((last.template, tuple(values)), k))
    return firsts


#: how many IFDs :func:`_like_the_second` compares at a time (bounds its index arrays)
_CHUNK = 8192


def _like_the_second(path: Path, buf: mmap.mmap, lay: IfdFormat, pages: list[PageExtent],
                     size: int) -> list[bool]:
    """For each page, True when :func:`_same_ifds` would find its IFD read like page 1's: the
    same bytes but where its strips and out-of-line values lie, and the same values there.

    The pages of a run are nearly all alike, and comparing them one by one in Python cost
    more than walking the chain; numpy compares them all at once. Pages 0 and 1 are False
    (page 0 is always its own representative, page 1 is the one compared with), and so is
    any page that is not alike: :func:`_same_ifds` judges those one by one.
    """
    if len(pages) < 3:
        return [False] * len(pages)
    raw = buf[pages[1].ifd_offset:pages[1].next_pointer_offset]
    second = _IfdLayout.parse(raw, lay)
    values = None if second is None else second.values(buf, raw, size)
    if second is None or values is None:
        return [False] * len(pages)
    import numpy as np  # as tifffile in _read_geometries: only when pages are read

    data = np.memmap(path, dtype=np.uint8, mode="r")
    starts = np.array([page.ifd_offset for page in pages], dtype=np.int64)
    ends = np.array([page.next_pointer_offset for page in pages], dtype=np.int64)
    candidates = np.flatnonzero(ends - starts == second.length)
    candidates = candidates[candidates > 1]
    fixed = np.concatenate([np.arange(a, b) for a, b in second.spans])
    template = np.frombuffer(second.template, dtype=np.uint8)
    pointer = np.dtype(f"{lay.order}u{struct.calcsize(lay.offset_fmt)}")
    alike = np.zeros(len(pages), dtype=bool)
    for chunk in range(0, len(candidates), _CHUNK):
        rows = candidates[chunk:chunk + _CHUNK]
        at = starts[rows][:, None]
        same = (data[at + fixed] == template).all(axis=1)
        for (where, nbytes), value in zip(second.pointers, values, strict=True):
            offsets = data[at + np.arange(where, where + pointer.itemsize)].view(pointer)[:, 0]
            inside = offsets <= size - nbytes
            found = data[np.where(inside, offsets, 0).astype(np.int64)[:, None]
                         + np.arange(nbytes)]
            same &= inside & (found == np.frombuffer(value, dtype=np.uint8)).all(axis=1)
        alike[rows] = same
    return list(alike.tolist())


@dataclass(frozen=True)
class _IfdLayout:
    """Where an IFD's bytes vary from page to page of one run: the value fields of its
    strip offsets and of its out-of-line values (``pointers``: each one's position in the
    IFD and the size of what it points at). ``template`` is the IFD without them."""

    length: int
    spans: tuple[tuple[int, int], ...]
    pointers: tuple[tuple[int, int], ...]
    pointer_format: str
    template: bytes

    @classmethod
    def parse(cls, raw: bytes, lay: IfdFormat) -> _IfdLayout | None:
        """The layout of one IFD's bytes (entry count and entries), or None if its entries
        use a type tifffile does not know (tifffile then judges the page alone)."""
        import tifffile  # imported when needed, as in _read_geometries

        order, entry_size = lay.order, lay.entry_size
        count_size, inline = struct.calcsize(lay.count_fmt), struct.calcsize(lay.offset_fmt)
        head_format = order + "HH" + lay.offset_fmt
        spans: list[tuple[int, int]] = []
        pointers: list[tuple[int, int]] = []
        start = 0
        for at in range(count_size, len(raw) - entry_size + 1, entry_size):
            tag, kind, count = struct.unpack(head_format, raw[at:at + entry_size - inline])
            item = tifffile.TIFF.DATA_FORMATS.get(kind)
            if item is None:
                return None
            value_at = at + entry_size - inline
            if tag == STRIP_OFFSETS:
                pass  # where the strips lie: intact_pages checked them
            elif struct.calcsize(order + item) * count > inline:
                pointers.append((value_at, struct.calcsize(order + item) * count))
            else:
                continue
            spans.append((start, value_at))
            start = value_at + inline
        spans.append((start, len(raw)))
        template = b"".join(raw[a:b] for a, b in spans)
        return cls(len(raw), tuple(spans), tuple(pointers), order + lay.offset_fmt, template)

    def matches(self, raw: bytes) -> bool:
        """True if ``raw`` has this layout and the same fixed bytes."""
        return (len(raw) == self.length
                and b"".join(raw[a:b] for a, b in self.spans) == self.template)

    def values(self, buf: mmap.mmap, raw: bytes, size: int) -> list[bytes] | None:
        """The out-of-line values of ``raw`` (this layout) in the mapped file ``buf``, or
        None if one is not in the file."""
        found: list[bytes] = []
        for at, nbytes in self.pointers:
            offset = struct.unpack_from(self.pointer_format, raw, at)[0]
            if offset + nbytes > size:
                return None
            found.append(buf[offset:offset + nbytes])
        return found


def end_chain_after(path: Path, pages: list[PageExtent], keep: int) -> None:
    """Make page ``keep - 1`` the last page of the chain (``keep`` >= 1)."""
    if not 1 <= keep <= len(pages):
        raise ValueError(f"{path}: cannot keep {keep} of {len(pages)} intact pages")
    with path.open("r+b") as fh:
        lay, _ = _layout(fh, path)
        fh.seek(pages[keep - 1].next_pointer_offset)
        fh.write(lay.offset.pack(0))


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
