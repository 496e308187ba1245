"""A Materials & Methods paragraph written only from what a file records.

Every number and name in the text is read from the file: the OME part, the recorder's
channel-settings annotations and the embedded NBO record (which holds what OME has no place
for: the spinning-disk unit, the acquisition software's developer, the specimen a user
stated). Nothing comes from the profile or the rig. The text follows the QUAREP-LiMi
bare-minimum checklist (Montero Llopis et al., J Cell Biol 2026, doi:10.1083/jcb.202601032):
each item the file holds is stated with the file's value, each item it lacks is listed at
the end as missing, never filled in.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ome_types import OME

from nbo_recorder.judge.methods_parts import (
    NboFacts,
    a,
    channel_mode_text,
    detector_text,
    g,
    light_source_text,
    named,
    pinhole_text,
    specimen_text,
    to_unit,
)
from nbo_recorder.judge.reader import annotation_values, read
from nbo_recorder.vocabulary import NS_CHANNEL, NS_RUN

#: OME AcquisitionMode -> the modality as a Methods section names it
_MODALITY = {
    "WideField": "wide-field", "LaserScanningConfocalMicroscopy": "laser-scanning confocal",
    "SpinningDiskConfocal": "spinning-disk confocal", "SlitScanConfocal": "slit-scan confocal",
    "MultiPhotonMicroscopy": "multiphoton", "StructuredIllumination": "structured-illumination",
    "TotalInternalReflection": "TIRF", "TIRF": "TIRF", "BrightField": "bright-field",
    "SweptFieldConfocal": "swept-field confocal", "SPIM": "light-sheet (SPIM)",
}
#: acquisition modes whose pinhole the checklist asks for in Airy units
_CONFOCAL = {"LaserScanningConfocalMicroscopy", "SpinningDiskConfocal", "SlitScanConfocal",
             "SweptFieldConfocal"}
#: point-scanned modes: no filter cube item, a dwell time instead
_SCANNED = {"LaserScanningConfocalMicroscopy", "MultiPhotonMicroscopy"}


@dataclass
class Methods:
    """The paragraphs, and what the text could not state because the file lacks it."""

    paragraphs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def text(self, fmt: str = "text") -> str:
        """The paragraphs and the missing items, as plain text or Markdown."""
        body = "\n\n".join(self.paragraphs)
        if self.missing:
            note = "Not recorded in this file: " + "; ".join(self.missing)
            body += "\n\n" + (f"*{note}*" if fmt == "markdown" else note)
        if fmt == "markdown":
            return "## Microscopy\n\n" + body
        return body


def _annotation_values(ome: OME, refs: Iterable[Any], namespace: str) -> dict[str, str]:
    """The key -> value pairs of the annotations ``refs`` point to, in ``namespace``."""
    by_id = annotation_values(ome, namespace)
    out: dict[str, str] = {}
    for ref in refs:
        out.update(by_id.get(ref.id, {}))
    return out


def methods_of(path: str | Path) -> Methods:
    """The Methods text of the file at ``path``, read through the one reader."""
    recorded = read(path)
    return build_methods(recorded.ome, recorded.nbo)


def build_methods(ome: OME, nbo: ET.Element | None = None) -> Methods:
    """Compose the Methods text for an OME model (and its NBO record) read from a file."""
    methods = Methods()
    missing = methods.missing
    if not ome.instruments or not ome.images:
        missing.append("instrument and image metadata")
        return methods
    facts = NboFacts(nbo)
    inst = ome.instruments[0]
    by_id: dict[str, Any] = {}
    for group in (inst.objectives, inst.filters, inst.dichroics, inst.detectors,
                  inst.light_source_group, inst.filter_sets):
        by_id.update({item.id: item for item in group})
    images = ome.images

    specimen = specimen_text(facts, images, missing)
    if specimen:
        methods.paragraphs.append(specimen)
    methods.paragraphs.append(_instrument_text(ome, facts, by_id, missing))

    # a channel whose settings differ between Images (another binning at one position, say)
    # gets one sentence per setting, each naming its Images; identical ones are said once
    sentences: dict[str, dict[str, list[Any]]] = {}
    airy = False
    for image in images:
        px = image.pixels
        objective = by_id.get(image.objective_settings.id) if image.objective_settings else None
        for ch in px.channels:
            text, with_airy = _channel_sentence(ome, ch, px, objective, by_id, facts, missing)
            airy |= with_airy
            sentences.setdefault(ch.name or ch.id, {}).setdefault(text, []).append(image)
    for by_text in sentences.values():
        for text, group in by_text.items():
            methods.paragraphs.append(text if len(by_text) == 1
                                      else f"{text[:-1]} ({_image_list(group)}).")
    if airy:
        methods.paragraphs.append(
            "Pinhole sizes in Airy units (AU) use 1 AU = 1.22·λ_em/NA in the sample plane, "
            "times the magnification from the sample to the pinhole (the objective's nominal "
            "magnification times any magnification changer the file records in the light "
            "path), with λ_em the channel's emission wavelength or else the centre of its "
            "emission window.")

    for text, group in _grouped((channel_mode_text(image.pixels, missing), image)
                                for image in images).items():
        if text:
            methods.paragraphs.append(text if len(images) == 1
                                      else f"{_image_list(group)}: {text}")
    geometries = _grouped((_geometry_text(image.pixels, missing), image) for image in images)
    for text, group in geometries.items():
        if text and len(geometries) > 1:
            text = f"{_image_list(group)}: {text[0].lower()}{text[1:]}"
        if text:
            methods.paragraphs.append(text + ".")
    positions = {image.id.split(":")[1] for image in images if image.id.count(":") >= 1}
    if len(positions) > 1:
        methods.paragraphs.append(f"Images were taken at {len(positions)} stage positions.")
    methods.paragraphs.append(_software_text(ome, facts, images[0], missing))
    missing[:] = list(dict.fromkeys(missing))
    return methods


def _instrument_text(ome: OME, facts: NboFacts, by_id: dict[str, Any],
                     missing: list[str]) -> str:
    """Modality, stand, add-on modules, objective(s) and additional magnification."""
    images = ome.images
    modes: dict[str, list[str]] = {}
    for image in images:
        for ch in image.pixels.channels:
            mode = ch.acquisition_mode.value if ch.acquisition_mode is not None else None
            if mode is None:
                missing.append(f"{ch.name or ch.id}: imaging modality (AcquisitionMode)")
                continue
            names = modes.setdefault(_MODALITY.get(mode, mode), [])
            if ch.name and ch.name not in names:
                names.append(ch.name)
    parts = [f"{mode} microscopy" + (f" ({', '.join(chs)})" if len(modes) > 1 and chs else "")
             for mode, chs in modes.items()]
    text = "Images were acquired by " + " and ".join(parts) if parts \
        else "Images were acquired"
    mic = ome.instruments[0].microscope
    kind = mic.type.value.lower() if mic is not None and mic.type is not None \
        else facts.stand_type()
    make = (mic.manufacturer if mic is not None else None) or facts.stand("Manufacturer")
    model = (mic.model if mic is not None else None) or facts.stand("Model")
    stand = f"{kind} microscope stand" if kind else "microscope stand"
    clauses = [f"{text} on {a(stand)} {stand}" + (f" made by {make}" if make else "")]
    if model:
        clauses.append(f"model {model}")
    for fact, value in (("manufacturer", make), ("model", model),
                        ("type (inverted or upright)", kind)):
        if not value:
            missing.append(f"microscope stand {fact}")
    modules = facts.modules(missing)
    if modules:
        clauses.append("fitted with " + " and ".join(f"{a(m)} {m}" for m in modules))
    if "spinning-disk confocal" in modes and not any("spinning-disk" in m for m in modules):
        missing.append("spinning-disk unit make and model")
    objectives = _grouped((_objective_text(by_id, image, missing), image) for image in images)
    if len(objectives) == 1:
        clauses.append(next(iter(objectives)))
    else:  # the objective changed between Images: each named with the Images it took
        clauses.append(" and ".join(f"{t} ({_image_list(group)})"
                                    for t, group in objectives.items()))
    text = ", ".join(clauses)
    changers = facts.magnification_changers()
    if changers:
        text += "; additional magnification " + ", ".join(changers)
    else:
        missing.append("additional magnification (optovar, camera adapter) or 'none'")
    return text + "."


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
    else:
        missing.append("objective correction")
    name = named(obj)
    if obj.manufacturer is None:
        missing.append("objective manufacturer")
    text = f"through {a(name)} {name} objective" if name else "through an objective"
    return text + (f" ({', '.join(specs)})" if specs else "")


def _geometry_text(px: Any, missing: list[str]) -> str:
    """Pixel size, focal planes and time points of one Image's Pixels ("" if none apply)."""
    geometry: list[str] = []
    if px.physical_size_x is not None:
        unit = px.physical_size_x_unit.value
        size = g(px.physical_size_x, unit)
        if px.physical_size_y is not None and px.physical_size_y != px.physical_size_x:
            size = f"{px.physical_size_x:g} × " + g(px.physical_size_y,
                                                    px.physical_size_y_unit.value)
        geometry.append(f"The pixel size in the sample plane was {size}"
                        f" ({px.size_x} × {px.size_y} pixels)")
    else:
        missing.append("pixel size")
    if px.size_z > 1:
        step = f" at {g(px.physical_size_z, px.physical_size_z_unit.value)} steps" \
            if px.physical_size_z else ""
        if not px.physical_size_z:
            missing.append("z step")
        geometry.append(f"{px.size_z} focal planes were acquired{step}")
    if px.size_t > 1:
        every = f" every {g(px.time_increment, px.time_increment_unit.value)}" \
            if px.time_increment else ""
        if not px.time_increment:
            missing.append("time increment")
        geometry.append(f"{px.size_t} time points were acquired{every}")
    return "; ".join(geometry)


def _channel_sentence(ome: OME, ch: Any, px: Any, objective: Any, by_id: dict[str, Any],
                      facts: NboFacts, missing: list[str]) -> tuple[str, bool]:
    """The channel's sentence, and whether it states a pinhole in Airy units."""
    name = ch.name or f"channel {ch.id}"
    mode = ch.acquisition_mode.value if ch.acquisition_mode is not None else ""
    observed = _annotation_values(ome, ch.annotation_refs, NS_CHANNEL)
    parts: list[str] = []
    # set when the file could not tell which light sources were lit (an unreadable on/off,
    # shutter or label): said as the file says it, never filled in
    sources_unknown = observed.get("light_sources")
    if sources_unknown is not None:
        parts.append(f"light sources in the path {sources_unknown}")
        missing.append(f"{name}: which light sources were in the path")
    if ch.light_source_settings is not None:
        parts.append(light_source_text(ch, by_id, observed, facts, missing))
    elif sources_unknown is None:
        missing.append(f"{name}: light source")
    window = _light_path_text(ch, by_id, parts, missing, scanned=mode in _SCANNED)
    airy = False
    if ch.pinhole_size is not None:
        text, airy = pinhole_text(ch, window, objective, facts, missing)
        parts.append(text)
    elif mode in _CONFOCAL:
        missing.append(f"{name}: pinhole size")
    detection = detector_text(ch, by_id, facts, missing)
    if detection:
        parts.append(detection)
    times = {to_unit(p.exposure_time, p.exposure_time_unit.value, "ms") for p in px.planes
             if p.the_c == px.channels.index(ch) and p.exposure_time is not None}
    exposures = sorted(t for t in times if t is not None)
    if len(exposures) == 1 and None not in times:
        parts.append(f"exposure {g(exposures[0], 'ms')}")
    elif exposures and None not in times:
        parts.append(f"exposure {exposures[0]:g}–{g(exposures[-1], 'ms')}")
    elif not mode or mode not in _SCANNED:
        missing.append(f"{name}: exposure time")
    return f"{name}: " + "; ".join(parts) + ".", airy


def _light_path_text(ch: Any, by_id: dict[str, Any], parts: list[str], missing: list[str],
                     *, scanned: bool) -> tuple[float | None, float | None]:
    """Add the channel's filters, dichroic and filter cube to ``parts``; return its emission
    window in nm (cut-in, cut-out; None where a side is open or not recorded)."""
    name = ch.name or f"channel {ch.id}"
    lp = ch.light_path
    low: float | None = None
    high: float | None = None
    emission = list(lp.emission_filters) if lp is not None else []
    for refs, what in (((lp.excitation_filters if lp is not None else []), "excitation filter"),
                       (emission, "emission filter")):
        for ref in refs:
            f = by_id.get(ref.id)
            parts.append(f"{_filter_text(f, what)}")
            tr = f.transmittance_range if f is not None else None
            if what == "emission filter" and tr is not None:
                if tr.cut_in is not None:
                    cut_in = to_unit(tr.cut_in, tr.cut_in_unit.value, "nm")
                    low = cut_in if low is None or cut_in is None else max(low, cut_in)
                if tr.cut_out is not None:
                    cut_out = to_unit(tr.cut_out, tr.cut_out_unit.value, "nm")
                    high = cut_out if high is None or cut_out is None else min(high, cut_out)
    if len(emission) > 1 and low is not None and high is not None:
        parts.append(f"emission window {low:g}–{high:g} nm")
    if (low is None or high is None) and ch.emission_wavelength is not None:
        parts.append(f"emission at {g(ch.emission_wavelength, ch.emission_wavelength_unit.value)}")
    if (low is None or high is None) and ch.emission_wavelength is None:
        missing.append(f"{name}: emission filter band or detection window")
    cube = by_id.get(ch.filter_set_ref.id) if ch.filter_set_ref is not None else None
    dichroic = lp.dichroic_ref.id if lp is not None and lp.dichroic_ref is not None else None
    if cube is None and dichroic is not None:
        holders = [fs for fs in by_id.values() if type(fs).__name__ == "FilterSet"
                   and fs.dichroic_ref is not None and fs.dichroic_ref.id == dichroic]
        cube = holders[0] if len(holders) == 1 else None
    if dichroic is not None:
        label = named(by_id.get(dichroic))
        parts.append(f"dichroic mirror {label}" if label else "an unnamed dichroic mirror")
    if cube is not None:
        label = named(cube)
        parts.append(f"in filter cube {label}" if label else "in an unnamed filter cube")
    if dichroic is None and cube is None and not scanned:
        missing.append(f"{name}: filter cube or dichroic")
    return low, high


def _filter_text(f: Any, what: str) -> str:
    """A filter as the text names it: by make and model (never by its file ID), its band and
    the wheel it sits in."""
    if f is None:
        return f"an unrecorded {what}"
    label = named(f)
    text = f"{what} {label}" if label else f"an unnamed {what}"
    tr = f.transmittance_range
    if tr is not None and tr.cut_in is not None and tr.cut_out is not None:
        text += f" ({tr.cut_in:g}–{g(tr.cut_out, tr.cut_out_unit.value)})"
    elif tr is not None and tr.cut_in is not None:
        text += f" (from {g(tr.cut_in, tr.cut_in_unit.value)})"
    elif tr is not None and tr.cut_out is not None:
        text += f" (up to {g(tr.cut_out, tr.cut_out_unit.value)})"
    if f.filter_wheel:
        text += f" in filter wheel {f.filter_wheel}"
    return text


def _software_text(ome: OME, facts: NboFacts, image: Any, missing: list[str]) -> str:
    """The acquisition software (name, version, developer) and what wrote the metadata."""
    acquired, writer = facts.software(missing)
    if not acquired:  # a file without an NBO record: the recorder's run annotation
        run = _annotation_values(ome, image.annotation_refs, NS_RUN)
        acquired = [f"{label} {run[key]}" for label, key in (
            ("pymmcore-plus", "version pymmcore-plus"), ("MMCore", "version MMCore"))
            if key in run]
        if "version nbo-recorder" in run:
            writer = f"nbo-recorder {run['version nbo-recorder']}"
        if acquired:
            missing.append("acquisition software developer")
    if not acquired:
        missing.append("acquisition software and versions")
        text = "The acquisition software is not recorded"
    else:
        text = "Acquisition was controlled by " + ", ".join(acquired)
    writer = writer or ome.creator
    return text + (f"; the metadata were recorded by {writer}." if writer else ".")
