"""Registry of live simulated instruments, keyed by URL host and instance name.

Every ``sim://<kind>?name=<name>&...`` open with the same kind and name reaches the
same :class:`~mocks._base.SimulatedInstrument`, so a test can open a second
"inspection" handle, or fetch the instance with :func:`get_instrument` to read its
state, inject faults or move hardware behind the driver's back. Without ``name`` the
instance is named after its kind (``sim://obis`` is instance ``obis``).
"""

from __future__ import annotations

import threading
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

from nbo_recorder.sim._base import RUNTIME_OPTIONS, SimulatedInstrument
from nbo_recorder.sim.sim_coolled import SimCoolLED
from nbo_recorder.sim.sim_csuw1 import SimCSUW1
from nbo_recorder.sim.sim_fw102c import SimFW102C
from nbo_recorder.sim.sim_obis import SimObis

KINDS: dict[str, type[SimulatedInstrument]] = {
    cls.kind: cls for cls in (SimObis, SimCSUW1, SimCoolLED, SimFW102C)
}
"""Simulator class for each URL host."""

InstrumentT = TypeVar("InstrumentT", bound=SimulatedInstrument)

_lock = threading.Lock()
_instances: dict[tuple[str, str], SimulatedInstrument] = {}


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """Split ``sim://<kind>?<query>`` into kind, instance name and query options."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sim":
        raise ValueError(f"not a simulator URL: {url!r}")
    kind = parts.netloc.lower()
    if kind not in KINDS:
        raise ValueError(
            f"unknown simulated instrument {kind!r} in {url!r}; known: {sorted(KINDS)}"
        )
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in options:
            raise ValueError(f"query parameter {key!r} given twice in {url!r}")
        options[key] = value
    return kind, options.get("name", kind), options


def open_instrument(url: str) -> SimulatedInstrument:
    """Return the live instrument for ``url``, creating it on first use."""
    kind, name, options = parse_url(url)
    with _lock:
        instrument = _instances.get((kind, name))
        if instrument is None:
            instrument = KINDS[kind](name, options)
            _instances[(kind, name)] = instrument
            return instrument
    clashes = {
        key: value
        for key, value in options.items()
        if key not in RUNTIME_OPTIONS and instrument.settings.get(key) != value
    }
    if clashes:
        raise ValueError(
            f"sim://{kind} instance {name!r} already exists with settings "
            f"{instrument.settings}; {url!r} asks for {clashes}"
        )
    if "fault" in options:
        instrument.set_fault(options["fault"])
    return instrument


def get_instrument(url_or_name: str, kind: type[InstrumentT]) -> InstrumentT:
    """Return the live instrument for a ``sim://`` URL or an instance name."""
    with _lock:
        if "://" in url_or_name:
            key = parse_url(url_or_name)[:2]
            found = [_instances[key]] if key in _instances else []
        else:
            found = [inst for (_, name), inst in _instances.items() if name == url_or_name]
    if len(found) != 1:
        raise KeyError(
            f"{len(found)} simulated instruments match {url_or_name!r}; "
            f"live instances: {sorted(_instances)}"
        )
    instrument = found[0]
    if not isinstance(instrument, kind):
        raise TypeError(f"{url_or_name!r} is a {type(instrument).__name__}, not a {kind.__name__}")
    return instrument


def reset_instruments() -> None:
    """Forget every instance: the next open of any URL powers up a fresh instrument."""
    with _lock:
        _instances.clear()
