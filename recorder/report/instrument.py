"""The instrument as the report's table shows it, from the OME part and the NBO record.

The OME part names the components and their main specs; the NBO record adds what OME has no
place for (pinholes, the spinning-disk unit, stages, the acquisition software) and, in each
component's ``urn:nbo-recorder:component`` annotation, where the profile says its specs come
from (``source``) and the facts NBO has no attribute for.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from ome_types import OME

from nbo_recorder.judge.methods_parts import to_unit
from nbo_recorder.judge.reader import map_annotations
from nbo_recorder.nbo.schema import local_name
from nbo_recorder.report.views import InstrumentRow
from nbo_recorder.vocabulary import NS_COMPONENT, unknown_reason

#: OME light-source elements -> how the page names their kind
SOURCE_KINDS = {"Laser": "laser", "LightEmittingDiode": "LED", "Arc": "arc lamp",
                "Filament": "filament lamp", "GenericExcitationSource": "light source"}
#: keys of a component annotation that are no spec (bookkeeping, or shown as the source)
_NOT_SPECS = {"profile id", "source"}


def label(item: Any) -> str:
    """A component's human name: manufacturer and model, else its ID."""
    parts = [getattr(item, "manufacturer", None), getattr(item, "model", None)]
    text = " ".join(str(p) for p in parts if p and unknown_reason(str(p)) is None)
    return text or str(getattr(item, "id", ""))


def enum_text(value: Any) -> str | None:
    """The text of an ome-types enum (or plain) value; None when absent."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def nm(value: float | None, unit: Any) -> float | None:
    """A wavelength in nanometres (None when absent or in a unit that cannot be converted)."""
    if value is None:
        return None
    return to_unit(float(value), enum_text(unit) or "nm", "nm")


class NboComponents:
    """The NBO record's Instrument components by ID, with their component annotations."""

    def __init__(self, record: ET.Element | None) -> None:
        self.by_id: dict[str, ET.Element] = {}
        self._annotations: dict[str, dict[str, str]] = {}
        if record is None:
            return
        self._annotations = map_annotations(record, NS_COMPONENT)
        for instrument in (e for e in record if local_name(e.tag) == "Instrument"):
            for child in instrument:
                if child.get("ID"):
                    self.by_id[child.get("ID", "")] = child

    def facts(self, component_id: str) -> dict[str, str]:
        """The component annotation(s) of a component: nested, or referenced by ID."""
        element = self.by_id.get(component_id)
        out: dict[str, str] = {}
        if element is None:
            return out
        for child in element:
            name = local_name(child.tag)
            if name == "MapAnnotation":
                out.update(self._annotations.get(child.get("ID", ""), {}))
            elif name == "AnnotationRef":
                out.update(self._annotations.get(child.get("ID", ""), {}))
        return out

    def band(self, component_id: str) -> tuple[float | None, float | None] | None:
        """A filter's or dichroic's transmission band (nm) as the NBO record states it
        (cut-in/cut-out, or centre and full width); None when it states none."""
        element = self.by_id.get(component_id)
        if element is None:
            return None
        for tr in (c for c in element if local_name(c.tag) == "TransmittanceRange"):
            unit = tr.get("WavelengthUnit") or tr.get("CutInUnit") or "nm"
            cut_in, cut_out = _number(tr.get("CutIn")), _number(tr.get("CutOut"))
            centre, width = _number(tr.get("Wavelength")), _number(tr.get("FWHMBandwidth"))
            if cut_in is None and cut_out is None and centre is not None and width is not None:
                cut_in, cut_out = centre - width / 2, centre + width / 2
            if cut_in is not None or cut_out is not None:
                return (None if cut_in is None else to_unit(cut_in, unit, "nm"),
                        None if cut_out is None else to_unit(cut_out, unit, "nm"))
        return None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def instrument_rows(ome: OME, nbo: NboComponents) -> tuple[InstrumentRow, ...]:
    """Every component of the file's instrument, OME part first, then what only NBO holds."""
    rows: list[InstrumentRow] = []
    seen: set[str] = set()
    for inst in ome.instruments:
        if inst.microscope is not None:
            m = inst.microscope
            rows.append(InstrumentRow(inst.id, "microscope", label(m),
                                      _specs(("type", enum_text(m.type))), None))
        groups: list[tuple[str, list[Any]]] = [
            ("light source", list(inst.light_source_group)), ("detector", inst.detectors),
            ("objective", inst.objectives), ("filter set", inst.filter_sets),
            ("filter", inst.filters), ("dichroic", inst.dichroics)]
        for kind, items in groups:
            for item in items:
                seen.add(item.id)
                facts = nbo.facts(item.id)
                if kind == "light source":
                    kind_text = SOURCE_KINDS.get(type(item).__name__, kind)
                else:
                    kind_text = kind
                specs = _component_specs(item)
                stated = {spec.partition(": ")[2] for spec in specs}
                extra = tuple(f"{k}: {v}" for k, v in facts.items()
                              if k not in _NOT_SPECS and v not in stated)
                rows.append(InstrumentRow(item.id, kind_text, label(item), specs + extra,
                                          facts.get("source")))
    for component_id, element in nbo.by_id.items():
        if component_id in seen:
            continue
        facts = nbo.facts(component_id)
        name = (element.get("Name") or " ".join(
            v for v in (element.get("Manufacturer") or facts.get("Manufacturer"),
                        element.get("Model") or facts.get("Model")) if v) or component_id)
        attrs = tuple(f"{k}: {v}" for k, v in element.attrib.items()
                      if k not in ("ID", "Name", "Manufacturer", "Model")
                      and unknown_reason(v) is None)
        extra = tuple(f"{k}: {v}" for k, v in facts.items()
                      if k not in _NOT_SPECS | {"Manufacturer", "Model"})
        rows.append(InstrumentRow(component_id, local_name(element.tag), name, attrs + extra,
                                  facts.get("source")))
    return tuple(rows)


def _specs(*pairs: tuple[str, object]) -> tuple[str, ...]:
    return tuple(f"{k}: {v}" for k, v in pairs if v is not None and v != "")


def _component_specs(item: Any) -> tuple[str, ...]:
    """The specs the OME part records for a component, as ``name: value`` texts."""
    kind = type(item).__name__
    if kind == "Objective":
        return _specs(("magnification", item.nominal_magnification), ("NA", item.lens_na),
                      ("immersion", enum_text(item.immersion)),
                      ("correction", enum_text(item.correction)),
                      ("working distance", None if item.working_distance is None else
                       f"{item.working_distance:g} {enum_text(item.working_distance_unit)}"))
    if kind == "Filter":
        tr = item.transmittance_range
        band = None
        if tr is not None and (tr.cut_in is not None or tr.cut_out is not None):
            band = (f"{'' if tr.cut_in is None else f'{tr.cut_in:g}'}–"
                    f"{'' if tr.cut_out is None else f'{tr.cut_out:g}'} "
                    f"{enum_text(tr.cut_in_unit if tr.cut_in is not None else tr.cut_out_unit)}")
        return _specs(("type", enum_text(item.type)), ("band", band),
                      ("wheel", item.filter_wheel))
    if kind == "Detector":
        return _specs(("type", enum_text(item.type)), ("gain", item.gain),
                      ("offset", item.offset))
    if kind == "FilterSet":
        return _specs(("excitation", ", ".join(r.id for r in item.excitation_filters) or None),
                      ("dichroic", item.dichroic_ref.id if item.dichroic_ref else None),
                      ("emission", ", ".join(r.id for r in item.emission_filters) or None))
    specs: list[str] = []
    if kind == "Laser":
        specs += _specs(("type", enum_text(item.type)), ("medium", enum_text(item.laser_medium)),
                        ("wavelength", None if item.wavelength is None else
                         f"{item.wavelength:g} {enum_text(item.wavelength_unit)}"))
    if getattr(item, "power", None) is not None:
        specs += _specs(("power", f"{item.power:g} {enum_text(item.power_unit)}"))
    return tuple(specs)
