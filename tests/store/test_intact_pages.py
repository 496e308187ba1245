"""The page walk recovery starts from: every intact page of a long file, and its progress.

Ground truth: the pages tifffile writes and where tifffile itself finds their IFDs.
"""

from __future__ import annotations

import functools
import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile

from nbo_recorder.store import tiff_pages
from nbo_recorder.store.tiff_pages import (
    PROGRESS_EVERY,
    IfdFormat,
    PageGeometry,
    intact_pages,
    read_page_geometry,
)

PAGES = 2 * PROGRESS_EVERY + 500


def _write(path: Path, bigtiff: bool, byteorder: str) -> list[int]:
    """PAGES small pages, each with its own value; where tifffile finds their IFDs."""
    with tifffile.TiffWriter(path, bigtiff=bigtiff, byteorder=byteorder) as tw:
        for i in range(PAGES):
            tw.write(np.full((4, 5), i, dtype=np.uint16), contiguous=False, metadata=None)
    with tifffile.TiffFile(path) as tf:
        return [page.offset for page in tf.pages]


@pytest.mark.parametrize(("bigtiff", "byteorder"), [(False, ">"), (True, "<")],
                         ids=["classic-big-endian", "bigtiff-little-endian"])
def test_every_page_is_found_and_progress_is_reported(tmp_path, bigtiff, byteorder):
    path = tmp_path / "long.tif"
    offsets = _write(path, bigtiff, byteorder)
    calls: list[int] = []
    pages = intact_pages(path, calls.append)
    assert [p.ifd_offset for p in pages] == offsets
    assert calls == [PROGRESS_EVERY, 2 * PROGRESS_EVERY, PAGES]

    # the last page's pixels cut off: it is not intact, and progress ends one page earlier
    os.truncate(path, pages[-1].data_end - 1)
    calls.clear()
    assert [p.ifd_offset for p in intact_pages(path, calls.append)] == offsets[:-1]
    assert calls == [PROGRESS_EVERY, 2 * PROGRESS_EVERY, PAGES - 1]


@pytest.mark.parametrize("bigtiff", [False, True], ids=["classic", "bigtiff"])
def test_a_page_with_another_out_of_line_value_is_read_on_its_own(tmp_path, bigtiff):
    """Alike pages share one reading (the same object); a page whose IFD differs only in an
    out-of-line value, of the same length, is read by tifffile itself."""
    path = tmp_path / "values.tif"
    other = 6
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as tw:
        for i in range(10):
            value = "another value, 24 bytes" if i == other else "the same value, 24 bytes"
            tw.write(np.full((4, 5), i, dtype=np.uint16), contiguous=False, metadata=None,
                     extratags=[(65000, "s", 0, value[:23], True)])
    geometries = read_page_geometry(path, intact_pages(path))
    assert all(g == PageGeometry((4, 5), "uint16", 40) for g in geometries)
    assert [k for k, g in enumerate(geometries) if g is not geometries[1]] == [0, other]


@pytest.mark.parametrize("kind", ["CLASSIC_LE", "CLASSIC_BE", "BIG_LE", "BIG_BE"])
def test_ifd_format_encodes_as_tifffile_does(kind):
    """The page walk and the page repeater read and write IFDs through IfdFormat: its
    structs must be tifffile's own for each byte order and for classic TIFF and BigTIFF."""
    theirs = getattr(tifffile.TIFF, kind)
    ours = IfdFormat(theirs.byteorder, theirs.version == 43)
    assert ours.count.format == theirs.tagnoformat and ours.count.size == theirs.tagnosize
    assert ours.offset.format == theirs.offsetformat and ours.offset.size == theirs.offsetsize
    assert ours.entry.format == theirs.tagformat1 + theirs.tagformat2[1:]
    # an entry after its tag: its field type, then its count
    assert ours.kind_and_count.format == theirs.tagformat1[:2] + theirs.offsetformat[1:]
    assert ours.entry.size == ours.entry_size == theirs.tagsize


_DAMAGED = 300


def _pages_as_tifffile_wrote_them(path: io.BytesIO) -> list[tuple[int, int, int, int]]:
    """Each page's IFD offset, where its next-IFD pointer is, where its data end and its next
    IFD, as tifffile reads the undamaged file."""
    with tifffile.TiffFile(path) as tf:
        fmt = tf.tiff
        pages = [(page.offset, page.offset + fmt.tagnosize + len(page.tags) * fmt.tagsize,
                  page.dataoffsets[0] + page.databytecounts[0]) for page in tf.pages]
    return [(*page, after[0]) for page, after in zip(pages, [*pages[1:], (0,)], strict=True)]


@pytest.mark.parametrize(("bigtiff", "byteorder"), [(False, "<"), (True, ">")],
                         ids=["classic-little-endian", "bigtiff-big-endian"])
@pytest.mark.parametrize("damage", ["cut", "loop", "end", "strip", "entries", "tag"])
@pytest.mark.parametrize("at", [0, 1, 2, 3, 17, 49, 113, 150, _DAMAGED - 2, _DAMAGED - 1])
def test_alike_pages_are_walked_as_one_by_one_up_to_any_damage(tmp_path, bigtiff, byteorder,
                                                               damage, at):
    """A long run's alike pages are checked many at a time: damage to any one of them, at
    any place in such a stretch or at its edges, ends the intact pages where it would
    page by page. Ground truth: tifffile's reading of the file before the damage."""
    path = tmp_path / "alike.tif"
    data, truth = _alike_file(bigtiff, byteorder)
    path.write_bytes(data)
    fmt = IfdFormat(byteorder, bigtiff)
    ifd, pointer, data_end, _ = truth[at]
    expected = truth
    with path.open("r+b") as fh:
        if damage == "cut":  # the file ends inside the page's image data
            fh.truncate(data_end - 1)
            expected = truth[:at]
        elif damage in ("loop", "end"):  # the page points back to an earlier one, or to none
            target = truth[at // 2][0] if damage == "loop" else 0
            fh.seek(pointer)
            fh.write(fmt.offset.pack(target))
            expected = [*truth[:at], (ifd, pointer, data_end, target)]
        elif damage == "strip":  # its strip reaches past the end of the file
            entry = _entry_of(fh, fmt, ifd, 279)
            fh.seek(entry + 4 + fmt.offset.size)
            kind = fmt.kind_and_count.unpack(_read_at(fh, entry + 2, fmt.kind_and_count.size))
            fh.write(struct.pack(byteorder + {3: "H", 4: "I", 16: "Q"}[kind[0]],
                                 {3: 0xFFFF, 4: 0xFFFFFFF0, 16: 1 << 40}[kind[0]]))
            expected = truth[:at]
        elif damage == "entries":  # an IFD of no entries
            fh.seek(ifd)
            fh.write(fmt.count.pack(0))
            expected = truth[:at]
        else:  # a tag of another code: still an intact page, and a stretch ends and resumes
            entry = _entry_of(fh, fmt, ifd, 256)
            fh.seek(entry)
            fh.write(struct.pack(byteorder + "H", 65001))
    assert intact_pages(path) == expected


@functools.cache
def _alike_file(bigtiff: bool, byteorder: str) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """A file of _DAMAGED pages as tifffile writes them, alike but for their values, and
    its pages as tifffile reads them (:func:`_pages_as_tifffile_wrote_them`)."""
    out = io.BytesIO()
    with tifffile.TiffWriter(out, bigtiff=bigtiff, byteorder=byteorder) as tw:
        for i in range(_DAMAGED):
            tw.write(np.full((3, 4), i, dtype=np.uint16), contiguous=False, metadata=None)
    out.seek(0)
    return out.getvalue(), _pages_as_tifffile_wrote_them(out)


def _read_at(fh, offset: int, size: int) -> bytes:
    fh.seek(offset)
    return fh.read(size)


def _entry_of(fh, fmt: IfdFormat, ifd: int, tag: int) -> int:
    """Where the entry of ``tag`` in the IFD at ``ifd`` is."""
    n = fmt.count.unpack(_read_at(fh, ifd, fmt.count.size))[0]
    for k in range(n):
        entry = ifd + fmt.count.size + k * fmt.entry_size
        if struct.unpack(fmt.order + "H", _read_at(fh, entry, 2))[0] == tag:
            return entry
    raise AssertionError(f"no tag {tag} at IFD {ifd}")


@pytest.mark.parametrize("damage_at", [None, 150, _DAMAGED - 1])
def test_blocks_of_the_largest_size_walk_as_one_by_one(tmp_path, monkeypatch, damage_at):
    """Past its largest block a stretch goes on in blocks of that size (a file of millions of
    pages is walked in bounded memory): here the largest block is made 32 pages."""
    monkeypatch.setattr(tiff_pages, "_LAST_BLOCK", 32)
    path = tmp_path / "blocks.tif"
    data, truth = _alike_file(False, "<")
    path.write_bytes(data)
    if damage_at is not None:  # the page's IFD has no entries: the pages end before it
        with path.open("r+b") as fh:
            fh.seek(truth[damage_at][0])
            fh.write(IfdFormat("<", False).count.pack(0))
        truth = truth[:damage_at]
    assert intact_pages(path) == truth


def test_a_strip_whose_offset_and_count_add_up_past_4_gib_ends_the_pages(tmp_path):
    """In a classic TIFF of 3.5 GiB (a sparse file here), a page whose strip offset and byte
    count are each inside the file but add up to more than it (and than 2**32) is not
    intact: the sum is not taken in 32 bits."""
    path = tmp_path / "big.tif"
    data, truth = _alike_file(False, "<")
    path.write_bytes(data)
    size = 3_500_000_000
    os.truncate(path, size)  # a hole after the pages: they stay where they are
    fmt = IfdFormat("<", False)
    damaged = 100
    with path.open("r+b") as fh:
        for tag, value in ((273, 3_000_000_000), (279, 2_000_000_000)):
            entry = _entry_of(fh, fmt, truth[damaged][0], tag)
            kind, count = fmt.kind_and_count.unpack(_read_at(fh, entry + 2, 6))
            assert (kind, count) == (4, 1)  # one LONG, as tifffile writes it
            fh.seek(entry + 8)
            fh.write(struct.pack("<I", value))
    assert intact_pages(path) == truth[:damaged]
