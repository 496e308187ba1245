"""Loading a Micro-Manager rig: the core, its configuration, and pre-run property settings.

A core is also *released* here (:func:`release_core`). MMCore delivers its notifications on a
C++ thread of its own, started by ``registerCallback``; when that thread calls into Python
while the interpreter is finalising, CPython ends it with ``pthread_exit``, MMCore's
``catch (...)`` swallows the forced unwind, and glibc aborts the process with ``FATAL:
exception not rethrown`` (exit 134). Measured on pymmcore 12.5: a core left for finalisation
after a failed ``loadSystemConfiguration`` aborted 8 of 16 runs; unregistering the callback
first (which joins that thread) 0 of 16. Every core :func:`load_core` makes is therefore
released before the interpreter finalises: by its user, or else by an ``atexit`` hook.
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from pymmcore_plus.experimental.unicore import UniMMCore

DEMO = "demo"

#: the logger UniMMCore reports a Python device's failed ``initialize`` on
_UNICORE_LOGGER = "pymmcore_plus.experimental.unicore"

#: cores made by :func:`load_core` that have not been released yet
_unreleased: weakref.WeakSet[CMMCorePlus] = weakref.WeakSet()


class RigError(RuntimeError):
    """The Micro-Manager configuration could not be loaded or a setting could not be applied."""


def demo_adapter_path() -> Path:
    """Folder of the compiled demo adapters and ``MMConfig_demo.cfg`` (mm-test-adapters)."""
    import mm_test_adapters

    return Path(mm_test_adapters.device_adapter_path())


def load_core(mm_config: str | Path) -> UniMMCore:
    """A UniMMCore with ``mm_config`` loaded (``"demo"`` = MMConfig_demo.cfg).

    UniMMCore, so ``#py pyDevice,...`` lines for Python devices work. The demo adapters'
    folder is always on the adapter search path, so a custom .cfg may use them too.
    """
    from pymmcore_plus.experimental.unicore import UniMMCore

    adapters = demo_adapter_path()
    cfg = adapters / "MMConfig_demo.cfg" if str(mm_config) == DEMO else Path(mm_config)
    if not cfg.is_file():
        raise RigError(f"{cfg}: Micro-Manager configuration file not found")
    core = UniMMCore()
    _unreleased.add(core)
    extra = [p for p in os.environ.get("MICROMANAGER_PATH", "").split(os.pathsep) if p]
    core.setDeviceAdapterSearchPaths([str(adapters), *extra])
    with _initialisation_failures() as failures:
        try:
            core.loadSystemConfiguration(str(cfg))
        except Exception as exc:
            release_core(core)
            causes = "".join(f"{f}; then: " for f in failures)
            raise RigError(f"{cfg}: Micro-Manager could not load this configuration: "
                           f"{causes}{exc}") from exc
    if failures:
        release_core(core)
        raise RigError(f"{cfg}: " + "; ".join(failures))
    return core


class _FailureLog(logging.Handler):
    """Keeps ``Failed to initialize device 'X'`` log records as ``...: cause`` lines."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        cause = record.exc_info[1] if record.exc_info else None
        self.failures.append(f"{record.getMessage()}: {cause}" if cause else record.getMessage())


@contextmanager
def _initialisation_failures() -> Iterator[list[str]]:
    """While inside, why Python devices failed to initialise, one line per device.

    UniMMCore logs a Python device whose ``initialize`` raised (with its traceback) and
    carries on; the configuration then fails at the next use of that device with only
    "... is not initialized". The log record holds the cause (e.g. a laser answering
    garbage to its handshake): it is kept here for the error message instead of being
    printed as a traceback.
    """
    log = logging.getLogger(_UNICORE_LOGGER)
    handler = _FailureLog()
    log.addHandler(handler)
    propagate, log.propagate = log.propagate, False
    try:
        yield handler.failures
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


def release_core(core: CMMCorePlus) -> None:
    """Unload every device of ``core`` and stop its notification thread; safe to repeat.

    Afterwards the core sends no more events and no C++ thread of it can call into Python,
    so the interpreter can finalise without MMCore aborting it (see the module docstring).
    Unloading comes first: a device unloaded later would notify a callback already gone.
    A device that fails to unload does not stop the rest of the release.
    """
    from pymmcore_plus import CMMCorePlus

    try:
        core.unloadAllDevices()
    except Exception:  # a device's shutdown failing must not keep the thread alive
        pass
    # pymmcore-plus forbids registerCallback on its cores (it owns the relay); its own
    # __del__ goes through the base class (pymmcore or pymmcore-nano) as here
    super(CMMCorePlus, core).registerCallback(None)
    _unreleased.discard(core)


@atexit.register
def _release_unreleased() -> None:
    """At interpreter exit (before finalisation), release the cores nobody released."""
    for core in list(_unreleased):
        release_core(core)


def parse_setting(text: str) -> tuple[str, str, str]:
    """Split ``Device.Property=Value`` (the device label may contain spaces)."""
    name, sep, value = text.partition("=")
    device, dot, prop = name.rpartition(".")
    if not sep or not dot or not device or not prop:
        raise RigError(f"--set {text!r}: expected Device.Property=Value, e.g. Camera.Gain=2")
    return device, prop, value


def apply_settings(core: CMMCorePlus, settings: Iterable[str]) -> None:
    """Apply ``Device.Property=Value`` settings, checking device and property exist first."""
    parsed = [parse_setting(s) for s in settings]
    loaded = set(core.getLoadedDevices())
    for device, prop, value in parsed:
        if device not in loaded:
            raise RigError(f"--set {device}.{prop}: device {device!r} is not loaded "
                           f"(loaded: {sorted(loaded)})")
        if not core.hasProperty(device, prop):
            raise RigError(f"--set {device}.{prop}: device {device!r} has no property {prop!r}")
        try:
            core.setProperty(device, prop, value)
        except Exception as exc:
            raise RigError(f"--set {device}.{prop}={value}: {exc}") from exc
    core.waitForSystem()
