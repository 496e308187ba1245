"""Which frames can share one OME Pixels: those that fill every plane the Pixels declare.

A Pixels declares SizeZ x SizeC x SizeT planes, and OME readers (Bio-Formats among them)
refuse a file whose Pixels hold fewer: the plane count must match. A run that ended early (a
kill, Ctrl-C, SIGTERM, a full disk, a device error, a cancel) holds only part of its last
time point, and a run that lost frames holds only part of some time points. Every Image of
such frames would declare planes the file does not hold, so :func:`grid_blocks` splits them
into blocks that each fill their own grid:

* the complete time points (every z of every channel the frames have): one block;
* the planes of the other time points, grouped by which (z, c) they hold (time points that
  hold the same planes go together), each group split into grids of whole z-stacks of
  channels (channels with the same z planes together) or whole channel sets of z planes,
  whichever makes fewer blocks: a run stopped in a channel's z-stack keeps the channels it
  finished as one block and the unfinished stack as another.

Each block's (z, c, t) are then every combination of its own z, c and t once. The texts
here say what was cut, for the run's status and the Images' descriptions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nbo_recorder.capture.documents import FrameRecord, RunStart

#: (z, c) of a plane within its time point
Cell = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Block:
    """Frames that fill one grid, in acquisition order."""

    frames: list[FrameRecord]
    #: the partial time points (sequence t) whose planes the block holds; () for the
    #: block of complete time points
    partial_t: tuple[int, ...]
    #: the planes one of those partial time points holds, and a complete one would
    held: int
    complete: int
    #: which of the partial time points' planes the block holds (``c=1``, ``z=0-2``) when
    #: they fill more than one block; None otherwise
    cells: str | None

    @property
    def partial(self) -> bool:
        """True for the planes of partial time points."""
        return bool(self.partial_t)


def span(values: Iterable[int]) -> str:
    """Sorted integers in short: ``7``, ``0-6``, ``1, 3, 5``."""
    ordered = sorted(set(values))
    if len(ordered) > 2 and ordered[-1] - ordered[0] == len(ordered) - 1:
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(map(str, ordered))


def _groups(cells: frozenset[Cell]) -> list[tuple[frozenset[Cell], str]]:
    """``cells`` as grids: channels with the same z planes, or z planes with the same
    channels, whichever gives fewer; each with its short label."""
    by_channel: dict[int, set[int]] = {}
    by_z: dict[int, set[int]] = {}
    for z, c in cells:
        by_channel.setdefault(c, set()).add(z)
        by_z.setdefault(z, set()).add(c)
    channels: dict[frozenset[int], list[int]] = {}
    for c in sorted(by_channel):
        channels.setdefault(frozenset(by_channel[c]), []).append(c)
    planes: dict[frozenset[int], list[int]] = {}
    for z in sorted(by_z):
        planes.setdefault(frozenset(by_z[z]), []).append(z)
    if len(planes) < len(channels):
        return [(frozenset((z, c) for z in zs for c in cs), f"z={span(zs)}")
                for cs, zs in planes.items()]
    return [(frozenset((z, c) for z in zs for c in cs), f"c={span(cs)}")
            for zs, cs in channels.items()]


def grid_blocks(frames: Sequence[FrameRecord]) -> list[Block]:
    """``frames`` (unique (t, c, z), in acquisition order) as blocks that each fill a grid:
    the complete time points first, then the others' in the order they were taken."""
    whole = len({f.z for f in frames}) * len({f.c for f in frames})
    per_t = Counter(f.t for f in frames)
    if all(n == whole for n in per_t.values()):
        return [Block(list(frames), (), whole, whole, None)]
    held: dict[int, set[Cell]] = {}
    for f in frames:
        if per_t[f.t] < whole:
            held.setdefault(f.t, set()).add((f.z, f.c))
    patterns: dict[frozenset[Cell], list[int]] = {}
    for t, planes in held.items():
        patterns.setdefault(frozenset(planes), []).append(t)
    # (partial t, z, c) -> the key of its block; the complete time points' key is ()
    where: dict[tuple[int, Cell], tuple[int, ...]] = {}
    labels: dict[tuple[int, ...], tuple[tuple[int, ...], int, str | None]] = {}
    for n, (pattern, ts) in enumerate(patterns.items()):
        groups = _groups(pattern)
        for g, (cells, label) in enumerate(groups):
            labels[n, g] = (tuple(ts), len(pattern), label if len(groups) > 1 else None)
            where.update({(t, cell): (n, g) for t in ts for cell in cells})
    members: dict[tuple[int, ...], list[FrameRecord]] = {}
    for f in frames:
        key = () if per_t[f.t] == whole else where[f.t, (f.z, f.c)]
        members.setdefault(key, []).append(f)
    blocks = [Block(members.pop(()), (), whole, whole, None)] if () in members else []
    blocks.extend(Block(block, *labels[key][:2], whole, labels[key][2])
                  for key, block in members.items())
    return blocks


def cut_text(block: Block, titles: Sequence[str]) -> str:
    """What the run holds of ``block``'s partial time points, and the Images that keep it."""
    ts, many = block.partial_t, len(block.partial_t) > 1
    return (f"time point{'s' * many} {span(ts)} partial: {block.held} of {block.complete} "
            f"planes{' each' * many}; kept as Image{'s' * (len(titles) > 1)} "
            + ", ".join(f"'{title}'" for title in titles))


def complete_text(block: Block, titles: Sequence[str]) -> str:
    """For the Image of the complete time points: which they are, and where the rest is."""
    return (f"the complete time points t={span(f.t for f in block.frames)}; the planes of the "
            f"partial ones are in Image{'s' * (len(titles) > 1)} "
            + ", ".join(f"'{title}'" for title in titles))


def unreached(start: RunStart, reached: set[int]) -> list[str]:
    """A line naming the planned stage positions no frame reached, if any."""
    planned = start.sequence.get("stage_positions")
    count = len(planned) if isinstance(planned, list) else 0
    missing = [p for p in range(count) if p not in reached]
    if not missing:
        return []
    return [f"stage position{'s' * (len(missing) > 1)} {span(missing)} of {count} "
            "not reached: no Image"]
