"""The page walk recovery starts from: every intact page of a long file, and its progress.

Ground truth: the pages tifffile writes and where tifffile itself finds their IFDs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from nbo_recorder.store.tiff_pages import PROGRESS_EVERY, intact_pages

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
