"""nbo-recorder: the live state of a Micro-Manager rig, written into the file it acquires.

The public API::

    from nbo_recorder import Recorder, load_core, load_profile, read, validate_file, recover

    core = load_core("demo")                       # or a Micro-Manager .cfg path
    rec = Recorder(core, profile="my_rig.yaml")
    core.mda.run(sequence, output=rec.sink("exp1.ome.tif"))

Names are imported on first use, so ``import nbo_recorder`` (and the pytest plugin, the CLI's
``--help``) does not pay for pymmcore-plus, ome-types or the XML schema until they are needed.
The stages of the package, in the order data flows through them: ``profile`` (what the rig
is), ``capture`` (what it did), ``render`` (OME and NBO XML), ``store`` (TIFF, journal,
recovery), ``read`` (reading, validating and describing a file), with ``nbo`` (the
specification), ``conformance`` and ``cli`` beside them; ``drivers`` and ``sim`` hold the
serial instruments and their simulators.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbo_recorder.capture.policy import RecordingError
    from nbo_recorder.capture.recorder import Recorder
    from nbo_recorder.judge.reader import read
    from nbo_recorder.judge.validate import validate_file
    from nbo_recorder.profile.load import load_profile
    from nbo_recorder.rig import load_core
    from nbo_recorder.store.recovery import recover

#: Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    "Recorder": "nbo_recorder.capture.recorder",
    "RecordingError": "nbo_recorder.capture.policy",
    "load_core": "nbo_recorder.rig",
    "load_profile": "nbo_recorder.profile.load",
    "read": "nbo_recorder.judge.reader",
    "recover": "nbo_recorder.store.recovery",
    "validate_file": "nbo_recorder.judge.validate",
}

__all__ = [
    "Recorder",
    "RecordingError",
    "load_core",
    "load_profile",
    "read",
    "recover",
    "validate_file",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbo_recorder' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
