"""Loading a Micro-Manager rig: the core, its configuration, and pre-run property settings."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from pymmcore_plus.experimental.unicore import UniMMCore

DEMO = "demo"


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
    extra = [p for p in os.environ.get("MICROMANAGER_PATH", "").split(os.pathsep) if p]
    core.setDeviceAdapterSearchPaths([str(adapters), *extra])
    try:
        core.loadSystemConfiguration(str(cfg))
    except Exception as exc:
        raise RigError(f"{cfg}: Micro-Manager could not load this configuration: {exc}") from exc
    return core


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
