"""Each channel's light path as the report draws it, from what the file records.

Source -> excitation filter -> dichroic -> objective -> pinhole/disk -> emission filter ->
detector, each with the values the file holds for it: the OME part (the channel's
LightSourceSettings, LightPath, DetectorSettings, PinholeSize; the Image's objective; the
planes' exposure) and the recorder's channel-settings annotation (what was observed: power,
intensity, whether a source emitted). A value the recorder could not observe is written in
that annotation as ``unknown (reason)`` under a key naming the part (``objective``,
``excitation_filter[Wheel]``, ``light_source[laser-488].power_mw``, ``detector[cam].gain``);
the part is then drawn as unknown with that reason. A part the file records nothing for is
drawn as absent, saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ome_types.model import Channel, Image

from nbo_recorder.report.instrument import SOURCE_KINDS, NboComponents, enum_text, label, nm
from nbo_recorder.report.views import (
    ChannelView,
    Component,
    Field,
    Mark,
    Part,
    known_field,
    unknown_field,
)
from nbo_recorder.vocabulary import unknown_reason

#: acquisition modes with a pinhole or disk in the path
_CONFOCAL = {"LaserScanningConfocalMicroscopy", "SpinningDiskConfocal", "SlitScanConfocal",
             "SweptFieldConfocal", "MultiPhotonMicroscopy"}


def _local(component_id: str) -> str:
    """``LightSource:laser-488`` -> ``laser-488`` (the key the annotations use)."""
    return component_id.partition(":")[2] or component_id


def unknown_reasons(observed: Mapping[str, str], *prefixes: str) -> list[str]:
    """The reasons of the ``unknown (...)`` entries whose key starts with one of ``prefixes``."""
    out = []
    for key, value in observed.items():
        why = unknown_reason(value)
        if why is not None and key.startswith(prefixes):
            out.append(f"{key}: {why}")
    return out


def _observed(observed: Mapping[str, str], key: str, name: str, label_: str) -> Field | None:
    """The annotation's entry ``key`` as a field (None when the annotation has no entry)."""
    text = observed.get(key)
    if text is None:
        return None
    why = unknown_reason(text)
    return unknown_field(name, label_, why) if why is not None else Field(name, label_, text,
                                                                          text)


def _part(kind: str, label_: str, components: list[Component], absent: str,
          reasons: list[str]) -> Part:
    """A part from its components; unknown when a value of it is, absent when it has none."""
    if components:
        why = [f"{c.name}: {c.reason}" for c in components if c.reason]
        why += [f"{c.name} {f.label}: {f.reason}" for c in components for f in c.fields
                if f.reason]
        return Part(kind, label_, "unknown" if why else "known", tuple(components),
                    "; ".join(reasons + why) or None)
    if reasons:
        return Part(kind, label_, "unknown", (), "; ".join(reasons))
    return Part(kind, label_, "none", (), absent)


class ChannelPath:
    """Builds one channel's parts and spectral marks."""

    def __init__(self, image: Image, channel: Channel, observed: Mapping[str, str],
                 by_id: Mapping[str, Any], nbo: NboComponents) -> None:
        self.image, self.channel, self.observed = image, channel, observed
        self.by_id, self.nbo = by_id, nbo
        self.marks: list[Mark] = []

    def view(self, image_index: int, channel_index: int) -> ChannelView:
        ch = self.channel
        parts = (self.light_source(), self.filters("excitation"), self.dichroic(),
                 self.objective(), self.pinhole(), self.filters("emission"), self.detector())
        return ChannelView(ch.id, image_index, channel_index, ch.name or ch.id, ch.fluor,
                           enum_text(ch.acquisition_mode), parts, tuple(self.marks))

    def light_source(self) -> Part:
        lss = self.channel.light_source_settings
        if lss is None:
            return _part("light-source", "light source", [],
                         "the file names no light source for this channel",
                         unknown_reasons(self.observed, "light_source"))
        item = self.by_id.get(lss.id)
        local = _local(lss.id)
        key = f"light_source[{local}]"
        fields: list[Field] = []
        kind = SOURCE_KINDS.get(type(item).__name__, "light source") if item else "light source"
        if item is not None and type(item).__name__ == "Laser" and item.type is not None:
            kind += f" ({enum_text(item.type)})"
        fields.append(known_field("type", "type", kind))
        wavelength = nm(lss.wavelength, lss.wavelength_unit)
        if wavelength is None and item is not None and type(item).__name__ == "Laser":
            wavelength = nm(item.wavelength, item.wavelength_unit)
        if wavelength is not None:
            fields.append(known_field("wavelength_nm", "line", wavelength, "nm"))
        else:
            fields.append(_observed(self.observed, f"{key}.wavelength_nm", "wavelength_nm",
                                    "line")
                          or unknown_field("wavelength_nm", "line",
                                           "the file states no wavelength for this source"))
        for suffix, name, text in (("power_mw", "power", "power set"),
                                   ("intensity_percent", "intensity", "intensity"),
                                   ("power_emitted_mw", "power_emitted", "power emitted")):
            found = _observed(self.observed, f"{key}.{suffix}", name, text)
            if found is not None:
                fields.append(found)
        if lss.attenuation is not None:
            fields.append(known_field("attenuation", "attenuation", lss.attenuation))
        state = _observed(self.observed, key, "state", "state")
        if state is not None:
            fields.append(state)
        reason = None if item is not None else "not described in the file's Instrument"
        name = label(item) if item is not None else lss.id
        line = next((f for f in fields if f.name == "wavelength_nm"), None)
        if line is not None and line.value is not None:
            self.marks.append(Mark("source", "line", lss.id, f"{name} {line.text}",
                                   lo_nm=float(line.value)))
        else:
            self.marks.append(Mark("source", "unknown", lss.id, name,
                                   reason=line.reason if line else None))
        return _part("light-source", "light source",
                     [Component(lss.id, name, tuple(fields), reason)], "", [])

    def _filter_refs(self, which: str) -> list[str]:
        """The channel's excitation or emission filters (its LightPath, else its FilterSet)."""
        attr = f"{which}_filters"
        path = self.channel.light_path
        refs = [r.id for r in getattr(path, attr)] if path is not None else []
        if not refs and self.channel.filter_set_ref is not None:
            fs = self.by_id.get(self.channel.filter_set_ref.id)
            refs = [r.id for r in getattr(fs, attr)] if fs is not None else []
        return refs

    def _banded(self, component_id: str, row: str) -> Component:
        """A filter or dichroic with its model, type and band, and its mark on the strip."""
        item = self.by_id.get(component_id)
        if item is None:
            self.marks.append(Mark(row, "unknown", component_id, component_id,
                                   reason="not described in the file's Instrument"))
            return Component(component_id, component_id, (),
                             "not described in the file's Instrument")
        fields: list[Field] = []
        if getattr(item, "type", None) is not None:
            fields.append(known_field("type", "type", enum_text(item.type)))
        tr = getattr(item, "transmittance_range", None)
        band: tuple[float | None, float | None] | None = None
        if tr is not None and (tr.cut_in is not None or tr.cut_out is not None):
            band = (nm(tr.cut_in, tr.cut_in_unit), nm(tr.cut_out, tr.cut_out_unit))
        else:
            band = self.nbo.band(component_id)
        if band is None:
            why = "the file records no transmission band for it"
            fields.append(unknown_field("band", "band", why))
            self.marks.append(Mark(row, "unknown", component_id, label(item), reason=why))
        else:
            lo, hi = band
            if lo is not None:
                fields.append(known_field("cut_in_nm", "cut-in", lo, "nm"))
            if hi is not None:
                fields.append(known_field("cut_out_nm", "cut-out", hi, "nm"))
            self.marks.append(Mark(row, "band", component_id, label(item), lo_nm=lo, hi_nm=hi))
        return Component(component_id, label(item), tuple(fields))

    def filters(self, which: str) -> Part:
        refs = self._filter_refs(which)
        key = "excitation_filter" if which == "excitation" else "emission_filter"
        return _part(f"{which}-filter", f"{which} filter",
                     [self._banded(r, which) for r in refs],
                     f"no {which} filter in this channel's recorded light path",
                     unknown_reasons(self.observed, key, f"{which}_filters"))

    def dichroic(self) -> Part:
        path = self.channel.light_path
        ref = path.dichroic_ref if path is not None else None
        if ref is None and self.channel.filter_set_ref is not None:
            fs = self.by_id.get(self.channel.filter_set_ref.id)
            ref = fs.dichroic_ref if fs is not None else None
        components = [self._banded(ref.id, "dichroic")] if ref is not None else []
        return _part("dichroic", "dichroic", components,
                     "no dichroic in this channel's recorded light path",
                     unknown_reasons(self.observed, "dichroic"))

    def objective(self) -> Part:
        settings = self.image.objective_settings
        if settings is None:
            return _part("objective", "objective", [], "the file names no objective",
                         unknown_reasons(self.observed, "objective"))
        item = self.by_id.get(settings.id)
        if item is None:
            return _part("objective", "objective",
                         [Component(settings.id, settings.id, (),
                                    "not described in the file's Instrument")], "", [])
        fields: list[Field] = []
        for name, text, value, unit in (
                ("magnification", "magnification", item.nominal_magnification, "×"),
                ("na", "NA", item.lens_na, ""),
                ("immersion", "immersion",
                 enum_text(item.immersion) or enum_text(settings.medium), "")):
            fields.append(known_field(name, text, value, unit) if value is not None
                          else unknown_field(name, text, f"the file states no {text}"))
        return _part("objective", "objective", [Component(settings.id, label(item),
                                                          tuple(fields))], "", [])

    def pinhole(self) -> Part:
        ch, observed = self.channel, self.observed
        components: list[Component] = []
        channel_fields: list[Field] = []
        if ch.pinhole_size is not None:
            channel_fields.append(known_field("pinhole_size", "pinhole", ch.pinhole_size,
                                              enum_text(ch.pinhole_size_unit) or ""))
        speed = _observed(observed, "spinning_disk.speed_setpoint_rpm", "disk_speed",
                          "disk speed set")
        if speed is not None:
            channel_fields.append(speed)
        pinholes = [p.strip() for p in observed.get("pinholes", "").split(",") if p.strip()]
        if channel_fields and (ch.pinhole_size is not None or pinholes):
            components.append(Component("", "this channel", tuple(channel_fields)))
        for local in pinholes:
            pid = f"Pinhole:{local}"
            element = self.nbo.by_id.get(pid)
            fields: tuple[Field, ...] = ()
            if element is not None and element.get("MaxDiameter"):
                fields = (known_field("diameter", "diameter", element.get("MaxDiameter"),
                                      element.get("MaxDiameterUnit") or "µm"),)
            name = (element.get("Name") if element is not None else None) or pid
            components.append(Component(pid, name, fields))
        mode = enum_text(ch.acquisition_mode)
        absent = ("no pinhole or disk recorded for this channel"
                  + (f" (acquisition mode {mode})" if mode else ""))
        reasons = unknown_reasons(observed, "pinhole", "spinning_disk")
        if not components and mode in _CONFOCAL:
            reasons.append(f"acquisition mode {mode} but the file records no pinhole")
        return _part("pinhole", "pinhole / disk", components, absent, reasons)

    def detector(self) -> Part:
        ds = self.channel.detector_settings
        exposures = self._exposures()
        if ds is None:
            return _part("detector", "detector", [], "the file names no detector",
                         unknown_reasons(self.observed, "detector"))
        item = self.by_id.get(ds.id)
        local = _local(ds.id)
        fields = [known_field("type", "type", enum_text(item.type) if item is not None
                              and item.type is not None else "not stated")]
        for name, text, value in (("gain", "gain", ds.gain), ("offset", "offset", ds.offset),
                                  ("binning", "binning", enum_text(ds.binning))):
            if value is not None:
                fields.append(known_field(name, text, value))
            else:
                fields.append(_observed(self.observed, f"detector[{local}].{name}", name, text)
                              or unknown_field(name, text, f"the file states no {text}"))
        fields.append(exposures)
        name = label(item) if item is not None else ds.id
        reason = None if item is not None else "not described in the file's Instrument"
        return _part("detector", "detector", [Component(ds.id, name, tuple(fields), reason)],
                     "", [])

    def _exposures(self) -> Field:
        """The channel's exposure over its planes: one value, or the range it varied over."""
        planes = [p for p in self.image.pixels.planes if p.the_c == self._index()]
        times = sorted({(p.exposure_time, enum_text(p.exposure_time_unit)) for p in planes
                        if p.exposure_time is not None}, key=lambda t: (t[1] or "", t[0]))
        if not times:
            return unknown_field("exposure", "exposure", "no plane of this channel states it")
        if len(times) == 1:
            return known_field("exposure", "exposure", times[0][0], times[0][1] or "")
        text = ", ".join(f"{t:g} {u}" for t, u in times) + " (varied: see the timeline)"
        return Field("exposure", "exposure", text, ";".join(f"{t} {u}" for t, u in times))

    def _index(self) -> int:
        return next(i for i, c in enumerate(self.image.pixels.channels) if c is self.channel)
