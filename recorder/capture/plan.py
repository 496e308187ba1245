"""What a sequence will produce, worked out before its first frame.

The sink sizes the file (classic TIFF or BigTIFF), reports dropped frames and starts the NBO
compliance check early from these; they only read the ``useq`` sequence, never the hardware.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from useq import MDASequence


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
