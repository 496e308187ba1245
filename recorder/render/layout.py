"""The image layout of a run, computed once and shared by the OME and the NBO builders.

Both parts of a file describe the same images: one Image per stage position with the frames
taken there, its sizes (X, Y, Z, C, T), its pixel size, z step and time increment, the
objective in use, one Channel per channel index with the settings observed at the channel's
first frame, and one Plane per frame that says how the frame's settings differ from its
channel's. :func:`layout_run` works all of that out from the run's documents;
:mod:`~nbo_recorder.render.ome` and :mod:`~nbo_recorder.render.nbo` only turn it into their XML.

Geometry comes from the frames themselves, never from the run's first frame: an Image's
SizeX/SizeY are its frames' own size and its pixel size theirs (binning and ROI included);
its z step and time increment are those of the (sub-)sequence that produced its frames (a
stage position's own ``sequence`` may have another z plan or time plan than the outer one).
A position's frames go to more than one Image when they cannot share one Pixels, each
Image's description saying why:

* frames of another size or pixel size (a binning, ROI or objective change, binning set per
  channel): OME allows one frame shape and pixel size per Pixels. Such an Image numbers its
  own Z, C and T from 0 (its description maps them back to the sequence's indices);
* each grid position (useq's ``g``);
* each run of a position's sub-sequence that has its own time plan inside an outer time plan:
  useq numbers the sub-sequence's time points from 0 on every run, so its (t, c, z) repeat.
  A run starts where a frame's (t, c, z) repeats one already seen at that position;
* partial time points (a run that ended early, or lost frames): an Image holds every plane
  its Pixels declare, never fewer (:mod:`~nbo_recorder.render.blocks`), so the complete time
  points are one Image and a partial time point's planes another (or a few: a stopped
  z-stack apart from the channels finished before it), named ``... (partial t=7)``. The
  run's :attr:`RunLayout.cuts` say what each holds and the complete Image names them.

So every Image's (TheZ, TheC, TheT) are unique and cover its SizeZ x SizeC x SizeT: each
Image numbers its Z, C and T from 0 in the order of the sequence's indices (its description
maps them back where they differ).

A plane's differences are compared once per distinct (snapshot, channel, pixel size, unknown
plane numbers): a long time-lapse has hundreds of thousands of frames but few distinct
combinations. A plane's numbers (DeltaT, exposure time, stage position) are formatted once,
for both parts, by :func:`~nbo_recorder.vocabulary.xml_number`; one that is not finite is not
known: it is left out of the Plane and listed in the plane's differences as unknown.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple

import pydantic

from nbo_recorder.capture.documents import FrameRecord, Run, RunStart, StateSnapshot
from nbo_recorder.capture.observed import ObservedSettings, interpret
from nbo_recorder.profile.model import ChannelInfo, Profile
from nbo_recorder.render.blocks import (
    Block,
    complete_text,
    cut_text,
    grid_blocks,
    span,
    unreached,
)
from nbo_recorder.vocabulary import Unknown, unknown_text, xml_number

if TYPE_CHECKING:
    import useq

#: The text a plane's differences give for a plane number that is not finite.
NOT_FINITE = unknown_text("not a finite number")
_new_tuple = tuple.__new__


@dataclass
class ObservedCache:
    """Snapshot uid -> interpreted settings, each snapshot interpreted once per build."""

    profile: Profile
    snapshots: Mapping[int, StateSnapshot]
    cache: dict[int, ObservedSettings]

    def __call__(self, uid: int) -> ObservedSettings:
        """The settings observed in snapshot ``uid``."""
        if uid not in self.cache:
            self.cache[uid] = interpret(self.snapshots[uid], self.profile)
        return self.cache[uid]


@dataclass(frozen=True, slots=True)
class ChannelLayout:
    """One channel of an image: its name, the profile's facts and what its first frame saw."""

    index: int
    name: str | None
    info: ChannelInfo
    first: FrameRecord
    observed: ObservedSettings


@dataclass(frozen=True, slots=True)
class Deviation:
    """How a plane's settings differ from its channel's (shared by planes that agree).

    ``settings`` compares the observed settings with those at the channel's first frame;
    ``with_geometry`` also compares the objective and pixel size with the image's. Both list
    plane numbers that are not known. Empty mappings mean the plane has no differences.
    """

    settings: Mapping[str, str]
    with_geometry: Mapping[str, str]


class PlaneNumbers(NamedTuple):
    """A frame's numbers as XML attribute text; None where absent or not finite."""

    delta_t_s: str | None
    exposure_ms: str | None
    x_um: str | None
    y_um: str | None
    z_um: str | None


#: The key a plane's differences use for each of :class:`PlaneNumbers` that is not known.
UNKNOWN_KEYS: tuple[str, ...] = ("delta_t", "exposure_time", "position_x", "position_y",
                                 "position_z")


class PlaneLayout(NamedTuple):
    """One frame as a Plane (a tuple: a run can have hundreds of thousands).

    ``the_z``, ``the_c``, ``the_t`` are the plane's indices in its Image (the frame's own
    sequence indices, unless the Image renumbers them).
    """

    frame: FrameRecord
    numbers: PlaneNumbers
    deviation: Deviation
    the_z: int
    the_c: int
    the_t: int


@dataclass(frozen=True, slots=True)
class ImageLayout:
    """One Image: frames taken at stage position ``position`` that share one geometry."""

    #: the image's place in the file (0, 1, ...)
    number: int
    #: what its IDs end in: the position for its first Image, ``position:k`` for the k-th more
    key: str
    position: int
    name: str | None
    #: which of the position's frames this Image holds, in short (for its name); None when
    #: it holds all of them
    part: str | None
    #: ``part`` in full: why these frames are apart and how its Z/C/T map to the sequence's;
    #: for the complete time points of a run cut short, which they are and which Images
    #: hold the rest
    description: str | None
    frames: Sequence[FrameRecord]
    size_x: int
    size_y: int
    size_z: int
    size_c: int
    size_t: int
    #: the pixel size of the image's frames (None when they did not know it)
    pixel_size_um: float | None
    #: PhysicalSizeZ: the z step of the plan that took the frames (None: one plane or no step)
    z_step_um: float | None
    #: TimeIncrement: the interval of the time plan that took the frames (None: none known)
    time_increment_s: float | None
    #: the objective observed at the image's first frame
    objective: str | Unknown | None
    channels: tuple[ChannelLayout, ...]
    planes: tuple[PlaneLayout, ...]

    @property
    def first(self) -> FrameRecord:
        """The image's first frame (its stage position is the image's)."""
        return self.frames[0]

    @property
    def title(self) -> str:
        """The Image's name: the position's, followed by the part it holds if any."""
        base = self.name or f"Position {self.position}"
        return f"{base} ({self.part})" if self.part else base


@dataclass(frozen=True, slots=True)
class RunLayout:
    """The images of a run, in position order, and the interpreted settings they used.

    ``cuts`` say, one line each, what the run holds of a partial time point and which
    Image(s) hold it, and which planned stage positions no frame reached.
    """

    images: tuple[ImageLayout, ...]
    observed: Callable[[int], ObservedSettings]
    cuts: tuple[str, ...]


def channel_info(profile: Profile, name: str | None) -> ChannelInfo:
    """The profile's channel defaults overlaid with what it says about channel ``name``."""
    base = profile.channel_defaults.model_dump(exclude_none=True)
    if name is not None and name in profile.channels:
        base.update(profile.channels[name].model_dump(exclude_none=True))
    return ChannelInfo.model_validate(base)


def differences(base: Mapping[str, str], current: Mapping[str, str]) -> dict[str, str]:
    """Entries of ``current`` that differ from ``base``; keys only ``base`` has are
    ``not observed``."""
    diff = {k: v for k, v in current.items() if base.get(k) != v}
    diff.update({k: "not observed" for k in base if k not in current})
    return diff


class NumberTexts(dict[float, str | None]):
    """Memo of :func:`~nbo_recorder.vocabulary.xml_number` for one build.

    Exposure times and stage coordinates repeat across the frames of a run, so most look-ups
    are hits; a miss formats the number once.
    """

    def __missing__(self, value: float) -> str | None:
        text = self[value] = xml_number(value)
        return text


def plane_numbers(frame: FrameRecord, texts: NumberTexts) -> tuple[PlaneNumbers,
                                                                    tuple[str, ...]]:
    """The frame's numbers as text, and the :data:`UNKNOWN_KEYS` of those not finite."""
    x, y, z = frame.x_um, frame.y_um, frame.z_um
    # tuple.__new__ builds the same tuple as PlaneNumbers(...), whose __new__ is a Python
    # function: this runs once per frame, and that call cost a fifth of the layout
    numbers = _new_tuple(PlaneNumbers, (xml_number(frame.elapsed_ms / 1000),
                                        texts[frame.exposure_ms],
                                        None if x is None else texts[x],
                                        None if y is None else texts[y],
                                        None if z is None else texts[z]))
    if None not in numbers or numbers.count(None) == (x is None) + (y is None) + (z is None):
        return numbers, ()  # every number that is there is finite
    values = (frame.elapsed_ms, frame.exposure_ms, x, y, z)
    return numbers, tuple(key for key, value, text in zip(UNKNOWN_KEYS, values, numbers,
                                                           strict=True)
                          if value is not None and text is None)


def number_attributes(numbers: PlaneNumbers, time_attribute: str) -> str:
    """A Plane's known numbers as XML attributes with their units, each after a space.

    ``time_attribute`` is the part's name for the time since the run started (OME
    ``DeltaT``, NBO ``Timestamp``); a number that is not known is left out with its unit.
    """
    rest = _other_attributes(numbers.exposure_ms, numbers.x_um, numbers.y_um, numbers.z_um)
    if numbers.delta_t_s is None:
        return rest
    return f' {time_attribute}="{numbers.delta_t_s}" {time_attribute}Unit="s"{rest}'


@functools.lru_cache(maxsize=1024)
def _other_attributes(exposure_ms: str | None, x_um: str | None, y_um: str | None,
                      z_um: str | None) -> str:
    """:func:`number_attributes` but the time: the exposure time and stage position repeat
    from plane to plane, so their text is made once for each (cached)."""
    attrs = ""
    if exposure_ms is not None:
        attrs += f' ExposureTime="{exposure_ms}" ExposureTimeUnit="ms"'
    for axis, text in (("X", x_um), ("Y", y_um), ("Z", z_um)):
        if text is not None:
            attrs += f' Position{axis}="{text}" Position{axis}Unit="µm"'
    return attrs


class _Part(NamedTuple):
    """Frames of one position that can share one Pixels: same grid position, sub-sequence
    run, frame size and pixel size."""

    p: int
    g: int
    run: int
    width: int
    height: int
    pixel_size_um: float


def _parts(run: Run) -> dict[_Part, list[FrameRecord]]:
    """The run's frames by :class:`_Part`, each list in acquisition order.

    A sub-sequence run starts at a position when a frame's (t, c, z) repeats one already
    seen in the current run of that position and grid position.
    """
    width, height = run.start.width, run.start.height
    runs: dict[tuple[int, int], tuple[int, set[tuple[int, int, int]]]] = {}
    # keyed by plain tuples (equal to the _Part of the same values): a _Part per frame,
    # whose __new__ is a Python function, cost as much as the rest of the loop
    parts: dict[tuple[int, int, int, int, int, float], list[FrameRecord]] = {}
    for f in run.frames:
        where = (f.p, f.g)
        number, seen = runs.get(where) or runs.setdefault(where, (0, set()))
        tcz = (f.t, f.c, f.z)
        if tcz in seen:
            number, seen = runs[where] = (number + 1, set())
        seen.add(tcz)
        key = (f.p, f.g, number, f.width or width, f.height or height, f.pixel_size_um)
        parts.setdefault(key, []).append(f)
    return {_Part(*key): frames for key, frames in parts.items()}


def _plan_numbers(plans: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The z step (µm) and time interval (s) of the ``z_plan``/``time_plan`` in ``plans``.

    None for a plan without a single step or interval (absolute positions, phases), and for
    one that does not parse (a journal from another useq version): better unstated than wrong.
    """
    # useq (a tenth of a second to import) only for a position with its own plans: a file
    # without them is rendered, and recovered, without it
    import useq

    try:
        parsed = useq.MDASequence.model_validate(
            {k: plans[k] for k in ("z_plan", "time_plan") if k in plans})
    except (pydantic.ValidationError, TypeError, ValueError):
        return None, None
    step = getattr(parsed.z_plan, "step", None)
    interval = getattr(parsed.time_plan, "interval", None)
    return (abs(float(step)) if step else None,
            interval.total_seconds() if interval is not None else None)


def position_plans(start: RunStart, p: int) -> tuple[float | None, float | None]:
    """The z step (µm) and time interval (s) the frames at position ``p`` were taken with:
    the position's own sub-sequence's plans where it has them, else the outer sequence's."""
    z_step = abs(start.z_step_um) if start.z_step_um else None
    interval = start.time_interval_s or None
    positions = start.sequence.get("stage_positions")
    entry = positions[p] if isinstance(positions, list) and p < len(positions) else None
    sub = entry.get("sequence") if isinstance(entry, Mapping) else None
    if isinstance(sub, Mapping) and ("z_plan" in sub or "time_plan" in sub):
        own_step, own_interval = _plan_numbers(sub)
        if "z_plan" in sub:
            z_step = own_step
        if "time_plan" in sub:
            interval = own_interval or None
    return z_step, interval


def repeated_time_points(sequence: useq.MDASequence) -> str | None:
    """Why ``sequence``'s (t, c, z) indices repeat at a position, or None when they do not.

    A stage position whose sub-sequence has its own time plan runs that sub-sequence once
    per outer time point, and useq numbers its time points from 0 each time. The file then
    gives each run its own Image (see the module docstring); the recorder warns about it.
    """
    if sequence.time_plan is None or sequence.time_plan.num_timepoints() < 2:
        return None
    repeated = [p for p, pos in enumerate(sequence.stage_positions)
                if pos.sequence is not None and pos.sequence.time_plan is not None]
    if not repeated:
        return None
    return (f"stage position(s) {', '.join(map(str, repeated))} have a sub-sequence with its "
            f"own time plan inside an outer time plan of "
            f"{sequence.time_plan.num_timepoints()} time points: useq numbers the "
            "sub-sequence's time points from 0 on every outer time point, so their (t, c, z) "
            "repeat; the file gives each run of the sub-sequence its own Image")


def layout_run(run: Run, profile: Profile) -> RunLayout:
    """The layout of every image of ``run`` (positions without frames have none)."""
    observed = ObservedCache(profile, run.snapshots, {})
    parts = _parts(run)
    order = sorted(parts, key=lambda part: (part.p, part.g, part.run, parts[part][0].index))
    # the last sub-sequence run of each grid position of each position
    runs = {(part.p, part.g): part.run for part in order}
    grids: dict[int, set[int]] = {}
    shapes: dict[tuple[int, int, int], int] = {}
    for part in order:
        grids.setdefault(part.p, set()).add(part.g)
        shapes[part.p, part.g, part.run] = shapes.get((part.p, part.g, part.run), 0) + 1
    images: list[ImageLayout] = []
    cuts: list[str] = []
    nth: dict[int, int] = {}
    for key in order:
        why = _Why(grid=len(grids[key.p]) > 1, repeated=runs[key.p, key.g] > 0,
                   split=shapes[key.p, key.g, key.run] > 1)
        made = []
        for block in grid_blocks(parts[key]):
            more = nth[key.p] = nth.get(key.p, -1) + 1
            made.append(_image(run, profile, key, block, observed, number=len(images),
                               image_key=str(key.p) if more == 0 else f"{key.p}:{more}",
                               why=why))
            images.append(made[-1][0])
        images[-len(made):] = _name_partial_ones(made, cuts)
    cuts.extend(unreached(run.start, {part.p for part in order}))
    return RunLayout(tuple(images), observed, tuple(cuts))


def _name_partial_ones(made: Sequence[tuple[ImageLayout, Block]],
                       cuts: list[str]) -> list[ImageLayout]:
    """The Images of one part's blocks, the complete one's description naming the Images of
    the partial time points; a line per partial time point (or those that hold the same
    planes) added to ``cuts``."""
    kept: dict[tuple[int, ...], list[str]] = {}
    for image, block in made:
        if block.partial:
            kept.setdefault(block.partial_t, []).append(image.title)
    cuts.extend(cut_text(block, kept[block.partial_t]) for image, block in made
                if block.partial and kept[block.partial_t][0] == image.title)
    first, block = made[0]
    if not kept or block.partial:
        return [image for image, _ in made]
    note = complete_text(block, [title for titles in kept.values() for title in titles])
    whole = replace(first, description=f"{first.description or f'position {first.position}'}"
                                       f"; {note}")
    return [whole, *(image for image, _ in made[1:])]


def _numbering(values: set[int]) -> dict[int, int]:
    """Sequence index -> index in the Image: its rank (itself when they are 0, 1, ...)."""
    return {v: i for i, v in enumerate(sorted(values))}


def _consecutive(numbering: Mapping[int, int]) -> bool:
    """True when the Image's indices are consecutive sequence indices (steps stay steps)."""
    values = sorted(numbering)
    return values[-1] - values[0] == len(values) - 1


class _Why(NamedTuple):
    """Why a position's frames are in more than one Image."""

    #: the position has several grid positions
    grid: bool
    #: its sub-sequence ran more than once, numbering its time points from 0 each time
    repeated: bool
    #: its frames in this grid position and run differ in size or pixel size
    split: bool


def _part_text(key: _Part, why: _Why, block: Block, first: ObservedSettings,
               maps: Mapping[str, Mapping[int, int]]) -> tuple[str | None, str | None]:
    """Which of its position's frames an Image holds (short), and that with why they are
    apart and its index mapping (full); None, None when it holds all of them."""
    bits = []
    if why.grid:
        bits.append(f"grid position {key.g}")
    if why.repeated:
        bits.append(f"sub-sequence run {key.run + 1}")
    if why.split:
        binning = next((d.binning for d in first.detectors if isinstance(d.binning, str)), None)
        size = f"{key.pixel_size_um:g} µm" if key.pixel_size_um > 0 else "unknown pixel size"
        bits.append(f"{'' if binning is None else f'binning {binning}: '}"
                    f"{key.width} x {key.height} px at {size}")
    if block.partial:
        bits.append(f"partial t={span(block.partial_t)}"
                    + (f", {block.cells}" if block.cells else ""))
    if not bits:
        return None, None
    short = ", ".join(bits)
    text = f"position {key.p}, {short}"
    reasons = []
    if why.split:
        reasons.append("OME allows one frame size and pixel size per Pixels")
    if why.repeated:
        reasons.append("the sub-sequence numbers its time points from 0 on every run")
    if block.partial:
        reasons.append(f"time point {span(block.partial_t)} holds {block.held} of the "
                       f"{block.complete} planes of a complete one, and a Pixels holds every "
                       "plane it declares")
    if reasons:
        text += " (a separate Image: " + "; ".join(reasons) + ")"
    moved = [f"The{axis} {', '.join(map(str, numbering.values()))} = sequence "
             f"{axis.lower()} {', '.join(map(str, numbering))}"
             for axis, numbering in maps.items()
             if any(k != v for k, v in numbering.items())]
    return short, text + ("; " + "; ".join(moved) if moved else "")


def _image(run: Run, profile: Profile, key: _Part, block: Block, observed: ObservedCache, *,
           number: int, image_key: str, why: _Why) -> tuple[ImageLayout, Block]:
    """One Image of the frames of ``block`` (part of ``key``), numbering its Z, C, T from 0."""
    start, frames = run.start, block.frames
    maps = {axis: _numbering(set(map(attrgetter(axis.lower()), frames)))
            for axis in ("Z", "C", "T")}
    z_of, c_of, t_of = maps["Z"], maps["C"], maps["T"]
    first_of_c: dict[int, FrameRecord] = {}
    for f in frames:
        first_of_c.setdefault(c_of[f.c], f)
        if len(first_of_c) == len(c_of):
            break  # every channel's first frame is found
    channels = tuple(ChannelLayout(c, fc.channel, channel_info(profile, fc.channel), fc,
                                   observed(fc.snapshot))
                     for c, fc in sorted(first_of_c.items()))
    image_observed = observed(frames[0].snapshot)
    pixel_size = key.pixel_size_um if key.pixel_size_um > 0 else None
    geometry = {"objective": image_observed.flat().get("objective", ""),
                "pixel_size_um": repr(pixel_size)}
    baselines = {ch.index: ch.observed.flat() for ch in channels}
    deviations: dict[tuple[int, int, float, tuple[str, ...]], Deviation] = {}
    planes = []
    texts = NumberTexts()
    for f in frames:
        numbers, unknown = plane_numbers(f, texts)
        c = c_of[f.c]
        dkey = (f.snapshot, c, f.pixel_size_um, unknown)
        deviation = deviations.get(dkey)
        if deviation is None:
            base = baselines[c]
            current = observed(f.snapshot).flat()
            settings = differences(base, current)
            with_geometry = differences(
                {**base, **geometry},
                {"objective": "", **current, "pixel_size_um": repr(
                    f.pixel_size_um if f.pixel_size_um > 0 else None)})
            for name in unknown:
                settings[name] = with_geometry[name] = NOT_FINITE
            deviation = deviations[dkey] = Deviation(settings, with_geometry)
        # as in plane_numbers: the tuple that PlaneLayout(...) makes, without its __new__
        planes.append(_new_tuple(PlaneLayout, (f, numbers, deviation, z_of[f.z], c,
                                               t_of[f.t])))
    z_step, interval = position_plans(start, key.p)
    p = key.p
    part, description = _part_text(key, why, block, image_observed, maps)
    return ImageLayout(
        number=number, key=image_key, position=p,
        name=start.position_names[p] if p < len(start.position_names) else None,
        part=part, description=description,
        frames=frames, size_x=key.width, size_y=key.height,
        size_z=len(z_of), size_c=len(c_of), size_t=len(t_of), pixel_size_um=pixel_size,
        z_step_um=z_step if len(z_of) > 1 and _consecutive(z_of) else None,
        time_increment_s=interval if _consecutive(t_of) else None,
        objective=image_observed.objective, channels=channels, planes=tuple(planes)), block
