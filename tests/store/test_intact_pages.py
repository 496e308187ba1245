"""The page walk recovery starts from: every intact page of a long file, and its progress.

Ground truth: the pages tifffile writes and where tifffile itself finds their IFDs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

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
