"""A Materials & Methods paragraph written only from what a file records.

Every number and name in the text is read from the file (the OME part and the recorder's
channel-settings annotations); nothing comes from the profile or the rig. What the text
would need but the file does not hold is not mentioned as a value: it is listed at the end
as missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ome_types import OME

from nbo_recorder.read.reader import annotation_values, read
from nbo_recorder.vocabulary import NS_CHANNEL, NS_RUN


@dataclass
class Methods:
    """The paragraphs, and what the text could not state because the file lacks it."""

    paragraphs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def text(self, fmt: str = "text") -> str:
        body = "\n\n".join(self.paragraphs)
        if self.missing:
            note = "Not recorded in this file: " + "; ".join(self.missing)
            body += "\n\n" + (f"*{note}*" if fmt == "markdown" else note)
        if fmt == "markdown":
            return "## Microscopy\n\n" + body
        return body


def _g(value: float | None, unit: str = "") -> str:
    assert value is not None
    return f"{value:g}{(' ' + unit) if unit else ''}"


def _named(item: Any) -> str | None:
    parts = [p for p in (getattr(item, "manufacturer", None), getattr(item, "model", None)) if p]
    return " ".join(parts) if parts else None


def _annotation_values(ome: OME, refs: Iterable[Any], namespace: str) -> dict[str, str]:
    """The key -> value pairs of the annotations ``refs`` point to, in ``namespace``."""
    by_id = annotation_values(ome, namespace)
    out: dict[str, str] = {}
    for ref in refs:
        out.update(by_id.get(ref.id, {}))
    return out


def methods_of(path: str | Path) -> Methods:
    """The Methods text of the file at ``path``, read through the one reader."""
    return build_methods(read(path).ome)


def build_methods(ome: OME) -> Methods:
    """Compose the Methods text for an OME model read from a recorded file."""
    methods = Methods()
    missing = methods.missing
    if not ome.instruments or not ome.images:
        missing.append("instrument and image metadata")
        return methods
    inst = ome.instruments[0]
    by_id: dict[str, Any] = {}
    for group in (inst.objectives, inst.filters, inst.dichroics, inst.detectors,
                  inst.light_source_group):
        by_id.update({item.id: item for item in group})
    images = ome.images

    intro: list[str] = []
    mic = inst.microscope
    if mic is not None and _named(mic):
        kind = f" {mic.type.value.lower()}" if mic.type is not None else ""
        intro.append(f"Images were acquired on a {_named(mic)}{kind} microscope")
    else:
        intro.append("Images were acquired on a microscope")
        missing.append("microscope stand manufacturer and model")
    if mic is None or mic.type is None:
        missing.append("microscope stand type")
    objectives = _grouped((_objective_text(by_id, image, missing), image) for image in images)
    if len(objectives) == 1:
        intro.append(next(iter(objectives)))
    else:  # the objective changed between Images: each named with the Images it took
        intro.append(" and ".join(f"{text} ({_image_list(group)})"
                                  for text, group in objectives.items()))
    run = _annotation_values(ome, images[0].annotation_refs, NS_RUN)
    software = [f"nbo-recorder {run['version nbo-recorder']}"] if "version nbo-recorder" in run \
        else []
    for label, key in (("pymmcore-plus", "version pymmcore-plus"), ("MMCore", "version MMCore")):
        if key in run:
            software.append(f"{label} {run[key]}")
    if software:
        intro.append("controlled by Micro-Manager through " + ", ".join(software))
    else:
        missing.append("acquisition software and versions")
    methods.paragraphs.append(", ".join(intro) + ".")

    # a channel whose settings differ between Images (another binning at one position, say)
    # gets one sentence per setting, each naming its Images; identical ones are said once
    sentences: dict[str, dict[str, list[Any]]] = {}
    for image in images:
        px = image.pixels
        for ch in px.channels:
            text = _channel_sentence(ome, ch, px, by_id, missing)
            sentences.setdefault(ch.name or ch.id, {}).setdefault(text, []).append(image)
    for by_text in sentences.values():
        for text, group in by_text.items():
            methods.paragraphs.append(text if len(by_text) == 1
                                      else f"{text[:-1]} ({_image_list(group)}).")
    missing[:] = list(dict.fromkeys(missing))

    geometries = _grouped((_geometry_text(image.pixels, missing), image) for image in images)
    for text, group in geometries.items():
        if text and len(geometries) > 1:
            text = f"{_image_list(group)}: {text[0].lower()}{text[1:]}"
        if text:
            methods.paragraphs.append(text + ".")
    positions = {image.id.split(":")[1] for image in images if image.id.count(":") >= 1}
    if len(positions) > 1:
        methods.paragraphs.append(f"Images were taken at {len(positions)} stage positions.")
    missing[:] = list(dict.fromkeys(missing))
    return methods


def _grouped(pairs: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    """Images grouped by a text about them, in the order the texts first appear."""
    out: dict[str, list[Any]] = {}
    for text, image in pairs:
        out.setdefault(text, []).append(image)
    return out


def _image_list(images: list[Any]) -> str:
    names = [f"'{image.name}'" if image.name else image.id for image in images]
    return ("Image " if len(names) == 1 else "Images ") + ", ".join(names)


def _objective_text(by_id: dict[str, Any], image: Any, missing: list[str]) -> str:
    obj = by_id.get(image.objective_settings.id) if image.objective_settings else None
    if obj is None:
        missing.append("objective in use")
        return "through an objective not recorded"
    specs = []
    if obj.nominal_magnification is not None:
        specs.append(f"{obj.nominal_magnification:g}×")
    else:
        missing.append("objective nominal magnification")
    if obj.lens_na is not None:
        specs.append(f"NA {obj.lens_na:g}")
    else:
        missing.append("objective numerical aperture (LensNA)")
    if obj.immersion is not None:
        specs.append(f"{obj.immersion.value.lower()} immersion")
    else:
        missing.append("objective immersion")
    if obj.correction is not None:
        specs.append(f"{obj.correction.value} correction")
    name = _named(obj) or "an objective"
    return f"through a {name} objective" + (f" ({', '.join(specs)})" if specs else "")


def _geometry_text(px: Any, missing: list[str]) -> str:
    """Pixel size, focal planes and time points of one Image's Pixels ("" if none apply)."""
    geometry: list[str] = []
    if px.physical_size_x is not None:
        geometry.append(f"The pixel size in the sample plane was {_g(px.physical_size_x, 'µm')}"
                        f" ({px.size_x} × {px.size_y} pixels)")
    else:
        missing.append("pixel size")
    if px.size_z > 1:
        step = f" at {_g(px.physical_size_z, 'µm')} steps" if px.physical_size_z else ""
        if not px.physical_size_z:
            missing.append("z step")
        geometry.append(f"{px.size_z} focal planes were acquired{step}")
    if px.size_t > 1:
        every = f" every {_g(px.time_increment, 's')}" if px.time_increment else ""
        geometry.append(f"{px.size_t} time points were acquired{every}")
    return "; ".join(geometry)


def _channel_sentence(ome: OME, ch: Any, px: Any, by_id: dict[str, Any],
                      missing: list[str]) -> str:
    name = ch.name or f"channel {ch.id}"
    observed = _annotation_values(ome, ch.annotation_refs, NS_CHANNEL)
    parts: list[str] = []
    ls = ch.light_source_settings
    # set when the file could not tell which light sources were lit (an unreadable on/off,
    # shutter or label): said as the file says it, never filled in
    sources_unknown = observed.get("light_sources")
    if sources_unknown is not None:
        parts.append(f"light sources in the path {sources_unknown}")
        missing.append(f"{name}: which light sources were in the path")
    if ls is not None:
        source = by_id.get(ls.id)
        text = f"excitation from {_named(source) or 'a light source'}"
        if ls.wavelength is not None:
            text += f" at {_g(ls.wavelength, 'nm')}"
        component = ls.id.split(":", 1)[1]
        power = observed.get(f"light_source[{component}].power_mw")
        intensity = observed.get(f"light_source[{component}].intensity_percent")
        emitted = observed.get(f"light_source[{component}].power_emitted_mw")
        state = observed.get(f"light_source[{component}].emission_state")
        reported = ", ".join(v for v in (f"{emitted} emitted" if emitted else None, state) if v)
        if power and not power.startswith("unknown"):
            text += f" ({power} set at the source" + (
                f"; the source reported {reported} at the channel's first frame)" if reported
                else ")")
        elif intensity and not intensity.startswith("unknown"):
            text += f" ({intensity} intensity)"
        else:
            missing.append(f"{name}: light source power or intensity")
        parts.append(text)
    elif sources_unknown is None:
        missing.append(f"{name}: light source")
    lp = ch.light_path
    if lp is not None:
        for refs, what in ((lp.excitation_filters, "excitation filter"),
                           (lp.emission_filters, "emission filter")):
            for ref in refs:
                parts.append(f"{what} {_filter_text(by_id.get(ref.id))}")
        if lp.dichroic_ref is not None:
            parts.append(f"dichroic mirror {_named(by_id.get(lp.dichroic_ref.id)) or ''}".strip())
    if not lp or not (lp.emission_filters or ch.emission_wavelength):
        missing.append(f"{name}: emission filter or wavelength")
    if ch.pinhole_size is not None:
        parts.append(f"pinhole {_g(ch.pinhole_size, 'µm')}")
    ds = ch.detector_settings
    if ds is not None:
        det = _named(by_id.get(ds.id)) or "a detector"
        settings = [f"gain {ds.gain:g}" if ds.gain is not None else None,
                    f"offset {ds.offset:g}" if ds.offset is not None else None,
                    f"binning {ds.binning.value}" if ds.binning is not None else None,
                    f"read-out rate {ds.read_out_rate:g} MHz" if ds.read_out_rate else None]
        kept = [s for s in settings if s]
        parts.append(f"detection with {det}" + (f" ({', '.join(kept)})" if kept else ""))
    else:
        missing.append(f"{name}: detector")
    exposures = sorted({p.exposure_time for p in px.planes
                        if p.the_c == px.channels.index(ch) and p.exposure_time is not None})
    if len(exposures) == 1:
        parts.append(f"exposure {_g(exposures[0], 'ms')}")
    elif exposures:
        parts.append(f"exposure {exposures[0]:g}–{_g(exposures[-1], 'ms')}")
    else:
        missing.append(f"{name}: exposure time")
    return f"{name}: " + "; ".join(parts) + "."


def _filter_text(f: Any) -> str:
    if f is None:
        return "(unknown)"
    name = _named(f) or f.id
    tr = f.transmittance_range
    if tr is not None and tr.cut_in is not None and tr.cut_out is not None:
        return f"{name} ({tr.cut_in:g}–{_g(tr.cut_out, 'nm')})"
    if tr is not None and tr.cut_in is not None:
        return f"{name} (from {_g(tr.cut_in, 'nm')})"
    return name
