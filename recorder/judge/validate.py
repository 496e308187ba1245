"""Grade a recorded file against the NBO tiers: per attribute, and a verdict per tier/extension.

The NBO record embedded by the recorder is graded; for an OME-TIFF written by another tool
(no NBO record) the OME part is graded instead, since NBO keeps OME's element and attribute
names for what both describe. Each attribute the rules table applies at the chosen tier is
``present``, ``missing``, or ``unknown at acquisition`` (the recorder could not observe it
or nobody stated it; it is then missing for compliance too, with the reason). Items the
spreadsheet lists but the NBO XSD has no place for are not graded: no valid record could
hold them.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from nbo_recorder.collector import collector_paused
from nbo_recorder.judge.reader import map_annotations, nbo_record, read_xml
from nbo_recorder.nbo.rules import EXTENSIONS, TIERS, Extension, Rule, check_tier, load_rules
from nbo_recorder.nbo.schema import (
    attribute_compliance,
    element_paths,
    local_name,
    validate_nbo,
    xsd_allows,
)
from nbo_recorder.vocabulary import (
    NBO_NAMESPACE,
    NS_CHANNEL,
    OME_NAMESPACE,
    UNKNOWN_TEXT,
    unknown_reason,
)

#: NBO settings attributes and the suffix of the channel-settings annotation key that says
#: why the recorder could not observe them
_OBSERVED_KEYS: dict[str, tuple[str, ...]] = {
    "IlluminationPowerSettings": (".power_mw", ".intensity_percent"),
    "AnalogGain": (".gain",),
    "Offset": (".offset",),
    "Binning": (".binning",),
    "PixelReadOutRate": (".readout_rate_mhz",),
    "EffectiveBitDepth": (".bit_depth",),
    "OperatingTemperature": (".temperature_c",),
    "AmplificationGain": (".em_gain",),
}


@dataclass(frozen=True)
class AttributeRow:
    """One applicable attribute of one element of the file."""

    element: str
    path: str
    attribute: str
    tier: int
    requirement: str
    extension: str
    status: str
    reason: str = ""
    #: which component (its ID and name) or which Image / channel / plane the row is about
    subject: str = ""


@dataclass
class ValidationReport:
    """Everything ``nbo-recorder validate`` prints, in a JSON-friendly shape."""

    file: str
    tier: int
    extensions: tuple[str, ...]
    graded: str
    rows: list[AttributeRow] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)
    verdicts: dict[str, dict[str, bool]] = field(default_factory=dict)

    @property
    def failures(self) -> list[AttributeRow]:
        """MUST attributes at or below the chosen tier that the file lacks."""
        return [r for r in self.rows
                if r.requirement == "MUST" and r.tier <= self.tier and r.status != "present"]

    @property
    def passed(self) -> bool:
        return not self.failures and not self.schema_errors

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "tier": self.tier, "extensions": list(self.extensions),
                "graded": self.graded, "passed": self.passed,
                "verdicts": self.verdicts, "schema_errors": self.schema_errors,
                "failures": [asdict(r) for r in self.failures],
                "attributes": [asdict(r) for r in self.rows]}


def _unknown_reasons(root: ET.Element) -> dict[str, dict[str, str]]:
    """Per LightPath element id: the channel-settings entries recorded as unknown."""
    ns = {"n": root.tag.partition("}")[0].lstrip("{")}
    annotations = {ident: {k: why for k, v in values.items()
                           if (why := unknown_reason(v)) is not None}
                   for ident, values in map_annotations(root, NS_CHANNEL).items()}
    out: dict[str, dict[str, str]] = {}
    for path in root.iterfind(".//n:LightPath", ns):
        reasons: dict[str, str] = {}
        for ref in path.iterfind("n:AnnotationRef", ns):
            reasons.update(annotations.get(ref.get("ID", ""), {}))
        for child in path:
            out[str(id(child))] = reasons
    return out


def _status(element: ET.Element, attribute: str, present: bool,
            unknown: dict[str, dict[str, str]]) -> tuple[str, str]:
    if present:
        if element.get(attribute) == UNKNOWN_TEXT:
            return "unknown at acquisition", "not stated to nbo-recorder"
        return "present", ""
    component = element.get("ID", "").partition(":")[2]
    for key, reason in unknown.get(str(id(element)), {}).items():
        if f"[{component}]" in key and key.endswith(_OBSERVED_KEYS.get(attribute, ("\0",))):
            return "unknown at acquisition", reason
    return "missing", ""


def _as_nbo(ome_root: ET.Element) -> ET.Element:
    """Re-tag ``ome_root`` (a copy of the OME part) into the NBO namespace, to grade a file
    that has no NBO record."""
    for el in ome_root.iter():
        if el.tag.startswith("{" + OME_NAMESPACE + "}"):
            el.tag = "{" + NBO_NAMESPACE + "}" + local_name(el.tag)
    return ome_root


def validate_file(path: str | Path, tier: int = 1,
                  extensions: Sequence[Extension] = EXTENSIONS) -> ValidationReport:
    """Grade ``path``; raises :class:`~nbo_recorder.judge.reader.NotOmeTiffError` if no OME-TIFF."""
    _check_choice(tier, extensions)
    with collector_paused():
        recorded = read_xml(path)
        lxml_record = None if recorded.nbo is None else _lxml_record(recorded.xml)
        return grade(recorded.tree, recorded.nbo, str(path), tier, extensions,
                     lxml_record=lxml_record)


def _lxml_record(ome_xml: str) -> Any:
    """The NBO record of ``ome_xml`` parsed by lxml (None if the text declares a DTD, whose
    entities lxml would not expand as ElementTree does, or has no record).

    libxml2 validates the record as an lxml tree: parsing the text again with lxml takes a
    fraction of the time ElementTree takes to serialise its record for it.
    """
    if "<!DOCTYPE" in ome_xml:
        return None
    parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=True)
    return nbo_record(etree.fromstring(ome_xml.encode(), parser))


def grade_xml(ome_xml: str, source: str, tier: int = 1,
              extensions: Sequence[Extension] = EXTENSIONS) -> ValidationReport:
    """Grade OME-XML text as :func:`validate_file` grades a file holding it.

    The pre-flight check grades the record predicted for a sequence with this, so what it
    lists before the first frame is what ``validate`` reports of the file written after.
    """
    _check_choice(tier, extensions)
    tree = ET.fromstring(ome_xml)
    return grade(tree, nbo_record(tree), source, tier, extensions)


def _check_choice(tier: int, extensions: Sequence[Extension]) -> None:
    check_tier(tier)
    unknown_ext = sorted(set(extensions) - set(EXTENSIONS))
    if unknown_ext:
        raise ValueError(f"unknown extension(s) {unknown_ext}; choose from {list(EXTENSIONS)}")


def grade(tree: ET.Element, record: ET.Element | None, source: str, tier: int,
          extensions: Sequence[Extension], *, lxml_record: Any = None) -> ValidationReport:
    """Grade the NBO ``record`` of an OME document (``tree``), or its OME part if it has none.

    ``lxml_record`` is the same record parsed by lxml, if the caller has it: it is what the
    XSD validation reads then, instead of a copy of ``record`` (same result, less time).
    """
    if record is not None:
        root, graded = record, "the embedded NBO v2.01 record"
    else:
        root = _as_nbo(copy.deepcopy(tree))
        graded = "the OME part (the file has no NBO record)"
    report = ValidationReport(source, tier, tuple(extensions), graded)
    unknown = _unknown_reasons(root)
    paths = element_paths(root)
    elements = {p: el for el, (p, _) in paths.items()}
    # grade every extension, then keep the chosen ones: an XSD error about an attribute of
    # an extension left out is then recognised as such instead of reported as invalid
    subject = _subjects(root)
    rows = [replace(r, subject=subject[elements[r.path]])
            for r in _missing_children(paths, EXTENSIONS)]
    for entry in attribute_compliance(root, max(TIERS), extensions=EXTENSIONS):
        element = elements[entry.path]
        about = subject[element]
        for status in entry.attributes:
            if not xsd_allows(entry.element, status.name):  # answered once per question
                continue  # the spreadsheet asks for it, but no valid NBO record can hold it
            if status.present and element.get(status.name) != UNKNOWN_TEXT:
                state, reason = "present", ""  # _status's answer, without the call
            else:
                state, reason = _status(element, status.name, status.present, unknown)
            rows.append(AttributeRow(entry.element, entry.path, status.name, status.tier,
                                     status.requirement, status.extension, state, reason,
                                     about))
    chosen = set(extensions)
    report.rows = [r for r in rows if r.extension in chosen]
    if record is not None:
        result = validate_nbo(record if lxml_record is None else lxml_record, tier)
        # a missing-attribute error the attribute table already reports for that element
        in_table = {(r.path, r.attribute) for r in rows if r.status != "present"}
        report.schema_errors = [f"{e.path}: {e.message}" for e in result.errors
                                if e.attribute is None or (e.path, e.attribute) not in in_table]
    # one pass over the rows: the (tier, extension) pairs with a MUST row not present
    failing = {(r.tier, r.extension) for r in report.rows
               if r.requirement == "MUST" and r.status != "present"}
    for t in TIERS:
        report.verdicts[f"tier {t}"] = {
            ext: not any(at <= t and where == ext for at, where in failing)
            for ext in extensions}
    return report


def _missing_children(paths: dict[ET.Element, tuple[str, tuple[str, ...]]],
                      extensions: Sequence[Extension]) -> list[AttributeRow]:
    """MUST child elements (or substitution groups) absent under the elements present
    (``paths``: each element's path and ancestry, as :func:`element_paths` gives them).

    A group such as the Instrument's DetectorGroup is satisfied by any member, members of
    nested groups included (CCD -> CameraGroup -> DetectorGroup).
    """
    rows: list[AttributeRow] = []
    # what is missing depends on the element's name, ancestry and children's names only:
    # worked out once per such combination (100,000 Planes share a handful)
    known: dict[tuple[str, tuple[str, ...], frozenset[str]], list[_Missing]] = {}
    for element, (path, ancestors) in paths.items():
        present = frozenset(local_name(child.tag) for child in element
                            if isinstance(child.tag, str))
        name = local_name(element.tag)
        key = (name, ancestors, present)
        missing = known.get(key)
        if missing is None:
            missing = known[key] = _missing_of(name, ancestors, present, extensions)
        rows.extend(AttributeRow(name, path, *m) for m in missing)
    return rows


#: a missing child's row but for its element and path: attribute, tier, requirement,
#: extension, status, reason
_Missing = tuple[str, int, str, str, str, str]


def _missing_of(name: str, ancestors: tuple[str, ...], present: frozenset[str],
                extensions: Sequence[Extension]) -> list[_Missing]:
    """The MUST children an element ``name`` at ``ancestors`` with children ``present``
    lacks (see :func:`_missing_children`)."""
    rules = load_rules().for_element(name, ancestors, kind="element", extensions=EXTENSIONS)
    found: list[_Missing] = []
    reported: set[str] = set()
    for rule in rules:
        if not rule.is_must or rule.extension not in extensions:
            continue
        if rule.group_mode == "one" and rule.group and rule.group.endswith(":choice"):
            # "choose only one" alternatives (TiffData | BinData | MetadataOnly | ...)
            if rule.group in reported:
                continue
            reported.add(rule.group)
            members = {r.name for r in rules if r.group == rule.group}
        else:
            members = _group_members(rules, rule.name)
        if not any(xsd_allows(name, m, child=True) for m in members):
            continue  # the spreadsheet asks for it, but no valid NBO record can hold it
        if not members & present:
            found.append((f"<{rule.name}>", rule.tier, rule.requirement, rule.extension,
                          "missing", "no " + " / ".join(sorted(members))
                          if len(members) > 1 else ""))
    return found


def _group_members(rules: Sequence[Rule], name: str) -> set[str]:
    """``name`` itself, and every element that may stand for it (substitution groups)."""
    found = {name}
    pending = [name]
    while pending:
        group = pending.pop()
        for rule in rules:
            if rule.group == group and rule.name not in found:
                found.add(rule.name)
                pending.append(rule.name)
    return found


def _subjects(root: ET.Element) -> dict[ET.Element, str]:
    """What each element of ``root`` is about, as a reader of the record names it.

    A component (an element outside the Images with an ID) by its ID and name; inside an
    Image, the Image, channel or plane by its 0-based index (``Image 0, channel 1 'GFP'``,
    ``Image 0, plane 5``), followed by the component an element there refers to (a settings
    element's ID names its component). An element with neither is about what its parent is
    about.
    """
    subject = {root: local_name(root.tag)}
    context = dict(subject)  # what a child with no name of its own is about
    pending: list[tuple[ET.Element, bool]] = [(root, False)]
    while pending:
        parent, in_image = pending.pop()
        counts: dict[str, int] = {}
        for child in parent:
            if not isinstance(child.tag, str):
                continue
            name = local_name(child.tag)
            index = counts[name] = counts.get(name, -1) + 1
            where, ident, label = context[parent], child.get("ID"), _label(child)
            named = f" '{label}'" if label and unknown_reason(label) is None else ""
            if name == "Image" and not in_image:
                where = f"Image {index}"
                subject[child] = where + named
            elif in_image and name in ("Channel", "Plane"):
                where = f"{where}, {name.lower()} {index}" + (named if name == "Channel" else "")
                subject[child] = where
            elif in_image and ident and not ident.startswith(f"{name}:"):
                subject[child] = f"{where}, {ident}"  # settings: the component they refer to
            elif not in_image and ident:
                where = subject[child] = ident + named
            else:
                subject[child] = where
            context[child] = where
            pending.append((child, in_image or name == "Image"))
    return subject


def _label(element: ET.Element) -> str:
    """An element's human name: its Name, else its Manufacturer and Model ("" if none)."""
    if element.get("Name"):
        return str(element.get("Name"))
    return " ".join(v for v in (element.get("Manufacturer"), element.get("Model")) if v)


#: a subject inside an Image: ``Image 0, channel 1 'GFP', Detector:cam`` or ``Image 0, plane 5``
_IN_IMAGE = re.compile(r"^(?P<image>Image \d+), (?P<kind>channel|plane) (?P<index>\d+)"
                       r"(?P<name> '.*')?(?P<rest>(?:, [^']*)?)$")


def _about(subjects: Iterable[str]) -> str:
    """The subjects of rows that collapse into one: channels and planes of an Image listed
    once (``Image 0, planes 0-17``, ``Image 0, channels 0 'DAPI', 1 'FITC'``)."""
    parts: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    for subject in subjects:
        match = _IN_IMAGE.match(subject)
        if match is None:
            parts.setdefault((subject, "", ""), [])
        else:
            key = (match["image"], match["kind"], match["rest"])
            parts.setdefault(key, []).append((int(match["index"]), match["name"] or ""))
    out = []
    for (where, kind, rest), items in parts.items():
        if not kind:
            out.append(where)
            continue
        many = "s" if len(items) > 1 else ""
        listed = (_ranges([i for i, _ in items]) if kind == "plane"
                  else ", ".join(f"{i}{name}" for i, name in items))
        out.append(f"{where}, {kind}{many} {listed}{rest}")
    return "; ".join(out)


def _ranges(numbers: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2, 5``."""
    spans: list[list[int]] = []
    for n in sorted(set(numbers)):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def format_report(report: ValidationReport, *, all_rows: bool = False,
                  failures_only: bool = False) -> str:
    """A plain-text table: failures first, then (with ``all_rows``) every attribute.

    Each line names the element, the attribute and what it is about (component ID and name,
    or Image / channel / plane range); lines that differ only in what they are about collapse
    into one with a count. ``failures_only`` lists just the rows that fail the chosen tier
    (the pre-flight check prints these).
    """
    lines = [f"{report.file}: graded {report.graded}",
             f"NBO tier {report.tier}, extensions {', '.join(report.extensions)}: "
             + ("PASS" if report.passed else "FAIL")]
    for t, per_ext in report.verdicts.items():
        lines.append(f"  {t}: " + ", ".join(f"{e} {'pass' if ok else 'fail'}"
                                           for e, ok in per_ext.items()))
    shown = (report.failures if failures_only else report.rows if all_rows
             else [r for r in report.rows if r.tier <= report.tier])
    if shown:
        lines.append("")
        lines.append(f"{'tier':>4} {'req':<6} {'ext':<8} {'status':<22} {'rows':>4}  "
                     "element attribute (which)")
        groups: dict[tuple[str, str, int, str, str, str, str], list[AttributeRow]] = {}
        for r in sorted(shown, key=lambda r: (r.status == "present", r.tier, r.path)):
            key = (r.element, r.attribute, r.tier, r.requirement, r.extension, r.status,
                   r.reason)
            groups.setdefault(key, []).append(r)
        for (element, attribute, tier, req, ext, status, reason), group in groups.items():
            count = f"×{len(group)}" if len(group) > 1 else ""
            why = f": {reason}" if reason else ""
            lines.append(f"{tier:>4} {req:<6} {ext:<8} {status:<22} {count:>4}  {element} "
                         f"{attribute} ({_about(r.subject for r in group)}){why}")
    if report.schema_errors:
        lines.append("")
        lines.append("invalid against the NBO XSD:")
        lines.extend(f"  {e}" for e in report.schema_errors)
    return "\n".join(lines)
