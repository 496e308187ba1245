"""Attach to a pymmcore-plus core and record an MDA run into an NBO-complete OME-TIFF.

Usage, inside any pymmcore-plus script::

    rec = Recorder(core, profile="hardware_profiles/mm_demo.yaml")
    core.mda.run(sequence, output=rec.sink("exp1.ome.tif"))

Timing is the whole point, so the work is split between two threads:

* **On the acquisition thread**, directly connected to ``core.mda.events`` ahead of any other
  listener, the sink captures state: at sequence start and whenever a frame belongs to another
  channel, position, time point, or the state was hinted stale, it reads every bound property
  (:meth:`StateMonitor.refresh`); otherwise it only takes a reference to the current snapshot.
  Either way it records a :class:`FrameRecord` while the hardware is still in the state the
  frame was taken in.
* **On pymmcore-plus's relay thread** (the sink is an ordinary ``frameReady`` handler passed
  as ``output=``), frames are appended to the TIFF and, at the end, the OME-XML is built from
  the documents and written. The acquisition never waits for the disk.

When the disk refuses a frame (full, or an I/O error), the sink either stops the acquisition
(``on_write_error="stop"``, the default) or pauses it and retries the frame until the write
succeeds (``"pause"``); either way every frame already written stays in a valid file.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import math
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np

from nbo_recorder.capture.documents import FrameRecord, Run, RunStart, RunStop, Unknown
from nbo_recorder.capture.state import StateMonitor
from nbo_recorder.nbo.schema import get_schema
from nbo_recorder.profile.calibration import stale_calibrations
from nbo_recorder.profile.model import Profile, check_against_core, load_profile
from nbo_recorder.render.nbo import build_nbo_xml, compliance_of_view, study_problems
from nbo_recorder.render.ome import build_ome_xml
from nbo_recorder.store.journal import JournalWriter, journal_path
from nbo_recorder.store.recovery import recover
from nbo_recorder.store.tiff_writer import (
    TiffPageWriter,
    WriterError,
    check_output_path,
    needs_bigtiff,
)

_log = logging.getLogger(__name__)
_PRIORITY = 1000  # run before pymmcore-plus's relay enqueues the same signal
#: frames waiting for the writer beyond this many bytes trigger a warning ...
BACKLOG_WARN_BYTES = 256 * 2**20
#: ... and beyond this many, the acquisition thread waits for the writer
BACKLOG_LIMIT_BYTES = 2048 * 2**20
#: a camera circular buffer fuller than this during a hardware burst triggers a warning
BUFFER_WARN_FRACTION = 0.5


@functools.cache
def _distribution_versions() -> tuple[tuple[str, str], ...]:
    versions = []
    for dist in ("nbo-recorder", "pymmcore-plus", "pymmcore", "tifffile", "ome-types",
                 "useq-schema"):
        try:
            versions.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((dist, "not installed as a distribution"))
    return tuple(versions)


def software_versions(core: Any) -> dict[str, str]:
    """Versions of the software stack that produced a file, as reported by itself."""
    versions = dict(_distribution_versions())
    versions["MMCore"] = str(core.getVersionInfo()).removeprefix("MMCore version ").strip()
    versions["MMDevice API"] = str(core.getAPIVersionInfo())
    return versions


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class RecorderOptions(TypedDict, total=False):
    """What a :class:`Recorder` does when a device or the disk fails (see its __init__)."""

    on_device_error: Literal["continue", "stop"]
    on_write_error: Literal["stop", "pause"]
    write_retry_s: float
    max_pause_s: float | None


@dataclass(frozen=True)
class WriteErrorPolicy:
    """What a sink does when the disk refuses a frame (see :class:`Recorder`)."""

    on_write_error: Literal["stop", "pause"] = "stop"
    write_retry_s: float = 10.0
    max_pause_s: float | None = None

    def __post_init__(self) -> None:
        if self.on_write_error not in ("stop", "pause"):
            raise ValueError(f"on_write_error must be 'stop' or 'pause', "
                             f"not {self.on_write_error!r}")
        if self.write_retry_s <= 0 or not math.isfinite(self.write_retry_s):
            raise ValueError(f"write_retry_s must be a positive number of seconds, "
                             f"not {self.write_retry_s!r}")
        if self.max_pause_s is not None and not self.max_pause_s >= 0:
            raise ValueError(f"max_pause_s must be >= 0 seconds or None, "
                             f"not {self.max_pause_s!r}")


class RecordingError(RuntimeError):
    """The run was recorded only partly; the message says what failed."""


class Recorder:
    """Binds a hardware profile to a live core; makes one :class:`RecordingSink` per run.

    The profile's bindings are checked against the loaded devices here, so a binding to a
    device, property or label the core does not have fails before any acquisition starts.
    """

    def __init__(
        self, core: Any, profile: str | Path | Profile, *,
        on_device_error: Literal["continue", "stop"] = "continue",
        on_write_error: Literal["stop", "pause"] = "stop",
        write_retry_s: float = 10.0,
        max_pause_s: float | None = None,
    ) -> None:
        """``on_device_error``: when a bound property cannot be read during a run, record it
        as unknown and carry on (default), or record it and stop the acquisition.

        ``on_write_error``: when a frame cannot be written (disk full, I/O error), stop the
        acquisition and finish the file with what was written (default), or pause the
        acquisition, retry the frame every ``write_retry_s`` seconds and resume once it is
        written. A pause ends in a stop when the acquisition is canceled meanwhile, when
        :meth:`RecordingSink.stop_waiting` is called, or after ``max_pause_s`` seconds (None:
        no limit).
        """
        if on_device_error not in ("continue", "stop"):
            raise ValueError(f"on_device_error must be 'continue' or 'stop', "
                             f"not {on_device_error!r}")
        self.write_errors = WriteErrorPolicy(on_write_error, write_retry_s, max_pause_s)
        self.core = core
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        self.on_device_error = on_device_error
        check_against_core(self.profile, core)
        # the NBO XSD takes ~1 s of CPU to load: do it now, during set-up, rather than
        # while a camera is streaming or at the end of the first run
        get_schema()

    def preflight(self, tier: int) -> list[str]:
        """What a file recorded now would lack at NBO ``tier``: one line per gap.

        Static specs the profile leaves empty (MUST attributes at tier <= ``tier``), and what
        the live state cannot resolve right now (a device that does not answer, a label
        the profile does not describe), read from the devices before the first frame.
        """
        from nbo_recorder.capture.observed import interpret
        from nbo_recorder.profile.check import missing_for_tier

        gaps = missing_for_tier(self.profile, tier)
        monitor = StateMonitor(self.core, self.profile.watched_properties())
        observed = interpret(monitor.refresh("pre-flight"), self.profile)
        gaps += [f"live state: {what}: {reason}" for what, reason in observed.unknown]
        return gaps

    def sink(self, path: str | Path, *, overwrite: bool = False) -> RecordingSink:
        """A single-use ``output=`` handler for ``core.mda.run`` writing to ``path``."""
        out = Path(path)
        check_output_path(out, overwrite)
        return RecordingSink(self.core, self.profile, out,
                             stop_on_device_error=self.on_device_error == "stop",
                             write_errors=self.write_errors)


class RecordingSink:
    """Records one MDA run. Pass it as ``output=`` to ``core.mda.run``."""

    def __init__(
        self, core: Any, profile: Profile, path: Path, *, stop_on_device_error: bool = False,
        write_errors: WriteErrorPolicy = WriteErrorPolicy(),
    ) -> None:
        self.core = core
        self.profile = profile
        self.path = path
        self.stop_on_device_error = stop_on_device_error
        self.write_errors = write_errors
        #: one line per time a write error held the acquisition: how long, and why
        self.pauses: list[str] = []
        self._holding = False
        self._hold_lock = threading.Lock()
        self._stop_waiting = threading.Event()
        self.monitor = StateMonitor(core, profile.watched_properties())
        self.run: Run | None = None
        self.errors: list[str] = []
        #: frames the sequence planned that never arrived (reported, never hidden)
        self.dropped_frames = 0
        self.finished = threading.Event()
        self._writer: TiffPageWriter | None = None
        self._journal: JournalWriter | None = None
        self._pending: deque[FrameRecord] = deque()
        self._captured = 0
        self._written = 0
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
        self._software = f"nbo-recorder {software_versions(core)['nbo-recorder']}"
        self.monitor.attach()
        ev = core.mda.events
        ev.sequenceStarted.connect(self._on_sequence_started, priority=_PRIORITY)
        ev.frameReady.connect(self._on_frame, priority=_PRIORITY)
        ev.sequenceCanceled.connect(self._on_canceled, priority=_PRIORITY)
        ev.sequenceFinished.connect(self._on_finished, priority=_PRIORITY)
        ev.eventStarted.connect(self._keep_paused, priority=_PRIORITY)
        ev.awaitingEvent.connect(self._keep_paused, priority=_PRIORITY)

    # --- acquisition thread ---------------------------------------------------------------

    def _on_sequence_started(self, sequence: Any, meta: Any) -> None:
        if self.run is not None:
            raise RuntimeError(f"{self.path}: a RecordingSink records one run; make a new sink")
        problems = study_problems(getattr(sequence, "metadata", None))
        if problems:
            raise ValueError("sequence metadata the NBO record cannot hold: "
                             + "; ".join(problems))
        info = (meta or {}).get("image_infos", [{}])[0]
        self.monitor.restart_clock()
        self.monitor.refresh("sequence start")
        self._expected = _count_events(sequence)
        self._first_frames_pending = _planned_channels(sequence)
        z_plan = getattr(sequence, "z_plan", None)
        time_plan = getattr(sequence, "time_plan", None)
        interval = getattr(time_plan, "interval", None)
        dtype = str(np.dtype(info.get("dtype", "uint16")))
        width = int(info.get("width", self.core.getImageWidth()))
        height = int(info.get("height", self.core.getImageHeight()))
        self.run = Run(start=RunStart(
            started_at=now_iso(),
            profile=self.profile.model_dump(mode="json"),
            sequence=sequence.model_dump(mode="json", exclude_unset=True),
            width=width, height=height, dtype=dtype,
            camera=str(info.get("camera_label", self.core.getCameraDevice())),
            versions=software_versions(self.core),
            position_names=tuple(p.name for p in sequence.stage_positions),
            z_step_um=getattr(z_plan, "step", None),
            time_interval_s=interval.total_seconds() if interval is not None else None,
            frames_expected=self._expected,
        ))
        frame_bytes = width * height * np.dtype(dtype).itemsize
        expected_bytes = None if self._expected is None else self._expected * frame_bytes
        self._journal = JournalWriter(journal_path(self.path))
        self._journal.start(self.run.start)
        self._writer = TiffPageWriter(self.path, bigtiff=needs_bigtiff(expected_bytes))

    def _on_frame(self, img: np.ndarray, event: Any, meta: Any) -> None:
        idx = event.index
        p, t, c, z = idx.get("p", 0), idx.get("t", 0), idx.get("c", 0), idx.get("z", 0)
        channel = event.channel.config if event.channel is not None else None
        hardware = bool(meta.get("hardware_triggered", False))
        key = (p, c, t, channel)
        last = self._last
        if last is None or self.monitor.stale:
            snap = self.monitor.refresh("first frame" if last is None else "stale hint")
        elif key[0] != last[0] or key[1] != last[1] or key[3] != last[3]:
            snap = self.monitor.refresh("channel or position change")
        elif key[2] != last[2] and not hardware:
            snap = self.monitor.refresh("new time point")
        else:
            snap = self.monitor.snapshot()
        if self.stop_on_device_error and snap.uid not in self._checked:
            self._checked.add(snap.uid)
            failed = [v.reason for v in snap.values.values()
                      if isinstance(v, Unknown) and v.reason.startswith("reading ")]
            if failed:
                self.errors.append("stopped on device error: " + "; ".join(failed))
                self.core.mda.cancel()
        self._last = key
        pos = meta.get("position") or {}
        x, y, zpos = (_finite(pos.get(a)) for a in ("x", "y", "z"))
        record = FrameRecord(
            index=self._captured, p=p, t=t, c=c, z=z, channel=channel,
            elapsed_ms=float(meta.get("runner_time_ms", 0.0)),
            exposure_ms=float(meta.get("exposure_ms", 0.0)),
            x_um=x, y_um=y, z_um=zpos,
            pixel_size_um=float(meta.get("pixel_size_um", 0.0)),
            snapshot=snap.uid, hardware_triggered=hardware,
        )
        # deque.append is atomic; only this thread counts captures, only the writer counts
        # writes, so the hot path takes no lock
        self._pending.append(record)
        self._captured += 1
        self._check_backlog(img.nbytes, meta)

    def _keep_paused(self, *_: Any) -> None:
        """While a write error holds the run, make sure the runner really pauses.

        pymmcore-plus 0.18 loses a pause requested while it sleeps before an event (the
        event starts anyway). Asked again from the acquisition thread, while it waits for
        an event or has just started one, the pause takes hold at the next event boundary.
        """
        if self._holding:
            with self._hold_lock:
                if self._holding and not self.core.mda.is_paused():
                    self.core.mda.set_paused(True)

    def _check_backlog(self, frame_bytes: int, meta: Any) -> None:
        """Warn early when frames pile up faster than the disk takes them.

        Frames waiting for the writer are already out of the camera's circular buffer, so
        a slow disk shows up here first, long before Micro-Manager's 'Buffer overflowed'.
        Past ``BACKLOG_LIMIT_BYTES`` the acquisition thread waits for the writer, so memory
        stays bounded and the camera's own buffer absorbs (or reports) the rest.
        """
        remaining = meta.get("images_remaining_in_buffer")
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
        waiting = (self._captured - self._written) * frame_bytes
        if waiting > BACKLOG_WARN_BYTES and not self._warned_backlog:
            self._warned_backlog = True
            remaining = meta.get("images_remaining_in_buffer")
            in_camera = f"; {remaining} more in the camera buffer" if remaining else ""
            warnings.warn(
                f"{self.path}: the camera is outrunning the disk: "
                f"{self._captured - self._written} frames ({waiting / 2**20:.0f} MiB) wait "
                f"to be written{in_camera}. Slow the acquisition or write to a faster disk.",
                RuntimeWarning, stacklevel=2,
            )
        while ((self._captured - self._written) * frame_bytes > BACKLOG_LIMIT_BYTES
               and self._writer is not None):
            time.sleep(0.005)

    def _on_finished(self, *_: Any) -> None:
        """Note, while the runner still knows it, whether the run ended in an exception."""
        status = getattr(self.core.mda, "status", None)
        self._engine_failed = str(getattr(status, "finish_reason", "")) == "errored"

    def _on_canceled(self, *_: Any) -> None:
        self._canceled = True

    # --- relay thread: the frameReady handler interface -----------------------------------

    def frameReady(self, img: np.ndarray, event: Any, meta: Any) -> None:
        """Write one frame (called by pymmcore-plus's relay thread, in acquisition order)."""
        record = self._next_record()
        if record is None:
            self.errors.append(f"frame {event.index}: no state was captured for it")
            return
        if self._writer is None or self.run is None or self._journal is None:
            return
        try:
            page = self._write(record, img)
        except (WriterError, OSError) as exc:
            outcome = (self._hold_until_written(record, img, exc)
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

    def _write(self, record: FrameRecord, img: np.ndarray) -> int:
        """Journal, then append, one frame; return its page index."""
        assert self._writer is not None and self._journal is not None
        self._journal.frame(record, self.monitor.snapshots[record.snapshot])
        page = self._writer.write(img)
        self._journal.sync_if_due(self._writer.fileno())
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

    def _hold_until_written(
        self, record: FrameRecord, img: np.ndarray, error: BaseException
    ) -> int | str:
        """Pause the acquisition and retry ``record``'s frame until it is written.

        Returns the frame's page once written (and the acquisition resumed), or the error
        to stop with: the last write error and why the pause ended without the frame (see
        :meth:`_pause_over`). The pause outlasts the runner: frames still queued when the
        acquisition's last event is done are worth waiting for too.
        """
        assert self._writer is not None
        runner = self.core.mda
        we_paused = not runner.is_paused()  # a pause the user set is theirs to lift
        with self._hold_lock:
            self._holding = True
            runner.set_paused(True)
        started = time.monotonic()
        retry_s = self.write_errors.write_retry_s
        warnings.warn(
            f"acquisition paused: {error}. Retrying every {retry_s:g} s and "
            f"resuming once frame {record.index} is written: free space or fix the cause, "
            "or cancel the acquisition to stop it.", RuntimeWarning, stacklevel=3)
        last: BaseException = error
        while True:
            next_try = time.monotonic() + retry_s
            while time.monotonic() < next_try and not self._pause_over(started):
                time.sleep(min(0.05, retry_s))
            why = self._pause_over(started)
            if why:
                with self._hold_lock:
                    self._holding = False
                return f"{last} (gave up after a {time.monotonic() - started:.1f} s pause: {why})"
            try:
                self._writer.reopen()
                # the failed write may have completed its page after all
                page = record.index if self._writer.pages > record.index \
                    else self._write(record, img)
            except (WriterError, OSError) as exc:
                last = exc
                continue
            break
        held_s = time.monotonic() - started
        self.pauses.append(f"paused {held_s:.1f} s before frame {record.index} was written: "
                           f"{error}")
        with self._hold_lock:
            self._holding = False
            if we_paused:
                runner.set_paused(False)
        warnings.warn(f"{self.path}: frame {record.index} written after a {held_s:.1f} s "
                      "pause; acquisition resumed", RuntimeWarning, stacklevel=3)
        return page

    def _pause_over(self, started: float) -> str:
        """Why a write-error pause must end without its frame written; empty to keep trying."""
        if self._stop_waiting.is_set():
            return "ended by stop_waiting()"
        status = self.core.mda.status
        if status.cancel_requested or str(status.finish_reason) == "canceled":
            return "the acquisition was canceled"
        limit = self.write_errors.max_pause_s
        if limit is not None and time.monotonic() - started > limit:
            return f"max_pause_s ({limit:g} s) passed"
        return ""

    def stop_waiting(self) -> None:
        """End a write-error pause now; the run then stops as with ``on_write_error="stop"``.

        While the acquisition still has events to run, ``core.mda.cancel()`` does the same;
        once its last event is done, pymmcore-plus ignores cancel, and only this (or
        ``max_pause_s``) ends a pause that is waiting to write the last frames.
        """
        self._stop_waiting.set()

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

    def sequenceFinished(self, sequence: Any) -> None:
        """Finalise: build the OME-XML from the documents and write it into the file."""
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
        if self._writer is not None:
            self._writer.finalise(build_ome_xml(run, self.profile, self._software))
            self._writer = None
            journal.remove()
            return
        journal.close()
        if not run.frames:
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
        ev = self.core.mda.events
        for sig, slot in ((ev.sequenceStarted, self._on_sequence_started),
                          (ev.frameReady, self._on_frame),
                          (ev.sequenceCanceled, self._on_canceled),
                          (ev.sequenceFinished, self._on_finished),
                          (ev.eventStarted, self._keep_paused),
                          (ev.awaitingEvent, self._keep_paused)):
            try:
                sig.disconnect(slot)
            except (ValueError, RuntimeError):
                pass


def _finite(v: Any) -> float | None:
    """A stage coordinate, or None when the engine reported none or a non-finite one."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _planned_channels(sequence: Any) -> set[tuple[int, int]] | None:
    """Every (position, channel) index pair a plain sequence will visit; None when positions
    carry their own sub-sequences (then the pairs are not known in advance)."""
    positions = list(getattr(sequence, "stage_positions", ())) or [None]
    if any(getattr(p, "sequence", None) for p in positions):
        return None
    channels = len(getattr(sequence, "channels", ())) or 1
    return {(p, c) for p in range(len(positions)) for c in range(channels)}


def _count_events(sequence: Any, cap: int = 10_000_000) -> int | None:
    """Number of frames a sequence will produce, or None if unbounded/unknown.

    The product of the axis sizes when no position carries its own sub-sequence (exact
    and instant); otherwise the events are counted (up to ``cap``).
    """
    sizes = getattr(sequence, "sizes", None)
    positions = getattr(sequence, "stage_positions", ())
    if sizes is not None and not any(getattr(p, "sequence", None) for p in positions):
        return int(math.prod(int(v) for v in sizes.values() if v))
    try:
        n = 0
        for _ in sequence:
            n += 1
            if n > cap:
                return None
        return n
    except Exception:
        return None
