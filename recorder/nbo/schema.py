"""Tier-aware validation of NBO v2.01 XML documents against the shipped XSD.

The NBO XSD declares as ``required`` everything the specification marks MUST at any
tier, so a document written for tier 1 legitimately lacks tier-2/3 items that the
XSD insists on. :func:`validate_nbo` therefore validates with xmlschema and sorts
every reported problem:

* a missing required attribute, or a missing required child element, whose rules
  table tier is above the target tier is *deferred*: reported, not an error;
* everything else (wrong types, enumeration values, unexpected or misplaced
  elements, dangling references, required items at or below the target tier, or
  required items the rules table does not know) is an *error*.

xmlschema reports only the first content-model problem of an element, so a deferred
missing child is replaced by an empty placeholder in a working copy and the copy is
validated again; problems inside placeholders are ignored. This repeats until a pass
inserts no new placeholder, which makes the remaining content of the element visible
to the validator.

:func:`attribute_compliance` lists, per element of a document, which MUST/SHOULD
attributes of the rules table apply at a tier and which of them are present.

:func:`xsd_attribute`, :func:`xsd_allows`, :func:`allowed_values` and :func:`value_problem`
look up what the XSD declares for an element (the builders and checks of the NBO record use
them to place and check values).
"""

from __future__ import annotations

import copy
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import xmlschema
from xmlschema.validators import (
    XMLSchemaChildrenValidationError,
    XMLSchemaValidationError,
    XsdAttributeGroup,
    XsdElement,
    XsdGroup,
)

from nbo_recorder.nbo import NBO_NAMESPACE, XSD_PATH
from nbo_recorder.nbo.rules import (
    EXTENSIONS,
    Extension,
    Requirement,
    Rule,
    RuleTable,
    check_tier,
    load_rules,
)
from nbo_recorder.vocabulary import attribute_text

Document = str | bytes | ET.Element | ET.ElementTree

# Placeholders are inserted one missing child per element and pass; no real document
# needs more passes than an element has required children.
MAX_PASSES = 64

_MISSING_ATTRIBUTE = re.compile(r"missing required attribute '([^']+)'")
_MISSING_KEY_FIELD = re.compile(r"missing key field '@([^']+)'")
_ATTRIBUTE_VALUE = re.compile(r"^attribute (\S+?)=")


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


_SCHEMA_LOCK = threading.Lock()


@cache
def _load_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD_PATH))


def get_schema() -> xmlschema.XMLSchema:
    """The NBO XSD, loaded once per process (loading takes about a second).

    Thread-safe, so a recorder can start loading it in the background when it is created.
    """
    with _SCHEMA_LOCK:
        return _load_schema()


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
    pending = [root]
    while pending:
        parent = pending.pop()
        parent_path, parent_names = found[parent]
        counts: dict[str, int] = {}
        for child in parent:
            if not isinstance(child.tag, str):
                continue
            child_name = local_name(child.tag)
            counts[child_name] = counts.get(child_name, 0) + 1
            found[child] = (
                f"{parent_path}/{child_name}[{counts[child_name]}]",
                (*parent_names, child_name),
            )
            pending.append(child)
    return found


def _alternatives(particle: object) -> list[XsdElement]:
    """Element declarations that can satisfy a missing content-model particle."""
    if isinstance(particle, XsdElement):
        return [particle]
    if isinstance(particle, XsdGroup):
        return [item for item in particle.iter_elements() if isinstance(item, XsdElement)]
    return []


def _concrete(schema: xmlschema.XMLSchema, declaration: XsdElement) -> XsdElement:
    """A non-abstract element usable in place of ``declaration`` (itself if concrete)."""
    pending = [declaration]
    while pending:
        current = pending.pop(0)
        if not current.abstract:
            return current
        members = schema.maps.substitution_groups.get(current.name, ())
        pending.extend(sorted(members, key=lambda member: member.local_name))
    return declaration


@dataclass
class _ValidationState:
    """Working state shared by the validation passes over one document copy."""

    tier: int
    rules: RuleTable
    schema: xmlschema.XMLSchema
    paths: dict[ET.Element, tuple[str, tuple[str, ...]]]
    placeholders: set[ET.Element] = field(default_factory=set)
    deferred: dict[tuple[str, str], DeferredItem] = field(default_factory=dict)
    deferred_attributes: set[tuple[ET.Element, str]] = field(default_factory=set)
    filled: set[tuple[ET.Element, str]] = field(default_factory=set)

    def rule_for_attribute(self, element: ET.Element, attribute: str) -> Rule | None:
        """Rules row of a missing attribute; ``XUnit`` falls back to ``X``'s row."""
        name = local_name(element.tag)
        ancestors = self.paths[element][1]
        rule = self.rules.resolve(name, attribute.strip(), "attribute", ancestors)
        if rule is None and attribute.endswith("Unit"):
            rule = self.rules.resolve(name, attribute[: -len("Unit")], "attribute", ancestors)
        return rule

    def defer_attribute(self, element: ET.Element, attribute: str) -> bool:
        """Record a missing attribute as deferred when its tier allows; True if deferred."""
        rule = self.rule_for_attribute(element, attribute)
        if rule is None or rule.tier <= self.tier:
            return False
        path = self.paths[element][0]
        self.deferred_attributes.add((element, attribute))
        self.deferred.setdefault(
            (path, "@" + attribute),
            DeferredItem(
                path, local_name(element.tag), attribute, None, rule.tier, rule.requirement
            ),
        )
        return True

    def defer_child(self, error: XMLSchemaChildrenValidationError) -> bool:
        """Insert a placeholder for a deferrable missing child; True if one was inserted."""
        element = error.elem
        particle = error.particle
        occurs = error.occurs
        if element is None or particle is None or occurs is None:
            return False
        if occurs >= particle.min_occurs:
            return False
        options = _alternatives(particle)
        if not options:
            return False
        name = local_name(element.tag)
        ancestors = self.paths[element][1]
        found = [self.rules.resolve(name, o.local_name, "element", ancestors) for o in options]
        rules = [rule for rule in found if rule is not None]
        if len(rules) != len(options) or min(rule.tier for rule in rules) <= self.tier:
            return False
        strictest = min(rules, key=lambda rule: (rule.tier, not rule.is_must))
        path = self.paths[element][0]
        child = "|".join(option.local_name for option in options)
        if (element, child) in self.filled:
            return False
        self.filled.add((element, child))
        self.deferred.setdefault(
            (path, child),
            DeferredItem(path, name, None, child, strictest.tier, strictest.requirement),
        )
        placeholder = ET.Element(_concrete(self.schema, options[0]).name)
        element.insert(error.index if error.index is not None else len(element), placeholder)
        self.placeholders.add(placeholder)
        return True

    def is_deferred_attribute(self, error: XMLSchemaValidationError) -> bool:
        """True when ``error`` is a missing required attribute above the target tier."""
        element = error.elem
        match = _MISSING_ATTRIBUTE.search(error.reason or "")
        if element is None or match is None:
            return False
        if not isinstance(error.validator, XsdAttributeGroup):
            return False
        attribute = match.group(1)
        declaration = error.validator.get(attribute)
        if declaration is None or declaration.use != "required" or attribute in element.attrib:
            return False
        return self.defer_attribute(element, attribute)

    def is_deferred_key_field(self, error: XMLSchemaValidationError) -> bool:
        """True for an identity-constraint complaint about an attribute already deferred."""
        match = _MISSING_KEY_FIELD.search(error.reason or "")
        return (
            match is not None
            and error.elem is not None
            and (error.elem, match.group(1)) in self.deferred_attributes
        )

    def issue(self, error: XMLSchemaValidationError) -> ValidationIssue:
        """Convert an xmlschema error into a :class:`ValidationIssue`."""
        element = error.elem
        path = self.paths[element][0] if element is not None and element in self.paths else "/"
        reason = (error.reason or str(error.message)).replace(f"{{{NBO_NAMESPACE}}}", "")
        match = _MISSING_ATTRIBUTE.search(reason) or _ATTRIBUTE_VALUE.search(reason)
        return ValidationIssue(path, reason, match.group(1) if match else None)


def validate_nbo(
    document: Document, tier: int = 1, *, rules: RuleTable | None = None
) -> ValidationResult:
    """Validate an NBO document at ``tier`` (1-3).

    ``document`` is XML text (str or bytes), an element or an ElementTree whose root is
    ``OME`` in the NBO namespace; it is not modified. Text that is not well-formed XML
    yields an error rather than an exception. See the module docstring for what is
    deferred.
    """
    check_tier(tier)
    try:
        root = _as_element(document)
    except ET.ParseError as error:
        return ValidationResult(tier, (ValidationIssue("/", f"not well-formed XML: {error}"),), ())
    if root.tag != f"{{{NBO_NAMESPACE}}}OME":
        message = f"root element must be {{{NBO_NAMESPACE}}}OME, not {root.tag}"
        return ValidationResult(tier, (ValidationIssue("/", message),), ())
    work = copy.deepcopy(root)
    state = _ValidationState(tier, rules or load_rules(), get_schema(), element_paths(work))
    errors: list[ValidationIssue] = []
    for _ in range(MAX_PASSES):
        errors, inserted = _run_pass(state, work)
        if not inserted:
            break
    unique = list(dict.fromkeys(errors))
    deferred = sorted(
        state.deferred.values(),
        key=lambda item: (item.path, item.attribute or "", item.child or ""),
    )
    return ValidationResult(tier, tuple(unique), tuple(deferred))


def _run_pass(state: _ValidationState, work: ET.Element) -> tuple[list[ValidationIssue], bool]:
    """One validation pass: returns the errors and whether placeholders were inserted."""
    errors: list[ValidationIssue] = []
    missing_children: list[XMLSchemaChildrenValidationError] = []
    for error in state.schema.iter_errors(work):
        if error.elem is not None and error.elem in state.placeholders:
            continue
        if isinstance(error, XMLSchemaChildrenValidationError):
            missing_children.append(error)
        elif not (state.is_deferred_attribute(error) or state.is_deferred_key_field(error)):
            errors.append(state.issue(error))
    inserted = False
    for error in missing_children:
        if state.defer_child(error):
            inserted = True
        else:
            errors.append(state.issue(error))
    return errors, inserted


def _iter_elements(root: ET.Element) -> Iterator[ET.Element]:
    """Document-order iteration over real (non-comment) elements."""
    return (element for element in root.iter() if isinstance(element.tag, str))


def attribute_compliance(
    document: Document,
    tier: int,
    *,
    extensions: Iterable[Extension] = EXTENSIONS,
    rules: RuleTable | None = None,
) -> list[ElementCompliance]:
    """Per element, the rules-table attributes applicable at ``tier`` and their presence.

    Elements the rules table does not describe (or that have no attribute at or below
    ``tier`` in ``extensions``) are left out. Used for compliance reports.
    """
    check_tier(tier)
    table = rules or load_rules()
    allowed = tuple(extensions)
    root = _as_element(document)
    paths = element_paths(root)
    report: list[ElementCompliance] = []
    for element in _iter_elements(root):
        path, ancestors = paths[element]
        name = local_name(element.tag)
        statuses = tuple(
            AttributeStatus(
                rule.name, rule.requirement, rule.tier, rule.name in element.attrib, rule.extension
            )
            for rule in table.for_element(name, ancestors, kind="attribute", extensions=allowed)
            if rule.tier <= tier
        )
        if statuses:
            report.append(ElementCompliance(path, name, statuses))
    return report


# --- look-ups in the XSD -------------------------------------------------------------------


@cache
def xsd_element(name: str) -> Any:
    """The global NBO XSD declaration of element ``name`` (None if there is none)."""
    return get_schema().maps.elements.get(f"{{{NBO_NAMESPACE}}}{name}")


def xsd_attribute(element: str, attribute: str) -> Any:
    """The XSD declaration of ``element``'s ``attribute`` (None if it has no such attribute)."""
    declaration = xsd_element(element)
    if declaration is None:
        return None
    return declaration.type.attributes.get(attribute)


def xsd_allows(element: str, item: str, *, child: bool = False) -> bool:
    """Whether the NBO XSD lets ``element`` carry ``item`` (an attribute or a child element).

    The spreadsheet lists a few items the XSD has no place for (e.g. Pixels
    SequentialAcquisition); a valid record cannot hold them. Elements the XSD does not
    declare globally are given the benefit of the doubt.
    """
    declaration = xsd_element(element)
    if declaration is None or not declaration.type.is_complex():
        return declaration is None
    if not child:
        return item in declaration.type.attributes
    content = declaration.type.content
    if not hasattr(content, "iter_elements"):
        return False
    return any(e.local_name == item for e in content.iter_elements())


def allowed_values(element: str, attribute: str) -> tuple[str, ...]:
    """The XSD enumeration of an attribute (empty when it is not enumerated)."""
    declaration = xsd_attribute(element, attribute)
    enumeration = getattr(getattr(declaration, "type", None), "enumeration", None)
    return tuple(str(v) for v in enumeration or ())


def value_problem(element: str, attribute: str, value: str | bool | int | float) -> str | None:
    """Why ``value`` is not allowed for ``element@attribute`` (None when it is).

    The message names the allowed values of an enumerated attribute, or the XSD type.
    """
    declaration = xsd_attribute(element, attribute)
    text = attribute_text(value)
    if declaration is None or text is None:
        return None
    if declaration.type.is_valid(text):
        return None
    choices = allowed_values(element, attribute)
    if choices:
        listed = ", ".join(repr(c) for c in choices)
        return f"{value!r} is not an NBO v2.01 {element}@{attribute}; allowed: {listed}"
    kind = getattr(declaration.type.primitive_type, "local_name", None) or "value"
    return f"{value!r} is not a valid {kind} for NBO {element}@{attribute}"
