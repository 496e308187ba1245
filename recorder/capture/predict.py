"""The run a sequence would record, predicted before its first frame without moving anything.

``acquire --tier N`` must tell, before the first frame, exactly what ``validate --tier N`` will
say of the file. The surest way is to grade the same kind of record: this module builds the
documents of the run the sequence would produce (:class:`~nbo_recorder.capture.documents.Run`)
from what can be known without acquiring:

* the watched properties as the devices report them now (one read of each);
* for each channel, that state overlaid with the settings its preset applies (the core's own
  config data for the group and preset), and with the properties a position sets;
* one frame per event of the sequence, with its indices, exposure, stage position (the event's,
  else where the stage is now), the current pixel size and frame size.

The result goes through the same renderer and the same grading as a written file
(:func:`nbo_recorder.judge.validate.grade_xml`). Nothing is set on the hardware. What the
prediction cannot know (a value a device only reports while acquiring, a keypad change during
the run) may still differ; a value the devices do not answer now is unknown in the prediction
as it would be in the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from nbo_recorder.capture.documents import (
    FrameRecord,
    PropertyKey,
    RawValue,
    Run,
    RunStop,
    StateSnapshot,
)
from nbo_recorder.capture.plan import run_start
from nbo_recorder.capture.state import StateMonitor
from nbo_recorder.capture.versions import now_iso, software_versions

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from useq import MDAEvent, MDASequence

    from nbo_recorder.profile.model import Profile

#: the trigger a predicted snapshot names (it is never written to a file)
PREDICTED = "pre-flight prediction"


def predict_run(core: CMMCorePlus, profile: Profile, sequence: MDASequence) -> Run:
    """The documents of the run ``sequence`` would record on ``core`` now (see the module)."""
    monitor = StateMonitor(core, profile.watched_properties(),
                           measured=profile.measured_properties())
    now = monitor.refresh(PREDICTED)
    watched = frozenset(monitor.keys)
    bit_depth = int(core.getImageBitDepth() or 16)
    run = Run(start=run_start(
        profile, sequence, width=int(core.getImageWidth()), height=int(core.getImageHeight()),
        dtype=str(np.dtype("uint8" if bit_depth <= 8 else "uint16")),
        camera=core.getCameraDevice(), versions=software_versions(core)))
    snapshots: dict[tuple[tuple[PropertyKey, RawValue], ...], StateSnapshot] = {}
    stage = _stage_now(core)
    exposure_now = float(core.getExposure())
    pixel_size = float(core.getPixelSizeUm())
    for index, event in enumerate(sequence):
        values = dict(now.values)
        values.update(_applied(core, event, watched))
        key = tuple(values.items())
        snap = snapshots.get(key)
        if snap is None:
            snap = snapshots[key] = StateSnapshot(len(snapshots), values, 0.0, PREDICTED)
        idx = event.index
        run.frames.append(FrameRecord(
            index=index, p=idx.get("p", 0), t=idx.get("t", 0), c=idx.get("c", 0),
            z=idx.get("z", 0), g=idx.get("g", 0),
            channel=event.channel.config if event.channel is not None else None,
            elapsed_ms=1000.0 * (event.min_start_time or 0.0),
            exposure_ms=float(event.exposure) if event.exposure is not None else exposure_now,
            x_um=event.x_pos if event.x_pos is not None else stage[0],
            y_um=event.y_pos if event.y_pos is not None else stage[1],
            z_um=event.z_pos if event.z_pos is not None else stage[2],
            pixel_size_um=pixel_size, snapshot=snap.uid,
            width=run.start.width, height=run.start.height))
    run.snapshots = {snap.uid: snap for snap in snapshots.values()}
    run.stop = RunStop(stopped_at=now_iso(), frames_written=len(run.frames),
                       frames_expected=run.start.frames_expected, reason="completed")
    return run


def _applied(core: CMMCorePlus, event: MDAEvent,
             watched: frozenset[PropertyKey]) -> Mapping[PropertyKey, RawValue]:
    """The watched properties ``event`` sets: its channel preset's, then its own."""
    out: dict[PropertyKey, RawValue] = {}
    if event.channel is not None:
        for device, prop, value in core.getConfigData(event.channel.group,
                                                      event.channel.config):
            if (device, prop) in watched:
                out[(device, prop)] = str(value)
    for device, prop, value in event.properties or ():
        if (device, prop) in watched:
            out[(device, prop)] = str(value)
    return out


def _stage_now(core: CMMCorePlus) -> tuple[float | None, float | None, float | None]:
    """Where the XY and focus stages are now (µm; None for a stage the core does not have)."""
    x = y = z = None
    if core.getXYStageDevice():
        x, y = float(core.getXPosition()), float(core.getYPosition())
    if core.getFocusDevice():
        z = float(core.getPosition())
    return x, y, z
