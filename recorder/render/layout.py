"""The image layout of a run, computed once and shared by the OME and the NBO builders.

Both parts of a file describe the same images: one Image per stage position with the frames
taken there, its sizes (Z, C, T), its pixel size, the objective in use, one Channel per
channel index with the settings observed at the channel's first frame, and one Plane per
frame that says how the frame's settings differ from its channel's. :func:`layout_run`
works all of that out from the run's documents; :mod:`~nbo_recorder.render.ome` and
:mod:`~nbo_recorder.render.nbo` only turn it into their XML.

A plane's differences are compared once per distinct (snapshot, channel, pixel size, unknown
plane numbers): a long time-lapse has hundreds of thousands of frames but few distinct
combinations. A plane's numbers (DeltaT, exposure time, stage position) are formatted once,
for both parts, by :func:`~nbo_recorder.vocabulary.xml_number`; one that is not finite is not
known: it is left out of the Plane and listed in the plane's differences as unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from nbo_recorder.capture.documents import FrameRecord, Run, StateSnapshot
from nbo_recorder.capture.observed import ObservedSettings, interpret
from nbo_recorder.profile.model import ChannelInfo, Profile
from nbo_recorder.vocabulary import Unknown, unknown_text, xml_number

#: The text a plane's differences give for a plane number that is not finite.
NOT_FINITE = unknown_text("not a finite number")


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
    """One channel of an image: its name, the profile's facts and what its first frame saw.

    ``first`` and ``observed`` are None for a channel of the sequence no frame reached.
    """

    index: int
    name: str | None
    info: ChannelInfo
    first: FrameRecord | None
    observed: ObservedSettings | None


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
    """One frame as a Plane (a tuple: a run can have hundreds of thousands)."""

    frame: FrameRecord
    numbers: PlaneNumbers
    deviation: Deviation


@dataclass(frozen=True, slots=True)
class ImageLayout:
    """One Image: the frames taken at stage position ``position``."""

    position: int
    name: str | None
    frames: Sequence[FrameRecord]
    size_z: int
    size_c: int
    size_t: int
    #: the first known pixel size of the image's frames (None when no frame knew it)
    pixel_size_um: float | None
    #: the objective observed at the image's first frame
    objective: str | Unknown | None
    channels: tuple[ChannelLayout, ...]
    planes: tuple[PlaneLayout, ...]

    @property
    def first(self) -> FrameRecord:
        """The image's first frame (its stage position is the image's)."""
        return self.frames[0]


@dataclass(frozen=True, slots=True)
class RunLayout:
    """The images of a run, in position order, and the interpreted settings they used."""

    images: tuple[ImageLayout, ...]
    observed: Callable[[int], ObservedSettings]


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
    numbers = PlaneNumbers(xml_number(frame.elapsed_ms / 1000), texts[frame.exposure_ms],
                           None if x is None else texts[x],
                           None if y is None else texts[y],
                           None if z is None else texts[z])
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
    attrs = ""
    if numbers.delta_t_s is not None:
        attrs += f' {time_attribute}="{numbers.delta_t_s}" {time_attribute}Unit="s"'
    if numbers.exposure_ms is not None:
        attrs += f' ExposureTime="{numbers.exposure_ms}" ExposureTimeUnit="ms"'
    for axis, text in (("X", numbers.x_um), ("Y", numbers.y_um), ("Z", numbers.z_um)):
        if text is not None:
            attrs += f' Position{axis}="{text}" Position{axis}Unit="µm"'
    return attrs


def layout_run(run: Run, profile: Profile) -> RunLayout:
    """The layout of every image of ``run`` (positions without frames have none)."""
    observed = ObservedCache(profile, run.snapshots, {})
    by_position: dict[int, list[FrameRecord]] = {}
    for f in run.frames:
        by_position.setdefault(f.p, []).append(f)
    images = tuple(_image(run, profile, p, by_position[p], observed)
                   for p in sorted(by_position))
    return RunLayout(images, observed)


def _image(run: Run, profile: Profile, p: int, frames: Sequence[FrameRecord],
           observed: ObservedCache) -> ImageLayout:
    start = run.start
    first_of_c: dict[int, FrameRecord] = {}
    for f in frames:
        first_of_c.setdefault(f.c, f)
    size_c = max(f.c for f in frames) + 1
    names = [ch.get("config") for ch in start.sequence.get("channels", [])]
    channels = []
    for c in range(size_c):
        fc = first_of_c.get(c)
        name = fc.channel if fc else (names[c] if c < len(names) else None)
        channels.append(ChannelLayout(c, name, channel_info(profile, name), fc,
                                      observed(fc.snapshot) if fc else None))
    image_observed = observed(frames[0].snapshot)
    pixel_size = next((f.pixel_size_um for f in frames if f.pixel_size_um > 0), None)
    geometry = {"objective": image_observed.flat().get("objective", ""),
                "pixel_size_um": repr(pixel_size)}
    baselines = {ch.index: ch.observed.flat() for ch in channels if ch.observed is not None}
    deviations: dict[tuple[int, int, float, tuple[str, ...]], Deviation] = {}
    planes = []
    texts = NumberTexts()
    for f in frames:
        numbers, unknown = plane_numbers(f, texts)
        key = (f.snapshot, f.c, f.pixel_size_um, unknown)
        deviation = deviations.get(key)
        if deviation is None:
            base = baselines.get(f.c, {})
            current = observed(f.snapshot).flat()
            settings = differences(base, current)
            with_geometry = differences(
                {**base, **geometry} if f.c in baselines else {},
                {"objective": "", **current, "pixel_size_um": repr(
                    f.pixel_size_um if f.pixel_size_um > 0 else None)})
            for name in unknown:
                settings[name] = with_geometry[name] = NOT_FINITE
            deviation = deviations[key] = Deviation(settings, with_geometry)
        planes.append(PlaneLayout(f, numbers, deviation))
    position = start.position_names[p] if p < len(start.position_names) else None
    return ImageLayout(
        position=p, name=position, frames=frames, size_z=max(f.z for f in frames) + 1,
        size_c=size_c, size_t=max(f.t for f in frames) + 1, pixel_size_um=pixel_size,
        objective=image_observed.objective, channels=tuple(channels), planes=tuple(planes))
