"""Checking a profile's bindings against a loaded Micro-Manager core, before the first frame.

A binding to a device, property or state label the loaded configuration lacks would
otherwise only show up as a silent gap in the metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymmcore_plus import DeviceType

from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.model import Profile

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus


def check_against_core(profile: Profile, core: CMMCorePlus) -> None:
    """Raise :class:`ProfileError` if a binding names a device, property or label the core lacks.

    Every problem is listed, one per line under a heading line, each naming the binding's
    field path (``bindings[0].settings.gain.property: ...``).
    """
    loaded = set(core.getLoadedDevices())
    problems: list[str] = []
    for i, b in enumerate(profile.bindings):
        devices = [(b.device, f"bindings[{i}].device")]
        if b.active_when is not None:
            devices.append((b.active_when.device, f"bindings[{i}].active_when.device"))
        if b.shutter is not None:
            devices.append((b.shutter, f"bindings[{i}].shutter"))
        missing = False
        for dev, path in devices:
            if dev not in loaded:
                problems.append(f"{path}: device {dev!r} is not loaded (loaded: {sorted(loaded)})")
                missing = True
        if missing:
            continue
        if b.shutter is not None and core.getDeviceType(b.shutter) != DeviceType.Shutter:
            problems.append(f"bindings[{i}].shutter: device {b.shutter!r} is not a shutter")
        props = set(core.getDevicePropertyNames(b.device))
        for name, src in b.settings.items():
            if src.property not in props:
                problems.append(
                    f"bindings[{i}].settings.{name}.property: device {b.device!r} has no "
                    f"property {src.property!r}"
                )
        if b.active_when is not None:
            aw = b.active_when
            if aw.property not in set(core.getDevicePropertyNames(aw.device)):
                problems.append(
                    f"bindings[{i}].active_when.property: device {aw.device!r} has no "
                    f"property {aw.property!r}"
                )
        if b.labels is not None:
            try:
                labels = set(core.getStateLabels(b.device))
            except Exception as exc:  # a non-state device raises from MMCore
                problems.append(f"bindings[{i}].labels: {b.device!r} is not a state device ({exc})")
                continue
            for label in b.labels:
                if label not in labels:
                    problems.append(
                        f"bindings[{i}].labels[{label!r}]: device {b.device!r} has no such label "
                        f"(has: {sorted(labels)})"
                    )
    if problems:
        raise ProfileError("profile does not match the loaded Micro-Manager configuration:\n  "
                           + "\n  ".join(problems))
