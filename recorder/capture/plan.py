"""What a sequence will produce, worked out before its first frame.

The sink sizes the file (classic TIFF or BigTIFF), reports dropped frames and starts the NBO
compliance check early from these; the pre-flight prediction builds its run from them too. They
only read the ``useq`` sequence (and what the caller read of the camera), never the hardware.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from nbo_recorder.capture.documents import RunStart
from nbo_recorder.capture.versions import now_iso

if TYPE_CHECKING:
    from useq import MDASequence

    from nbo_recorder.profile.model import Profile


def _has_sub_sequences(sequence: MDASequence) -> bool:
    """True when a position carries its own sequence: then sizes alone do not say the plan."""
    return any(p.sequence for p in sequence.stage_positions)


def planned_channels(sequence: MDASequence) -> set[tuple[int, int]] | None:
    """Every (position, channel) index pair a plain sequence will visit; None when positions
    carry their own sub-sequences (then the pairs are not known in advance)."""
    if _has_sub_sequences(sequence):
        return None
    positions = len(sequence.stage_positions) or 1
    channels = len(sequence.channels) or 1
    return {(p, c) for p in range(positions) for c in range(channels)}


def count_events(sequence: MDASequence, cap: int = 10_000_000) -> int | None:
    """Number of frames a sequence will produce, or None if unbounded/unknown.

    The product of the axis sizes when no position carries its own sub-sequence (exact
    and instant); otherwise the events are counted (up to ``cap``).
    """
    if not _has_sub_sequences(sequence):
        return int(math.prod(int(v) for v in sequence.sizes.values() if v))
    try:
        n = 0
        for _ in sequence:
            n += 1
            if n > cap:
                return None
        return n
    except Exception:
        return None


def run_start(
    profile: Profile, sequence: MDASequence, *, width: int, height: int, dtype: str,
    camera: str, versions: Mapping[str, str],
) -> RunStart:
    """The start document of a run of ``sequence``: one place for the sink (at sequence
    start) and the pre-flight prediction, so both describe a run the same way.

    ``width``/``height``/``dtype``/``camera`` are the first frame's, as the engine or the
    core reports them. Not every z or time plan has a step or an interval (absolute
    positions, phases): those are then None.
    """
    z_step = getattr(sequence.z_plan, "step", None)
    interval = getattr(sequence.time_plan, "interval", None)
    return RunStart(
        started_at=now_iso(),
        profile=profile.model_dump(mode="json"),
        sequence=sequence.model_dump(mode="json", exclude_unset=True),
        width=width, height=height, dtype=dtype, camera=camera,
        versions=versions,
        position_names=tuple(p.name for p in sequence.stage_positions),
        z_step_um=z_step,
        time_interval_s=interval.total_seconds() if interval is not None else None,
        frames_expected=count_events(sequence),
    )
