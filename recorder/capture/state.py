"""Live observation of the bound device properties of a Micro-Manager core.

Micro-Manager's change events are incomplete: applying a config group fires ``configSet``
but no ``propertyChanged`` for the devices it moves, UniMMCore Python devices fire nothing,
and hardware moved from its own keypad fires nothing. So events are used as *hints*:

* ``propertyChanged`` for a watched property updates the value at once (the core reports
  the new value with the event), stamped with the time it arrived;
* ``configSet``, ``pixelSizeChanged``, ``systemConfigurationLoaded`` mark the state stale;
* the truth comes from :meth:`StateMonitor.refresh`, an explicit read of every watched
  property, which the recorder calls at sequence start and whenever the acquisition moves to
  another channel, position, time point or config, or the state was marked stale;
* properties of devices that announce nothing (Python devices, and any property seen to
  change without an event) are *silent*: the :class:`VerifyPolicy` says when they are re-read
  (every frame by default), and the record says which values were assumed unchanged.

Two rules keep every frame's state the one in force during its exposure:

* **No lost updates.** Events carry a generation number. A hint that arrives while a refresh
  is reading leaves the state stale (the next frame reads again), and a ``propertyChanged``
  value that arrived during the read is not overwritten by the older read.
* **Attribution by time.** :meth:`StateMonitor.frame_state` gets the time the frame's
  exposure ended. A change whose event arrived after it belongs to the next frame: for this
  frame the value before the event is kept; a value read after a later stale hint that
  differs from before is ``unknown`` for this frame (it may or may not have been in force).

Each snapshot carries, under the pseudo device
:data:`~nbo_recorder.capture.documents.PROVENANCE`, how its values are known: the frame and
time they were read, the events applied since, and which silent values were re-read every
frame or assumed unchanged (:data:`~nbo_recorder.capture.documents.PROVENANCE_KEYS`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from pymmcore_plus import DeviceType

from nbo_recorder.capture.documents import PROVENANCE, PropertyKey, RawValue, StateSnapshot
from nbo_recorder.capture.policy import DEFAULT_VERIFY, VerifyPolicy
from nbo_recorder.capture.silent import ChangeWindow, ChangeWindows, SilentReader
from nbo_recorder.profile.model import SHUTTER_STATE
from nbo_recorder.vocabulary import Unknown

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

#: silent properties last read longer ago than this (s) are read again before an exposure
PRE_READ_AFTER_S = 0.05

_UNPLACED_NOTE = "changed with no event around this frame's exposure, so unknown for it: "


@dataclass(frozen=True, slots=True)
class _Change:
    """A watched value changed by an event: when (perf_counter s), and from what to what."""

    at: float
    key: PropertyKey
    old: RawValue
    new: RawValue


def _name(key: PropertyKey) -> str:
    return f"{key[0]}.{key[1]}"


class StateMonitor:
    """Keeps the last observed value of each watched (device, property) of ``core``."""

    def __init__(self, core: CMMCorePlus, keys: Iterable[PropertyKey],
                 verify: VerifyPolicy = DEFAULT_VERIFY,
                 measured: Iterable[PropertyKey] = ()) -> None:
        self._core = core
        self._keys: tuple[PropertyKey, ...] = tuple(dict.fromkeys(keys))
        #: readings (a photodiode's power, a sensor's temperature): each read is a sample,
        #: not a state that changes at some moment, so a new reading is never "unplaced"
        self._measured = frozenset(measured)
        self._watched = frozenset(self._keys)
        self._values: dict[PropertyKey, RawValue] = {
            k: Unknown("not read yet") for k in self._keys
        }
        self.verify = verify
        is_py: Callable[[str], bool] = getattr(core, "isPyDevice", lambda _label: False)
        #: properties whose changes fire no event: re-read per the verify policy
        self.silent: set[PropertyKey] = {k for k in self._keys if _is_py(is_py, k[0])}
        self._lock = threading.RLock()
        self._stale = True
        self._generation = 0            # bumped by every event
        self._hint_generation = 0       # the generation of the last stale hint
        self._key_generation: dict[PropertyKey, int] = {}  # of each key's last event
        self._read_generation: dict[PropertyKey, int] = {}  # when each key was last read
        self._changes: list[_Change] = []  # events since the last frame's state
        self._hints: list[float] = []      # stale hints since the last frame's state
        self._read_times: dict[PropertyKey, float] = {}  # of the reads since the last frame
        self._prior: dict[PropertyKey, RawValue] = {}    # the values those reads replaced
        self._read_where: dict[PropertyKey, str] = {}    # where each key was last read
        self._read_start: dict[PropertyKey, float] = {}  # when its last read began
        self._last_silent_read = -math.inf               # when silent keys were last read
        #: silent changes (no event or hint since the key's previous read), placed in time
        self._windows = ChangeWindows()
        self._last_frame_at: float | None = None
        #: frames whose silent values wait for the reads after their exposure
        self._pending: dict[int, tuple[float, float]] = {}
        self._reader: SilentReader | None = None
        self._read_at = "not read yet"
        #: what changed since the read, and how it was seen (the latest way per property)
        self._events_text: dict[str, str] = {}
        self._verified_at = -math.inf
        self._next_uid = 0
        self._current: StateSnapshot | None = None
        self._t0 = time.perf_counter()
        self._attached = False
        self.snapshots: dict[int, StateSnapshot] = {}
        self._interned: dict[tuple[tuple[PropertyKey, RawValue], ...], StateSnapshot] = {}

    @property
    def keys(self) -> tuple[PropertyKey, ...]:
        return self._keys

    @property
    def stale(self) -> bool:
        """True when a hint says the cached state may be out of date."""
        return self._stale

    def attach(self) -> None:
        """Listen to the core's change events (hints only)."""
        if self._attached:
            return
        ev = self._core.events
        ev.propertyChanged.connect(self._on_property_changed)
        ev.configSet.connect(self._on_stale_hint)
        ev.pixelSizeChanged.connect(self._on_stale_hint)
        ev.systemConfigurationLoaded.connect(self._on_stale_hint)
        self._attached = True

    def detach(self) -> None:
        """Stop listening, after the reads asked for have ended."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if not self._attached:
            return
        ev = self._core.events
        ev.propertyChanged.disconnect(self._on_property_changed)
        ev.configSet.disconnect(self._on_stale_hint)
        ev.pixelSizeChanged.disconnect(self._on_stale_hint)
        ev.systemConfigurationLoaded.disconnect(self._on_stale_hint)
        self._attached = False

    def restart_clock(self) -> None:
        """Measure snapshot times from now (the start of the run)."""
        self._t0 = time.perf_counter()

    def _on_property_changed(self, device: str, prop: str, value: object) -> None:
        key = (device, prop)
        if key not in self._watched:
            return
        now = time.perf_counter()
        with self._lock:
            self._generation += 1
            self._key_generation[key] = self._generation
            old = self._values.get(key, Unknown("not read yet"))
            new = str(value)
            if old != new:
                self._changes.append(_Change(now, key, old, new))
                self._values[key] = new
                self._events_text[_name(key)] = "its change event"
                self._current = None

    def _on_stale_hint(self, *_: object) -> None:
        with self._lock:
            self._generation += 1
            self._hint_generation = self._generation
            self._hints.append(time.perf_counter())
            self._stale = True

    def mark_stale(self) -> None:
        self._stale = True

    def read(self, key: PropertyKey) -> RawValue:
        """Read one property from the device now; a failure becomes :class:`Unknown`."""
        device, prop = key
        try:
            if prop == SHUTTER_STATE and self._core.getDeviceType(device) == DeviceType.Shutter:
                # many shutters have no State property: ask the core whether it is open
                return str(int(self._core.getShutterOpen(device)))
            return str(self._core.getProperty(device, prop))
        except Exception as exc:  # any device error: recorded, never replaced by a guess
            return Unknown(f"reading {device}.{prop} failed: {type(exc).__name__}: {exc}")

    def refresh(self, trigger: str, keys: Iterable[PropertyKey] | None = None,
                frame: int | None = None, *, before_exposure: bool = False,
                background: bool = False) -> StateSnapshot:
        """Read the watched properties (all, or ``keys``) from their devices; the snapshot.

        An event that arrives while this reads wins over the read: a ``propertyChanged``
        value stays, a stale hint leaves the state stale for the next frame. A value that
        changed with no event or hint since its last read changed at a moment nobody saw:
        its :class:`~nbo_recorder.capture.silent.ChangeWindow` (from the start of the
        earlier read to the end of this one) makes it unknown for any exposure it overlaps.
        ``before_exposure``: read just before frame ``frame``'s exposure; ``background``: the
        round of reads after frame ``frame``'s exposure, on the reader's thread.
        """
        todo = self._keys if keys is None else tuple(keys)
        with self._lock:
            start = self._generation
        read: dict[PropertyKey, tuple[RawValue, float, float]] = {}
        for k in todo:
            began = time.perf_counter()
            value = self.read(k)
            read[k] = (value, began, time.perf_counter())
        where = (f"the read before frame {frame}'s exposure" if before_exposure
                 else f"the read after frame {frame}'s exposure" if frame is not None
                 else f"the read at {trigger}")
        with self._lock:
            changed = False
            moved: list[PropertyKey] = []  # keys this read found changed
            for k, (value, began, ended) in read.items():
                if self._key_generation.get(k, -1) > start:
                    continue  # its event arrived during the read: newer than what was read
                old = self._values[k]
                if (value != old and not isinstance(old, Unknown)
                        and self._hint_generation <= self._read_generation.get(k, -1)
                        and self._key_generation.get(k, -1) <= self._read_generation[k]):
                    self.silent.add(k)  # changed with no event and no hint since its read
                    if k not in self._measured and not isinstance(value, Unknown):
                        self._windows.add(k, ChangeWindow(
                            self._read_start.get(k, began), ended, old, value,
                            self._read_where.get(k, "the previous read"), where))
                self._read_generation[k] = start
                self._read_where[k] = where
                self._read_start[k] = began
                if not background:  # the reads a frame's own hints are compared with
                    self._read_times[k] = ended
                    self._prior.setdefault(k, old)
                if value != old:
                    self._values[k] = value
                    changed = True
                    moved.append(k)
            if any(k in self.silent for k in read):
                self._last_silent_read = time.perf_counter()
            short = f"frame {frame}" if frame is not None else trigger
            if before_exposure:
                short = f"before frame {frame}'s exposure"
            when = f"{short}, {time.perf_counter() - self._t0:.4f} s"
            if keys is None:
                if self._hint_generation <= start:
                    self._stale = False
                if changed or self._current is None:
                    # unchanged values keep their snapshot: it says when they were first read
                    self._read_at = f"read at {when} ({trigger})"
                    self._events_text = {}
            elif moved:
                self._events_text.update((_name(k), f"re-read at {short}") for k in moved)
            if changed:
                self._current = None
            return self._snapshot_locked(trigger)

    def verify_due(self) -> tuple[PropertyKey, ...]:
        """The silent properties the verify policy says to re-read now (maybe none)."""
        policy = self.verify
        if policy.mode == "events" or not self.silent:
            return ()
        if policy.mode == "interval":
            assert policy.interval_s is not None
            if time.perf_counter() - self._verified_at < policy.interval_s:
                return ()
        self._verified_at = time.perf_counter()
        return tuple(k for k in self._keys if k in self.silent)

    def before_exposure(self, frame: int, *, waited: bool = False) -> None:
        """Re-read the silent properties before frame ``frame``'s exposure, if the verify
        policy re-reads them and the runner ``waited`` for this frame or their last read is
        older than :data:`PRE_READ_AFTER_S`.

        A change found after an exposure cannot be placed before, during or after it; a read
        just before narrows its window to the exposure itself. Runs that wait between frames
        (time-lapses) get this read in their wait; back-to-back frames (z-stacks, bursts) do
        not pay for it.
        """
        if self.verify.mode == "events" or not self.silent:
            return
        if not waited and time.perf_counter() - self._last_silent_read < PRE_READ_AFTER_S:
            return
        self.wait_idle()
        self.refresh("verify", self._silent_keys(), frame=frame, before_exposure=True)

    def wait_idle(self) -> None:
        """Wait for the reads after earlier exposures (before reading on this thread, or
        before the acquisition moves devices those reads must not see moved)."""
        if self._reader is not None:
            self._reader.wait_idle()

    def read_at_exposure_end(self, trigger: str, frame: int) -> None:
        """Re-read every watched property the moment frame ``frame``'s exposure ended
        (``trigger`` says why); :meth:`frame_state` with ``already_read`` then uses it."""
        self.wait_idle()
        self._verified_at = time.perf_counter()
        self.refresh(trigger, frame=frame)

    def frame_state(self, trigger: str | None, frame: int, exposure_end: float | None,
                    exposure_start: float | None = None, *,
                    already_read: bool = False) -> StateSnapshot:
        """The state in force during frame ``frame``'s exposure, from ``exposure_start`` (at
        the latest) to ``exposure_end`` (at the earliest), ``time.perf_counter()`` values;
        None when unknown (a hardware burst: the state when the frame is handed over).

        ``trigger`` (a reason) re-reads every watched property first, unless
        ``already_read`` (by :meth:`read_at_exposure_end`). Otherwise, with the
        default ``every-frame`` policy and a known exposure, the silent properties are read
        after the exposure on the reader's thread, and the frame's silent values are settled
        by :meth:`resolve`; with other policies, or in a burst, they are re-read here as the
        policy says. Changes that arrived after the exposure end are left for the next frame;
        silent changes whose window overlaps the exposure make the value unknown.
        """
        now = time.perf_counter()
        pending = False
        if trigger is not None:
            if not already_read:
                self.read_at_exposure_end(trigger, frame)
        elif (self.verify.mode == "every-frame" and self.silent
              and exposure_end is not None and exposure_start is not None):
            if self._reader is None:
                self._reader = SilentReader(self._read_round)
            self._reader.request(frame)
            pending = True
        else:
            due = self.verify_due()
            if due:
                self.refresh("verify", due, frame=frame)
        with self._lock:
            current = self._snapshot_locked("event")
            late: list[str] = []
            values: dict[PropertyKey, RawValue] = {}
            # only an event or hint since the last frame can have come after the exposure
            if exposure_end is not None and (self._changes or self._hints):
                values = dict(current.values)
                for change in reversed(self._changes):
                    if change.at > exposure_end:
                        values[change.key] = change.old
                        late.append(_name(change.key))
                hints = [h for h in self._hints if h > exposure_end]
                for k, at in self._read_times.items():
                    if (hints and at > min(hints)
                            and values[k] != self._prior.get(k, values[k])):
                        values[k] = Unknown(
                            f"{_name(k)} changed after frame {frame}'s exposure, while the "
                            "state was being read (a config or pixel-size change); the next "
                            "frame reads it again")
                        late.append(f"{_name(k)} (read after a config change)")
            self._changes.clear()
            self._hints.clear()
            self._read_times.clear()
            self._prior.clear()
            began = exposure_start if exposure_start is not None else self._last_frame_at
            ended = exposure_end if exposure_end is not None else now
            self._last_frame_at = now
            unplaced: list[str] = []
            if pending:
                self._pending[frame] = (began if began is not None else -math.inf, ended)
            elif self.silent:
                unknown = self._unplaced(frame, began, ended)
                if unknown:
                    values = values or dict(current.values)
                    values.update(unknown)
                    unplaced = [_name(k) for k in unknown]
            if not late and not unplaced:
                return current
            notes = []
            if late:
                notes.append("changed after this frame's exposure ended, so from the next "
                             "frame on: " + ", ".join(dict.fromkeys(reversed(late))))
            if unplaced:
                notes.append(_UNPLACED_NOTE + ", ".join(unplaced))
            return self._new_snapshot(values, f"state at frame {frame}'s exposure",
                                      "; ".join(notes))

    def resolve(self, frame: int, uid: int) -> int:
        """The snapshot of frame ``frame`` once the reads after its exposure are in: ``uid``
        itself, or one with the silent values those reads could not place made unknown.

        Called by the thread that writes the frame's record; waits for those reads (they
        run while the next frame is exposed), never on the acquisition thread.
        """
        with self._lock:
            window = self._pending.pop(frame, None)
        if window is None or self._reader is None:
            return uid
        failed = self._reader.wait_for(frame)
        with self._lock:
            if failed is not None:
                unknown = {k: Unknown(f"{_name(k)}: {failed}") for k in self._silent_keys()}
            else:
                unknown = self._unplaced(frame, *window)
            if not unknown:
                return uid
            values = {**self.snapshots[uid].values, **unknown}
            note = _UNPLACED_NOTE + ", ".join(_name(k) for k in unknown)
            key = (PROVENANCE, "after_exposure")
            earlier = values.get(key)
            values[key] = f"{earlier}; {note}" if isinstance(earlier, str) else note
            return self._intern(values, f"state at frame {frame}'s exposure").uid

    def _read_round(self, frame: int) -> None:
        """The reader's round after frame ``frame``'s exposure: every silent property."""
        self.refresh("verify", self._silent_keys(), frame=frame, background=True)

    def _silent_keys(self) -> tuple[PropertyKey, ...]:
        return tuple(k for k in self._keys if k in self.silent)

    def _unplaced(self, frame: int, began: float | None,
                  ended: float) -> dict[PropertyKey, Unknown]:
        """The silent values a change window overlapping the exposure makes unknown for
        frame ``frame`` (``began`` None: since the previous frame), each saying why."""
        start = began if began is not None else -math.inf
        out: dict[PropertyKey, Unknown] = {}
        for k in self._silent_keys():
            found = self._windows.overlapping(k, start, ended)
            if found:
                first, last = found[0], found[-1]
                out[k] = Unknown(
                    f"{_name(k)} changed from {first.old} to {last.new} with no change event, "
                    f"between {first.since} and {last.until}: not known whether before, "
                    f"during or after frame {frame}'s exposure; the frames after have the new "
                    "value")
        return out

    def snapshot(self, trigger: str = "event") -> StateSnapshot:
        """The current snapshot; a new one is made only if a value changed since the last."""
        with self._lock:
            return self._snapshot_locked(trigger)

    def _provenance(self, late: str | None) -> dict[PropertyKey, RawValue]:
        """How the current values are known, as pseudo-device entries of a snapshot;
        ``late`` names changes left for the next frame (instead of those applied)."""
        out: dict[PropertyKey, RawValue] = {(PROVENANCE, "read"): self._read_at}
        if late is not None:
            out[(PROVENANCE, "after_exposure")] = late
        if self._events_text:
            out[(PROVENANCE, "events")] = "changed since the read: " + ", ".join(
                f"{name} ({how})" for name, how in self._events_text.items())
        silent = ", ".join(_name(k) for k in self._keys if k in self.silent)
        if silent and self.verify.mode != "events":
            every = ("every frame" if self.verify.mode == "every-frame"
                     else f"every {self.verify.interval_s:g} s")
            out[(PROVENANCE, "verified")] = (
                f"{silent}: fire no change events; re-read {every} (verify={self.verify})")
        if silent and self.verify.mode != "every-frame":
            out[(PROVENANCE, "assumed")] = (
                f"{silent}: fire no change events; assumed unchanged since they were last "
                f"read (verify={self.verify})")
        return out

    def _snapshot_locked(self, trigger: str) -> StateSnapshot:
        if self._current is None:
            self._current = self._new_snapshot(self._values, trigger)
        return self._current

    def _new_snapshot(self, values: Mapping[PropertyKey, RawValue], trigger: str,
                      late: str | None = None) -> StateSnapshot:
        merged = {k: v for k, v in values.items() if k[0] != PROVENANCE}
        merged.update(self._provenance(late))
        return self._intern(merged, trigger)

    def _intern(self, merged: dict[PropertyKey, RawValue], trigger: str) -> StateSnapshot:
        """The snapshot of exactly these values and provenance (made once, then reused)."""
        interned = tuple(merged.items())
        known = self._interned.get(interned)
        if known is not None:  # the same values known the same way: the same snapshot
            return known
        snap = StateSnapshot(
            uid=self._next_uid,
            values=MappingProxyType(merged),
            elapsed_s=time.perf_counter() - self._t0,
            trigger=trigger,
        )
        self._next_uid += 1
        self.snapshots[snap.uid] = snap
        self._interned[interned] = snap
        return snap


def _is_py(is_py: Callable[[str], bool], label: str) -> bool:
    """True when ``label`` is a UniMMCore Python device (they fire no change events)."""
    try:
        return bool(is_py(label))
    except Exception:  # a label the core does not know: not a Python device
        return False
