"""Re-reading silent properties beside the acquisition, and placing what the reads find in time.

Properties of devices that announce nothing (Python devices, an instrument's keypad) can only
be read. Reading them on the acquisition thread between frames delays every frame by the time
a round of serial queries takes. Instead, after a frame's exposure the acquisition thread asks
:class:`SilentReader` for a round of reads and goes on to the next frame; the reads run on this
reader's thread, while the camera exposes (MMCore releases the GIL during a snap). The frame's
record waits for them on the writer thread, never on the camera.

What a round finds is placed by :class:`ChangeWindows`: a value that differs from the one
read before it, with no event or hint in between, changed at some moment between the start
of the earlier read and the end of the later one. A frame whose exposure overlaps that window
cannot be given either value; every other frame can.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from nbo_recorder.capture.documents import PropertyKey, RawValue

_log = logging.getLogger(__name__)

#: windows kept per property; older ones lie before every frame still waiting for its record
_WINDOWS_KEPT = 64


@dataclass(frozen=True, slots=True)
class ChangeWindow:
    """A silent property changed from ``old`` to ``new`` at a moment between ``start`` and
    ``end`` (``time.perf_counter()`` values), found by comparing two reads."""

    start: float
    end: float
    old: RawValue
    new: RawValue
    #: the earlier and the later read, as the file says them ("the read after frame 3's
    #: exposure")
    since: str
    until: str


class ChangeWindows:
    """The change windows of each silent property, for placing changes against exposures."""

    def __init__(self) -> None:
        self._windows: dict[PropertyKey, deque[ChangeWindow]] = {}

    def add(self, key: PropertyKey, window: ChangeWindow) -> None:
        self._windows.setdefault(key, deque(maxlen=_WINDOWS_KEPT)).append(window)

    def overlapping(self, key: PropertyKey, start: float, end: float) -> list[ChangeWindow]:
        """The windows of ``key`` that overlap the exposure from ``start`` to ``end``."""
        return [w for w in self._windows.get(key, ()) if w.start < end and w.end > start]


class SilentReader:
    """Runs ``read_round(frame)`` on its own thread, once per request, in request order.

    Requests that arrive while a round runs are served by one round after it: that round
    starts after every one of their exposures ended, which is all each frame needs.
    """

    def __init__(self, read_round: Callable[[int], None]) -> None:
        self._read_round = read_round
        self._cond = threading.Condition()
        self._requested = -1  # the highest frame a round was asked for
        self._done = -1       # the highest frame whose round has ended
        self._busy = False
        self._closed = False
        self._failures: dict[int, str] = {}
        self._rounds: deque[int] = deque()  # the frames rounds ended for, not yet settled past
        self._thread: threading.Thread | None = None

    def request(self, frame: int) -> None:
        """Ask for a round of reads starting now (after frame ``frame``'s exposure)."""
        with self._cond:
            self._requested = max(self._requested, frame)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nbo-silent-reads",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_for(self, frame: int) -> str | None:
        """Wait until a round that started after frame ``frame``'s exposure has ended; why
        that round failed (None: it read every property, failed reads being unknown)."""
        with self._cond:
            while self._done < frame and self._requested >= frame and not self._closed:
                self._cond.wait()
            if self._done < frame:
                return "no read after this frame's exposure (the recording ended first)"
            # frames are settled in order: rounds before this frame serve none still to come
            while self._rounds and self._rounds[0] < frame:
                self._failures.pop(self._rounds.popleft(), None)
            serving = self._rounds[0] if self._rounds else self._done
            return self._failures.get(serving)

    def wait_idle(self) -> None:
        """Wait until no round runs or is waiting to run (before reading on another thread)."""
        with self._cond:
            while (self._busy or self._requested > self._done) and not self._closed:
                self._cond.wait()

    def close(self) -> None:
        """Finish the rounds asked for, then stop the thread."""
        self.wait_idle()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._requested <= self._done and not self._closed:
                    self._cond.wait()
                if self._requested <= self._done:
                    return
                target, self._busy = self._requested, True
            try:
                self._read_round(target)
            except Exception as exc:  # a bug, not a device error (those become unknown)
                _log.exception("re-reading the silent properties after frame %d failed", target)
                with self._cond:
                    self._failures[target] = (f"re-reading after frame {target} failed: "
                                              f"{type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._done, self._busy = target, False
                    self._rounds.append(target)
                    self._cond.notify_all()
