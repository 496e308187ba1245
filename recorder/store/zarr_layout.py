"""Where each frame of a run goes in an OME-Zarr store, and the store's NGFF metadata.

Shared by the streaming writer (:mod:`nbo_recorder.store.zarr_writer`) and crash recovery,
so both place a run's frames identically and recovery can tell, from the journal alone,
which chunk holds which frame.

**During the acquisition** frames are streamed into *streams*: one array per stage position,
grid position and frame geometry (height, width, pixel size), indexed by the frame's own
sequence indices (t, c, z). A frame whose (t, c, z) repeats one already in its stream (a
position's sub-sequence with its own time plan, run again inside an outer time plan) starts
a new stream, so no frame ever overwrites another. Streams live at ``s<k>`` in the store.

**At the end** the run's layout (:func:`~nbo_recorder.render.layout.layout_run`, the same one
the OME-TIFF's Images follow) decides the images: image ``n`` of the store is the OME-XML's
``Image`` ``n`` (the bioformats2raw convention). An image that is exactly one stream's frames
at their own indices takes that stream's array as it is (renamed, its t axis cut to the
complete time points); any other (a partial time point, a renumbered Z/C/T) is copied out of
the streams into an array of its own.

The NGFF 0.5 attributes are built with yaozarrs' models, so a malformed attribute fails here
rather than in a reader. The OME-XML is the OME-TIFF's, with each Image's TiffData blocks
replaced by ``MetadataOnly`` (the pixels are in the zarr arrays, which the bioformats2raw
layout locates by series number).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from yaozarrs import v05

from nbo_recorder.capture.documents import FrameRecord, Run
from nbo_recorder.render.layout import ImageLayout, PlaneNumbers, RunLayout

#: the key of the recorder's own attributes in a group's ``zarr.json``
ATTRIBUTE_KEY = "nbo-recorder"
#: what the root's recorder attribute says until the store is finished
IN_PROGRESS = "acquisition in progress; OME-XML and image metadata are written at the end"
#: the array of each image (its only resolution level)
LEVEL = "0"
AXES = ("t", "c", "z", "y", "x")
_TIFFDATA_RUN = re.compile(r"(?:<TiffData [^>]*/>)+")


def stream_name(number: int) -> str:
    """The group of stream ``number`` inside the store during the acquisition."""
    return f"s{number}"


class Placement(NamedTuple):
    """Where a frame went: stream ``stream`` at (t, c, z)."""

    stream: int
    t: int
    c: int
    z: int


class StreamKey(NamedTuple):
    """What frames of one stream share (``run`` counts repeats of the same geometry)."""

    p: int
    g: int
    height: int
    width: int
    pixel_size_um: float
    run: int


@dataclass
class Placer:
    """Assigns frames to streams, in acquisition order (see the module docstring).

    ``default_shape`` (height, width) stands for frames that do not record their own size
    (journals written before frames had one).
    """

    default_shape: tuple[int, int]
    streams: list[StreamKey] = field(default_factory=list)
    _current: dict[tuple[int, int, int, int, float], int] = field(default_factory=dict)
    _seen: dict[int, set[tuple[int, int, int]]] = field(default_factory=dict)

    def shape(self, frame: FrameRecord) -> tuple[int, int]:
        """The frame's (height, width)."""
        if frame.height and frame.width:
            return frame.height, frame.width
        return self.default_shape

    def place(self, frame: FrameRecord) -> Placement:
        """The stream and indices of ``frame`` (a new stream when its geometry is new or
        its (t, c, z) is already taken in its geometry's current stream)."""
        height, width = self.shape(frame)
        base = (frame.p, frame.g, height, width, frame.pixel_size_um)
        index = (frame.t, frame.c, frame.z)
        number = self._current.get(base)
        if number is None or index in self._seen[number]:
            run = 0 if number is None else self.streams[number].run + 1
            number = len(self.streams)
            self.streams.append(StreamKey(*base, run))
            self._current[base] = number
            self._seen[number] = set()
        self._seen[number].add(index)
        return Placement(number, *index)


def place_run(run: Run) -> dict[int, Placement]:
    """Frame index -> placement for every frame of ``run``, as the writer placed them."""
    placer = Placer((run.start.height, run.start.width))
    return {frame.index: placer.place(frame) for frame in run.frames}


def in_place_stream(image: ImageLayout, placements: Mapping[int, Placement]) -> int | None:
    """The stream whose array can be ``image`` as it is, or None when it must be copied.

    That is when every plane of the image is in one stream at the image's own (t, c, z).
    """
    streams = {placements[plane.frame.index].stream for plane in image.planes}
    if len(streams) != 1:
        return None
    for plane in image.planes:
        at = placements[plane.frame.index]
        if (at.t, at.c, at.z) != (plane.the_t, plane.the_c, plane.the_z):
            return None
    return streams.pop()


def zarr_ome_xml(tiff_xml: str) -> str:
    """The OME-XML of a run for the store: the OME-TIFF's, each Image's TiffData blocks
    replaced by ``MetadataOnly``."""
    return _TIFFDATA_RUN.sub("<MetadataOnly/>", tiff_xml)


def root_attributes(run_id: str | None, *, finished: bool) -> dict[str, Any]:
    """The root group's attributes: the bioformats2raw layout, and while the acquisition
    runs the in-progress marker with the run id (recovery checks it against the journal)."""
    layout = v05.Bf2Raw.model_validate({"version": "0.5", "bioformats2raw.layout": 3})
    ome = layout.model_dump(mode="json", by_alias=True, exclude_none=True)
    ours: dict[str, Any] = {"run": run_id}
    if not finished:
        ours["status"] = IN_PROGRESS
    return {"ome": ome, ATTRIBUTE_KEY: ours}


def series_attributes(count: int) -> dict[str, Any]:
    """The ``OME`` group's attributes: the series (images) in OME-XML order."""
    series = v05.Series(version="0.5", series=[str(n) for n in range(count)])
    return {"ome": series.model_dump(mode="json", by_alias=True, exclude_none=True)}


def _scale(value: float | None) -> float:
    return value if value else 1.0


def image_attributes(image: ImageLayout, windows: Mapping[int, tuple[float, float]],
                     value_range: tuple[float, float]) -> dict[str, Any]:
    """An image group's attributes: NGFF multiscales (axes t, c, z, y, x with units and the
    image's time increment, z step and pixel size as scale), ``omero`` channels (name,
    colour, window: ``windows`` per channel index, else ``value_range``) and the recorder's
    per-plane settings (:func:`plane_attributes`).

    An axis whose step is not known gets scale 1 and no unit.
    """
    pixel = image.pixel_size_um
    axes: list[v05.Axis] = [
        v05.TimeAxis(name="t", type="time",
                     unit="second" if image.time_increment_s else None),
        v05.ChannelAxis(name="c", type="channel"),
        v05.SpaceAxis(name="z", type="space", unit="micrometer" if image.z_step_um else None),
        v05.SpaceAxis(name="y", type="space", unit="micrometer" if pixel else None),
        v05.SpaceAxis(name="x", type="space", unit="micrometer" if pixel else None),
    ]
    scale = [_scale(image.time_increment_s), 1.0, _scale(image.z_step_um), _scale(pixel),
             _scale(pixel)]
    multiscale = v05.Multiscale(
        name=image.title, axes=axes,
        datasets=[v05.Dataset(path=LEVEL, coordinateTransformations=[
            v05.ScaleTransformation(type="scale", scale=scale)])])
    lo, hi = value_range
    channels = []
    for channel in image.channels:
        start, end = windows.get(channel.index, value_range)
        color = (channel.info.color or "#FFFFFF").lstrip("#")[:6].upper()
        channels.append(v05.OmeroChannel(
            label=channel.name or f"Channel {channel.index}", color=color, active=True,
            window=v05.OmeroWindow(start=start, end=end, min=lo, max=hi)))
    attrs = v05.Image(version="0.5", multiscales=[multiscale],
                      omero=v05.Omero(channels=channels))
    return {"ome": attrs.model_dump(mode="json", by_alias=True, exclude_none=True),
            ATTRIBUTE_KEY: plane_attributes(image)}


def _number(text: str | None) -> float | None:
    return None if text is None else float(text)


def plane_attributes(image: ImageLayout) -> dict[str, Any]:
    """The per-plane settings of an image as plain JSON (documented in the README).

    ``channels``: per channel index its name and every setting observed at its first frame
    (the OME-XML channel annotation's key -> value). ``planes``: per plane its t, c, z in
    the image, the acquisition ``frame`` number, ``delta_t_s``, ``exposure_ms``, the stage
    position (``x_um``, ``y_um``, ``z_um``; null when not known) and ``differs``: the
    settings that differed from its channel's (the plane annotation of the OME-XML).
    """
    channels = [{"index": ch.index, "name": ch.name, "settings": ch.observed.flat()}
                for ch in image.channels]
    planes = []
    for plane in image.planes:
        numbers: PlaneNumbers = plane.numbers
        planes.append({
            "t": plane.the_t, "c": plane.the_c, "z": plane.the_z,
            "frame": plane.frame.index,
            "delta_t_s": _number(numbers.delta_t_s),
            "exposure_ms": _number(numbers.exposure_ms),
            "x_um": _number(numbers.x_um), "y_um": _number(numbers.y_um),
            "z_um": _number(numbers.z_um),
            "differs": dict(plane.deviation.with_geometry),
        })
    return {"ome_image": image.number, "channels": channels, "planes": planes}


def image_sizes(image: ImageLayout) -> tuple[int, int, int, int, int]:
    """The (t, c, z, y, x) shape of an image's array."""
    return image.size_t, image.size_c, image.size_z, image.size_y, image.size_x


def layout_streams(layout: RunLayout,
                   placements: Mapping[int, Placement]) -> dict[int, int | None]:
    """Image number -> the stream it takes as it is (None: copied), each stream at most once."""
    taken: set[int] = set()
    out: dict[int, int | None] = {}
    for image in layout.images:
        stream = in_place_stream(image, placements)
        if stream is not None and stream in taken:
            stream = None
        if stream is not None:
            taken.add(stream)
        out[image.number] = stream
    return out
