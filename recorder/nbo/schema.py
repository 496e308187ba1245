"""Tier-aware validation of NBO v2.01 XML documents against the shipped XSD.

The NBO XSD declares as ``required`` everything the specification marks MUST at any
tier, so a document written for tier 1 legitimately lacks tier-2/3 items that the
XSD insists on. :func:`validate_nbo` therefore validates with libxml2 (lxml's
``XMLSchema``, compiled once per process by :func:`~nbo_recorder.nbo.xsd_index.xsd_schema`)
and sorts every reported problem:

* a missing required attribute, or a missing required child element, whose rules
  table tier is above the target tier is *deferred*: reported, not an error;
* everything else (wrong types, enumeration values, unexpected or misplaced
  elements, dangling references, required items at or below the target tier, or
  required items the rules table does not know) is an *error*.

libxml2 reports only the first content-model problem of an element, and says where
(the child it did not expect, or the end) but not reliably what is missing (its list of
expected names is cut at ten). What is missing there is read from the element's content
model in :func:`~nbo_recorder.nbo.xsd_index.xsd_index`: the first required particle the
children before that point leave unfilled. A deferred missing child is replaced by an empty
placeholder in a working copy and the copy is validated again; problems inside placeholders
are ignored. This repeats until a pass inserts no new placeholder, which makes the remaining
content of the element visible to the validator.

A record of many Planes is validated in two parts (:class:`_PlanesAside`): the Planes
that matter to no identity constraint of the XSD are left out while the passes run, and are
then checked once against the XSD without its identity constraints, which libxml2 would
otherwise follow at each of them.

Problems are located by libxml2's node path (``/*/*[3]/*[4]``), resolved in the working
copy, and reported with the document's element path (``/OME/Instrument[1]/Objective[1]``);
a dangling reference, which libxml2 reports without a path, by its element's line.

:func:`attribute_compliance` lists, per element of a document, which MUST/SHOULD
attributes of the rules table apply at a tier and which of them are present.

:func:`xsd_attribute`, :func:`xsd_allows`, :func:`allowed_values`, :func:`value_problem` and
:func:`xsd_element` look up what the XSD declares for an element (the builders and checks of
the NBO record use them to place and check values); they live in
:mod:`nbo_recorder.nbo.xsd_index` and are re-exported here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from nbo_recorder.nbo import NBO_NAMESPACE
from nbo_recorder.nbo.libxml2_errors import ErrorLocator, missing_particle
from nbo_recorder.nbo.rules import (
    EXTENSIONS,
    Extension,
    Requirement,
    Rule,
    RuleTable,
    check_tier,
    load_rules,
)
from nbo_recorder.nbo.xsd_index import (
    SCHEMA_LOCK,
    AttributeDeclaration,
    ElementDeclaration,
    Particle,
    XsdIndex,
    allowed_values,
    element_declaration,
    value_problem,
    xsd_allows,
    xsd_attribute,
    xsd_element,
    xsd_index,
    xsd_schema,
    xsd_schema_without_keys,
)

__all__ = [
    "AttributeDeclaration",
    "AttributeStatus",
    "DeferredItem",
    "Document",
    "ElementCompliance",
    "ElementDeclaration",
    "ValidationIssue",
    "ValidationResult",
    "allowed_values",
    "attribute_compliance",
    "compliance_by_element",
    "element_declaration",
    "element_paths",
    "get_schema",
    "local_name",
    "validate_nbo",
    "value_problem",
    "xsd_allows",
    "xsd_attribute",
    "xsd_element",
]

Document = str | bytes | ET.Element | ET.ElementTree

# Placeholders are inserted one missing child per element and pass; no real document
# needs more passes than an element has required children.
MAX_PASSES = 64
#: a record with at least this many Planes that :class:`_PlanesAside` can set aside is
#: validated in two parts (below it, the second validation would cost more than it saves)
SET_ASIDE_MIN_PLANES = 256

_MISSING_ATTRIBUTE = re.compile(r"The attribute '([^']+)' is required but missing")
_ATTRIBUTE = re.compile(r"attribute '([^']+)'")
_NOT_EXPECTED = "This element is not expected"
_MISSING_CHILD = "Missing child element(s)"
_KEY_FIELD = "Not all fields of key identity-constraint"
_KEY_SEQUENCE = re.compile(r"No match found for key-sequence \['([^']*)'\]")
_NAMESPACE = f"{{{NBO_NAMESPACE}}}"
#: how XML is parsed for libxml2's validation and for grading: as ElementTree would
#: (comments and processing instructions left out), without fetching or expanding anything
XML_PARSER = etree.XMLParser(
    remove_comments=True, remove_pis=True, no_network=True, resolve_entities=False,
    huge_tree=True,
)


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """An error: ``path`` is the XPath-like element path, ``attribute`` if one is at fault."""

    path: str
    message: str
    attribute: str | None = None


@dataclass(frozen=True, slots=True)
class DeferredItem:
    """A required attribute or child element that is missing but above the target tier.

    ``path`` is the element that lacks it; ``attribute`` or ``child`` names the item
    (``child`` may list alternatives separated by ``|``); ``tier`` is its rules tier.
    """

    path: str
    element: str
    attribute: str | None
    child: str | None
    tier: int
    requirement: Requirement


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """Outcome of :func:`validate_nbo` for one target tier."""

    tier: int
    errors: tuple[ValidationIssue, ...]
    deferred: tuple[DeferredItem, ...]

    @property
    def ok(self) -> bool:
        """True when the document is valid at the target tier."""
        return not self.errors


@dataclass(frozen=True, slots=True)
class AttributeStatus:
    """Whether one attribute the rules table lists for an element is present."""

    name: str
    requirement: Requirement
    tier: int
    present: bool
    extension: Extension


@dataclass(frozen=True, slots=True)
class ElementCompliance:
    """The rules-table attributes of one document element at a tier."""

    path: str
    element: str
    attributes: tuple[AttributeStatus, ...]

    @property
    def missing(self) -> tuple[AttributeStatus, ...]:
        """Listed attributes the element lacks."""
        return tuple(status for status in self.attributes if not status.present)

    @property
    def missing_must(self) -> tuple[AttributeStatus, ...]:
        """MUST attributes the element lacks."""
        return tuple(s for s in self.attributes if not s.present and s.requirement == "MUST")


def get_schema() -> Any:
    """The NBO XSD compiled by libxml2 (an ``lxml.etree.XMLSchema``), once per process.

    Compiling takes about 50 ms; a recorder calls this while it is set up so that a broken
    installation fails before the first frame. Thread-safe.
    """
    return xsd_schema()


def local_name(tag: str) -> str:
    """Tag without its ``{namespace}`` prefix."""
    return tag.rsplit("}", 1)[-1]


def _as_element(document: Document) -> ET.Element:
    """Parse XML text or unwrap an ElementTree into its root element."""
    if isinstance(document, ET.ElementTree):
        root = document.getroot()
        if root is None:
            raise ValueError("empty ElementTree")
        return root
    if isinstance(document, (str, bytes)):
        return ET.fromstring(document)
    return document


def element_paths(root: ET.Element) -> dict[ET.Element, tuple[str, tuple[str, ...]]]:
    """XPath-like path (``/OME/Instrument[1]/Objective[2]``) and ancestry of each element."""
    found: dict[ET.Element, tuple[str, tuple[str, ...]]] = {}
    name = local_name(root.tag)
    found[root] = (f"/{name}", (name,))
    names: dict[str, str] = {}  # tag -> local name, for the 100,000 Planes of a long run
    pending = [root]
    while pending:
        parent = pending.pop()
        parent_path, parent_names = found[parent]
        counts: dict[str, int] = {}
        ancestry: dict[str, tuple[str, ...]] = {}  # children of one name share theirs
        for child in parent:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            child_name = names.get(tag)
            if child_name is None:
                child_name = names[tag] = local_name(tag)
            count = counts[child_name] = counts.get(child_name, 0) + 1
            if count == 1:
                ancestry[child_name] = (*parent_names, child_name)
            found[child] = (f"{parent_path}/{child_name}[{count}]", ancestry[child_name])
            if len(child):
                pending.append(child)
    return found


def _work_copy(document: Document) -> Any:
    """A working copy of ``document`` as an lxml tree, without comments and processing
    instructions (libxml2 validates an lxml tree; placeholders are inserted into the copy).

    An lxml element (e.g. the record inside a file's OME-XML, parsed by lxml) is copied by
    libxml2's own serialiser and parser, which takes a tenth of the time ElementTree takes
    to serialise the same element (seconds for a record of 100,000 Planes).
    """
    if etree.iselement(document):
        return etree.fromstring(etree.tostring(document, with_tail=False), XML_PARSER)
    if isinstance(document, str):
        try:
            return etree.fromstring(document, XML_PARSER)
        except ValueError:  # text that declares its encoding: parse its UTF-8 bytes
            return etree.fromstring(document.encode(), XML_PARSER)
    if isinstance(document, bytes):
        return etree.fromstring(document, XML_PARSER)
    return etree.fromstring(ET.tostring(_as_element(document)), XML_PARSER)


def _message(text: str) -> str:
    """A libxml2 message without the NBO namespace in its names."""
    return text.replace(_NAMESPACE, "").strip()


@dataclass
class _ValidationState:
    """Working state shared by the validation passes over one document copy."""

    tier: int
    rules: RuleTable
    index: XsdIndex
    paths: dict[Any, tuple[str, tuple[str, ...]]]
    placeholders: set[Any] = field(default_factory=set)
    deferred: dict[tuple[str, str], DeferredItem] = field(default_factory=dict)
    deferred_attributes: set[tuple[Any, str]] = field(default_factory=set)
    filled: set[tuple[Any, str]] = field(default_factory=set)
    content_errors: dict[tuple[Any, None], list[str]] = field(default_factory=dict)
    order: dict[Any, int] = field(default_factory=dict)
    removed_ids: set[str] = field(default_factory=set)

    def content_error(self, parent: Any, message: str) -> None:
        """Keep a content-model error of ``parent``: later passes no longer see it."""
        messages = self.content_errors.setdefault((parent, None), [])
        if message not in messages:
            messages.append(message)

    def defer_attribute(self, element: Any, attribute: str) -> bool:
        """Record a missing attribute as deferred when its tier allows; True if deferred.

        ``XUnit`` falls back to ``X``'s row (the workbook lists the value, not its unit).
        """
        name = local_name(element.tag)
        ancestors = self.paths[element][1]
        rule = self.rules.resolve(name, attribute.strip(), "attribute", ancestors)
        if rule is None and attribute.endswith("Unit"):
            rule = self.rules.resolve(name, attribute[: -len("Unit")], "attribute", ancestors)
        if rule is None or rule.tier <= self.tier:
            return False
        path = self.paths[element][0]
        self.deferred_attributes.add((element, attribute))
        self.deferred.setdefault(
            (path, "@" + attribute),
            DeferredItem(path, name, attribute, None, rule.tier, rule.requirement),
        )
        return True

    def missing_child(self, parent: Any, index: int) -> Particle | None:
        """The required particle missing in ``parent`` before child ``index`` (or at the end)."""
        declaration = self.index.declaration_at(self.paths[parent][1])
        if declaration is None:
            return None
        names = [local_name(child.tag) for child in parent.iterchildren(etree.Element)]
        return missing_particle(declaration.type.particles, names, index)

    def defer_child(self, parent: Any, particle: Particle) -> bool:
        """Record a missing child as deferred when its tier allows; True if deferred."""
        options = particle.alternatives
        if not options:
            return False
        name = local_name(parent.tag)
        ancestors = self.paths[parent][1]
        found = [self.rules.resolve(name, option, "element", ancestors) for option in options]
        rules = [rule for rule in found if rule is not None]
        if len(rules) != len(options) or min(rule.tier for rule in rules) <= self.tier:
            return False
        strictest = min(rules, key=lambda rule: (rule.tier, not rule.is_must))
        path = self.paths[parent][0]
        child = "|".join(options)
        self.deferred.setdefault(
            (path, child),
            DeferredItem(path, name, None, child, strictest.tier, strictest.requirement),
        )
        return True

    def fill(self, parent: Any, index: int, particle: Particle) -> bool:
        """Insert an empty placeholder for a missing child, once; True if one was inserted.

        libxml2 checks none of an element's children after its first content-model
        problem; the placeholder lets the next pass check the children that follow.
        """
        child = "|".join(particle.alternatives)
        if not particle.alternatives or (parent, child) in self.filled:
            return False
        self.filled.add((parent, child))
        tag = _NAMESPACE + self.index.concrete(particle.alternatives[0])
        placeholder = etree.Element(tag, nsmap={None: NBO_NAMESPACE})
        parent.insert(index, placeholder)
        self.placeholders.add(placeholder)
        return True

    def path_of(self, element: Any) -> str:
        """The document path of ``element`` (``/`` when it is not known)."""
        return self.paths[element][0] if element in self.paths else "/"


def validate_nbo(
    document: Document, tier: int = 1, *, rules: RuleTable | None = None,
    in_place: bool = False, paths: dict[Any, tuple[str, tuple[str, ...]]] | None = None,
) -> ValidationResult:
    """Validate an NBO document at ``tier`` (1-3).

    ``document`` is XML text (str or bytes), an element (ElementTree's or lxml's) or an
    ElementTree whose root is ``OME`` in the NBO namespace; it is not modified, unless it
    is an lxml element without comments or processing instructions and ``in_place`` is
    set: it is then validated as it is (placeholders for missing children are inserted into
    it and its elements' ``sourceline`` is renumbered), which spares a copy of a record of
    100,000 Planes; ``paths`` is then :func:`element_paths` of it, if the caller has it.
    Text that is not well-formed XML yields an error rather than an exception. See the
    module docstring for what is deferred.
    """
    check_tier(tier)
    try:
        work: Any = (document if in_place and etree.iselement(document)
                     else _work_copy(document))
    except (etree.XMLSyntaxError, ET.ParseError) as error:
        return ValidationResult(tier, (ValidationIssue("/", f"not well-formed XML: {error}"),), ())
    if work.tag != f"{_NAMESPACE}OME":
        message = f"root element must be {_NAMESPACE}OME, not {work.tag}"
        return ValidationResult(tier, (ValidationIssue("/", message),), ())
    if paths is None or work is not document:
        paths = element_paths(work)
    state = _ValidationState(tier, rules or load_rules(), xsd_index(), paths)
    state.order = {element: number for number, element in enumerate(work.iter(etree.Element))}
    locator = ErrorLocator(work)
    aside = _PlanesAside(work)
    problems: _Problems = {}
    with aside:
        for _ in range(MAX_PASSES):
            problems, inserted = _run_pass(state, locator)
            if not inserted:
                break
    if aside.planes:
        _plane_problems(state, locator, aside.planes, problems)
    ordered = sorted(problems.items(), key=lambda item: state.order.get(item[0][0], -1))
    errors = [ValidationIssue(state.path_of(element), "; ".join(dict.fromkeys(messages)),
                              attribute)
              for (element, attribute), messages in ordered]
    deferred = sorted(
        state.deferred.values(),
        key=lambda item: (item.path, item.attribute or "", item.child or ""),
    )
    return ValidationResult(tier, tuple(errors), tuple(deferred))


#: each element's (and attribute's) problems found by a validation pass, in libxml2's words
_Problems = dict[tuple[Any, str | None], list[str]]


class _PlanesAside:
    """The Planes of a long run, out of the working copy while the whole XSD validates it.

    libxml2 follows each of the NBO XSD's identity constraints at every element, which
    makes a record of 100,000 Planes take three times as long to validate as without them.
    No constraint selects a Plane (a test reads the XSD to check), and the only one that
    reaches below the Images selects ``AnnotationRef`` elements. A Plane with no children
    that follows another Plane therefore matters to no constraint, nor to its Pixels'
    content model (any number of Planes may follow the first). Such Planes are taken out
    while the passes validate the rest against the whole XSD, put back in place after,
    and then validated once as part of the whole record against the XSD without its
    identity constraints (:func:`_plane_problems`).
    """

    def __init__(self, root: Any) -> None:
        #: each kept element and the Planes that follow it, in order
        self.runs: list[tuple[Any, list[Any]]] = []
        plane = f"{_NAMESPACE}Plane"
        for pixels in root.iter(f"{_NAMESPACE}Pixels"):
            after_plane = False
            for child in pixels.iterchildren(etree.Element):
                if child.tag == plane and after_plane and len(child) == 0:
                    self.runs[-1][1].append(child)
                else:
                    self.runs.append((child, []))
                after_plane = child.tag == plane
        self.runs = [run for run in self.runs if run[1]]
        count = sum(len(planes) for _, planes in self.runs)
        if count < SET_ASIDE_MIN_PLANES:
            self.runs = []
        self.planes: set[Any] = {p for _, planes in self.runs for p in planes}

    def __enter__(self) -> None:
        for _, planes in self.runs:
            for element in planes:
                element.getparent().remove(element)

    def __exit__(self, *_: object) -> None:
        for kept, planes in self.runs:
            previous = kept
            for element in planes:
                previous.addnext(element)
                previous = element


def _plane_problems(state: _ValidationState, locator: ErrorLocator, planes: set[Any],
                    problems: _Problems) -> None:
    """Add to ``problems`` those of the ``planes`` set aside, from one validation of the
    whole working copy against the XSD without its identity constraints."""
    locator.number()
    schema = xsd_schema_without_keys()
    with SCHEMA_LOCK:
        schema.validate(etree.ElementTree(locator.root))
        entries = list(schema.error_log)
    for entry in entries:
        element = locator.find(entry)
        if element in planes:
            _attribute_problem(state, element, _message(entry.message), problems)


def _attribute_problem(state: _ValidationState, element: Any, message: str,
                       problems: _Problems) -> None:
    """Keep a problem of ``element`` itself (not of its content): a missing attribute is
    deferred when its tier allows."""
    missing = _MISSING_ATTRIBUTE.search(message)
    if missing:
        attribute = missing.group(1)
        if not state.defer_attribute(element, attribute):
            problems.setdefault((element, attribute), []).append(
                f"missing required attribute {attribute!r}")
        return
    _keep(problems, element, message)


def _keep(problems: _Problems, element: Any, message: str) -> None:
    """Keep ``message`` as a problem of ``element`` and of the attribute it names, if any."""
    named = _ATTRIBUTE.search(message)
    problems.setdefault((element, named.group(1) if named else None), []).append(message)


def _run_pass(state: _ValidationState, locator: ErrorLocator) -> tuple[_Problems, bool]:
    """One validation pass: returns the problems and whether the working copy changed."""
    locator.number()
    schema = xsd_schema()
    with SCHEMA_LOCK:
        # the root may be an element inside a larger document (validated in place):
        # libxml2 then validates it as if it were the document's root
        schema.validate(etree.ElementTree(locator.root))
        entries = list(schema.error_log)
    problems: _Problems = {}
    content: list[tuple[Any, int, str]] = []
    key_fields: list[tuple[Any, str]] = []
    for entry in entries:
        element = locator.find(entry)
        if element is not None and element in state.placeholders:
            continue
        message = _message(entry.message)
        if element is not None and _MISSING_ATTRIBUTE.search(message):
            _attribute_problem(state, element, message, problems)
        elif element is not None and _NOT_EXPECTED in message:
            parent = element.getparent()
            siblings = list(parent.iterchildren(etree.Element))
            content.append((parent, siblings.index(element), message))
        elif element is not None and _MISSING_CHILD in message:
            content.append((element, len(element), message))
        elif element is not None and _KEY_FIELD in message:
            key_fields.append((element, message))
        elif _refers_to_removed(state, message):
            continue
        else:
            _keep(problems, element, message)
    for element, message in key_fields:
        if not any((element, name) in state.deferred_attributes
                   for name in state.index.key_fields):
            problems.setdefault((element, None), []).append(message)
    changed = False
    for parent, index, message in content:
        changed = _content_problem(state, parent, index, message) or changed
    for (element, attribute), messages in state.content_errors.items():
        problems.setdefault((element, attribute), []).extend(messages)
    return problems, changed


def _content_problem(state: _ValidationState, parent: Any, index: int, message: str) -> bool:
    """Sort a content-model problem of ``parent`` at child ``index``; True if the working
    copy changed so that the next pass sees further.

    A missing child above the target tier is deferred; any other is an error. Either way a
    placeholder stands in for it. A child out of place with nothing missing before it is an
    error and is taken out of the working copy, so that its siblings are checked.
    """
    particle = state.missing_child(parent, index)
    if particle is not None:
        if not state.defer_child(parent, particle):
            expected = "|".join(particle.alternatives) or "any"
            state.content_error(parent, f"The content of element {local_name(parent.tag)!r} "
                                        f"is not complete. Tag {expected!r} expected.")
        return state.fill(parent, index, particle)
    state.content_error(parent, message)
    children = list(parent.iterchildren(etree.Element))
    if index < len(children):
        removed = children[index]
        state.removed_ids.update(e.get("ID") for e in removed.iter(etree.Element) if e.get("ID"))
        parent.remove(removed)
        return True
    return False


def _refers_to_removed(state: _ValidationState, message: str) -> bool:
    """Whether ``message`` is a dangling reference to an element taken out of the working
    copy (it is not dangling in the document)."""
    match = _KEY_SEQUENCE.search(message)
    return match is not None and match.group(1) in state.removed_ids


def _iter_elements(root: ET.Element) -> Iterator[ET.Element]:
    """Document-order iteration over real (non-comment) elements."""
    return (element for element in root.iter() if isinstance(element.tag, str))


def attribute_compliance(
    document: Document,
    tier: int,
    *,
    extensions: Iterable[Extension] = EXTENSIONS,
    rules: RuleTable | None = None,
    paths: dict[Any, tuple[str, tuple[str, ...]]] | None = None,
) -> list[ElementCompliance]:
    """Per element, the rules-table attributes applicable at ``tier`` and their presence.

    Elements the rules table does not describe (or that have no attribute at or below
    ``tier`` in ``extensions``) are left out. Used for compliance reports. ``paths`` is
    :func:`element_paths` of ``document`` if the caller has it already. Elements graded
    alike share one tuple of statuses.
    """
    return [entry for _, entry in compliance_by_element(
        _as_element(document), tier, extensions=extensions, rules=rules, paths=paths)]


def compliance_by_element(
    root: Any,
    tier: int,
    *,
    extensions: Iterable[Extension] = EXTENSIONS,
    rules: RuleTable | None = None,
    paths: dict[Any, tuple[str, tuple[str, ...]]] | None = None,
) -> Iterator[tuple[Any, ElementCompliance]]:
    """:func:`attribute_compliance` of the element ``root``, each entry with its element."""
    check_tier(tier)
    table = rules or load_rules()
    allowed = tuple(extensions)
    if paths is None:
        paths = element_paths(root)
    # an element's rules depend on its name and ancestry, its statuses on those and which
    # attributes it has: both are worked out once per such kind (a file of 100,000 Planes
    # has a handful of kinds), and elements of a kind share the statuses
    applicable: dict[tuple[str, ...], tuple[Rule, ...]] = {}  # by ancestry, root first
    graded: dict[tuple[object, ...], tuple[AttributeStatus, ...]] = {}
    for element in _iter_elements(root):
        path, ancestry = paths[element]
        name = ancestry[-1]
        rules_here = applicable.get(ancestry)
        if rules_here is None:
            rules_here = applicable[ancestry] = tuple(
                rule for rule in table.for_element(name, ancestry, kind="attribute",
                                                   extensions=allowed)
                if rule.tier <= tier)
        if not rules_here:
            continue
        # the attribute names, in the order the element has them: one C call, where
        # asking for each rule's attribute would take one per rule and element
        present = (ancestry, *element.keys())
        statuses = graded.get(present)
        if statuses is None:
            attrib = element.attrib
            statuses = graded[present] = tuple(
                AttributeStatus(rule.name, rule.requirement, rule.tier, rule.name in attrib,
                                rule.extension)
                for rule in rules_here)
        yield element, ElementCompliance(path, name, statuses)
