"""Disk full and write errors: the writer and journal recover from a refused write."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from recorder import tiff_writer
from recorder.journal import JournalWriter, read_journal
from recorder.tiff_writer import TiffPageWriter, WriterError

FRAME_BYTES = 512 * 512 * 2  # the demo camera's frames


class Volume:
    """How much of the TIFF file a stub volume accepts, and when space comes back."""

    def __init__(self, limit: int | None = None, free_after_refusals: int | None = None):
        self.limit = limit
        self.refusals = 0
        self.free_after_refusals = free_after_refusals

    def refuse(self) -> None:
        self.refusals += 1
        if self.free_after_refusals is not None and self.refusals >= self.free_after_refusals:
            self.limit = None  # the user freed space


@pytest.fixture
def volume(monkeypatch: pytest.MonkeyPatch) -> Volume:
    """Put every OME-TIFF the writer opens on a stub volume the test controls."""
    vol = Volume()

    class VolumeFile(io.FileIO):
        def write(self, b: Any) -> int:
            data = memoryview(b).cast("B")
            if vol.limit is not None and self.tell() + len(data) > vol.limit:
                room = max(vol.limit - self.tell(), 0)
                if room:
                    return super().write(data[:room])  # a short write, as a full disk gives
                vol.refuse()
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    def write_array(self: Any, data: np.ndarray, dtype: Any = None) -> int:
        # numpy's tofile writes through the file descriptor, past any Python-level file
        # object, so pixel data are routed through the stub's write like everything else
        data = np.ascontiguousarray(data, dtype)
        view = memoryview(data).cast("B")
        while view:
            view = view[self._fh.write(view):]
        return data.nbytes

    monkeypatch.setattr(tiff_writer, "open",
                        lambda p, mode, buffering=-1: VolumeFile(p, mode), raising=False)
    monkeypatch.setattr(tifffile.FileHandle, "write_array", write_array)
    return vol


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 4096, (64, 48), dtype=np.uint16) for _ in range(n)]


def _pixels(path: Path) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tf:
        return [p.asarray() for p in tf.pages]


# --- the writer: drop the torn page, append after the intact ones ------------------------

@pytest.mark.parametrize("bigtiff", [False, True])
@pytest.mark.parametrize("room", [0, 7, 150, 3000, 64 * 48 * 2 - 1])
def test_writer_reopens_after_a_torn_page_and_appends(volume, tmp_path, bigtiff, room):
    frames = _frames(6)
    path = tmp_path / "w.ome.tif"
    w = TiffPageWriter(path, bigtiff=bigtiff)
    for f in frames[:3]:
        w.write(f)
    volume.limit = path.stat().st_size + room
    with pytest.raises(WriterError, match="No space left on device"):
        w.write(frames[3])
    with pytest.raises(WriterError, match="writer is closed"):  # nothing after a torn page
        w.write(frames[3])
    volume.limit = None
    w.reopen()
    assert w.pages == 3
    for f in frames[3:]:
        w.write(f)
    w.finalise("<OME/>")
    got = _pixels(path)
    assert len(got) == 6
    assert all(np.array_equal(a, b) for a, b in zip(got, frames, strict=True))
    with tifffile.TiffFile(path) as tf:
        assert tf.pages[0].description == "<OME/>"
        assert tf.is_bigtiff == bigtiff


def test_writer_reopens_when_even_the_first_page_failed(volume, tmp_path):
    frames = _frames(2)
    path = tmp_path / "first.ome.tif"
    volume.limit = 40
    w = TiffPageWriter(path, bigtiff=False)
    with pytest.raises(WriterError) as err:
        w.write(frames[0])
    assert err.value.errno == errno.ENOSPC
    assert str(path) in str(err.value) and "bytes free on its volume" in str(err.value)
    volume.limit = None
    w.reopen()
    assert w.pages == 0
    for f in frames:
        w.write(f)
    w.finalise("<OME/>")
    assert [a.tolist() for a in _pixels(path)] == [f.tolist() for f in frames]


def test_a_journal_line_the_disk_cut_short_is_taken_back(tmp_path, monkeypatch):
    """A short write then ENOSPC must not leave half a line inside the journal."""
    from recorder import journal as journal_module
    from recorder.documents import FrameRecord, RunStart, StateSnapshot

    jpath = tmp_path / "x.ome.tif.nbo-journal"
    j = JournalWriter(jpath)
    j.start(RunStart(started_at="2026-11-23T10:00:00+00:00", profile={}, sequence={},
                     width=4, height=4, dtype="uint16", camera="Camera", versions={}))
    snap = StateSnapshot(uid=0, elapsed_s=0.0, trigger="test", values={("Camera", "Gain"): "2"})

    def record(i: int) -> FrameRecord:
        return FrameRecord(index=i, p=0, t=i, c=0, z=0, channel=None, elapsed_ms=float(i),
                           exposure_ms=10.0, x_um=None, y_um=None, z_um=None,
                           pixel_size_um=1.0, snapshot=0)

    j.frame(record(0), snap)
    real_write = os.write
    calls = {"n": 0}

    def full_disk_write(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data)[:5])  # part of the line fits
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module.os, "write", full_disk_write)
    with pytest.raises(OSError, match="No space left"):
        j.frame(record(1), snap)
    monkeypatch.setattr(journal_module.os, "write", real_write)
    j.frame(record(1), snap)  # the retry
    j.frame(record(1), snap)  # a second retry of a frame already journaled adds nothing
    j.frame(record(2), snap)
    j.close()
    run = read_journal(jpath)
    assert [f.index for f in run.frames] == [0, 1, 2]
