"""Grade the record a sequence would write, before its first frame: the pre-flight verdict.

The prediction (:func:`nbo_recorder.capture.predict.predict_run`) is rendered by the renderer
that writes files and graded by the grading ``validate`` uses, so ``acquire --tier N`` lists
before the first frame what ``validate --tier N`` reports of the file written after it.
Besides the verdict, the pre-flight names the live values the profile cannot resolve (a
label it does not describe, a device that does not answer): the file records those as
unknown, whether or not an NBO attribute depends on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nbo_recorder.capture.observed import interpret
from nbo_recorder.capture.predict import predict_run
from nbo_recorder.capture.versions import metadata_writer
from nbo_recorder.judge.validate import ValidationReport, grade_xml
from nbo_recorder.nbo.rules import EXTENSIONS, Extension
from nbo_recorder.render.ome import build_ome_xml

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from useq import MDASequence

    from nbo_recorder.profile.model import Profile


@dataclass(frozen=True)
class Preflight:
    """The pre-flight of one sequence: the verdict and what the live state leaves unknown.

    ``report`` is what ``validate`` will report of the file (its ``failures`` and
    ``schema_errors`` are the gaps); ``unresolved`` lists, one line each, the values the
    file will record as unknown, per channel the sequence visits (``channel 'FITC':
    objective[Objective]: label 'Objective-2' ...``).
    """

    report: ValidationReport
    unresolved: tuple[str, ...]

    @property
    def gaps(self) -> int:
        """How many rows fail the tier, plus what the NBO XSD would refuse."""
        return len(self.report.failures) + len(self.report.schema_errors)


def preflight(
    core: CMMCorePlus, profile: Profile, sequence: MDASequence, tier: int,
    extensions: Sequence[Extension] = EXTENSIONS, *, source: str = "pre-flight",
) -> Preflight:
    """The pre-flight of ``sequence`` on ``core`` now (nothing is moved; see the module)."""
    run = predict_run(core, profile, sequence)
    report = grade_xml(build_ome_xml(run, profile, metadata_writer()), source, tier, extensions)
    channels = {f.snapshot: f.channel for f in run.frames}
    unresolved: dict[str, None] = {}
    for uid, channel in channels.items():
        where = f"channel {channel!r}: " if channel is not None else ""
        for what, reason in interpret(run.snapshots[uid], profile).unknown:
            unresolved[f"{where}{what}: {reason}"] = None
    return Preflight(report, tuple(unresolved))
