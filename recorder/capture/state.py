"""Live observation of the bound device properties of a Micro-Manager core.

Micro-Manager's change events are incomplete: applying a config group fires ``configSet``
but no ``propertyChanged`` for the devices it moves, UniMMCore Python devices fire nothing,
and hardware moved from its own keypad fires nothing. So events are used as *hints*:

* ``propertyChanged`` for a watched property updates the value at once (the core reports
  the new value with the event);
* ``configSet``, ``pixelSizeChanged``, ``systemConfigurationLoaded`` mark the state stale;
* the truth comes from :meth:`StateMonitor.refresh`, an explicit read of every watched
  property, which the recorder calls at sequence start and whenever the acquisition moves to
  another channel, position, time point or config, or the state was marked stale.

Per frame, :meth:`StateMonitor.snapshot` only returns the current immutable snapshot (a new
object only when something changed): no device I/O on the hot path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from types import MappingProxyType
from typing import TYPE_CHECKING

from nbo_recorder.capture.documents import PropertyKey, RawValue, StateSnapshot
from nbo_recorder.vocabulary import Unknown

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus


class StateMonitor:
    """Keeps the last observed value of each watched (device, property) of ``core``."""

    def __init__(self, core: CMMCorePlus, keys: Iterable[PropertyKey]) -> None:
        self._core = core
        self._keys: tuple[PropertyKey, ...] = tuple(dict.fromkeys(keys))
        self._watched = frozenset(self._keys)
        self._values: dict[PropertyKey, RawValue] = {
            k: Unknown("not read yet") for k in self._keys
        }
        self._lock = threading.RLock()
        self._stale = True
        self._next_uid = 0
        self._current: StateSnapshot | None = None
        self._t0 = time.perf_counter()
        self._attached = False
        self.snapshots: dict[int, StateSnapshot] = {}

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
        if key in self._watched:
            with self._lock:
                if self._values.get(key) != str(value):
                    self._values[key] = str(value)
                    self._current = None

    def _on_stale_hint(self, *_: object) -> None:
        self._stale = True

    def mark_stale(self) -> None:
        self._stale = True

    def read(self, key: PropertyKey) -> RawValue:
        """Read one property from the device now; a failure becomes :class:`Unknown`."""
        device, prop = key
        try:
            return str(self._core.getProperty(device, prop))
        except Exception as exc:  # any device error: recorded, never replaced by a guess
            return Unknown(f"reading {device}.{prop} failed: {type(exc).__name__}: {exc}")

    def refresh(self, trigger: str) -> StateSnapshot:
        """Read every watched property from its device and return the resulting snapshot."""
        values = {k: self.read(k) for k in self._keys}
        with self._lock:
            self._stale = False
            if values != self._values or self._current is None:
                self._values = values
                self._current = None
            return self._snapshot_locked(trigger)

    def snapshot(self, trigger: str = "event") -> StateSnapshot:
        """The current snapshot; a new one is made only if a value changed since the last."""
        with self._lock:
            return self._snapshot_locked(trigger)

    def _snapshot_locked(self, trigger: str) -> StateSnapshot:
        if self._current is None:
            snap = StateSnapshot(
                uid=self._next_uid,
                values=MappingProxyType(dict(self._values)),
                elapsed_s=time.perf_counter() - self._t0,
                trigger=trigger,
            )
            self._next_uid += 1
            self.snapshots[snap.uid] = snap
            self._current = snap
        return self._current
