"""Attach to a pymmcore-plus core and record an MDA run into an NBO-complete OME-TIFF.

Usage, inside any pymmcore-plus script::

    rec = Recorder(core, profile="hardware_profiles/mm_demo.yaml")
    core.mda.run(sequence, output=rec.sink("exp1.ome.tif"))

The :class:`Recorder` checks the profile (against NBO and against the loaded devices) once,
during set-up; each :meth:`Recorder.sink` is a :class:`~nbo_recorder.capture.sink.RecordingSink`
that records one run. The sink's names (its write-error policy, error and progress) are
importable from here too, so one import serves a script.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from nbo_recorder.capture.output_path import check_output_paths
from nbo_recorder.capture.policy import RecordingError, VerifyPolicy, WriteErrorPolicy
from nbo_recorder.capture.sink import RecordingSink, SinkProgress
from nbo_recorder.capture.versions import software_versions
from nbo_recorder.nbo.rules import load_rules
from nbo_recorder.nbo.schema import get_schema
from nbo_recorder.nbo.xsd_index import resolve_declarations
from nbo_recorder.profile.core_check import check_against_core
from nbo_recorder.profile.model import Profile
from nbo_recorder.render.bindings import prepare_ome_writer
from nbo_recorder.render.nbo_checks import check_nbo_profile, load_checked_profile
from nbo_recorder.store.tiff_writer import check_output_path

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from useq import MDASequence

    from nbo_recorder.judge.predicted import Preflight

__all__ = [
    "Recorder",
    "RecorderOptions",
    "RecordingError",
    "RecordingSink",
    "SinkProgress",
    "VerifyPolicy",
    "WriteErrorPolicy",
    "software_versions",
]


class RecorderOptions(TypedDict, total=False):
    """What a :class:`Recorder` does when a device or the disk fails (see its __init__)."""

    on_device_error: Literal["continue", "stop"]
    on_write_error: Literal["stop", "pause"]
    write_retry_s: float
    max_pause_s: float | None
    verify: str


class Recorder:
    """Binds a hardware profile to a live core; makes one :class:`RecordingSink` per run.

    The profile is checked here, so what cannot be recorded fails before any acquisition
    starts: its values against the NBO vocabularies (a value NBO cannot hold), and its
    bindings against the loaded devices (a device, property or label the core does not have).
    """

    def __init__(
        self, core: CMMCorePlus, profile: str | Path | Profile, *,
        on_device_error: Literal["continue", "stop"] = "continue",
        on_write_error: Literal["stop", "pause"] = "stop",
        write_retry_s: float = 10.0,
        max_pause_s: float | None = None,
        verify: str | VerifyPolicy = "every-frame",
    ) -> None:
        """``on_device_error``: when a bound property cannot be read during a run, record it
        as unknown and carry on (default), or record it and stop the acquisition.

        ``on_write_error``: when a frame cannot be written (disk full, I/O error), stop the
        acquisition and finish the file with what was written (default), or pause the
        acquisition, retry the frame every ``write_retry_s`` seconds and resume once it is
        written. A pause ends in a stop when the acquisition is canceled meanwhile, when
        :meth:`RecordingSink.stop_waiting` is called, or after ``max_pause_s`` seconds (None:
        no limit).

        ``verify``: when the properties of silent devices (Python devices, and properties
        seen to change without an event) are re-read: ``"every-frame"`` (default: a change
        at the instrument's keypad within a z-stack or burst is caught at the next frame),
        ``"interval:S"`` (every S seconds), or ``"events"`` (only where every property is
        read: new channel, position, time point, config change). Every value in the file
        says how it is known (its ``provenance.*`` entries): read at which frame and time,
        changed since by an event, re-read by this policy, or assumed unchanged.
        """
        self.verify = VerifyPolicy.parse(verify)
        if on_device_error not in ("continue", "stop"):
            raise ValueError(f"on_device_error must be 'continue' or 'stop', "
                             f"not {on_device_error!r}")
        self.write_errors = WriteErrorPolicy(on_write_error, write_retry_s, max_pause_s)
        self.core = core
        # what NBO cannot hold must fail here, before the first frame, not when the file
        # is finalised (loading a profile checks it against the profile model only)
        if isinstance(profile, Profile):
            check_nbo_profile(profile)
            self.profile = profile
        else:
            self.profile = load_checked_profile(profile)
        self.on_device_error = on_device_error
        check_against_core(self.profile, core)
        # compile the NBO XSD (libxml2, ~50 ms) now, during set-up, rather than while a
        # camera is streaming or at the end of the first run; a broken XSD fails here
        get_schema()

    def preflight(self, tier: int, sequence: MDASequence | None = None, *,
                  source: str = "pre-flight") -> Preflight:
        """What ``validate --tier tier`` would report of the file ``sequence`` records now.

        The run the sequence would record is predicted from the devices' current state and
        the settings each channel preset applies (nothing is moved), rendered and graded as a
        written file is (:mod:`nbo_recorder.judge.predicted`). Without ``sequence``: one frame
        in the current state. The result's ``report.failures`` and ``report.schema_errors``
        are the gaps; ``unresolved`` the live values the file will record as unknown.
        """
        from useq import MDASequence

        from nbo_recorder.judge.predicted import preflight

        one_frame = MDASequence(time_plan={"interval": 0, "loops": 1})
        return preflight(self.core, self.profile, sequence or one_frame, tier, source=source)

    def sink(self, path: str | Path, *, overwrite: bool = False) -> RecordingSink:
        """A single-use ``output=`` handler for ``core.mda.run`` writing to ``path``."""
        out = Path(path)
        check_output_paths(out, overwrite)  # the journal beside it too
        check_output_path(out, overwrite)
        # worked out now rather than during the run or after its last frame (once per
        # process): the OME classes' XML bindings, the NBO XSD's declarations and the NBO
        # rules table. The sink checks the record's NBO compliance in a thread of its own
        # once every channel has its first frame; working those two out there cost 0.2 s of
        # Python, taken from the acquisition while the camera streamed
        prepare_ome_writer()
        resolve_declarations()
        load_rules()
        return RecordingSink(self.core, self.profile, out,
                             stop_on_device_error=self.on_device_error == "stop",
                             write_errors=self.write_errors, verify=self.verify)
