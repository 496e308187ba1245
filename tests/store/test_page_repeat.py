"""Pages the writer repeats are the pages tifffile writes, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from nbo_recorder.store.tiff_writer import TiffPageWriter, placeholder

U16 = ((64, 48), np.uint16)
CASES: dict[str, list[tuple[tuple[int, int], Any]]] = {
    "uint16": [U16] * 6,
    # odd byte counts: pages start on odd offsets (tifffile pads) and their data at
    # different distances from the next 16-byte boundary
    "odd uint8": [((7, 5), np.uint8)] * 7,
    "float32": [((9, 13), np.float32)] * 5,
    # a new frame size or type goes back to tifffile, which links after the repeated pages
    "size and type change": [U16] * 3 + [((4, 6), np.uint16)] * 3 + [U16] * 2
                            + [((64, 48), np.uint8)] * 2,
    # positions of two frame sizes, taken in turn: each size's pages repeat its own
    "sizes in turn": [U16, ((4, 6), np.uint16)] * 5,
}


def _frames(spec: list[tuple[tuple[int, int], Any]]) -> list[np.ndarray]:
    rng = np.random.default_rng(len(spec))
    return [rng.integers(0, 250, shape).astype(dtype) for shape, dtype in spec]


def _tifffile_alone(path: Path, frames: list[np.ndarray], bigtiff: bool) -> None:
    """The file tifffile writes with the writer's arguments, every page by itself."""
    with open(path, "wb", buffering=0) as fh, tifffile.TiffWriter(fh, bigtiff=bigtiff) as tw:
        for i, frame in enumerate(frames):
            tw.write(frame, description=placeholder("run1") if i == 0 else None,
                     metadata=None, contiguous=False, photometric="minisblack",
                     software="nbo-recorder")


@pytest.mark.parametrize("bigtiff", [False, True], ids=["classic", "bigtiff"])
@pytest.mark.parametrize("case", list(CASES))
def test_repeated_pages_are_tifffiles_bytes(tmp_path, monkeypatch, bigtiff, case):
    frames = _frames(CASES[case])
    calls = {"n": 0}
    real_write = tifffile.TiffWriter.write

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffWriter, "write", counting)
    ours = tmp_path / "ours.ome.tif"
    writer = TiffPageWriter(ours, bigtiff=bigtiff, run_id="run1")
    for frame in frames:
        writer.write(frame)
    writer.close()
    used_tifffile = calls["n"]
    monkeypatch.undo()
    theirs = tmp_path / "theirs.ome.tif"
    _tifffile_alone(theirs, frames, bigtiff)
    assert ours.read_bytes() == theirs.read_bytes()
    # tifffile wrote the first page (with the description) and one page of each kind of
    # frame for the later ones to repeat
    kinds = {(f.shape, f.dtype.str) for f in frames}
    assert used_tifffile == 1 + len(kinds)
    with tifffile.TiffFile(ours) as tf:
        assert len(tf.pages) == len(frames)
        for page, frame in zip(tf.pages, frames, strict=True):
            assert np.array_equal(page.asarray(), frame)


@pytest.mark.parametrize("bigtiff", [False, True], ids=["classic", "bigtiff"])
def test_pages_after_a_reopen_are_tifffiles_bytes_too(tmp_path, bigtiff):
    """After a write error the writer reopens the file in tifffile's append mode; the pages
    it then adds carry no description of tifffile's own (it adds OME-XML to a *.ome.tif)."""
    frames = _frames([U16] * 7)
    ours = tmp_path / "ours.ome.tif"
    writer = TiffPageWriter(ours, bigtiff=bigtiff, run_id="run1")
    for frame in frames[:4]:
        writer.write(frame)
    writer.reopen()
    assert writer.pages == 4
    for frame in frames[4:]:
        writer.write(frame)
    writer.close()
    theirs = tmp_path / "theirs.ome.tif"
    _tifffile_alone(theirs, frames, bigtiff)
    assert ours.read_bytes() == theirs.read_bytes()
    with tifffile.TiffFile(ours) as tf:
        assert [p.description for p in tf.pages[1:]] == [""] * 6
