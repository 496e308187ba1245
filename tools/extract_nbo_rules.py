"""Extract the NBO v2.01 tier/requirement rules table from the specification spreadsheet.

The 4DN-BINA-OME (NBO) v2.01 specification is published as an Excel workbook
(``NBO_MicroscopyMetadataSpecifications_ALL_v02-01.xlsx``) plus an XSD. The workbook
is the only machine-readable source of the *tier* (1-3), the *requirement* (MUST /
SHOULD) and the *Materials & Methods* flag of every element and attribute, so this
script turns it into a committed, deterministic JSON table
(``recorder/nbo/nbo_rules.json``) that ``nbo_recorder.nbo.rules`` loads at run time.

Usage::

    python tools/extract_nbo_rules.py [--spec DIR] [--xsd FILE] [--out FILE] [--check]

``--check`` regenerates the table in memory and exits 1 if it differs from ``--out``.

How the workbook encodes things (verified by reading every sheet with python-calamine):

* Sheets. ``Element categories_v2.01`` maps element names to their extension (Core,
  Basic, Advanced+Confocal, Calibration and Performance). ``NBO-Core+Basic Specs`` and
  ``NBO-Core+Basic Settings`` hold Core *and* Basic rows; ``NBO-Adv-Confoc Specs+Sett``
  holds the ``advconf`` extension and ``NBO-Calib-Perf Specs+Sett`` the ``calib`` one.
  In the Core+Basic sheets an element's extension is the one the categories sheet
  gives for it (Core or Basic; generic children such as ``Row``/``Cell`` that the
  categories sheet files under Calibration are ignored there); an element not listed
  there takes the extension of its abstract
  parent's members (Core if any member is Core) or else of its enclosing element.
  Attributes take the extension of the element that owns them.
* Header. The header row is the first row whose first cell is ``Tier`` (row 1 in
  three sheets, row 3 in the Calibration sheet, whose first row lists fill colours).
  Column positions are read from it: Tier, M&M, Description, Data type, Allowed
  values, Complex type and ``Cardinality...``; the columns between ``M&M`` and
  ``Description`` are name columns (they differ per sheet: 2-9 or 2-10).
* Nesting. The column in which a name stands is its depth: a row belongs to the
  closest preceding row whose name stands in a column to its left, and a row that
  has deeper rows below it is an element. Columns may be skipped (``M`` in column 7,
  ``K`` in column 9). Rows whose first cell is ``e`` are block separators, empty rows
  and ``removed OME field(s)`` rows carry no rule and are skipped.
* Tier. Column ``Tier`` holds 1.0, 2.0 or 3.0. A few rows have no tier (blank, a
  blank-looking string, or ``0.0`` on context rows); they take the tier of their
  enclosing element and are flagged ``tier_inferred``.
* M&M. Column ``M&M`` holds ``Y`` when the item belongs in a Materials & Methods
  section; anything else is false.
* MUST / SHOULD. Column ``Cardinality/Required?`` (``Cardinality`` in three sheets)
  holds ``R`` for a required attribute, or a cardinality such as ``1.0`` (a bare 1),
  ``1 ... ∞``, ``1 … ∞``, ``0 … 1``, ``0 ... ∞``, ``-`` or ``or`` (two cells hold a
  second line below the first; the first line counts). A row is MUST when the cell is
  ``R`` or its lower bound is at least 1, SHOULD otherwise. ``or`` marks an
  alternative of the first ``choose only one`` member and takes that member's
  cardinality.
* Markers in name columns. ``substitution group (choose one)`` / ``(choose one or
  more)`` stands one column left of the first member of a substitution group; the
  group's head is the abstract parent element (APE) that encloses the marker, e.g.
  ``LightSource-APE``, and members take the head's XML parent (they substitute for
  it). ``choose only one`` starts a plain choice whose members are children of the
  enclosing element. Notes such as ``(for more details see Basic extension)`` in a
  later name column mark a row described in another sheet; such rows, and every
  Advanced/Calibration row whose path Core/Basic also define, are flagged
  ``reference`` (the sheet repeats them for context).
* Inheritance. ``ManufacturerSpecs (extension base)`` and ``Settings (extension
  base)`` define attributes and children shared by every element built on them; a
  row ``ManufactuerSpecs`` (spelled with a Greek capital Mu) inside an element says
  "add the base's rows here". APE blocks likewise define rows shared by their
  members. The XSD is the arbiter: every element inherits the rows of each sheet
  block whose XSD type is in its complexType extension chain (e.g. ``CCD`` extends
  ``Camera`` extends ``Detector`` extends ``ManufacturerSpec``), plus the rows of
  its substitution-group head and of the ManufacturerSpecs base when the sheet says
  so. An element's own rows win over inherited ones of the same name. Inherited rows
  record ``inherited_from`` and get tier ``max(base row tier, inheriting element
  tier)``, which is the convention the sheet itself follows when it repeats base
  rows under a tier-2 element. Children inherited from an APE are repeated with
  their content; children inherited from the two extension bases (MapAnnotation,
  SpecsFile, AdditionalVendorInformation) are listed without it, as their content
  does not depend on where they occur and is listed once under the base.
* Names. Labels are cleaned (Greek homoglyphs such as Μ, Ε are mapped to Latin,
  parentheticals like ``(was Medium)`` or ``(LightSourceID)`` and ``-APE`` suffixes
  dropped) and then reconciled with the XSD names in the context of the XML parent:
  case/punctuation-insensitive equality, an ``...Group`` suffix for APE heads, a
  short alias list for renamed elements, then a close spelling match (difflib ratio
  >= 0.8). ``name`` is the XSD name when one matched (``xsd`` true), else the cleaned
  label; ``label`` keeps the sheet text. Whether a row is an attribute or an element
  is taken from the XSD when the name matched, otherwise from the sheet (deeper
  rows below it, an ``Element``/``Reference`` data type, a ``...Ref`` name or a
  range cardinality make it an element).
* Allowed values are split at commas and line breaks outside parentheses; they are
  kept only when the data type says ``enum``.

Each output record: ``extension``, ``path`` (XML path, ``@`` before an attribute),
``parent``, ``name``, ``kind``, ``tier``, ``requirement``, ``mm``, ``data_type``,
``allowed_values``, ``description`` (first sentence, at most 200 characters),
``cardinality``, ``group``, ``group_mode``, ``inherited_from``, ``reference``,
``tier_inferred``, ``xsd``, ``label``, ``sheet``, ``row`` (1-based spreadsheet row).
Records are unique per (extension, path) and sorted by extension then path; the file
holds one record per line so that diffs stay readable.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xmlschema
from python_calamine import CalamineWorkbook
from xmlschema.validators import XsdComplexType, XsdElement

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEC_WORKBOOK = "NBO_MicroscopyMetadataSpecifications_ALL_v02-01.xlsx"
DEFAULT_SPEC_DIR = REPO_ROOT / "tools" / "nbo-spec"
DEFAULT_XSD = (
    REPO_ROOT / "recorder" / "nbo" / "NBO_MicroscopyMetadataSpecifications_ALL_v02-01.xsd"
)
DEFAULT_OUT = REPO_ROOT / "recorder" / "nbo" / "nbo_rules.json"

EXTENSIONS = ("core", "basic", "advconf", "calib")
CATEGORY_EXTENSIONS = {
    "core": "core",
    "basic": "basic",
    "advanced+confocal": "advconf",
    "calibration and performance": "calib",
}

# Greek capitals the sheet uses in place of look-alike Latin letters.
HOMOGLYPHS = str.maketrans("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX")

# Sheet labels whose XSD element name differs beyond spelling noise.
ALIASES = {
    "opticalstandard": "OpticalCalibrationStandardGroup",
    "microscopestandinverted": "InvertedMicroscopeStand",
    "microscopestandupright": "UprightMicroscopeStand",
    "multilasrengine": "MultiLaserEngine",
    "photdiode": "PhotoDiode",
    "planetranformationmatrix": "PlaneTransformationMatrix",
    "planetransformmatrix": "PlaneTransformationMatrix",
    "planeoffsetx": "PlaneXOffset",
    "planeoffsety": "PlaneYOffset",
    "planeoffsetz": "PlaneZOffset",
    "additionaldichroic": "GenericDichroic",
    "opticalapertureref": "ApertureRef",
    "filterturret": "FilterCubeTurret",
}

FUZZY_CUTOFF = 0.8
DESCRIPTION_LIMIT = 200

SchemaAnchor = XsdElement | XsdComplexType


def norm(text: str) -> str:
    """Return a comparison key: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", text.translate(HOMOGLYPHS).lower())


def cell_text(value: Any) -> str:
    """Render a calamine cell as stripped text; whole floats lose their ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).translate(HOMOGLYPHS).split())


def clean_label(label: str) -> str:
    """Turn a name-column label into an identifier-like name.

    Drops parentheticals (``(was Medium)``, ``(LightSourceID)``), APE suffixes and
    white space, e.g. ``MicroscopeStand-Abstract Parent Element`` -> ``MicroscopeStand``.
    """
    text = re.sub(r"\(.*?\)", " ", label)
    text = re.sub(r"-\s*(APE|Abstract Parent Element).*$", "", text.strip())
    return re.sub(r"[\s.]+", "", text)


def parse_tier(value: Any) -> int | None:
    """Return 1, 2 or 3 from a Tier cell, None when blank or out of range."""
    try:
        tier = int(float(str(value).strip()))
    except ValueError:
        return None
    return tier if tier in (1, 2, 3) else None


def normalise_cardinality(text: str) -> str:
    """Normalise a cardinality cell: ``1 … ∞`` -> ``1..*``, ``1.0`` -> ``1``, ``-`` -> ``''``."""
    text = text.replace("∞", "*").replace("…", "..").replace("...", "..")
    text = re.sub(r"\s+", "", text)
    return "" if text == "-" else text


def requirement_of(cardinality: str) -> str:
    """MUST for ``R`` or a lower bound of at least 1, SHOULD otherwise."""
    if cardinality == "R":
        return "MUST"
    match = re.fullmatch(r"(\d+)(\.\.(\d+|\*))?", cardinality)
    return "MUST" if match and int(match.group(1)) >= 1 else "SHOULD"


def split_values(text: str) -> list[str]:
    """Split an allowed-values cell at commas/newlines that are outside parentheses."""
    values: list[str] = []
    depth = 0
    current = ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char in ",\n" and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    return [" ".join(v.split()) for v in values if v.strip()]


def short_description(text: str) -> str:
    """First sentence of a description, capped at DESCRIPTION_LIMIT characters."""
    text = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    sentence = match.group(1) if match else text
    if len(sentence) > DESCRIPTION_LIMIT:
        sentence = sentence[: DESCRIPTION_LIMIT - 1].rstrip() + "…"
    return sentence


@dataclass(eq=False)
class Node:
    """One named row of a specification sheet, linked into the sheet's nesting."""

    sheet: str
    row: int
    col: int
    label: str
    tier: int | None
    mm: bool
    data_type: str
    allowed: str
    complex_type: str
    cardinality: str
    description: str
    note: str
    parent: Node | None = None
    group_head: Node | None = None
    group_mode: str | None = None
    choice_parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    tier_inferred: bool = False
    kind: str = "attribute"
    name: str = ""
    xsd: bool = False
    anchor: SchemaAnchor | None = None
    extension: str = ""

    @property
    def clean(self) -> str:
        """The cleaned label."""
        return clean_label(self.label)

    @property
    def is_ape(self) -> bool:
        """True for an abstract parent element (head of a substitution group)."""
        text = self.label.lower()
        return "-ape" in text or "abstract parent element" in text

    @property
    def is_base(self) -> bool:
        """True for the ``ManufacturerSpecs``/``Settings`` extension-base blocks."""
        return "(extension base)" in self.label

    @property
    def is_manufacturer_marker(self) -> bool:
        """True for the ``ManufactuerSpecs`` row that says 'inherit the base here'."""
        return norm(self.label) in ("manufactuerspecs", "manufacturerspecs")

    @property
    def is_member(self) -> bool:
        """True when the row is a member of a substitution group."""
        return self.group_head is not None

    def xml_parent(self) -> Node | None:
        """The node whose XML element contains this one (substitutes share the head's)."""
        if self.group_head is not None:
            return self.group_head.xml_parent()
        if self.choice_parent is not None:
            return self.choice_parent
        return self.parent

    def looks_like_element(self) -> bool:
        """Sheet-only guess whether the row is an element (used when the XSD is silent)."""
        data_type = self.data_type.lower()
        return bool(
            self.children
            or self.is_ape
            or self.is_member
            or self.choice_parent is not None
            or "element" in data_type
            or "reference" in data_type
            or self.clean.endswith("Ref")
            or ".." in self.cardinality
            or self.complex_type == "FileAnnotation"
        )


@dataclass
class Sheet:
    """A specification sheet: its key, extension rule and parsed top-level nodes."""

    key: str
    extension: str | None
    roots: list[Node]


@dataclass
class Header:
    """Column positions read from a sheet's header row."""

    row: int
    tier: int
    mm: int
    description: int
    data_type: int
    allowed: int
    complex_type: int
    cardinality: int


def find_header(rows: list[list[Any]]) -> Header:
    """Locate the header row (first cell ``Tier``) and read the column positions."""
    for index, row in enumerate(rows):
        cells = [cell_text(c) for c in row]
        if cells and cells[0] == "Tier":
            position = {text: col for col, text in enumerate(cells) if text}
            cardinality = next(
                col for text, col in position.items() if text.startswith("Cardinality")
            )
            return Header(
                row=index,
                tier=position["Tier"],
                mm=position["M&M"],
                description=position["Description"],
                data_type=position["Data type"],
                allowed=position["Allowed values"],
                complex_type=position["Complex type"],
                cardinality=cardinality,
            )
    raise ValueError("no header row starting with 'Tier'")


def is_marker(text: str) -> bool:
    """True for group markers that stand in a name column."""
    lowered = text.lower()
    return "substitution group" in lowered or "choose only one" in lowered


def is_note(text: str) -> bool:
    """True for parenthesised notes such as ``(for more details see Basic extension)``."""
    return text.startswith("(")


@dataclass
class StackEntry:
    """An open nesting level while reading a sheet: a row node or a group marker."""

    col: int
    node: Node | None
    head: Node | None = None
    mode: str | None = None
    substitution: bool = False
    first_member: Node | None = None


def parse_sheet(key: str, rows: list[list[Any]]) -> list[Node]:
    """Parse a specification sheet into a forest of nodes following the name columns."""
    header = find_header(rows)
    name_cols = range(header.mm + 1, header.description)
    roots: list[Node] = []
    stack: list[StackEntry] = []

    def cell(row: list[Any], col: int) -> str:
        return cell_text(row[col]) if col < len(row) else ""

    def cell_lines(row: list[Any], col: int) -> list[str]:
        value = row[col] if col < len(row) else ""
        if not isinstance(value, str):
            return [cell_text(value)]
        lines = [cell_text(line) for line in value.splitlines()]
        return [line for line in lines if line] or [""]

    for index in range(header.row + 1, len(rows)):
        row = rows[index]
        names = [(col, cell(row, col)) for col in name_cols if cell(row, col)]
        marker = next(((col, text) for col, text in names if is_marker(text)), None)
        named = [(col, text) for col, text in names if not is_marker(text) and not is_note(text)]
        if not named or named[0][1].lower().startswith("removed ome field") or named[0][1] == "~":
            continue
        col, label = named[0]
        node = Node(
            sheet=key,
            row=index + 1,
            col=col,
            label=label,
            tier=parse_tier(cell(row, header.tier)),
            mm=cell(row, header.mm) == "Y",
            data_type=cell(row, header.data_type),
            allowed="\n".join(cell_lines(row, header.allowed)),
            complex_type=cell(row, header.complex_type),
            cardinality=normalise_cardinality(cell_lines(row, header.cardinality)[0]),
            description=cell(row, header.description),
            note=" ".join(text for c, text in names if is_note(text) and c > col),
        )
        if marker is not None:
            while stack and stack[-1].col >= marker[0]:
                stack.pop()
            head = next((e.node for e in reversed(stack) if e.node is not None), None)
            substitution = "substitution" in marker[1].lower()
            mode = "one_or_more" if "or more" in marker[1].lower() else "one"
            stack.append(StackEntry(marker[0], None, head, mode, substitution))
        while stack and stack[-1].col >= col:
            stack.pop()
        group = stack[-1] if stack and stack[-1].node is None else None
        parent = next((e.node for e in reversed(stack) if e.node is not None), None)
        node.parent = parent
        if group is not None and group.head is not None:
            node.group_mode = group.mode
            if group.substitution:
                node.group_head = group.head
            else:
                node.choice_parent = group.head
                if group.first_member is None:
                    group.first_member = node
                elif node.cardinality == "or":
                    node.cardinality = group.first_member.cardinality
        if node.tier is None and parent is not None:
            node.tier = parent.tier
            node.tier_inferred = True
        (parent.children if parent is not None else roots).append(node)
        stack.append(StackEntry(col, node))
    return roots


def walk(nodes: Iterable[Node]) -> Iterator[Node]:
    """Depth-first iteration over nodes and their sheet children."""
    for node in nodes:
        yield node
        yield from walk(node.children)


class SchemaIndex:
    """Name lookups in the NBO XSD used to reconcile sheet labels with schema names."""

    def __init__(self, schema: xmlschema.XMLSchema) -> None:
        self.schema = schema
        self.globals: dict[str, XsdElement] = {e.local_name: e for e in schema.elements.values()}
        self.root = self.globals["OME"]

    def members(self, head: XsdElement) -> list[XsdElement]:
        """All elements that may substitute for ``head``, recursively, sorted by name."""
        found: dict[str, XsdElement] = {}
        pending = [head]
        while pending:
            current = pending.pop()
            for member in self.schema.maps.substitution_groups.get(current.name, ()):
                if member.local_name not in found:
                    found[member.local_name] = member
                    pending.append(member)
        return [found[name] for name in sorted(found)]

    @staticmethod
    def complex_type(anchor: SchemaAnchor) -> XsdComplexType | None:
        """The complex type of an element declaration, or the type itself."""
        xsd_type = anchor.type if isinstance(anchor, XsdElement) else anchor
        return xsd_type if isinstance(xsd_type, XsdComplexType) else None

    def attributes(self, anchor: SchemaAnchor) -> list[str]:
        """Attribute names of an element declaration or complex type."""
        xsd_type = self.complex_type(anchor)
        return [] if xsd_type is None else [str(name) for name in xsd_type.attributes if name]

    def children(self, anchor: SchemaAnchor) -> dict[str, XsdElement]:
        """Child element declarations (substitution members included) by local name."""
        xsd_type = self.complex_type(anchor)
        found: dict[str, XsdElement] = {}
        if xsd_type is None or not hasattr(xsd_type.content, "iter_elements"):
            return found
        for particle in xsd_type.content.iter_elements():
            if not isinstance(particle, XsdElement) or particle.local_name is None:
                continue
            found.setdefault(particle.local_name, particle)
            for member in self.members(particle):
                found.setdefault(member.local_name, member)
        return found

    @staticmethod
    def type_chain(anchor: SchemaAnchor) -> list[str]:
        """Names of the complex types an element extends, nearest first."""
        xsd_type = anchor.type if isinstance(anchor, XsdElement) else anchor
        chain: list[str] = []
        while isinstance(xsd_type, XsdComplexType) and xsd_type.local_name != "anyType":
            if xsd_type.local_name:
                chain.append(xsd_type.local_name)
            base = xsd_type.base_type
            if base is None or base is xsd_type:
                break
            xsd_type = base
        return chain


def match_name(label: str, candidates: Iterable[str], ape: bool = False) -> str | None:
    """Reconcile a cleaned sheet label with one of the XSD ``candidates``.

    Tries, in order: the ``...Group`` head name for APEs, key equality, the alias list
    and a unique close spelling match.
    """
    by_key: dict[str, str] = {}
    for candidate in sorted(candidates):
        by_key.setdefault(norm(candidate), candidate)
    key = norm(label)
    if ape and key + "group" in by_key:
        return by_key[key + "group"]
    if key in by_key:
        return by_key[key]
    alias = ALIASES.get(key)
    if alias is not None and norm(alias) in by_key:
        return by_key[norm(alias)]
    close = difflib.get_close_matches(key, list(by_key), n=2, cutoff=FUZZY_CUTOFF)
    if len(close) == 1 or (
        len(close) == 2
        and difflib.SequenceMatcher(None, key, close[0]).ratio()
        > difflib.SequenceMatcher(None, key, close[1]).ratio()
    ):
        return by_key[close[0]]
    return None


def match_global(node: Node, index: SchemaIndex) -> str | None:
    """Match an element row the XSD does not allow in its sheet context to a global element.

    Only exact (key-equal) names are accepted, plus ``<name>Group`` for an APE whose
    members the XSD places directly (e.g. ``IntensityCalibration-APE``).
    """
    by_key = {norm(name): name for name in index.globals}
    key = norm(node.clean)
    if node.is_ape and key + "group" in by_key:
        return by_key[key + "group"]
    return by_key.get(key)


def resolve(nodes: list[Node], index: SchemaIndex) -> None:
    """Give every node its schema name, kind and anchor (declaration) where possible."""
    for node in walk(nodes):
        xml_parent = node.xml_parent()
        if node.is_base:
            node.kind = "element"
            type_name = match_name(node.clean, index.schema.types)
            anchor = index.schema.types.get(type_name) if type_name else None
            node.anchor = anchor if isinstance(anchor, XsdComplexType) else None
            node.name = type_name or node.clean
            node.xsd = node.anchor is not None
            continue
        if xml_parent is None:
            parent_anchor: SchemaAnchor | None = index.root if node.col <= 3 else None
        else:
            parent_anchor = xml_parent.anchor
        guess_element = node.looks_like_element()
        if parent_anchor is not None:
            attributes = index.attributes(parent_anchor)
            elements = index.children(parent_anchor)
        else:
            attributes = []
            elements = dict(index.globals) if guess_element else {}
        element_name = match_name(node.clean, elements, ape=node.is_ape) if elements else None
        if element_name is None and guess_element:
            element_name = match_global(node, index)
            if element_name is not None:
                elements = {element_name: index.globals[element_name]}
        attribute_name = (
            None if node.is_ape or node.is_member else match_name(node.clean, attributes)
        )
        use_element = element_name is not None
        if element_name is not None and attribute_name is not None:
            exact_element = norm(element_name) == norm(node.clean)
            exact_attribute = norm(attribute_name) == norm(node.clean)
            use_element = exact_element if exact_element != exact_attribute else guess_element
        if use_element and element_name is not None:
            node.kind, node.name, node.xsd = "element", element_name, True
            node.anchor = elements[element_name]
        elif attribute_name is not None:
            node.kind, node.name, node.xsd = "attribute", attribute_name.strip(), True
        else:
            node.kind = "element" if guess_element else "attribute"
            node.name = node.clean


@dataclass
class Categories:
    """Element name -> extension, from the ``Element categories`` sheet."""

    by_key: dict[str, str]

    @classmethod
    def read(cls, rows: list[list[Any]]) -> Categories:
        """Read the categories sheet (Extension column 1, Element list column 6)."""
        by_key: dict[str, str] = {}
        for row in rows[1:]:
            if len(row) < 7:
                continue
            extension = CATEGORY_EXTENSIONS.get(cell_text(row[1]).lower())
            if extension is None:
                continue
            for name in cell_text(row[6]).split(","):
                key = norm(name)
                if key in ALIASES:
                    key = norm(ALIASES[key])
                if key:
                    by_key.setdefault(key, extension)
        return cls(by_key)

    def lookup(self, node: Node) -> str | None:
        """The extension listed for a node's schema name or label, if any."""
        for key in (norm(node.name), norm(node.clean)):
            if key in self.by_key:
                return self.by_key[key]
        return None


def assign_extensions(sheet: Sheet, categories: Categories) -> None:
    """Set ``extension`` on every element node of a sheet (attributes use their owner's)."""

    def member_extensions(node: Node) -> set[str]:
        found: set[str] = set()
        for child in node.children:
            if child.group_head is node:
                listed = categories.lookup(child)
                found |= {listed} if listed else member_extensions(child)
        return found

    for node in walk(sheet.roots):
        if sheet.extension is not None:
            node.extension = sheet.extension
            continue
        owner = node.parent
        inherited = owner.extension if owner is not None else "core"
        if node.kind != "element":
            node.extension = inherited
            continue
        listed = categories.lookup(node)
        if listed not in ("core", "basic"):
            listed = None
        if listed is None and node.is_ape:
            members = member_extensions(node)
            listed = "core" if "core" in members else ("basic" if members else None)
        node.extension = listed or inherited


class Emitter:
    """Expands inheritance and turns the parsed nodes into output records."""

    def __init__(self, sheets: list[Sheet], index: SchemaIndex) -> None:
        self.index = index
        self.bases: dict[str, Node] = {}
        self.manufacturer_base: Node | None = None
        for sheet in sheets:
            for node in walk(sheet.roots):
                if node.is_base and node.anchor is not None:
                    self.bases.setdefault(node.name, node)
                    if node.name == "ManufacturerSpec":
                        self.manufacturer_base = node
        for sheet in sheets:
            for node in walk(sheet.roots):
                if node.is_ape and node.anchor is not None and not node.note:
                    chain = index.type_chain(node.anchor)
                    if chain:
                        self.bases.setdefault(chain[0], node)
        self.records: dict[tuple[str, str], dict[str, Any]] = {}

    def base_nodes(self, node: Node) -> list[Node]:
        """Sheet blocks whose rows ``node`` inherits, nearest first."""
        found: list[Node] = []
        if node.anchor is not None:
            chain = self.index.type_chain(node.anchor)
            found += [self.bases[name] for name in chain if name in self.bases]
        if node.group_head is not None:
            found.append(node.group_head)
        if self.manufacturer_base is not None and (
            any(child.is_manufacturer_marker for child in node.children)
            or norm(node.complex_type).startswith("manufacturerspec")
            or norm(node.complex_type).startswith("manufactuerspec")
        ):
            found.append(self.manufacturer_base)
        unique: list[Node] = []
        for base in found:
            if base is not node and base not in unique:
                unique.append(base)
        return unique

    def own_rows(self, node: Node) -> list[Node]:
        """Rows that describe ``node`` itself: not group members, not markers."""
        return [
            child
            for child in node.children
            if child.group_head is not node and not child.is_manufacturer_marker
        ]

    def effective_rows(
        self, node: Node, seen: frozenset[int] = frozenset()
    ) -> list[tuple[Node, Node | None]]:
        """Own rows plus inherited ones as (row, base it came from) pairs."""
        rows: list[tuple[Node, Node | None]] = [(row, None) for row in self.own_rows(node)]
        present = {(row.kind, norm(row.name)) for row in self.own_rows(node)}
        for base in self.base_nodes(node):
            if id(base) in seen:
                continue
            for row, origin in self.effective_rows(base, seen | {id(node)}):
                key = (row.kind, norm(row.name))
                if key not in present:
                    present.add(key)
                    rows.append((row, origin or base))
        return rows

    def emit_tree(self, node: Node, xml_path: list[str]) -> None:
        """Emit ``node`` (an element reached through the sheet) and everything below it."""
        self.emit(node, xml_path, node.extension, None, 0, frozenset())

    def emit(
        self,
        node: Node,
        xml_path: list[str],
        extension: str,
        origin: Node | None,
        floor: int,
        open_nodes: frozenset[int],
    ) -> None:
        """Emit one row and, for elements, its effective rows and group members.

        ``origin`` is the base block an inherited subtree comes from, ``floor`` the
        tier of the element that inherited it and ``open_nodes`` guards against cycles.
        """
        if node.is_manufacturer_marker or id(node) in open_nodes:
            return
        self.add(node, xml_path, extension, origin, floor)
        shallow = origin is not None and origin.is_base and node.parent is origin
        if node.kind != "element" or shallow:
            return
        inner = [*xml_path, node.name]
        below = open_nodes | {id(node)}
        for row, row_origin in self.effective_rows(node):
            inherited = origin or row_origin
            row_extension = row.extension if inherited is None else extension
            row_floor = floor if row_origin is None else max(floor, node.tier or 0)
            self.emit(row, inner, row_extension, inherited, row_floor, below)
        for member in node.children:
            if member.group_head is node:
                member_extension = member.extension if origin is None else extension
                self.emit(member, xml_path, member_extension, origin, floor, below)

    def add(
        self, node: Node, xml_path: list[str], extension: str, origin: Node | None, floor: int
    ) -> None:
        """Store the record for one row unless its (extension, path) is already taken."""
        path = "/".join([*xml_path, ("@" if node.kind == "attribute" else "") + node.name])
        key = (extension, path)
        if key in self.records:
            return
        tier = max(node.tier or 1, floor)
        head = node.group_head
        group: str | None = None
        if head is not None:
            group = head.name
        elif node.choice_parent is not None:
            group = f"{node.choice_parent.name}:choice"
        self.records[key] = {
            "extension": extension,
            "path": path,
            "parent": xml_path[-1] if xml_path else None,
            "name": node.name,
            "kind": node.kind,
            "tier": tier,
            "requirement": requirement_of(node.cardinality),
            "mm": node.mm,
            "data_type": node.data_type,
            "allowed_values": (
                split_values(node.allowed) if "enum" in node.data_type.lower() else []
            ),
            "description": short_description(node.description),
            "cardinality": node.cardinality,
            "group": group,
            "group_mode": node.group_mode if group is not None else None,
            "inherited_from": origin.name if origin is not None else None,
            "reference": bool(node.note),
            "tier_inferred": node.tier_inferred and origin is None,
            "xsd": node.xsd,
            "label": node.label,
            "sheet": node.sheet,
            "row": node.row,
        }

    def finish(self) -> list[dict[str, Any]]:
        """Mark advconf/calib repeats of core/basic rows as references and sort."""
        home_paths = {path for (extension, path) in self.records if extension in ("core", "basic")}
        for (extension, path), record in self.records.items():
            if extension in ("advconf", "calib") and path in home_paths:
                record["reference"] = True
        order = {name: rank for rank, name in enumerate(EXTENSIONS)}
        keys = sorted(self.records, key=lambda key: (order[key[0]], key[1]))
        return [self.records[key] for key in keys]


SHEET_KINDS = (
    ("core+basic specs", "core_basic_specs", None),
    ("core+basic settings", "core_basic_settings", None),
    ("adv-confoc", "advconf", "advconf"),
    ("calib-perf", "calib", "calib"),
)


def build_rules(spec_dir: Path, xsd_path: Path) -> list[dict[str, Any]]:
    """Read the workbook in ``spec_dir`` and the XSD and return the sorted records."""
    workbook = CalamineWorkbook.from_path(str(spec_dir / SPEC_WORKBOOK))
    schema = xmlschema.XMLSchema(str(xsd_path))
    index = SchemaIndex(schema)
    categories: Categories | None = None
    sheets: list[Sheet] = []
    for sheet_name in workbook.sheet_names:
        rows = workbook.get_sheet_by_name(sheet_name).to_python()
        lowered = sheet_name.lower()
        if lowered.startswith("element categories"):
            categories = Categories.read(rows)
            continue
        for marker, key, extension in SHEET_KINDS:
            if marker in lowered:
                sheets.append(Sheet(key, extension, parse_sheet(key, rows)))
    if categories is None or len(sheets) != len(SHEET_KINDS):
        raise ValueError(f"{SPEC_WORKBOOK}: unexpected sheet layout {workbook.sheet_names}")
    for sheet in sheets:
        resolve(sheet.roots, index)
        assign_extensions(sheet, categories)
    emitter = Emitter(sheets, index)
    for sheet in sheets:
        for root in sheet.roots:
            xml_parent = root.xml_parent()
            emitter.emit_tree(root, ["OME"] if xml_parent is None and root.col <= 3 else [])
    return fold_type_children(emitter.finish(), index)


def fold_type_children(records: list[dict[str, Any]], index: SchemaIndex) -> list[dict[str, Any]]:
    """Put the rows of a child the XSD builds into its parent's type back on the parent.

    The sheet nests ``IlluminationWavelengthRange`` (with its ``IlluminationPower`` and
    wavelengths) under ``LEDModule``; the XSD has no such child there: ``LEDModule``
    *extends* ``IlluminationWavelengthRangeType``, so those are ``LEDModule``'s own
    attributes. Without this, the rules table would grade a child no valid record can hold
    and know nothing of attributes the XSD requires. A child is folded when the XSD gives
    its parent no child of that name but has the child's type in the parent's extension
    chain; the parent's own rows win over folded ones of the same name.
    """
    folds: dict[str, str] = {}
    for record in records:
        parent = index.globals.get(str(record["parent"]))
        child = index.globals.get(str(record["name"]))
        if record["kind"] != "element" or parent is None or child is None:
            continue
        child_type = getattr(child.type, "local_name", None)
        if (record["name"] not in index.children(parent) and child_type
                and child_type in index.type_chain(parent)):
            folds[str(record["path"])] = str(record["path"]).rsplit("/", 1)[0]
    if not folds:
        return records
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        path = str(record["path"])
        if path in folds:
            continue  # the child element itself: the XSD has no place for it
        for old, new in folds.items():
            if path.startswith(old + "/"):
                rest = path[len(old) + 1:]
                record = {**record, "path": f"{new}/{rest}"}
                if "/" not in rest.lstrip("@"):
                    record["parent"] = new.rsplit("/", 1)[-1]
                break
        out.setdefault((str(record["extension"]), str(record["path"])), record)
    order = {name: rank for rank, name in enumerate(EXTENSIONS)}
    return [out[key] for key in sorted(out, key=lambda key: (order[key[0]], key[1]))]


def render(records: list[dict[str, Any]]) -> str:
    """Serialise records as a JSON list with one record per line."""
    lines = [json.dumps(record, ensure_ascii=False, sort_keys=True) for record in records]
    return "[\n" + ",\n".join(lines) + "\n]\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--spec", type=Path, default=DEFAULT_SPEC_DIR, help="directory holding the xlsx"
    )
    parser.add_argument(
        "--xsd", type=Path, default=DEFAULT_XSD, help="NBO XSD used to reconcile names"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="rules table to write or check"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if --out differs from a regeneration"
    )
    args = parser.parse_args(argv)
    text = render(build_rules(args.spec, args.xsd))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date; rerun tools/extract_nbo_rules.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
