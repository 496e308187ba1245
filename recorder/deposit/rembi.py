"""REMBI sections filled from NBO records and the study file, by the shipped mapping table.

REMBI (Sarkans et al., *Nat Methods* 2021), the BioImage Archive's metadata model, groups
what a deposition states into sections: Study, Study Component, Biosample, Specimen, Image
Acquisition and, for correlative work, Image Correlation. The NBO paper lists how its record
corresponds (Experiment ↔ Study Component, Sample ↔ Biosample and Specimen, Instrument and
Image ↔ Image Acquisition); ``rembi_map.csv`` writes that correspondence down as data, one
row per source of a REMBI field:

``section, field, term, mandatory, source, unit, note``

* ``source`` is ``nbo:<Element>@<Attribute>`` (that attribute of every such element of a
  file's NBO record) or ``study:<key>`` (that key of the study file's ``rembi:`` block);
* ``unit`` names the attribute holding the value's unit: such a value is written with its
  name and unit (``ExposureTime 20.0 ms``), a value without one as it is;
* a field with several rows collects the values of all of them;
* ``mandatory`` says whether REMBI requires the field: a mandatory field no row fills is
  listed as missing (:class:`Missing`), never filled with a guess.

Values the recorder wrote as ``unknown (reason)`` (nobody stated them) count as absent. Of
an Instrument's parts only those the file's images used (referred to by a ``...Settings`` or
``...Ref`` element under an ``Image``) describe the acquisition.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from nbo_recorder.deposit.linked import local
from nbo_recorder.vocabulary import unknown_reason

#: The NBO → REMBI mapping table.
TABLE_PATH = Path(__file__).with_name("rembi_map.csv")

#: REMBI sections filled once per crate, from the study file.
STUDY_SECTIONS = ("Study", "Image Correlation")
#: REMBI sections filled per deposited file, from its NBO record (and the study file).
FILE_SECTIONS = ("Study Component", "Biosample", "Specimen", "Image Acquisition")
#: Sections that only exist when something fills them (Image Correlation: correlative work).
OPTIONAL_SECTIONS = ("Image Correlation",)

#: Keys the study file's ``rembi:`` block may hold, with what each is.
STUDY_KEYS: Mapping[str, str] = {
    "title": "the study's title", "description": "what the study is about",
    "authors": "list of {name, affiliation, email, orcid}", "license": "SPDX licence URL or id",
    "keywords": "list of words", "release_date": "ISO 8601 date", "funding": "text or list",
    "component_description": "what the study component (the images deposited) shows",
    "intrinsic_variables": "biosample", "extrinsic_variables": "biosample",
    "experimental_variables": "biosample",
    "correlation_alignment": "image correlation", "correlation_fiducials": "image correlation",
    "correlation_matrix": "image correlation",
}


@dataclass(frozen=True)
class MapRow:
    """One row of ``rembi_map.csv``."""

    section: str
    field: str
    term: str
    mandatory: bool
    source: str
    unit: str
    note: str


@dataclass(frozen=True)
class Missing:
    """A mandatory REMBI field nothing fills; ``where`` is the file it concerns, or ''."""

    section: str
    field: str
    where: str = ""

    def __str__(self) -> str:
        place = f"{self.where}: " if self.where else ""
        return f"{place}REMBI {self.section} / {self.field}"


@dataclass(frozen=True)
class Section:
    """A filled REMBI section: per field (REMBI name), its term and the values found."""

    name: str
    fields: dict[str, tuple[str, list[str]]]


@cache
def mapping() -> tuple[MapRow, ...]:
    """The rows of the shipped mapping table."""
    with TABLE_PATH.open(encoding="utf-8", newline="") as handle:
        return tuple(MapRow(r["section"], r["field"], r["term"], r["mandatory"] == "yes",
                            r["source"], r["unit"], r["note"]) for r in csv.DictReader(handle))


def used_ids(record: ET.Element) -> set[str]:
    """IDs the record's images refer to (objective, light sources, detectors, software...)."""
    return {el.attrib["ID"] for image in record.iter() if local(image.tag) == "Image"
            for el in image.iter() if "ID" in el.attrib
            and local(el.tag).endswith(("Settings", "Ref"))}


def nbo_values(record: ET.Element, element: str, attribute: str, unit: str = "") -> list[str]:
    """The stated values of ``element@attribute`` in ``record`` (instrument parts: used ones).

    In document order, without repeats; ``unknown (...)`` values are left out. With ``unit``
    (the attribute naming the unit) each value is ``<attribute> <value> <unit>``.
    """
    used = used_ids(record)
    out: dict[str, None] = {}
    for parent in record.iter():
        in_instrument = local(parent.tag) == "Instrument"
        for el in parent:
            if local(el.tag) != element:
                continue
            if in_instrument and el.attrib.get("ID") not in used:
                continue
            value = el.attrib.get(attribute)
            if value is None or not value.strip() or unknown_reason(value) is not None:
                continue
            if unit:
                value = f"{attribute} {value} {el.attrib.get(unit, '')}".rstrip()
            out[value] = None
    return list(out)


def study_values(study: Mapping[str, Any], key: str) -> list[str]:
    """The values of ``key`` in the study's ``rembi:`` block, as text (authors by name)."""
    value = study.get(key)
    items: Iterable[Any] = value if isinstance(value, list) else [] if value is None else [value]
    out = []
    for item in items:
        if isinstance(item, Mapping):
            item = item.get("name")
        if item is not None and str(item).strip():
            out.append(str(item))
    return out


def _section(name: str, rows: Iterable[MapRow], records: Sequence[ET.Element],
             study: Mapping[str, Any]) -> tuple[Section, list[MapRow]]:
    """Section ``name`` filled from ``records`` and ``study``; its unfilled mandatory rows."""
    fields: dict[str, tuple[str, list[str]]] = {}
    wanted: dict[str, MapRow] = {}
    for row in rows:
        if row.section != name:
            continue
        kind, _, what = row.source.partition(":")
        if kind == "study":
            values = study_values(study, what)
        else:
            element, _, attribute = what.partition("@")
            values = [v for record in records
                      for v in nbo_values(record, element, attribute, row.unit)]
        found = fields.setdefault(row.field, (row.term, []))[1]
        found.extend(v for v in values if v not in found)
        if row.mandatory:
            wanted[row.field] = row
    empty = [row for field, row in wanted.items() if not fields[field][1]]
    return Section(name, {k: v for k, v in fields.items() if v[1]}), empty


def study_sections(study: Mapping[str, Any], records: Sequence[ET.Element] = (),
                   ) -> tuple[list[Section], list[Missing]]:
    """The crate-wide sections (Study; Image Correlation when stated) filled from the study
    and every deposited file's record (the Experimenters are authors), and what they miss."""
    sections, missing = [], []
    for name in STUDY_SECTIONS:
        section, empty = _section(name, mapping(), records, study)
        if name in OPTIONAL_SECTIONS and not section.fields:
            continue
        sections.append(section)
        missing += [Missing(name, row.field) for row in empty]
    return sections, missing


def file_sections(record: ET.Element | None, study: Mapping[str, Any],
                  where: str) -> tuple[list[Section], list[Missing]]:
    """The per-file sections filled from the file's NBO ``record`` (None: an OME-TIFF
    without one) and the study, and the mandatory fields they miss."""
    sections, missing = [], []
    for name in FILE_SECTIONS:
        section, empty = _section(name, mapping(), [] if record is None else [record], study)
        sections.append(section)
        missing += [Missing(name, row.field, where) for row in empty]
    return sections, missing


def check_study_block(block: object, source: str) -> dict[str, Any]:
    """The study file's ``rembi:`` block, checked: a mapping of :data:`STUDY_KEYS` only."""
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise ValueError(f"{source}: rembi: expected a mapping of {', '.join(STUDY_KEYS)}, "
                         f"got {type(block).__name__}")
    unknown = sorted(str(k) for k in block if k not in STUDY_KEYS)
    if unknown:
        raise ValueError(f"{source}: rembi: unknown key(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(STUDY_KEYS)}")
    return dict(block)
