"""Reading a recorded file back per frame: the settings and OME attributes it records.

Built on the one reader (:func:`nbo_recorder.judge.reader.read`): a frame's ``settings`` are
its plane's annotated settings, its ``ome`` attributes come from the typed OME model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from ome_types.model import Channel
from pydantic import BaseModel

from nbo_recorder.judge.reader import read
from nbo_recorder.profile.model import Profile

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from useq import MDASequence


@dataclass(frozen=True)
class RecordedFrame:
    """One frame as a reader of the file sees it.

    ``settings``: the channel-settings annotation overlaid with the plane's own annotation
    (keys as :meth:`nbo_recorder.capture.observed.ObservedSettings.flat` writes them). ``ome``:
    OME attributes of its image, channel and plane as the typed model holds them, keyed
    ``Channel.DetectorSettings.Gain``, ``Channel.LightPath.EmissionFilterRef`` (IDs joined by
    commas), ``Plane.PositionZ``, ...
    """

    ifd: int
    image: int
    channel: str | None
    settings: Mapping[str, str]
    ome: Mapping[str, str]


@dataclass(frozen=True)
class ReadBack:
    """A recorded file read back: its OME-XML and its frames in acquisition (IFD) order."""

    path: Path
    xml: str
    frames: tuple[RecordedFrame, ...]


def read_back(path: str | Path) -> ReadBack:
    """Read an OME-TIFF written by the recorder into per-frame settings and OME attributes."""
    recorded = read(path)
    ome_planes = [pl for image in recorded.ome.images for pl in image.pixels.planes]
    frames: list[RecordedFrame] = []
    for plane, ome_plane in zip(recorded.planes, ome_planes, strict=True):
        image = recorded.ome.images[plane.image]
        channels = image.pixels.channels
        ome: dict[str, str] = {}
        if image.objective_settings is not None:
            ome["Image.ObjectiveSettings"] = image.objective_settings.id
        if plane.c < len(channels):
            ome.update(_channel_places(channels[plane.c]))
        ome.update(_attributes("Plane", ome_plane))
        frames.append(RecordedFrame(ifd=plane.ifd, image=plane.image, channel=plane.channel,
                                    settings=dict(plane.annotated), ome=ome))
    return ReadBack(path=recorded.path, xml=recorded.xml,
                    frames=tuple(sorted(frames, key=lambda f: f.ifd)))


def _attribute_text(value: object) -> str:
    """An attribute value of the typed model as text: enumerations by their XML value."""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _attributes(prefix: str, element: BaseModel, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """``prefix.Attribute -> text`` for the XML attributes the file sets on ``element``."""
    out: dict[str, str] = {}
    for name, info in type(element).model_fields.items():
        extra = info.json_schema_extra
        if not isinstance(extra, dict) or extra.get("type") != "Attribute":
            continue
        value = getattr(element, name)
        xml_name = str(extra["name"])
        if name in element.model_fields_set and value is not None and xml_name not in skip:
            out[f"{prefix}.{xml_name}"] = _attribute_text(value)
    return out


def _channel_places(channel: Channel) -> dict[str, str]:
    """The channel's name and pinhole, its settings (ID and attributes) and light-path refs."""
    out = {key: value for key, value in _attributes("Channel", channel).items()
           if key in ("Channel.Name", "Channel.PinholeSize")}
    for place, settings in (("Channel.LightSourceSettings", channel.light_source_settings),
                            ("Channel.DetectorSettings", channel.detector_settings),
                            ("Channel.FilterSetRef", channel.filter_set_ref)):
        if settings is not None:
            out[place] = settings.id
            out.update(_attributes(place, settings, skip=("ID",)))
    path = channel.light_path
    if path is not None:
        for ref, refs in (("ExcitationFilterRef", path.excitation_filters),
                          ("DichroicRef", [path.dichroic_ref] if path.dichroic_ref else []),
                          ("EmissionFilterRef", path.emission_filters)):
            if refs:
                out[f"Channel.LightPath.{ref}"] = ",".join(r.id for r in refs)
    return out


def acquire(
    core: CMMCorePlus, profile: Profile, path: str | Path, *, frames: int = 1,
    sequence: MDASequence | None = None,
) -> ReadBack:
    """Acquire ``frames`` time points (or ``sequence``) through the recorder; read it back.

    The recorder checks the profile against the core first (ProfileError on a mismatch) and
    a recording problem raises :class:`~nbo_recorder.capture.recorder.RecordingError`.
    """
    import useq

    from nbo_recorder.capture.recorder import Recorder

    # a small positive interval: frames are snapped one by one, not as a hardware-sequenced
    # burst, in which the demo camera occasionally delivers fewer images than asked for
    seq = sequence if sequence is not None else useq.MDASequence(
        time_plan={"interval": 0.001, "loops": frames})
    sink = Recorder(core, profile).sink(path)
    core.mda.run(seq, output=sink)
    sink.raise_if_failed()
    return read_back(path)


