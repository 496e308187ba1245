"""The per-run ``output=`` handler: captures state per frame and streams frames to disk.

Timing is the whole point, so the work is split between two threads:

* **On the acquisition thread**, directly connected to ``core.mda.events`` ahead of any other
  listener, the sink captures state: at sequence start and whenever a frame belongs to another
  channel, position, time point, or the state was hinted stale, it reads every bound property
  (:meth:`StateMonitor.refresh`); otherwise it re-reads only the silent properties the verify
  policy asks for (:class:`~nbo_recorder.capture.state.VerifyPolicy`) and takes a reference to
  the current snapshot. Changes whose events arrived after the frame's exposure ended (the
  core's ``imageSnapped``; the runner's frame time for hardware bursts cannot be related to
  the event clock, so there the state when the frame is handed over is taken) are left for
  the next frame (:meth:`StateMonitor.frame_state`). Either way it records a
  :class:`FrameRecord` while the hardware is still in the state the frame was taken in.
* **On pymmcore-plus's relay thread** (the sink is an ordinary ``frameReady`` handler passed
  as ``output=``), frames are appended to the TIFF and, at the end, the OME-XML is built from
  the documents and written. The acquisition never waits for the disk.

A path ending in ``.zarr`` (``exp1.ome.zarr``) is written as an OME-Zarr 0.5 store instead
(:mod:`nbo_recorder.store.zarr_writer`): the same journal, the same OME-XML (at
``OME/METADATA.ome.xml``), frames streamed into chunks.

When the disk refuses a frame (full, or an I/O error), the sink either stops the acquisition
(``on_write_error="stop"``, the default) or pauses it and retries the frame until the write
succeeds (``"pause"``); either way every frame already written stays in a valid file.
:attr:`RecordingSink.progress` tells another thread (a progress display) how far it has got.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import numpy as np

from nbo_recorder.capture.documents import (
    FrameRecord,
    FrameTable,
    Run,
    RunStop,
    StateSnapshot,
)
from nbo_recorder.capture.output_path import discard_empty_outputs
from nbo_recorder.capture.pause import WriteErrorHold
from nbo_recorder.capture.plan import count_events, planned_channels, run_start
from nbo_recorder.capture.policy import (
    DEFAULT_VERIFY,
    RecordingError,
    VerifyPolicy,
    WriteErrorPolicy,
)
from nbo_recorder.capture.preflight import SequenceError, sequence_problems
from nbo_recorder.capture.state import StateMonitor
from nbo_recorder.capture.versions import metadata_writer, now_iso, software_versions
from nbo_recorder.profile.calibration import stale_calibrations
from nbo_recorder.profile.model import Profile
from nbo_recorder.render.compliance import compliance_of_view
from nbo_recorder.render.layout import repeated_time_points
from nbo_recorder.render.nbo import build_nbo_xml
from nbo_recorder.render.nbo_checks import study_problems
from nbo_recorder.render.ome import build_ome_xml
from nbo_recorder.store.formats import is_zarr_path
from nbo_recorder.store.journal import JournalWriter, journal_path
from nbo_recorder.store.recovery import recover
from nbo_recorder.store.tiff_writer import TiffPageWriter, WriterError, needs_bigtiff
from nbo_recorder.vocabulary import Unknown

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pymmcore_plus import CMMCorePlus
    from pymmcore_plus.metadata import FrameMetaV1, SummaryMetaV1
    from useq import MDAEvent, MDASequence

    from nbo_recorder.store.zarr_writer import ZarrStoreWriter

_log = logging.getLogger(__name__)
_PRIORITY = 1000  # run before pymmcore-plus's relay enqueues the same signal
#: frames waiting for the writer (in memory and in the camera's circular buffer) beyond
#: this many bytes trigger a warning
BACKLOG_WARN_BYTES = 256 * 2**20
#: frames wait for the writer in memory up to this many bytes; beyond it the acquisition
#: thread waits for the writer (which delays the next snap)
BACKLOG_LIMIT_BYTES = 2048 * 2**20
#: ... and during a hardware-triggered burst up to this many (16 512² frames), or
#: ``BURST_BACKLOG_MIN_FRAMES`` frames if they are larger: beyond it, frames wait in the
#: camera's circular buffer, whose memory Micro-Manager has set aside already
BURST_BACKLOG_LIMIT_BYTES = 8 * 2**20
#: two frames keep the writer busy: with room for one, it idled while the next was taken
#: from the camera's buffer (2048² frames: 30 % less throughput)
BURST_BACKLOG_MIN_FRAMES = 2
#: a camera circular buffer fuller than this during a hardware burst triggers a warning
BUFFER_WARN_FRACTION = 0.5
_STOP_ON_WRITE_ERROR = WriteErrorPolicy()
#: seconds without a frame handed over before the finish stops waiting for the relay
_RELAY_STALL_S = 60.0


@dataclass(frozen=True)
class SinkProgress:
    """How far a :class:`RecordingSink` has got, for a progress display on another thread.

    ``frames_expected`` is None until the sequence starts, or when the sequence's length is
    not known in advance. ``backlog_bytes`` is the pixel data captured but not yet written;
    ``paused`` is True while a write error holds the acquisition (``on_write_error="pause"``).
    """

    frames_written: int
    frames_expected: int | None
    backlog_bytes: int
    paused: bool


class RecordingSink:
    """Records one MDA run. Pass it as ``output=`` to ``core.mda.run``."""

    def __init__(
        self, core: CMMCorePlus, profile: Profile, path: Path, *,
        stop_on_device_error: bool = False,
        write_errors: WriteErrorPolicy = _STOP_ON_WRITE_ERROR,
        verify: VerifyPolicy = DEFAULT_VERIFY,
    ) -> None:
        self.core = core
        self.profile = profile
        self.path = path
        self.stop_on_device_error = stop_on_device_error
        self.write_errors = write_errors
        self.zarr = is_zarr_path(path)
        if self.zarr:  # say which package is missing now, not at the first frame
            from nbo_recorder.store.zarr_writer import require_backend

            require_backend()
        self._hold = WriteErrorHold(core, write_errors, path)
        self.monitor = StateMonitor(core, profile.watched_properties(), verify,
                                    measured=profile.measured_properties())
        #: when the current event's snap ended (time.perf_counter), None before it or in bursts
        self._snapped_at: float | None = None
        #: the current event's frame key, from its start to its snap (None outside events)
        self._event_key: tuple[int, int, int, str | None] | None = None
        #: why the state was re-read when the current event's snap ended (None: not re-read)
        self._read_at_snap: str | None = None
        #: pixel size (µm) and exposure (ms) read when the current event's snap ended
        self._optics_at_snap: tuple[float, float] | None = None
        self._waited = False  # the runner waited for the coming event (awaitingEvent)
        self._event_started_at: float | None = None
        self.run: Run | None = None
        self.errors: list[str] = []
        #: frames the sequence planned that never arrived (reported, never hidden)
        self.dropped_frames = 0
        self.finished = threading.Event()
        self._writer: TiffPageWriter | ZarrStoreWriter | None = None
        self._journal: JournalWriter | None = None
        self._pending: deque[FrameRecord] = deque()
        self._captured = 0
        self._written = 0
        self._frame_bytes = 0
        self._warned_backlog = False
        self._warned_buffer = False
        self._buffer_capacity = 0
        self._last: tuple[int, int, int, str | None] | None = None
        self._canceled = False
        self._engine_failed = False
        self._checked: set[int] = set()
        self._first_frames_pending: set[tuple[int, int]] | None = None
        self._compliance_thread: threading.Thread | None = None
        self._expected: int | None = None
        self._handled = 0  # frames the relay handed to frameReady (written or not)
        self._finish_lock = threading.Lock()
        self._software = metadata_writer()
        self.monitor.attach()
        for signal, slot in self._connections():
            signal.connect(slot, priority=_PRIORITY)

    def _connections(self) -> list[tuple[Any, Callable[..., None]]]:
        """The core and runner signals this sink listens to, with its handler for each
        (one list for connecting and disconnecting, so no handler outlives the sink)."""
        ev = self.core.mda.events
        return [(self.core.events.imageSnapped, self._on_snapped),
                (ev.eventStarted, self._on_event_started),
                (ev.sequenceStarted, self._on_sequence_started),
                (ev.frameReady, self._on_frame),
                (ev.sequenceCanceled, self._on_canceled),
                (ev.sequenceFinished, self._on_finished),
                (ev.eventStarted, self._hold.keep_paused),
                (ev.awaitingEvent, self._hold.keep_paused),
                (ev.awaitingEvent, self._on_awaiting)]

    @property
    def progress(self) -> SinkProgress:
        """Frames written so far, of how many, and what waits for the disk.

        Safe to read from any thread at any rate: it only reads counters that each have a
        single writing thread, and takes no lock the per-frame path could wait on.
        """
        written = self._written
        waiting = max(self._captured - written, 0)
        return SinkProgress(frames_written=written, frames_expected=self._expected,
                            backlog_bytes=waiting * self._frame_bytes, paused=self._hold.holding)

    @property
    def pauses(self) -> list[str]:
        """One line per time a write error held the acquisition: how long, and why."""
        return self._hold.pauses

    # --- acquisition thread ---------------------------------------------------------------

    def _on_event_started(self, event: MDAEvent) -> None:
        self._snapped_at = None
        self._read_at_snap = None
        self._optics_at_snap = None
        self._event_key = None
        if self.run is not None:
            last, idx = self._last, event.index
            channel = event.channel.config if event.channel is not None else None
            self._event_key = (idx.get("p", 0), idx.get("c", 0), idx.get("t", 0), channel)
            if self.monitor.stale or last is None or self._event_key != last:
                # this event may move what the reads after the last exposure are reading
                self.monitor.wait_idle()
            self.monitor.before_exposure(self._captured, waited=self._waited)
        self._waited = False
        self._event_started_at = time.perf_counter()  # the exposure starts after this

    def _on_awaiting(self, *_: object) -> None:
        """The runner waits for the next event's start time: idle time to read in."""
        self._waited = True

    def _on_snapped(self, *_: object) -> None:
        """The exposure has just ended (``snapImage`` returned): changes after now belong
        to the next frame.

        A frame that needs every property re-read (the first, a new channel or position, a
        config change) is read here, before any other handler of the snap runs: a change
        made from another thread just after the exposure cannot be in that read, even when
        its event arrives after it. The pixel size and exposure time are read here too.
        """
        self._snapped_at = time.perf_counter()
        key = self._event_key
        if key is None or self._read_at_snap is not None:
            return
        # the engine reads these for the frame's metadata only after other handlers ran
        self._optics_at_snap = (self.core.getPixelSizeUm(True), self.core.getExposure())
        trigger = self._trigger(key, hardware=False)
        if trigger is not None:
            self.monitor.read_at_exposure_end(trigger, self._captured)
            self._read_at_snap = trigger

    def _trigger(self, key: tuple[int, int, int, str | None], *, hardware: bool) -> str | None:
        """Why frame ``key`` needs every watched property re-read, or None if it does not."""
        last = self._last
        if last is None or self.monitor.stale:
            return "first frame" if last is None else "stale hint"
        if key[0] != last[0] or key[1] != last[1] or key[3] != last[3]:
            return "channel or position change"
        if key[2] != last[2] and not hardware:
            return "new time point"
        return None

    def _on_sequence_started(self, sequence: MDASequence, meta: SummaryMetaV1) -> None:
        if self.run is not None:
            raise RuntimeError(f"{self.path}: a RecordingSink records one run; make a new sink")
        problems = study_problems(sequence.metadata)
        if problems:
            self._refuse(ValueError("sequence metadata the NBO record cannot hold: "
                                    + "; ".join(problems)))
        refused = sequence_problems(self.core, sequence)  # a preset the core lacks, ...
        if refused:
            self._refuse(SequenceError(refused))
        repeated = repeated_time_points(sequence)
        if repeated:  # once per run: the layout gives each run of the sub-sequence an Image
            warnings.warn(f"{self.path}: {repeated}", RuntimeWarning, stacklevel=2)
        infos = meta.get("image_infos") if meta else None
        info = infos[0] if infos else None
        self.monitor.restart_clock()
        self.monitor.refresh("sequence start")
        self._expected = count_events(sequence)
        self._first_frames_pending = planned_channels(sequence)
        dtype = str(np.dtype(info["dtype"] if info else "uint16"))
        width = int(info["width"] if info else self.core.getImageWidth())
        height = int(info["height"] if info else self.core.getImageHeight())
        self.run = Run(start=run_start(
            self.profile, sequence, width=width, height=height, dtype=dtype,
            camera=str(info["camera_label"] if info else self.core.getCameraDevice()),
            versions=software_versions(self.core)), frames=FrameTable())
        frame_bytes = width * height * np.dtype(dtype).itemsize
        self._frame_bytes = frame_bytes
        expected_bytes = None if self._expected is None else self._expected * frame_bytes
        self._journal = JournalWriter(journal_path(self.path))
        self._journal.start(self.run.start)
        if self.zarr:
            from nbo_recorder.store.zarr_writer import ZarrStoreWriter

            sizes = sequence.sizes
            self._writer = ZarrStoreWriter(
                self.path, run_id=self._journal.run_id, dtype=dtype, frame_shape=(height, width),
                sizes=(sizes.get("t", 1), sizes.get("c", 1), sizes.get("z", 1)))
        else:
            self._writer = TiffPageWriter(self.path, bigtiff=needs_bigtiff(expected_bytes),
                                          run_id=self._journal.run_id)

    def _refuse(self, error: Exception) -> NoReturn:
        """Stop the run at its start, before any file exists: record why, let go of the
        core's signals (a later run on the same core is not this sink's) and raise, so the
        runner stops before its first event."""
        self.errors.append(f"{error}; nothing acquired or written")
        self._disconnect()
        self.finished.set()
        raise error

    def _on_frame(self, img: NDArray[Any], event: MDAEvent, meta: FrameMetaV1) -> None:
        idx = event.index
        p, t, c, z = idx.get("p", 0), idx.get("t", 0), idx.get("c", 0), idx.get("z", 0)
        channel = event.channel.config if event.channel is not None else None
        hardware = bool(meta.get("hardware_triggered", False))
        key = (p, c, t, channel)
        snapped = key == self._event_key and not hardware  # the snap _on_snapped saw
        read_at_snap, self._read_at_snap = self._read_at_snap, None
        at_snap = self._optics_at_snap if snapped else None
        pixel_um, exposure_ms = at_snap or (float(meta.get("pixel_size_um", 0.0)),
                                            float(meta.get("exposure_ms", 0.0)))
        if read_at_snap is not None and snapped:
            snap = self.monitor.frame_state(read_at_snap, self._captured, self._snapped_at,
                                            self._event_started_at, already_read=True)
        else:
            snap = self.monitor.frame_state(self._trigger(key, hardware=hardware),
                                            self._captured,
                                            None if hardware else self._snapped_at,
                                            None if hardware else self._event_started_at)
        if self.stop_on_device_error:
            self._stop_on_failed_reads(snap)
        self._last = key
        pos = meta.get("position") or {}
        x, y, zpos = _finite(pos.get("x")), _finite(pos.get("y")), _finite(pos.get("z"))
        record = FrameRecord(
            index=self._captured, p=p, t=t, c=c, z=z, channel=channel,
            elapsed_ms=float(meta.get("runner_time_ms", 0.0)),
            exposure_ms=exposure_ms, x_um=x, y_um=y, z_um=zpos, pixel_size_um=pixel_um,
            snapshot=snap.uid, hardware_triggered=hardware, g=idx.get("g", 0),
            width=int(img.shape[1]), height=int(img.shape[0]),
        )
        # deque.append is atomic; only this thread counts captures, only the writer counts
        # writes, so the hot path takes no lock
        self._pending.append(record)
        self._captured += 1
        self._check_backlog(img.nbytes, meta, hardware)

    def _check_backlog(self, frame_bytes: int, meta: FrameMetaV1, hardware: bool) -> None:
        """Warn early when frames pile up faster than the disk takes them, and bound the
        memory they wait in.

        Frames the camera handed over wait for the writer in memory, up to
        ``BACKLOG_LIMIT_BYTES``; past it the acquisition thread waits for the writer. During
        a hardware-triggered burst the bound is ``BURST_BACKLOG_LIMIT_BYTES`` (at least
        ``BURST_BACKLOG_MIN_FRAMES`` frames): the camera
        goes on filling its circular buffer, which Micro-Manager has allocated already and
        the rig's user sized for bursts, so frames wait there instead of in memory of the
        recorder's own. Past ``BACKLOG_WARN_BYTES`` waiting in both, or the buffer half full
        during a burst, a warning comes long before Micro-Manager's 'Buffer overflowed'.
        """
        self._frame_bytes = frame_bytes
        remaining = int(meta.get("images_remaining_in_buffer") or 0)
        if remaining and not self._buffer_capacity:
            # the circular buffer is sized when the camera sequence starts, not before
            self._buffer_capacity = int(self.core.getBufferTotalCapacity())
        if (remaining and self._buffer_capacity and not self._warned_buffer
                and remaining > BUFFER_WARN_FRACTION * self._buffer_capacity):
            self._warned_buffer = True
            warnings.warn(
                f"{self.path}: the camera's circular buffer is {remaining} of "
                f"{self._buffer_capacity} images full during a hardware-triggered burst; "
                "Micro-Manager will stop with 'Buffer overflowed' if this goes on. Enlarge "
                "the buffer, slow the camera, or reduce the frame size.",
                RuntimeWarning, stacklevel=2,
            )
        in_memory = self._captured - self._written
        waiting = (in_memory + remaining) * frame_bytes
        if waiting > BACKLOG_WARN_BYTES and not self._warned_backlog:
            self._warned_backlog = True
            in_camera = f", {remaining} of them in the camera buffer" if remaining else ""
            warnings.warn(
                f"{self.path}: the camera is outrunning the disk: "
                f"{in_memory + remaining} frames ({waiting / 2**20:.0f} MiB) wait "
                f"to be written{in_camera}. Slow the acquisition or write to a faster disk.",
                RuntimeWarning, stacklevel=2,
            )
        limit = (max(BURST_BACKLOG_LIMIT_BYTES, BURST_BACKLOG_MIN_FRAMES * frame_bytes)
                 if hardware else BACKLOG_LIMIT_BYTES)
        while (self._captured - self._written) * frame_bytes > limit and self._writer is not None:
            time.sleep(0.002)

    def _on_finished(self, sequence: MDASequence) -> None:
        """Note, while the runner still knows it, whether the run ended in an exception;
        then finish the file here, on the runner's thread, once the relay has handed over
        every frame.

        pymmcore-plus stops its relay thread from this same signal and only then queues the
        relayed ``sequenceFinished``: a relay that finds its queue empty in between ends
        without delivering it, and the file would never be finished. Finishing here, before
        ``core.mda.run`` returns, does not depend on that; the relayed call then finds the
        file finished and does nothing.
        """
        self._engine_failed = str(self.core.mda.status.finish_reason) == "errored"
        handled, since = self._handled, time.monotonic()
        while self._handled < self._captured:
            if self._handled != handled or self._hold.holding:  # a write-error pause waits
                handled, since = self._handled, time.monotonic()
            elif time.monotonic() - since > _RELAY_STALL_S:
                self.errors.append(f"{self._captured - self._handled} frame(s) never reached "
                                   f"the writer within {_RELAY_STALL_S:g} s")
                break
            time.sleep(0.002)
        self.sequenceFinished(sequence)

    def _on_canceled(self, *_: object) -> None:
        self._canceled = True

    # --- relay thread: the frameReady handler interface -----------------------------------

    def frameReady(self, img: NDArray[Any], event: MDAEvent, meta: FrameMetaV1) -> None:
        """Write one frame (called by pymmcore-plus's relay thread, in acquisition order)."""
        try:
            self._write_frame(img, event)
        finally:
            self._handled += 1

    def _write_frame(self, img: NDArray[Any], event: MDAEvent) -> None:
        record = self._next_record()
        if record is None:
            self.errors.append(f"frame {event.index}: no state was captured for it")
            return
        if self._writer is None or self.run is None or self._journal is None:
            return
        record = self._settled(record)
        try:
            page = self._write(record, img)
        except (WriterError, OSError) as exc:
            outcome = (self._hold.until_written(record.index,
                                                lambda: self._retry_write(record, img), exc)
                       if self.write_errors.on_write_error == "pause" else exc)
            if not isinstance(outcome, int):
                self._stop_writing(outcome)
                return
            page = outcome
        if page != record.index:  # pages are written in capture order, one per record
            raise RuntimeError(f"{self.path}: page {page} written for frame {record.index}")
        self.run.frames.append(record)
        self._written += 1
        if self._compliance_thread is None and self._first_frames_pending is not None:
            self._first_frames_pending.discard((record.p, record.c))
            if not self._first_frames_pending:
                self._start_compliance_precompute()

    def _settled(self, record: FrameRecord) -> FrameRecord:
        """``record`` with its state settled by the reads after its exposure (they ran on the
        monitor's reader thread while the next frame was taken)."""
        uid = self.monitor.resolve(record.index, record.snapshot)
        if uid == record.snapshot:
            return record
        if self.stop_on_device_error:
            self._stop_on_failed_reads(self.monitor.snapshots[uid])
        return dataclasses.replace(record, snapshot=uid)

    def _stop_on_failed_reads(self, snap: StateSnapshot) -> None:
        """``--on-device-error stop``: cancel the run when a bound property could not be
        read (once per snapshot)."""
        if snap.uid in self._checked:
            return
        self._checked.add(snap.uid)
        failed = [v.reason for v in snap.values.values()
                  if isinstance(v, Unknown) and v.reason.startswith("reading ")]
        if failed:
            self.errors.append("stopped on device error: " + "; ".join(failed))
            self.core.mda.cancel()

    def _write(self, record: FrameRecord, img: NDArray[Any]) -> int:
        """Journal, then append, one frame; return its page index."""
        assert self._writer is not None and self._journal is not None
        self._journal.frame(record, self.monitor.snapshots[record.snapshot])
        if self.zarr:  # chunks are whole files renamed into place: no file to sync
            page = cast("ZarrStoreWriter", self._writer).write(img, record)
            self._journal.sync_if_due()
        else:
            tiff = cast(TiffPageWriter, self._writer)
            page = tiff.write(img)
            self._journal.sync_if_due(tiff.fileno())
        return page

    def _stop_writing(self, error: BaseException | str) -> None:
        """Stop the acquisition after a write error; the file is finished from the journal."""
        self.errors.append(str(error))
        if self._writer is not None:
            try:
                self._writer.close()
            except (OSError, ValueError):
                pass  # the file is finished by recovery from the journal, torn page or not
        self._writer = None
        self.core.mda.cancel()
        warnings.warn(f"acquisition stopped: {error}", RuntimeWarning, stacklevel=3)

    def _retry_write(self, record: FrameRecord, img: NDArray[Any]) -> int:
        """After a failed write: reopen the file and write ``record``'s frame; its page."""
        assert self._writer is not None
        self._writer.reopen()
        # the failed write may have completed its page after all
        return record.index if self._writer.pages > record.index else self._write(record, img)

    def stop_waiting(self) -> None:
        """End a write-error pause now; the run then stops as with ``on_write_error="stop"``.

        While the acquisition still has events to run, ``core.mda.cancel()`` does the same;
        once its last event is done, pymmcore-plus ignores cancel, and only this (or
        ``max_pause_s``) ends a pause that is waiting to write the last frames.
        """
        self._hold.stop_waiting()

    def _start_compliance_precompute(self) -> None:
        """Every position and channel has its first frame: the NBO compliance of the file
        is now fixed, so work it out in the background instead of at finalisation."""
        assert self.run is not None
        early = Run(start=self.run.start, snapshots=dict(self.monitor.snapshots),
                    frames=list(self.run.frames))
        self._compliance_thread = threading.Thread(
            target=self._precompute_compliance, args=(early,), daemon=True,
            name="nbo-compliance")
        self._compliance_thread.start()

    def _precompute_compliance(self, early: Run) -> None:
        try:
            view = build_nbo_xml(early, self.profile, planes="first_per_channel")
            run_date = datetime.fromisoformat(early.start.started_at).date()
            stale = [s.calibration for s in stale_calibrations(self.profile, run_date)]
            compliance_of_view(view, stale)
        except Exception:  # finalisation computes it again and reports any error there
            _log.debug("background compliance check failed", exc_info=True)

    def _next_record(self, timeout_s: float = 30.0) -> FrameRecord | None:
        """The record the acquisition thread captured for the frame being written.

        It is always there already: the capture hook runs on the acquisition thread before
        pymmcore-plus's relay even queues the frame. The wait only guards against a hook
        that was disconnected or failed.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self._pending.popleft()
            except IndexError:
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.001)

    def sequenceFinished(self, sequence: MDASequence) -> None:
        """Finalise: build the OME-XML from the documents and write it into the file.

        Called from the runner's ``sequenceFinished`` (see :meth:`_on_finished`) and again by
        pymmcore-plus's relay, if it delivers it: the first call finishes the file.
        """
        with self._finish_lock:
            if self.finished.is_set():
                return
            self._finish()

    def _finish(self) -> None:
        try:
            self._finalise()
        except Exception as exc:  # on the relay thread nobody would see it: keep it
            self.errors.append(f"finalising {self.path} failed: {type(exc).__name__}: {exc}")
            _log.exception("finalising %s failed", self.path)
        finally:
            self._disconnect()
            self.finished.set()

    def raise_if_failed(self) -> None:
        """Raise :class:`RecordingError` listing what went wrong, if anything did."""
        if self.errors:
            raise RecordingError(f"{self.path}: " + "; ".join(self.errors))

    def _finalise(self) -> None:
        if self.run is None:
            return
        run = self.run
        run.snapshots.update(self.monitor.snapshots)
        if self.errors:
            reason = "error"
        elif self._engine_failed:
            reason = ("the acquisition stopped with an error raised by the engine or a device "
                      "(e.g. Micro-Manager's 'Buffer overflowed'); core.mda.run re-raised it")
        elif self._canceled:
            reason = "canceled"
        else:
            reason = "completed"
        run.stop = RunStop(
            stopped_at=now_iso(), frames_written=len(run.frames),
            frames_expected=self._expected, reason=reason, errors=tuple(self.errors),
            pauses=tuple(self.pauses),
        )
        if self._compliance_thread is not None:
            self._compliance_thread.join(timeout=60)
        if (reason == "completed" and self._expected is not None
                and len(run.frames) < self._expected):
            self.dropped_frames = self._expected - len(run.frames)
            warnings.warn(f"{self.path}: {self.dropped_frames} of {self._expected} frames never "
                          "reached the recorder (dropped by the camera or the acquisition "
                          "engine); the file says so in its acquisition status",
                          RuntimeWarning, stacklevel=2)
        journal, self._journal = self._journal, None
        if journal is None:
            return
        journal.stop(run.stop)
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                if self.zarr:
                    cast("ZarrStoreWriter", writer).finalise(run, self.profile, self._software)
                else:
                    cast(TiffPageWriter, writer).finalise(
                        build_ome_xml(run, self.profile, self._software))
            except BaseException:
                journal.close()  # kept beside the file, for recover
                raise
            journal.remove()
        else:
            journal.close()
        if not run.frames:  # nothing acquired: no empty file or journal left behind
            if discard_empty_outputs(self.path, self._frame_bytes) and self.errors:
                self.errors.append(f"no frame was written: {self.path} and its journal were "
                                   "removed")
            return
        if writer is not None:
            return
        # The writer failed mid-run: the file may end in a torn page. Recovery from the
        # journal makes what was written valid, exactly as after a crash.
        try:
            recover(self.path)
        except Exception as exc:
            self.errors.append(
                f"could not finalise {self.path} ({type(exc).__name__}: {exc}); its journal "
                f"is kept: run `nbo-recorder recover {self.path}` once the cause is fixed"
            )

    def _disconnect(self) -> None:
        self.monitor.detach()
        for signal, slot in self._connections():
            try:
                signal.disconnect(slot)
            except (ValueError, RuntimeError):
                pass


def _finite(v: float | None) -> float | None:
    """A stage coordinate, or None when the engine reported none or a non-finite one."""
    return float(v) if v is not None and math.isfinite(v) else None
