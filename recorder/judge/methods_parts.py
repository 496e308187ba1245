"""The pieces of the Methods text (:mod:`nbo_recorder.judge.methods`) that need more than the
OME model: the NBO record's facts, units, articles, and the derived statements (pinhole in
Airy units, channel mode) with the file facts they are derived from.

Nothing here reads a profile or a rig: every value comes from the file, and every fact a
statement needs but the file lacks is appended to the caller's ``missing`` list.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from typing import Any

from nbo_recorder.nbo.schema import local_name
from nbo_recorder.units import UnitError, convert
from nbo_recorder.vocabulary import unknown_reason

#: OME Detector Type -> what a Methods section calls it
_DETECTOR = {
    "CCD": "CCD camera", "IntensifiedCCD": "intensified CCD camera", "EMCCD": "EMCCD camera",
    "CMOS": "CMOS camera", "EBCCD": "EBCCD camera", "AnalogVideo": "analogue video camera",
    "PMT": "photomultiplier tube", "Photodiode": "photodiode", "APD": "avalanche photodiode",
}
#: NBO detector elements that say the detector's type by themselves
_NBO_DETECTOR = {
    "CCD": "CCD camera", "CMOS": "CMOS camera", "IntensifiedCamera": "intensified camera",
    "AnalogVideo": "analogue video camera", "PhotoMultiplierTube": "photomultiplier tube",
    "PhotoDiode": "photodiode", "HybridPhotoDetector": "hybrid photodetector",
}
#: OME light-source elements -> the checklist's light source type
_SOURCE = {"LightEmittingDiode": "LED", "Arc": "arc lamp", "Filament": "filament lamp",
           "Laser": "laser"}
#: NBO Instrument elements that are modules added to the stand's light path
_MODULES = {"SpinningDisk": "spinning-disk unit", "RasterScanner": "raster scanner"}
_AXES = {"z": "focal plane", "c": "channel", "t": "time point"}


#: consonant pairs English words start with; a word starting with another pair of consonants
#: (nbo-recorder, sCMOS) is read letter by letter
_ONSETS = {"bl", "br", "ch", "cl", "cr", "dr", "dw", "fl", "fr", "gl", "gn", "gr", "kl", "kn",
           "kr", "ph", "pl", "pr", "ps", "rh", "sc", "sh", "sk", "sl", "sm", "sn", "sp", "sq",
           "st", "sw", "th", "tr", "ts", "tw", "wh", "wr", "zw"}


def a(phrase: str) -> str:
    """The indefinite article for ``phrase``: "an" before a vowel sound, including
    initialisms read letter by letter (an LED, an sCMOS, an nbo-recorder, an 8×)."""
    word = phrase.split(" ", 1)[0]
    if not word:
        return "a"
    if word[0].lower() in "aeiou" or word.startswith(("8", "11", "18")):
        return "an"
    head = word[:2]
    spelled = len(word) > 1 and (
        word[1].isupper() or word[1] in "-." or word.isupper()
        or (head.isalpha() and head.lower() == head and head[1] not in "aeiouy"
            and head not in _ONSETS))
    return "an" if spelled and word[0].lower() in "fhlmnrsx" else "a"


def g(value: float | None, unit: str = "") -> str:
    """``value`` with its unit, in the shortest exact form (20 ms, 0.65 µm)."""
    assert value is not None
    return f"{value:g}{(' ' + unit) if unit else ''}"


def to_unit(value: float, unit: str, target: str) -> float | None:
    """``value`` in ``unit`` converted to ``target`` (None for a unit the recorder's unit table
    cannot convert: the Methods text then lists the value as missing)."""
    try:
        return convert(value, unit, target)
    except UnitError:
        return None


def known(value: str | None) -> str | None:
    """``value``, or None when absent or an ``unknown (reason)`` text."""
    return value if value and unknown_reason(value) is None else None


def named(item: Any) -> str | None:
    """A component's make and model as the file states them (None if neither)."""
    parts = [p for p in (known(getattr(item, "manufacturer", None)),
                         known(getattr(item, "model", None))) if p]
    return " ".join(parts) if parts else None


class NboFacts:
    """Look-ups into the embedded NBO record (all empty for a file without one)."""

    def __init__(self, record: ET.Element | None) -> None:
        self.record = record
        self.ns = record.tag.partition("}")[0] + "}" if record is not None else ""
        self.by_id: dict[str, ET.Element] = {}
        # the element an ID defines: not a reference to it (``...Ref``), and not the settings
        # element that repeats a component's ID further down (Instruments come first)
        for el in record.iter() if record is not None else []:
            if el.get("ID") and not local_name(el.tag).endswith("Ref"):
                self.by_id.setdefault(str(el.get("ID")), el)

    def all(self, name: str) -> list[ET.Element]:
        """Every element named ``name`` in the record."""
        return [] if self.record is None else list(self.record.iter(self.ns + name))

    def instrument(self) -> list[ET.Element]:
        """The children of the record's first Instrument."""
        found = self.all("Instrument")
        return list(found[0]) if found else []

    def values(self, element: ET.Element) -> dict[str, str]:
        """An element's known attributes and the key -> value pairs of its map annotations
        (inline or referenced): NBO elements without Manufacturer/Model attributes (the
        spinning disk) carry them there."""
        out: dict[str, str] = {}
        maps = [c for c in element if local_name(c.tag) == "MapAnnotation"]
        maps += [self.by_id[r.get("ID", "")] for r in element
                 if local_name(r.tag) == "AnnotationRef" and r.get("ID", "") in self.by_id]
        for ann in maps:
            for m in ann.iter(self.ns + "M"):
                if m.get("K") and known(m.text):
                    out[str(m.get("K"))] = str(m.text)
        out.update({k: v for k, v in element.attrib.items() if known(v)})
        return out

    def stand(self, attribute: str) -> str | None:
        """An attribute of the record's microscope stand."""
        for el in self.instrument():
            if local_name(el.tag).endswith("MicroscopeStand"):
                return known(el.get(attribute))
        return None

    def stand_type(self) -> str | None:
        """``inverted`` or ``upright``, as the stand's element says."""
        for el in self.instrument():
            name = local_name(el.tag)
            if name in ("InvertedMicroscopeStand", "UprightMicroscopeStand"):
                return name.removesuffix("MicroscopeStand").lower()
        return None

    def modules(self, missing: list[str]) -> list[str]:
        """The add-on modules in the light path (the spinning-disk unit), by make and model."""
        out = []
        for el in self.instrument():
            kind = _MODULES.get(local_name(el.tag))
            if kind is None:
                continue
            facts = self.values(el)
            label = " ".join(facts[k] for k in ("Manufacturer", "Model") if k in facts)
            if not label:
                missing.append(f"{kind} make and model")
            out.append(f"{label} {kind}".strip())
        return out

    def magnification_changers(self) -> list[str]:
        """Each magnification changer with its magnification (``1.5× (Optovar)``)."""
        out = []
        for el in self.all("MagnificationChanger"):
            if known(el.get("Magnification")):
                label = el.get("Name") or " ".join(
                    k for v in (el.get("Manufacturer"), el.get("Model")) if (k := known(v)))
                out.append(f"{float(el.get('Magnification', '')):g}×"
                           + (f" ({label})" if label else ""))
        return out

    def lens_factor(self, channel_id: str) -> float:
        """The product of the magnifications of the magnification changers the channel's
        NBO light path refers to (1 when it refers to none)."""
        factor = 1.0
        channel = self.by_id.get(channel_id)
        for ref in channel.iter(self.ns + "LensSettings") if channel is not None else []:
            lens = self.by_id.get(ref.get("ID", ""))
            if lens is not None and local_name(lens.tag) == "MagnificationChanger" \
                    and known(lens.get("Magnification")):
                factor *= float(lens.get("Magnification", "1"))
        return factor

    def software(self, missing: list[str]) -> tuple[list[str], str | None]:
        """The acquisition software (name version (developer, website)) and the metadata
        writer (nbo-recorder), from the record's AcquisitionSoftware elements."""
        acquired: list[str] = []
        writer = None
        for el in self.all("AcquisitionSoftware"):
            facts = self.values(el)
            name = facts.get("Name", el.get("ID", "software"))
            text = f"{name} {facts['Version']}" if "Version" in facts else name
            if name == "nbo-recorder":
                writer = text
                continue
            contact = [facts[k] for k in ("Developer", "WebsiteURL") if k in facts]
            acquired.append(text + (f" ({', '.join(contact)})" if contact else ""))
            for key, what in (("Version", "version"), ("Developer", "developer")):
                if key not in facts:
                    missing.append(f"acquisition software {name}: {what}")
        return acquired, writer


def specimen_text(facts: NboFacts, images: list[Any], missing: list[str]) -> str:
    """Sample, mounting medium, cover glass and labels, as the record states them."""
    sentences = []
    sample = facts.all("Sample")
    described = []
    for el in sample:
        v = facts.values(el)
        details = [v[k] for k in ("Organism", "SampleType") if k in v]
        if "LiveSample" in v:
            details.append("live" if v["LiveSample"] == "true" else "not live")
        if "Name" in v or details:
            described.append(v.get("Name", "the sample")
                             + (f" ({', '.join(details)})" if details else ""))
    media = []
    for el in facts.all("MountingMedium"):
        v = facts.values(el)
        label = " ".join(v[k] for k in ("Manufacturer", "Model") if k in v)
        details = [v[k] for k in ("Type",) if k in v]
        if "RefractiveIndex" in v:
            details.append(f"refractive index {v['RefractiveIndex']}")
        media.append((label or "a medium") + (f" ({', '.join(details)})" if details else ""))
    glasses = []
    for el in facts.all("CoverGlass"):
        v = facts.values(el)
        details = [v[k] for k in ("Manufacturer", "Model") if k in v]
        if "Thickness" in v:
            details.append(f"{v['Thickness']} µm thick")
        if "Coating" in v:
            details.append(f"coating {v['Coating']}")
        glasses.append(f"No. {v.get('CoverGlassNo', '(number not recorded)')} cover glass"
                       + (f" ({', '.join(details)})" if details else ""))
    if described or media or glasses:
        text = "The specimen was " + ("; ".join(described) if described else "imaged")
        if media:
            text += ", mounted in " + " and ".join(media)
        if glasses:
            text += ", under " + " and ".join(glasses)
        sentences.append(text + ".")
    if not media:
        missing.append("mounting or imaging medium (name and maker)")
    if not glasses:
        missing.append("cover glass (number, thickness, coating) or 'not applicable'")
    labels = _labels(facts, images, missing)
    if labels:
        sentences.append("Labels: " + "; ".join(labels) + ".")
    return " ".join(sentences)


def _labels(facts: NboFacts, images: list[Any], missing: list[str]) -> list[str]:
    """Per fluorescence channel, the fluorophore the file names (NBO record, else OME Fluor)."""
    out: dict[str, list[str]] = {}
    for image in images:
        for ch in image.pixels.channels:
            name = ch.name or ch.id
            channel = facts.by_id.get(ch.id)
            stated = []
            for el in channel.iter(facts.ns + "Fluorophore") if channel is not None else []:
                v = facts.values(el)
                if "Name" in v:
                    extra = [v[k] for k in ("Manufacturer", "Model") if k in v]
                    if "Concentration" in v:
                        extra.append(f"{v['Concentration']} {v.get('ConcentrationUnit', '')}"
                                     .strip())
                    stated.append(v["Name"] + (f" ({', '.join(extra)})" if extra else ""))
            if not stated and known(ch.fluor):
                stated.append(str(ch.fluor))
            fluorescence = ch.contrast_method is not None and \
                ch.contrast_method.value == "Fluorescence"
            if not stated and fluorescence:
                missing.append(f"{name}: label (fluorophore)")
            for label in stated:
                channels = out.setdefault(label, [])
                if name not in channels:
                    channels.append(name)
    return [f"{label} in channel{'s' if len(chs) > 1 else ''} {', '.join(chs)}"
            for label, chs in out.items()]


def light_source_text(ch: Any, by_id: dict[str, Any], observed: dict[str, str],
                      facts: NboFacts, missing: list[str]) -> str:
    """The light source: type, make and model, wavelength and power."""
    name = ch.name or f"channel {ch.id}"
    ls = ch.light_source_settings
    source: Any = by_id.get(ls.id)
    element = type(source).__name__ if source is not None else ""
    kind = _SOURCE.get(element)
    if element == "Laser" and source.type is not None:
        laser = source.type.value
        kind = {"SolidState": "solid-state", "MetalVapor": "metal-vapour"}.get(
            laser, laser.lower()) + " laser"
    if kind is None:
        missing.append(f"{name}: light source type")
    label = named(source)
    if label is None and element != "Laser":
        missing.append(f"{name}: light source make and model")
    phrase = kind or "light source"
    text = f"excitation from {a(phrase)} {phrase}" + (f" ({label})" if label else "")
    wavelength, unit = ls.wavelength, ls.wavelength_unit.value
    if wavelength is None and element == "Laser" and source.wavelength is not None:
        wavelength, unit = source.wavelength, source.wavelength_unit.value
    if wavelength is not None:
        text += f" at {g(wavelength, unit)}"
    elif element == "Laser":
        missing.append(f"{name}: laser wavelength")
    component = ls.id.split(":", 1)[1] if ":" in ls.id else ls.id
    power = known(observed.get(f"light_source[{component}].power_mw"))
    intensity = known(observed.get(f"light_source[{component}].intensity_percent"))
    emitted = observed.get(f"light_source[{component}].power_emitted_mw")
    state = observed.get(f"light_source[{component}].emission_state")
    reported = ", ".join(v for v in (f"{emitted} emitted" if emitted else None, state) if v)
    recorded = _recorded_power(facts, ch.id, ls.id)
    if power:
        text += f" ({power} set at the source" + (
            f"; the source reported {reported} at the channel's first frame)" if reported
            else ")")
    elif intensity:
        text += f" ({intensity} intensity)"
    elif recorded:
        text += f" ({recorded} set at the source)"
    else:
        missing.append(f"{name}: light source power or intensity")
    return text


def _recorded_power(facts: NboFacts, channel_id: str, source_id: str) -> str | None:
    """The IlluminationPowerSettings (with its unit) of the channel's NBO light path."""
    channel = facts.by_id.get(channel_id)
    for el in channel.iter(facts.ns + "LightSourceSettings") if channel is not None else []:
        value = known(el.get("IlluminationPowerSettings"))
        if el.get("ID") == source_id and value:
            unit = el.get("IlluminationPowerSettingsUnit") or el.get(
                "lluminationPowerSettingsUnit")  # the v2.01 XSD spells it so
            return f"{float(value):g} {unit}" if unit else None
    return None


def detector_text(ch: Any, by_id: dict[str, Any], facts: NboFacts,
                  missing: list[str]) -> str | None:
    """The detector: type, make and model, and its recorded settings."""
    name = ch.name or f"channel {ch.id}"
    ds = ch.detector_settings
    if ds is None:
        missing.append(f"{name}: detector")
        return None
    det = by_id.get(ds.id)
    kind = _DETECTOR.get(det.type.value) if det is not None and det.type is not None else None
    if kind is None and ds.id in facts.by_id:
        kind = _NBO_DETECTOR.get(local_name(facts.by_id[ds.id].tag))
    if kind is None:
        missing.append(f"{name}: detector type")
    label = named(det)
    if label is None:
        missing.append(f"{name}: detector make and model")
    phrase = kind or "detector"
    settings = [f"gain {ds.gain:g}" if ds.gain is not None else None,
                f"offset {ds.offset:g}" if ds.offset is not None else None,
                f"binning {ds.binning.value}" if ds.binning is not None else None,
                f"read-out rate {ds.read_out_rate:g} MHz" if ds.read_out_rate else None]
    kept = [label] + [s for s in settings if s] if label else [s for s in settings if s]
    return f"detection with {a(phrase)} {phrase}" + (f" ({', '.join(kept)})" if kept else "")


def pinhole_text(ch: Any, window: tuple[float | None, float | None], objective: Any,
                 facts: NboFacts, missing: list[str]) -> tuple[str, bool]:
    """The pinhole's diameter and, when the file holds what it takes (emission wavelength,
    objective NA and magnification), its size in Airy units; the facts lacking otherwise."""
    name = ch.name or f"channel {ch.id}"
    unit = ch.pinhole_size_unit.value
    text = f"pinhole {g(ch.pinhole_size, unit)}"
    diameter_um = to_unit(ch.pinhole_size, unit, "µm")
    wavelength = None
    if ch.emission_wavelength is not None:
        wavelength = to_unit(ch.emission_wavelength, ch.emission_wavelength_unit.value, "nm")
    elif window[0] is not None and window[1] is not None:
        wavelength = (window[0] + window[1]) / 2
    na = objective.lens_na if objective is not None else None
    magnification = objective.nominal_magnification if objective is not None else None
    lacking = [what for what, value in (("the pinhole diameter in a known unit", diameter_um),
                                        ("the emission wavelength", wavelength),
                                        ("the objective NA", na),
                                        ("the objective magnification", magnification))
               if value is None]
    if lacking:
        missing.append(f"{name}: pinhole in Airy units (needs {', '.join(lacking)})")
        return text, False
    assert diameter_um is not None and wavelength is not None
    assert na is not None and magnification is not None
    total = magnification * facts.lens_factor(ch.id)
    airy_um = 1.22 * (wavelength / 1000) / na * total
    au = diameter_um / airy_um
    size = f"{au:.1f}" if au >= 1 else f"{au:.2g}"
    return f"{text} ({size} AU at λ_em {wavelength:g} nm)", True


def channel_mode_text(px: Any, missing: list[str]) -> str:
    """Whether an Image's channels were acquired sequentially or simultaneously, and in which
    order, as the planes' time stamps (DeltaT) show ("" for a single channel)."""
    if px.size_c < 2:
        return ""
    planes = [p for p in px.planes if p.delta_t is not None]
    if not planes or len(planes) < len(px.planes):
        missing.append("channel mode (sequential or simultaneous): plane time stamps")
        return ""
    stamps: dict[tuple[int, int], dict[int, float]] = {}
    for p in planes:
        stamps.setdefault((p.the_t, p.the_z), {})[p.the_c] = p.delta_t
    shared = [len(set(by_c.values())) < len(by_c) for by_c in stamps.values() if len(by_c) > 1]
    if shared and all(shared):
        return "The channels were acquired simultaneously (each plane's channels share a " \
               "time stamp)."
    if any(shared):
        return "The channels were acquired simultaneously at some planes and sequentially " \
               "at others (as the planes' time stamps show)."
    ordered = sorted(planes, key=lambda p: p.delta_t)
    changes = {axis: sum(getattr(x, f"the_{axis}") != getattr(y, f"the_{axis}")
                         for x, y in itertools.pairwise(ordered))
               for axis in _AXES if getattr(px, f"size_{axis}") > 1}
    order = sorted(changes, key=lambda axis: -changes[axis])
    text = "The channels were acquired sequentially (no two channels of a plane share a " \
           "time stamp)"
    if len(order) > 1:
        text += f"; in time order the {_AXES[order[0]]} changed fastest, then the " + \
                ", then the ".join(_AXES[axis] for axis in order[1:])
    return text + "."
