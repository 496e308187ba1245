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
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from lxml import etree  # type: ignore[import-untyped]

from nbo_recorder.collector import collector_paused
from nbo_recorder.judge.plane_runs import check_runs, cut_runs, feed, first_planes
from nbo_recorder.judge.reader import map_annotations, nbo_record, read_ome_xml, read_xml
from nbo_recorder.nbo.rules import EXTENSIONS, TIERS, Extension, Rule, check_tier, load_rules
from nbo_recorder.nbo.schema import (
    XML_PARSER,
    ValidationIssue,
    compliance_by_element,
    element_paths,
    local_name,
    validate_nbo,
    xsd_allows,
)
from nbo_recorder.nbo.xsd_index import start_compiling_schema
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


#: one attribute's grade, for every element it is the same for: element name, attribute,
#: tier, requirement, extension, status, reason (an :class:`AttributeRow` but for its
#: element's path and subject)
Grade = tuple[str, str, int, str, str, str, str]

#: one element's grades: its path, its subject and the grades (a tuple shared by every
#: element graded alike: the 100,000 Planes of a long run share a few)
GradedElement = tuple[str, str, tuple[Grade, ...]]


class GradedRun(NamedTuple):
    """Planes ``first`` to ``first + size - 1`` (0-based) of one Pixels, graded alike:
    it stands for their graded elements, in order (see
    :mod:`~nbo_recorder.judge.plane_runs`)."""

    #: their path but for the Plane's number and ``]``: ``/OME/Image[1]/Pixels[1]/Plane[``
    path: str
    #: their subject, but for the plane's number when ``numbered``: ``Image 0, plane ``
    subject: str
    numbered: bool
    first: int
    size: int
    grades: tuple[Grade, ...]

    def members(self) -> Iterator[GradedElement]:
        """The elements it stands for."""
        for k in range(self.first, self.first + self.size):
            yield (f"{self.path}{k + 1}]", f"{self.subject}{k}" if self.numbered
                   else self.subject, self.grades)

    def least_path(self) -> str:
        """The first of its members' paths in text order (``Plane[100]`` before
        ``Plane[11]``): among numbers of one length, the smallest (text order is then
        number order), so one per length."""
        low, high = self.first + 1, self.first + self.size
        return self.path + min(f"{max(low, 10 ** (digits - 1))}]"
                               for digits in range(len(str(low)), len(str(high)) + 1))

    def member_at(self, path: str) -> bool:
        """Whether ``path`` is one of its members'."""
        number = path[len(self.path):-1]
        return (path.startswith(self.path) and path.endswith("]") and number.isdigit()
                and self.first < int(number) <= self.first + self.size)


#: what :attr:`ValidationReport.elements` lists: elements, and runs of Planes graded alike
Graded = GradedElement | GradedRun


def _each(elements: Iterable[Graded]) -> Iterator[GradedElement]:
    """``elements`` with each run of Planes in it as the elements it stands for."""
    for item in elements:
        if isinstance(item, GradedRun):
            yield from item.members()
        else:
            yield item


@dataclass
class ValidationReport:
    """Everything ``nbo-recorder validate`` prints, in a JSON-friendly shape.

    The grades are kept per element (``elements``), each element's pointing at a tuple its
    kind shares; :attr:`rows` and :attr:`failures` are built from them when asked for, so
    grading a file of 100,000 Planes does not build a million rows nobody reads.
    """

    file: str
    tier: int
    extensions: tuple[str, ...]
    graded: str
    elements: list[Graded] = field(default_factory=list, repr=False)
    schema_errors: list[str] = field(default_factory=list)
    verdicts: dict[str, dict[str, bool]] = field(default_factory=dict)

    @property
    def rows(self) -> list[AttributeRow]:
        """Every applicable attribute of every element, in the order they were graded."""
        return [_row(path, subject, g) for path, subject, grades in _each(self.elements)
                for g in grades]

    @property
    def failures(self) -> list[AttributeRow]:
        """MUST attributes at or below the chosen tier that the file lacks."""
        return [_row(path, subject, g) for path, subject, grades in _each(self._failing())
                for g in grades]

    @property
    def passed(self) -> bool:
        return not self.schema_errors and not any(
            _fails(g, self.tier) for g in _distinct_grades(self.elements))

    def as_json(self) -> dict[str, Any]:
        return self._document(
            [_row_dict(path, subject, g) for path, subject, grades in _each(self._failing())
             for g in grades],
            [_row_dict(path, subject, g) for path, subject, grades in _each(self.elements)
             for g in grades])

    def _document(self, failures: Any, attributes: Any) -> dict[str, Any]:
        return {"file": self.file, "tier": self.tier, "extensions": list(self.extensions),
                "graded": self.graded, "passed": self.passed,
                "verdicts": self.verdicts, "schema_errors": self.schema_errors,
                "failures": failures, "attributes": attributes}

    def _failing(self) -> Iterator[Graded]:
        """The elements with a failing grade, with just those grades."""
        return _only(self.elements, lambda g: _fails(g, self.tier))

    def json_text(self) -> str:
        """``json.dumps(self.as_json(), indent=2)``, the same text, made faster.

        With ``indent``, the standard library encodes in Python: 25 s for the 1.4 million
        rows of a 100,000-plane file. Here a row's text is put together from its grade's,
        encoded once per grade, and its element's path and subject, encoded once per element
        (with the function ``json`` itself encodes strings with).
        """
        out = ["{"]
        for key, value in self._document(_each(self._failing()),
                                         _each(self.elements)).items():
            out.append(f"\n  {json.dumps(key)}: ")
            if key in ("failures", "attributes"):
                _rows_json(value, out)
            else:
                out.append(json.dumps(value, indent=2).replace("\n", "\n  "))
            out.append(",")
        out[-1] = "\n}"
        return "".join(out)  # one join: the text of a long run is 400 MB


#: stand-ins for a row's path and subject in its grade's text (JSON escapes a NUL in a
#: value, so the encoded text of any row cannot hold them)
_PATH, _SUBJECT = "\0path", "\0subject"


def _row_pieces(grade: Grade) -> tuple[str, str, str]:
    """A row's text, as the rows of ``json.dumps(report, indent=2)`` are laid out, before its
    path, between its path and its subject, and after its subject."""
    fields = [f"{json.dumps(key)}: {value if value in (_PATH, _SUBJECT) else json.dumps(value)}"
              for key, value in _row_dict(_PATH, _SUBJECT, grade).items()]
    text = "{\n      " + ",\n      ".join(fields) + "\n    }"
    before, rest = text.split(_PATH)
    between, after = rest.split(_SUBJECT)
    return before, between, after


def _rows_json(elements: Iterator[GradedElement], out: list[str]) -> None:
    """Append to ``out`` the rows of ``elements`` as a JSON list, laid out as in
    ``json.dumps(indent=2)`` one level down (see :meth:`ValidationReport.json_text`)."""
    encode = json.encoder.encode_basestring_ascii  # json.dumps's own, with ensure_ascii
    pieces: dict[Grade, tuple[str, str, str]] = {}
    start = len(out)
    for path, subject, grades in elements:
        path_text, subject_text = encode(path), encode(subject)
        for grade in grades:
            known = pieces.get(grade)
            if known is None:
                known = pieces[grade] = _row_pieces(grade)
            out += (",\n    ", known[0], path_text, known[1], subject_text, known[2])
    if len(out) == start:
        out.append("[]")
    else:
        out[start] = "[\n    "
        out.append("\n  ]")


def _row_dict(path: str, subject: str, grade: Grade) -> dict[str, Any]:
    """``dataclasses.asdict`` of the :class:`AttributeRow` for ``grade``, without building
    the row (asdict copies each value: 27 s for 1.4 million rows)."""
    element, attribute, tier, requirement, extension, status, reason = grade
    return {"element": element, "path": path, "attribute": attribute, "tier": tier,
            "requirement": requirement, "extension": extension, "status": status,
            "reason": reason, "subject": subject}


def _row(path: str, subject: str, grade: Grade) -> AttributeRow:
    element, attribute, tier, requirement, extension, status, reason = grade
    return AttributeRow(element, path, attribute, tier, requirement, extension, status,
                        reason, subject)


def _only(elements: Iterable[Graded], keep: Callable[[Grade], bool]) -> Iterator[Graded]:
    """``elements`` with just the grades ``keep`` accepts, each shared tuple filtered once;
    an element (or run) left with none is skipped."""
    done: dict[int, tuple[Grade, ...]] = {}  # by id: the tuples stay alive in ``elements``
    for item in elements:
        grades = item[-1]
        mine = done.get(id(grades))
        if mine is None:
            mine = done[id(grades)] = tuple(g for g in grades if keep(g))
        if mine:
            yield (item._replace(grades=mine) if isinstance(item, GradedRun)
                   else (item[0], item[1], mine))


def _fails(grade: Grade, tier: int) -> bool:
    """Whether ``grade`` is a MUST at or below ``tier`` that is not present."""
    return grade[3] == "MUST" and grade[2] <= tier and grade[5] != "present"


def _distinct_grades(elements: Iterable[Graded]) -> Iterator[Grade]:
    """Each grade of ``elements`` once per shared tuple."""
    seen: set[int] = set()
    for item in elements:
        grades = item[-1]
        if id(grades) not in seen:
            seen.add(id(grades))
            yield from grades


def _unknown_reasons(root: Any) -> dict[Any, dict[str, str]]:
    """Per element of a LightPath: the channel-settings entries recorded as unknown.

    Keyed by the element itself (lxml hands out the same element object for as long as one
    is referenced, which the caller's element paths do).
    """
    ns = {"n": root.tag.partition("}")[0].lstrip("{")}
    annotations = {ident: {k: why for k, v in values.items()
                           if (why := unknown_reason(v)) is not None}
                   for ident, values in map_annotations(root, NS_CHANNEL).items()}
    out: dict[Any, dict[str, str]] = {}
    for path in root.iterfind(".//n:LightPath", ns):
        reasons: dict[str, str] = {}
        for ref in path.iterfind("n:AnnotationRef", ns):
            reasons.update(annotations.get(ref.get("ID", ""), {}))
        if reasons:
            for child in path:
                out[child] = reasons
    return out


def _status(element: Any, attribute: str, present: bool,
            unknown: dict[Any, dict[str, str]]) -> tuple[str, str]:
    if present:
        if element.get(attribute) == UNKNOWN_TEXT:
            return "unknown at acquisition", "not stated to nbo-recorder"
        return "present", ""
    component = element.get("ID", "").partition(":")[2]
    for key, reason in unknown.get(element, {}).items():
        if f"[{component}]" in key and key.endswith(_OBSERVED_KEYS.get(attribute, ("\0",))):
            return "unknown at acquisition", reason
    return "missing", ""


def _as_nbo(ome_root: Any) -> Any:
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
    # compiled while the file is read and its record cut out and graded
    start_compiling_schema()
    with collector_paused():
        xml = read_ome_xml(path)
        alone = _record_alone(xml)
        if alone is not None:
            record, runs, passed = alone
            report = grade(record, record, str(path), tier, extensions, in_place=True,
                           runs=runs)
            if passed():
                return report
            whole = _record_parsed(xml)  # None if a Plane cut out is not well-formed
            if whole is not None:
                return grade(whole, whole, str(path), tier, extensions, in_place=True)
        tree = _parse(Path(path), xml)
        return grade(tree, nbo_record(tree), str(path), tier, extensions, in_place=True)


#: how the recorder begins an NBO record, how an OME 2016-06 document begins (after an
#: optional XML declaration) and how the record's XMLAnnotation ends
_RECORD_START = f'<OME xmlns="{NBO_NAMESPACE}"'
_DOCUMENT_START = re.compile(rf'(<\?xml[^<>]*\?>\s*)?<OME xmlns="{re.escape(OME_NAMESPACE)}"[\s/>]')
_ANNOTATION_START = re.compile(
    rf'<XMLAnnotation\s[^<>]*\bNamespace="{re.escape(NBO_NAMESPACE)}"[^<>]*>\s*<Value>\s*\Z')
_ANNOTATION_END = re.compile(r"</OME>\s*</Value>\s*</XMLAnnotation>")


class _NoTree:
    """A parser target that keeps nothing: libxml2 then only checks that text is
    well-formed, at a third of what building its tree costs."""

    def close(self) -> None:
        return None


def _record_bounds(xml: str) -> tuple[int, int] | None:
    """Where the NBO record is in ``xml``, when the text is laid out as the recorder
    writes it (see :func:`_record_alone`); None otherwise."""
    start = xml.find(_RECORD_START)
    # "!" and "?" are rare in OME-XML, "<" is not: searching for "<!" itself takes a
    # file of 100,000 Planes ten times as long
    if (start < 0 or xml.find(_RECORD_START, start + 1) >= 0
            or ("!" in xml and "<!" in xml) or (xml.find("?", 1) >= 0 and xml.find("<?", 1) >= 0)
            or not _DOCUMENT_START.match(xml)
            or xml.count('xmlns="', 0, start) != 1
            or xml.count("<XMLAnnotation") != 1
            or xml.count(f'Namespace="{NBO_NAMESPACE}"') != 1
            or not _ANNOTATION_START.search(xml, max(0, start - 1000), start)):
        return None
    end = xml.find("</OME>", start)
    if (end < 0 or xml.find("<OME", start + 1, end) >= 0
            or not _ANNOTATION_END.match(xml, end)):
        return None
    return start, end + len("</OME>")


def _record_parsed(xml: str) -> Any:
    """The NBO record of ``xml`` (where :func:`_record_bounds` finds it) parsed whole; None
    if it is not well-formed."""
    bounds = _record_bounds(xml)
    if bounds is None:
        return None
    try:
        return etree.fromstring(xml[bounds[0]:bounds[1]].encode(), XML_PARSER)
    except etree.XMLSyntaxError:
        return None


def _record_alone(xml: str) -> tuple[Any, dict[Any, int], Callable[[], bool]] | None:
    """The NBO record of ``xml`` parsed on its own by lxml, when the text is laid out as
    the recorder writes it; None otherwise (the caller then parses the whole text).

    The record is half of the OME-XML of a long run, and grading reads nothing else:
    building the OME part's tree took a file of 100,000 Planes longer than grading it.
    The rest of the text is still checked to be well-formed (by libxml2, building no tree).
    The record is the text from the one start tag in the recorder's form to the first
    ``</OME>`` after it, which is its own end tag when the text is well-formed, has no
    comment, CDATA section, DTD or processing instruction (whose content could hold tags)
    and no other ``<OME`` in between; it is the record :func:`nbo_record` finds when the
    document is OME 2016-06, declares no other default namespace and has one XMLAnnotation,
    of the NBO namespace, holding it as its Value.

    Each Pixels' long run of Planes is cut to its first Plane, which then stands for as
    many Planes after it as the returned mapping says, and the checks that they are
    graded alike start (:mod:`~nbo_recorder.judge.plane_runs`). The returned function
    waits for them: if it says they failed, the caller grades the whole record instead.
    """
    # where the record is if the text is laid out so, checked once the Planes' checks run
    start = xml.find(_RECORD_START)
    end = xml.find("</OME>", start) + len("</OME>")
    if start < 0 or end < len("</OME>"):
        return None
    cut = cut_runs(xml, start, end)
    record: Any = None
    firsts: list[Any] | None = None
    if cut.runs:
        try:
            record = etree.fromstring(cut.text.encode(), XML_PARSER)
            firsts = first_planes(record, cut)
        except etree.XMLSyntaxError:
            pass
    passed = check_runs(xml, cut.runs, firsts) if firsts is not None else lambda: True
    if _record_bounds(xml) != (start, end):
        passed()  # no thread outlives the call
        return None
    try:
        # the rest, with an empty element for the record (well-formed on its own, so the
        # whole is well-formed if and only if this is)
        _scan(xml, ((0, start), (_RECORD_START + "/>", None), (end, len(xml))))
        if firsts is not None:
            return record, dict(zip(firsts, (run.count for run in cut.runs), strict=True)), passed
        return etree.fromstring(xml[start:end].encode(), XML_PARSER), {}, lambda: True
    except etree.XMLSyntaxError:
        passed()  # no thread outlives the call
        return None


def _scan(xml: str, parts: Iterable[tuple[int | str, int | None]]) -> None:
    """Check that the text of ``parts`` (as :func:`~nbo_recorder.judge.plane_runs.feed`
    takes them) is well-formed XML: libxml2 builds no tree, and is fed a megabyte at a time
    (copying the 30 MB around a long run's record to one text, and encoding it, took a
    tenth of a second of page faults). XMLSyntaxError if it is not."""
    feed(etree.XMLParser(target=_NoTree(), remove_comments=True, remove_pis=True,
                         no_network=True, resolve_entities=False, huge_tree=True), xml, parts)


def _parse(path: Path, xml: str) -> Any:
    """``xml`` (``path``'s OME-XML) parsed by lxml, or by ElementTree when lxml cannot
    stand in.

    One lxml tree serves grading and, in place, libxml2's XSD validation: a file of
    100,000 Planes is then parsed once, not three times. Text that declares a DTD (whose
    entities ElementTree expands and this parser does not), is not well-formed or is not
    OME 2016-06 is read by :func:`~nbo_recorder.judge.reader.read_xml`, which parses it as
    every other reader does and says what is wrong with it.
    """
    if "<!DOCTYPE" not in xml:
        try:
            tree = etree.fromstring(xml.encode(), XML_PARSER)
        except etree.XMLSyntaxError:
            tree = None
        if tree is not None and tree.tag == f"{{{OME_NAMESPACE}}}OME":
            return tree
    return read_xml(path).tree


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


def grade(tree: Any, record: Any, source: str, tier: int,
          extensions: Sequence[Extension], *, in_place: bool = False,
          runs: dict[Any, int] | None = None) -> ValidationReport:
    """Grade the NBO ``record`` of an OME document (``tree``), or its OME part if it has none.

    ``tree`` and ``record`` are ElementTree's or lxml's elements. With ``in_place`` (the
    caller is done with ``record``), the XSD validation works on an lxml ``record`` itself
    instead of a copy: it inserts placeholders for missing children there. ``runs`` maps
    a Plane of ``record`` to how many Planes, cut out after it, it stands for (graded as
    it is, checked valid: see :mod:`~nbo_recorder.judge.plane_runs`).
    """
    if record is not None:
        root, graded = record, "the embedded NBO v2.01 record"
    else:
        root = _as_nbo(copy.deepcopy(tree))
        graded = "the OME part (the file has no NBO record)"
    report = ValidationReport(source, tier, tuple(extensions), graded)
    # grade every extension, then keep the chosen ones: an XSD error about an attribute of
    # an extension left out is then recognised as such instead of reported as invalid
    paths = element_paths(root)
    subject = _subjects(root)
    everything = _with_runs(_missing_children(paths, subject, EXTENSIONS)
                            + _attribute_grades(root, paths, subject),
                            runs or {}, paths, subject)
    chosen = set(extensions)
    report.elements = (everything if chosen >= set(EXTENSIONS)
                       else list(_only(everything, lambda g: g[4] in chosen)))
    if record is not None:
        result = validate_nbo(record, tier, in_place=in_place, paths=paths)
        report.schema_errors = _new_schema_errors(result.errors, everything)
    # the (tier, extension) pairs with a MUST row not present
    failing = {(g[2], g[4]) for g in _distinct_grades(report.elements)
               if _fails(g, max(TIERS))}
    for t in TIERS:
        report.verdicts[f"tier {t}"] = {
            ext: not any(at <= t and where == ext for at, where in failing)
            for ext in extensions}
    return report


def _with_runs(elements: list[GradedElement], runs: dict[Any, int],
               paths: dict[Any, tuple[str, tuple[str, ...]]],
               subject: dict[Any, str]) -> list[Graded]:
    """``elements``, with the run each Plane of ``runs`` stands for after each entry of it."""
    if not runs:
        return list(elements)
    after: dict[str, GradedRun] = {}  # by the standing Plane's path: its run, but grades
    for plane, count in runs.items():
        path, about = paths[plane][0], subject[plane]
        numbered = about.endswith(", plane 0")
        after[path] = GradedRun(path.removesuffix("1]"), about[:-1] if numbered else about,
                                numbered, 1, count, ())
    out: list[Graded] = []
    for item in elements:
        out.append(item)
        run = after.get(item[0])
        if run is not None:
            out.append(run._replace(grades=item[2]))
    return out


def _new_schema_errors(errors: Iterable[ValidationIssue],
                       everything: list[Graded]) -> list[str]:
    """The XSD errors to report: all but a missing attribute the attribute table already
    reports (not present) for that element."""
    errors = list(errors)
    wanted = {e.path for e in errors if e.attribute is not None}
    by_path: dict[str, list[tuple[Grade, ...]]] = {}
    if wanted:
        for item in everything:
            if isinstance(item, GradedRun):
                for path in wanted:
                    if item.member_at(path):
                        by_path.setdefault(path, []).append(item.grades)
            elif item[0] in wanted:
                by_path.setdefault(item[0], []).append(item[2])
    out = []
    for e in errors:
        if e.attribute is not None:
            if any(g[1] == e.attribute and g[5] != "present"
                   for grades in by_path.get(e.path, ()) for g in grades):
                continue
        out.append(f"{e.path}: {e.message}")
    return out


def _attribute_grades(root: Any, paths: dict[Any, tuple[str, tuple[str, ...]]],
                      subject: dict[Any, str]) -> list[GradedElement]:
    """Each element's grades for the attributes the rules table applies to it.

    Elements whose statuses :func:`~nbo_recorder.nbo.schema.attribute_compliance` shares,
    and that hold no value recorded as unknown (nor a LightPath entry saying why one is
    missing), share one grades tuple, worked out once. Elements with no grade are left out.
    """
    unknown = _unknown_reasons(root)
    stated_unknown = _with_unknown_values(root)
    plain: dict[int, tuple[Grade, ...]] = {}  # per shared statuses tuple
    out: list[GradedElement] = []
    for element, entry in compliance_by_element(root, max(TIERS), extensions=EXTENSIONS,
                                                paths=paths):
        statuses = entry.attributes
        grades: tuple[Grade, ...]
        if element in unknown or element in stated_unknown:
            grades = tuple((entry.element, s.name, s.tier, s.requirement, s.extension,
                            *_status(element, s.name, s.present, unknown))
                           for s in statuses if xsd_allows(entry.element, s.name))
        else:
            found = plain.get(id(statuses))
            if found is None:
                found = plain[id(statuses)] = tuple(
                    (entry.element, s.name, s.tier, s.requirement, s.extension,
                     "present" if s.present else "missing", "")
                    for s in statuses
                    # the spreadsheet asks for it, but no valid NBO record can hold it
                    if xsd_allows(entry.element, s.name))
            grades = found
        if grades:
            out.append((entry.path, subject[element], grades))
    return out


def _with_unknown_values(root: Any) -> set[Any]:
    """The elements of ``root`` with an attribute recorded as unknown (one XPath query of
    libxml2 for an lxml tree: reading every attribute of 100,000 Planes in Python takes
    four times as long)."""
    if hasattr(root, "xpath"):
        return set(root.xpath("descendant-or-self::*[@* = $unknown]", unknown=UNKNOWN_TEXT))
    return {element for element in root.iter() if UNKNOWN_TEXT in element.attrib.values()}


def _missing_children(paths: dict[Any, tuple[str, tuple[str, ...]]], subject: dict[Any, str],
                      extensions: Sequence[Extension]) -> list[GradedElement]:
    """MUST child elements (or substitution groups) absent under the elements present
    (``paths``: each element's path and ancestry, as :func:`element_paths` gives them).

    A group such as the Instrument's DetectorGroup is satisfied by any member, members of
    nested groups included (CCD -> CameraGroup -> DetectorGroup).
    """
    out: list[GradedElement] = []
    # what is missing depends on the element's name, ancestry and children's names only:
    # worked out once per such combination (100,000 Planes share a handful)
    known: dict[tuple[str, tuple[str, ...], frozenset[str]], tuple[Grade, ...]] = {}
    childless: frozenset[str] = frozenset()
    for element, (path, ancestors) in paths.items():
        present = childless if len(element) == 0 else frozenset(
            local_name(tag) for tag in {child.tag for child in element}
            if isinstance(tag, str))
        name = ancestors[-1]
        key = (name, ancestors, present)
        missing = known.get(key)
        if missing is None:
            missing = known[key] = tuple(
                (name, *m) for m in _missing_of(name, ancestors, present, extensions))
        if missing:
            out.append((path, subject[element], missing))
    return out


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
    names: dict[str, str] = {}  # tag -> local name, for the 100,000 Planes of a long run
    pending: list[tuple[ET.Element, bool]] = [(root, False)]
    while pending:
        parent, in_image = pending.pop()
        counts: dict[str, int] = {}
        for child in parent:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            name = names.get(tag)
            if name is None:
                name = names[tag] = local_name(tag)
            index = counts[name] = counts.get(name, -1) + 1
            where = context[parent]
            if name == "Plane" and in_image:  # most of a long run's elements: kept lean
                where = subject[child] = f"{where}, plane {index}"
            elif name == "Image" and not in_image:
                where = f"Image {index}"
                subject[child] = where + _named(child)
            elif in_image and name == "Channel":
                where = subject[child] = f"{where}, channel {index}" + _named(child)
            elif in_image and (ident := child.get("ID")) and not ident.startswith(f"{name}:"):
                subject[child] = f"{where}, {ident}"  # settings: the component they refer to
            elif not in_image and (ident := child.get("ID")):
                where = subject[child] = ident + _named(child)
            else:
                subject[child] = where
            if len(child):
                context[child] = where
                pending.append((child, in_image or name == "Image"))
    return subject


def _named(element: Any) -> str:
    """`` 'label'`` for an element with a human name that is not recorded as unknown."""
    label = _label(element)
    return f" '{label}'" if label and unknown_reason(label) is None else ""


def _label(element: Any) -> str:
    """An element's human name: its Name, else its Manufacturer and Model ("" if none)."""
    if element.get("Name"):
        return str(element.get("Name"))
    return " ".join(v for v in (element.get("Manufacturer"), element.get("Model")) if v)


#: a subject inside an Image: ``Image 0, channel 1 'GFP', Detector:cam`` or ``Image 0, plane 5``
_IN_IMAGE = re.compile(r"^(?P<image>Image \d+), (?P<kind>channel|plane) (?P<index>\d+)"
                       r"(?P<name> '.*')?(?P<rest>(?:, [^']*)?)$")


def _about(subjects: Iterable[str | GradedRun]) -> str:
    """The subjects of rows that collapse into one: channels and planes of an Image listed
    once (``Image 0, planes 0-17``, ``Image 0, channels 0 'DAPI', 1 'FITC'``)."""
    # per Image, kind and rest: the (first, last) numbers and name of each subject
    parts: dict[tuple[str, str, str], list[tuple[int, int, str]]] = {}
    for subject in subjects:
        last = 0
        if isinstance(subject, GradedRun):
            last = subject.size - 1
            subject = next(subject.members())[1]
        match = _IN_IMAGE.match(subject)
        if match is None:
            parts.setdefault((subject, "", ""), [])
        else:
            key = (match["image"], match["kind"], match["rest"])
            first = int(match["index"])
            parts.setdefault(key, []).append((first, first + last, match["name"] or ""))
    out = []
    for (where, kind, rest), items in parts.items():
        if not kind:
            out.append(where)
            continue
        many = "s" if len(items) > 1 or items[0][0] != items[0][1] else ""
        listed = (_ranges([(a, b) for a, b, _ in items]) if kind == "plane"
                  else ", ".join(f"{i}{name}" for i, _, name in items))
        out.append(f"{where}, {kind}{many} {listed}{rest}")
    return "; ".join(out)


def _ranges(spans: list[tuple[int, int]]) -> str:
    """``[(0, 0), (1, 2), (5, 5)]`` -> ``0-2, 5``."""
    merged: list[list[int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in merged)


class _Rows(NamedTuple):
    """The report rows of one grade: the (path, element k, grade j) the first of them sorts
    by, and their subjects in row order (by path, then place; a run of Planes where its
    first member in that order is)."""

    first: tuple[str, int, int]
    subjects: list[str | GradedRun]

    def rows(self) -> int:
        """How many rows: a run of Planes counts as its Planes."""
        return sum(s.size if isinstance(s, GradedRun) else 1 for s in self.subjects)


def _rows_by_grade(elements: Iterable[Graded]) -> dict[Grade, _Rows]:
    """The rows of each grade of ``elements``, ordered by path and place in the report.

    Elements that share one tuple of grades (a long run's Planes) are gathered, and put in
    row order, once for all the grades only they have: 100,000 Planes with 7 attributes
    each are sorted once, not as 700,000 rows.
    """
    members: dict[int, tuple[tuple[Grade, ...], list[tuple[str, int, str | GradedRun]]]] = {}
    for k, item in enumerate(elements):
        grades = item[-1]
        entry = members.get(id(grades))
        if entry is None:
            entry = members[id(grades)] = (grades, [])
        entry[1].append((item.least_path(), k, item) if isinstance(item, GradedRun)
                        else (item[0], k, item[1]))
    sources: dict[Grade, list[tuple[int, list[tuple[str, int, str | GradedRun]]]]] = {}
    for grades, elements_with in members.values():
        for j, g in enumerate(grades):
            sources.setdefault(g, []).append((j, elements_with))
    # by id of a member list: its first (path, place) and its subjects in row order
    ordered: dict[int, tuple[tuple[str, int], list[str | GradedRun]]] = {}
    out: dict[Grade, _Rows] = {}
    for g, found in sources.items():
        if len(found) == 1:  # rows of one grade j each: in the order of (path, place)
            j, rows = found[0]
            known = ordered.get(id(rows))
            if known is None:
                in_order = sorted(rows)  # (path, place) is unique: subjects never compared
                known = ordered[id(rows)] = (in_order[0][:2],
                                             [subject for *_, subject in in_order])
            (path, k), subjects = known
            out[g] = _Rows((path, k, j), subjects)
            continue
        merged = sorted((path, k, j, subject) for j, rows in found for path, k, subject in rows)
        out[g] = _Rows(merged[0][:3], [subject for *_, subject in merged])
    return out


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
    if failures_only:
        def wanted(g: Grade) -> bool:
            return _fails(g, report.tier)
    else:
        def wanted(g: Grade) -> bool:
            return all_rows or g[2] <= report.tier
    groups = _rows_by_grade(_only(report.elements, wanted))
    if groups:
        lines.append("")
        lines.append(f"{'tier':>4} {'req':<6} {'ext':<8} {'status':<22} {'rows':>4}  "
                     "element attribute (which)")
        # missing before present, then by tier, then by the path and place of a grade's
        # first row (two grades of one element keep the order they were graded in)
        order = sorted(groups, key=lambda g: (g[5] == "present", g[2], groups[g].first))
        about: dict[int, str] = {}  # by id of a list of subjects: 100,000 Planes share one
        for grade in order:
            element, attribute, tier, req, ext, status, reason = grade
            rows = groups[grade]
            many = rows.rows()
            count = f"×{many}" if many > 1 else ""
            why = f": {reason}" if reason else ""
            which = about.get(id(rows.subjects))
            if which is None:
                which = about[id(rows.subjects)] = _about(rows.subjects)
            lines.append(f"{tier:>4} {req:<6} {ext:<8} {status:<22} {count:>4}  {element} "
                         f"{attribute} ({which}){why}")
    if report.schema_errors:
        lines.append("")
        lines.append("invalid against the NBO XSD:")
        lines.extend(f"  {e}" for e in report.schema_errors)
    return "\n".join(lines)
