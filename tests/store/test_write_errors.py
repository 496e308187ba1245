"""Disk full and write errors: stop (default) or pause until the frame can be written.

Two kinds of full disk:

* a stub volume (always run): the TIFF file object refuses bytes past a limit, with a
  short write first, like a real full volume; the test decides when space comes back;
* a real tmpfs of a few MiB (run where mounting is permitted, e.g. as root on this
  machine), filled by the acquisition itself, with space freed by deleting a ballast file,
  the way a user would.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import useq

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.cli.main import parse_args
from nbo_recorder.store import tiff_writer
from nbo_recorder.store.journal import JournalWriter, journal_path, read_journal
from nbo_recorder.store.tiff_writer import TiffPageWriter, WriterError
from tests.helpers import DEMO_PROFILE, annotations, load

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


def _sha1(pixels: np.ndarray) -> str:
    return hashlib.sha1(pixels.tobytes()).hexdigest()


def _page_hashes(path: Path) -> list[str]:
    """SHA-1 of every page's pixels, in file order."""
    return [_sha1(a) for a in _pixels(path)]


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


def test_a_failed_background_flush_is_a_write_error_and_reopen_recovers(tmp_path,
                                                                       monkeypatch):
    """The write-behind thread syncs what was written; a sync the disk refuses (an I/O
    error, space found missing on allocation) must not pass silently: the next write fails
    naming the file, and after reopen() the frames already written are still there."""
    from nbo_recorder.store import write_behind

    frames = _frames(4)
    path = tmp_path / "flush.ome.tif"
    refused = threading.Event()
    real_sync = write_behind._datasync

    def failing_sync(fd: int) -> None:
        refused.set()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(write_behind, "_datasync", failing_sync)
    w = TiffPageWriter(path, bigtiff=False)
    w.write(frames[0])
    assert refused.wait(5), "the thread syncs what was written without being asked"
    time.sleep(0.05)
    with pytest.raises(WriterError) as err:
        w.write(frames[1])
    assert err.value.errno == errno.EIO
    assert f"flushing {path} to disk failed" in str(err.value)
    monkeypatch.setattr(write_behind, "_datasync", real_sync)
    w.reopen()
    assert w.pages == 1
    for f in frames[1:]:
        w.write(f)
    w.finalise("<OME/>")
    assert [a.tolist() for a in _pixels(path)] == [f.tolist() for f in frames]


def test_a_journal_line_the_disk_cut_short_is_taken_back(tmp_path, monkeypatch):
    """A short write then ENOSPC must not leave half a line inside the journal."""
    from nbo_recorder.capture.documents import FrameRecord, RunStart, StateSnapshot
    from nbo_recorder.store import journal as journal_module

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


# --- the recorder: pause, retry, resume -------------------------------------------------

def _timelapse(loops: int = 8) -> useq.MDASequence:
    # an interval, so the acquisition is still under way when the disk fills
    return useq.MDASequence(time_plan={"interval": 0.15, "loops": loops})


def _record_with_hashes(core: Any, sink: Any, seq: useq.MDASequence) -> list[str]:
    acquired: list[str] = []

    def keep(img: np.ndarray, *_: Any) -> None:
        acquired.append(_sha1(img))

    core.mda.events.frameReady.connect(keep)
    try:
        core.mda.run(seq, output=sink)
    finally:
        core.mda.events.frameReady.disconnect(keep)
    return acquired


def _status(ome: Any) -> dict[str, str]:
    return next(a for a in annotations(ome).values() if "status" in a)


def test_pause_holds_the_acquisition_until_space_is_back(demo_core, tmp_path, volume,
                                                         ome_schema):
    out = tmp_path / "paused.ome.tif"
    volume.limit = 3 * FRAME_BYTES + FRAME_BYTES // 2  # full half-way through frame 3
    volume.free_after_refusals = 10  # the user frees space after ~0.5 s of retries
    toggles: list[tuple[float, bool]] = []
    starts: list[float] = []
    ev = demo_core.mda.events
    ev.sequencePauseToggled.connect(lambda paused: toggles.append((time.monotonic(), paused)))
    ev.eventStarted.connect(lambda _: starts.append(time.monotonic()))
    sink = Recorder(demo_core, DEMO_PROFILE, on_write_error="pause",
                    write_retry_s=0.05).sink(out)
    # what a progress display on another thread sees as the pause starts and ends
    progress_paused: list[bool] = []
    ev.sequencePauseToggled.connect(lambda _: progress_paused.append(sink.progress.paused))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        acquired = _record_with_hashes(demo_core, sink, _timelapse())
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("acquisition paused:") and "No space left" in m and str(out) in m
               for m in messages)
    assert progress_paused[0] is True and progress_paused[-1] is False
    assert sink.progress.frames_written == 8 and not sink.progress.paused
    assert any("acquisition resumed" in m for m in messages)
    assert toggles[0][1] is True and toggles[-1][1] is False
    assert volume.refusals == 10
    # the runner itself was held: pymmcore-plus may start one event it was already
    # sleeping towards when the pause came, none after that
    held_from, held_to = toggles[0][0], toggles[-1][0]
    assert held_to - held_from > 0.4
    assert sum(held_from < t < held_to for t in starts) <= 1
    sink.raise_if_failed()  # a pause that ended in a written frame is not a failure

    xml, ome = load(out)
    ome_schema.validate(xml)
    assert not journal_path(out).exists()
    written = _page_hashes(out)
    assert len(acquired) == 8 and written == acquired  # no frame lost, none duplicated
    assert len(ome.images[0].pixels.planes) == 8
    status = _status(ome)
    assert status["status"] == "complete"
    assert status["pause 1"].startswith("paused ") and "before frame 3 was written" in \
        status["pause 1"] and "No space left" in status["pause 1"]


def test_disk_full_stops_cleanly_and_keeps_what_was_written(demo_core, tmp_path, volume,
                                                            ome_schema):
    out = tmp_path / "full.ome.tif"
    volume.limit = 3 * FRAME_BYTES + FRAME_BYTES // 2
    sink = Recorder(demo_core, DEMO_PROFILE).sink(out)  # on_write_error="stop" by default
    with pytest.warns(RuntimeWarning, match="acquisition stopped"):
        acquired = _record_with_hashes(demo_core, sink, useq.MDASequence(
            time_plan={"interval": 0, "loops": 10}))
    message = " ".join(sink.errors)
    assert str(out) in message and "No space left" in message
    assert "bytes" in message and "after " in message
    assert demo_core.mda.is_running() is False
    xml, ome = load(out)
    ome_schema.validate(xml)
    written = _page_hashes(out)
    assert len(written) == 3 and written == acquired[:3]
    assert len(ome.images[0].pixels.planes) == 3
    assert _status(ome)["status"].startswith("incomplete: error")


@pytest.mark.parametrize("how", ["canceled", "max_pause_s", "stop_waiting"])
def test_a_pause_that_never_gets_space_ends_like_stop(demo_core, tmp_path, volume, how,
                                                      ome_schema):
    out = tmp_path / f"{how}.ome.tif"
    volume.limit = 2 * FRAME_BYTES + 1000  # never freed
    kwargs: dict[str, Any] = {"max_pause_s": 0.3} if how == "max_pause_s" else {}
    sink = Recorder(demo_core, DEMO_PROFILE, on_write_error="pause", write_retry_s=0.05,
                    **kwargs).sink(out)
    end_pause = {"canceled": demo_core.mda.cancel, "stop_waiting": sink.stop_waiting}.get(how)
    if end_pause is not None:
        def end_soon(paused: bool) -> None:
            if paused:
                threading.Timer(0.3, end_pause).start()

        demo_core.mda.events.sequencePauseToggled.connect(end_soon)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        acquired = _record_with_hashes(demo_core, sink, _timelapse())
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("acquisition paused:") for m in messages)
    assert any(m.startswith("acquisition stopped:") for m in messages)
    assert demo_core.mda.is_running() is False
    error = " ".join(sink.errors)
    assert str(out) in error and "No space left" in error and "bytes" in error
    assert "gave up after a" in error
    assert {"canceled": "the acquisition was canceled", "max_pause_s": "max_pause_s (0.3 s)",
            "stop_waiting": "stop_waiting()"}[how] in error

    xml, ome = load(out)  # finished from the journal, as after `stop`
    ome_schema.validate(xml)
    written = _page_hashes(out)
    assert 1 <= len(written) < 8 and written == acquired[:len(written)]
    assert len(ome.images[0].pixels.planes) == len(written)
    assert _status(ome)["status"].startswith("incomplete: error")


def test_a_pause_on_the_last_frame_waits_beyond_the_last_event(demo_core, tmp_path, volume):
    """The runner has no event left to hold, but the last frame is still worth keeping."""
    out = tmp_path / "last.ome.tif"
    volume.limit = 3 * FRAME_BYTES + FRAME_BYTES // 2  # the 4th and last frame does not fit
    volume.free_after_refusals = 6
    sink = Recorder(demo_core, DEMO_PROFILE, on_write_error="pause", write_retry_s=0.05).sink(out)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        acquired = _record_with_hashes(demo_core, sink, _timelapse(loops=4))
    sink.raise_if_failed()
    assert volume.refusals == 6
    written = _page_hashes(out)
    assert len(written) == 4 and written == acquired
    _, ome = load(out)
    status = _status(ome)
    assert status["status"] == "complete" and "before frame 3 was written" in status["pause 1"]


def test_write_error_options_are_checked(demo_core):
    with pytest.raises(ValueError, match="write_retry_s"):
        Recorder(demo_core, DEMO_PROFILE, write_retry_s=0)
    with pytest.raises(ValueError, match="on_write_error must be 'stop' or 'pause'"):
        Recorder(demo_core, DEMO_PROFILE, on_write_error="retry")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_pause_s"):
        Recorder(demo_core, DEMO_PROFILE, max_pause_s=float("nan"))


def test_acquire_takes_the_write_error_options():
    args = parse_args(
        ["acquire", "--mm-config", "demo", "--profile", "p.yaml", "--sequence", "s.yaml",
         "--out", "o.ome.tif", "--on-write-error", "pause", "--write-retry-s", "2.5",
         "--max-pause-s", "600"])
    assert (args.on_write_error, args.write_retry_s, args.max_pause_s) == ("pause", 2.5, 600.0)
    defaults = parse_args(
        ["acquire", "--mm-config", "demo", "--profile", "p.yaml", "--sequence", "s.yaml",
         "--out", "o.ome.tif"])
    assert defaults.on_write_error == "stop" and defaults.max_pause_s is None


# --- a real full filesystem ---------------------------------------------------------------

@pytest.fixture
def small_volume(tmpfs: Any) -> Path:
    """An 8 MiB tmpfs, or a skip where this machine does not allow mounting one."""
    return tmpfs("8m")


@pytest.mark.parametrize("mode", ["stop", "pause"])
def test_a_really_full_filesystem(demo_core, small_volume, mode, ome_schema):
    ballast = small_volume / "ballast.bin"
    ballast.write_bytes(b"\0" * (6 * 2**20))  # leaves room for about 3.5 frames
    out = small_volume / f"{mode}.ome.tif"
    if mode == "pause":
        def free_space_soon(paused: bool) -> None:
            if paused:
                threading.Timer(0.3, ballast.unlink, kwargs={"missing_ok": True}).start()

        demo_core.mda.events.sequencePauseToggled.connect(free_space_soon)
    sink = Recorder(demo_core, DEMO_PROFILE, on_write_error=mode, write_retry_s=0.1).sink(out)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        acquired = _record_with_hashes(demo_core, sink, _timelapse())
    xml, ome = load(out)
    ome_schema.validate(xml)
    written = _page_hashes(out)
    status = _status(ome)
    if mode == "stop":
        assert "No space left on device" in " ".join(sink.errors)
        assert 1 <= len(written) < 8 and written == acquired[:len(written)]
        assert status["status"].startswith("incomplete: error")
    else:
        sink.raise_if_failed()
        assert len(written) == 8 and written == acquired
        assert status["status"] == "complete" and "No space left" in status["pause 1"]
