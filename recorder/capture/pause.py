"""Holding an acquisition while the disk refuses a frame (``on_write_error="pause"``).

The sink's writer thread calls :meth:`WriteErrorHold.until_written` when a frame cannot be
written: the runner is paused, the frame retried every ``write_retry_s`` seconds, and the
acquisition resumed once it is written, or the pause given up (cancel, :meth:`stop_waiting`,
``max_pause_s``). Kept apart from the sink because it is a small state machine of its own,
shared between the writer thread (which holds) and the acquisition thread (which must keep
the runner paused, :meth:`WriteErrorHold.keep_paused`).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nbo_recorder.capture.policy import WriteErrorPolicy
from nbo_recorder.store.tiff_writer import WriterError

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus


class WriteErrorHold:
    """Pauses ``core``'s acquisition until a refused frame is written, per ``policy``."""

    def __init__(self, core: CMMCorePlus, policy: WriteErrorPolicy, path: Path) -> None:
        self._core = core
        self._policy = policy
        self._path = path
        self._holding = False
        self._lock = threading.Lock()
        self._stop_waiting = threading.Event()
        #: one line per time a write error held the acquisition: how long, and why
        self.pauses: list[str] = []

    @property
    def holding(self) -> bool:
        """True while a refused frame holds the acquisition (a plain read: any thread)."""
        return self._holding

    def keep_paused(self, *_: object) -> None:
        """While a write error holds the run, make sure the runner really pauses.

        pymmcore-plus 0.18 loses a pause requested while it sleeps before an event (the
        event starts anyway). Asked again from the acquisition thread, while it waits for
        an event or has just started one, the pause takes hold at the next event boundary.
        """
        if self._holding:
            with self._lock:
                if self._holding and not self._core.mda.is_paused():
                    self._core.mda.set_paused(True)

    def until_written(
        self, index: int, retry: Callable[[], int], error: BaseException
    ) -> int | str:
        """Pause the acquisition and call ``retry`` until frame ``index`` is written.

        ``retry`` writes the frame again and returns its page, or raises
        :class:`~nbo_recorder.store.tiff_writer.WriterError` / :class:`OSError`. Returns the
        frame's page once written (and the acquisition resumed), or the error to stop with:
        the last write error and why the pause ended without the frame (see :meth:`_over`).
        The pause outlasts the runner: frames still queued when the acquisition's last event
        is done are worth waiting for too.
        """
        runner = self._core.mda
        we_paused = not runner.is_paused()  # a pause the user set is theirs to lift
        with self._lock:
            self._holding = True
            runner.set_paused(True)
        started = time.monotonic()
        retry_s = self._policy.write_retry_s
        warnings.warn(
            f"acquisition paused: {error}. Retrying every {retry_s:g} s and "
            f"resuming once frame {index} is written: free space or fix the cause, "
            "or cancel the acquisition to stop it.", RuntimeWarning, stacklevel=3)
        last: BaseException = error
        while True:
            next_try = time.monotonic() + retry_s
            while time.monotonic() < next_try and not self._over(started):
                time.sleep(min(0.05, retry_s))
            why = self._over(started)
            if why:
                with self._lock:
                    self._holding = False
                return f"{last} (gave up after a {time.monotonic() - started:.1f} s pause: {why})"
            try:
                page = retry()
            except (WriterError, OSError) as exc:
                last = exc
                continue
            break
        held_s = time.monotonic() - started
        self.pauses.append(f"paused {held_s:.1f} s before frame {index} was written: {error}")
        with self._lock:
            self._holding = False
            if we_paused:
                runner.set_paused(False)
        warnings.warn(f"{self._path}: frame {index} written after a {held_s:.1f} s "
                      "pause; acquisition resumed", RuntimeWarning, stacklevel=3)
        return page

    def _over(self, started: float) -> str:
        """Why a write-error pause must end without its frame written; empty to keep trying."""
        if self._stop_waiting.is_set():
            return "ended by stop_waiting()"
        status = self._core.mda.status
        if status.cancel_requested or str(status.finish_reason) == "canceled":
            return "the acquisition was canceled"
        limit = self._policy.max_pause_s
        if limit is not None and time.monotonic() - started > limit:
            return f"max_pause_s ({limit:g} s) passed"
        return ""

    def stop_waiting(self) -> None:
        """End a pause now: the frame is given up and the run stops."""
        self._stop_waiting.set()
