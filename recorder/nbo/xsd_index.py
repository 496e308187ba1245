"""What the NBO XSD declares, read once with lxml and kept in memory.

The builders and checks of the NBO record ask, for every file they render, which attributes
an element has, their defaults and enumerations, which children an element may hold, and
whether a value fits an attribute's type. Loading the XSD into ``xmlschema`` to answer that
took about two seconds and 300 MB; here the XSD is read as plain XML with lxml (about 50 ms)
into small frozen dataclasses: :func:`xsd_index` builds them once per process.

:func:`xsd_schema` is the same XSD compiled by libxml2 (``lxml.etree.XMLSchema``), also
built once per process; :mod:`nbo_recorder.nbo.schema` validates documents with it, and
:func:`value_problem` uses it to check one attribute value against the XSD's own type
definition (enumerations, patterns, ranges), so no type rule is re-implemented here.

The index covers what the NBO XSD uses: global and local elements, named and anonymous
complex types (with ``complexContent``/``simpleContent`` extensions), attribute declarations
with named or inline simple types (restrictions only), sequences, choices, wildcards and
substitution groups.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from nbo_recorder.nbo import NBO_NAMESPACE, XSD_PATH
from nbo_recorder.vocabulary import attribute_text

_XS = "{http://www.w3.org/2001/XMLSchema}"

#: The XSD built-in types the NBO XSD uses, by their primitive type (XSD part 2, 3.3).
_PRIMITIVE = {
    "integer": "decimal", "int": "decimal", "long": "decimal", "short": "decimal",
    "nonNegativeInteger": "decimal", "positiveInteger": "decimal",
    "normalizedString": "string", "token": "string",
}

#: The XML namespace schema the NBO XSD imports from the web; it declares nothing the NBO
#: XSD uses, so an empty schema stands in for it and libxml2 never reaches for the network.
_XML_NAMESPACE_STUB = (
    b'<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
    b' targetNamespace="http://www.w3.org/XML/1998/namespace"/>'
)


@dataclass(frozen=True, slots=True)
class AttributeDeclaration:
    """One attribute of an element as the XSD declares it.

    ``type_name`` is the XSD type's name (``"float"`` for ``xsd:float``, empty for an
    anonymous type); ``primitive`` its XSD primitive type (``"decimal"`` for an ``int``,
    empty for an attribute with no type, which takes any text);
    ``enumeration`` the values an enumerated type allows (empty otherwise); ``default`` the
    XSD default (None when there is none).
    """

    name: str
    required: bool
    default: str | None
    type_name: str
    primitive: str
    enumeration: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Particle:
    """One place in a content model: an element, or a choice (or repeated sequence) of them.

    ``alternatives`` names the element declarations that can fill it, in XSD order;
    ``accepts`` every child name that counts for it (substitution-group members included);
    ``wildcard`` is True for ``xsd:any``. ``max_occurs`` None is unbounded. ``min_occurs``
    is 0 when an alternative can be empty.
    """

    alternatives: tuple[str, ...]
    accepts: frozenset[str]
    min_occurs: int
    max_occurs: int | None
    is_group: bool
    wildcard: bool = False

    def takes(self, name: str) -> bool:
        """Whether a child named ``name`` can fill this particle."""
        return self.wildcard or name in self.accepts


@dataclass(frozen=True, slots=True)
class TypeDeclaration:
    """An element's type: its attributes and, for element content, its flattened model.

    ``children`` names every element declaration in the content model (what xmlschema's
    ``iter_elements`` gives: substitution-group members are not listed), ``particles`` is the
    top-level sequence with nested sequences flattened, and ``local_elements`` holds the
    elements declared inside the model (``TransmittanceRange`` inside the filter types).
    """

    name: str
    complex: bool
    attributes: Mapping[str, AttributeDeclaration]
    children: tuple[str, ...] = ()
    particles: tuple[Particle, ...] = ()
    local_elements: Mapping[str, ElementDeclaration] = field(default_factory=dict)

    def is_complex(self) -> bool:
        """True for a complex type (attributes or element content)."""
        return self.complex


@dataclass(frozen=True, slots=True)
class ElementDeclaration:
    """An element declaration: its name, whether it is abstract, and its type."""

    name: str
    abstract: bool
    type: TypeDeclaration
    substitution_group: str | None = None


@dataclass(frozen=True, slots=True)
class XsdIndex:
    """The global elements of the NBO XSD and its substitution groups (head -> members)."""

    elements: Mapping[str, ElementDeclaration]
    substitutes: Mapping[str, tuple[str, ...]]
    key_fields: frozenset[str]

    def members(self, name: str) -> frozenset[str]:
        """``name`` and every element that may stand for it, through nested groups."""
        return _members(self.substitutes, name)

    def concrete(self, name: str) -> str:
        """A non-abstract element usable in place of ``name`` (itself if concrete).

        Breadth first over the substitution group, members in name order, as a writer
        would pick the plainest member.
        """
        pending = [name]
        while pending:
            current = pending.pop(0)
            declaration = self.elements.get(current)
            if declaration is None or not declaration.abstract:
                return current
            pending.extend(sorted(self.substitutes.get(current, ())))
        return name

    def declaration_at(self, names: tuple[str, ...]) -> ElementDeclaration | None:
        """The declaration of the element at ``names`` (its ancestry, root first).

        A local declaration in the parent's model wins over a global one of the same name,
        as in the XSD.
        """
        declaration = self.elements.get(names[0])
        for name in names[1:]:
            if declaration is None:
                return None
            local = declaration.type.local_elements.get(name)
            declaration = local if local is not None else self.elements.get(name)
        return declaration


class _GlobalElements(Mapping[str, "ElementDeclaration"]):
    """The XSD's global element declarations, each worked out the first time it is asked
    for: ``validate`` of a small file asks for 32 of the 274, and working out all of them
    took 22 ms of its 100. One thread at a time works declarations out (the sink's
    compliance check asks from a thread of its own); one already worked out is read
    without the lock."""

    def __init__(self, reader: _Reader) -> None:
        self._reader = reader
        # reentrant: working an element out can work out its substitution group's head
        self._lock = threading.RLock()

    def __getitem__(self, name: str) -> ElementDeclaration:
        found = self._reader.elements.get(name)
        if found is not None:
            return found
        if name not in self._reader.global_nodes:
            raise KeyError(name)
        with self._lock:
            return self._reader.global_element(name)

    def get(self, name: str, default: Any = None) -> Any:
        """``self[name]``, or ``default`` if the XSD declares no global ``name`` (a test
        where :class:`Mapping`'s own would catch a KeyError)."""
        return self[name] if name in self._reader.global_nodes else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._reader.global_nodes)

    def __len__(self) -> int:
        return len(self._reader.global_nodes)


class _Reader:
    """Builds the index from the parsed XSD, resolving named types and global elements on
    first use."""

    def __init__(self, root: etree._Element) -> None:
        self.simple = {n.get("name"): n for n in root.iterchildren(f"{_XS}simpleType")}
        self.complex = {n.get("name"): n for n in root.iterchildren(f"{_XS}complexType")}
        self.global_nodes = {n.get("name"): n for n in root.iterchildren(f"{_XS}element")}
        self.types: dict[str, TypeDeclaration] = {}
        self.elements: dict[str, ElementDeclaration] = {}
        self.substitutes: dict[str, list[str]] = {}
        for name, node in self.global_nodes.items():
            head = node.get("substitutionGroup")
            if head:
                self.substitutes.setdefault(_local(head), []).append(name)
        self.key_fields = frozenset(
            node.get("xpath", "").lstrip("@") for node in root.iter(f"{_XS}field")
        )

    def build(self) -> XsdIndex:
        return XsdIndex(
            _GlobalElements(self),
            {head: tuple(members) for head, members in self.substitutes.items()},
            self.key_fields,
        )

    def global_element(self, name: str) -> ElementDeclaration:
        found = self.elements.get(name)
        if found is None:
            found = self.element(self.global_nodes[name])
            self.elements[name] = found
        return found

    def element(self, node: etree._Element) -> ElementDeclaration:
        name = node.get("name")
        head = node.get("substitutionGroup")
        type_ref = node.get("type")
        inline_complex = node.find(f"{_XS}complexType")
        inline_simple = node.find(f"{_XS}simpleType")
        if type_ref is not None:
            xsd_type = self.named_type(type_ref)
        elif inline_complex is not None:
            xsd_type = self.complex_type(inline_complex, "")
        elif inline_simple is not None:
            xsd_type = TypeDeclaration("", False, {})
        elif head is not None:
            xsd_type = self.global_element(_local(head)).type
        else:
            xsd_type = TypeDeclaration("anyType", True, {})
        abstract = node.get("abstract") == "true"
        return ElementDeclaration(name, abstract, xsd_type, _local(head) if head else None)

    def named_type(self, reference: str) -> TypeDeclaration:
        name = _local(reference)
        found = self.types.get(name)
        if found is not None:
            return found
        if name in self.complex:
            found = self.complex_type(self.complex[name], name)
        else:
            found = TypeDeclaration(name, False, {})
        self.types[name] = found
        return found

    def complex_type(self, node: etree._Element, name: str) -> TypeDeclaration:
        attributes: dict[str, AttributeDeclaration] = {}
        particles: list[Particle] = []
        children: list[str] = []
        local_elements: dict[str, ElementDeclaration] = {}
        body = node
        derived = node.find(f"{_XS}complexContent/{_XS}extension")
        if derived is None:
            derived = node.find(f"{_XS}simpleContent/{_XS}extension")
        if derived is not None:
            base = self.named_type(derived.get("base"))
            attributes.update(base.attributes)
            particles.extend(base.particles)
            children.extend(base.children)
            local_elements.update(base.local_elements)
            body = derived
        for attribute in body.iterchildren(f"{_XS}attribute"):
            declaration = self.attribute(attribute)
            attributes[declaration.name] = declaration
        for group in body.iterchildren(f"{_XS}sequence", f"{_XS}choice"):
            particles.extend(self.particles(group, children, local_elements))
        return TypeDeclaration(
            name, True, attributes, tuple(children), tuple(particles), local_elements
        )

    def particles(self, group: etree._Element, children: list[str],
                  local_elements: dict[str, ElementDeclaration]) -> list[Particle]:
        """The particles of a sequence or choice, nested plain sequences flattened."""
        once = _occurs(group) == (1, 1)
        if group.tag == f"{_XS}sequence" and once:
            found: list[Particle] = []
            for item in _model_items(group):
                if item.tag == f"{_XS}element":
                    found.append(self.element_particle(item, children, local_elements))
                elif item.tag == f"{_XS}any":
                    found.append(Particle((), frozenset(), *_occurs(item), False, True))
                else:
                    found.extend(self.particles(item, children, local_elements))
            return found
        inner: list[Particle] = []
        for item in _model_items(group):
            if item.tag == f"{_XS}element":
                inner.append(self.element_particle(item, children, local_elements))
            else:
                inner.extend(self.particles(item, children, local_elements))
        low, high = _occurs(group)
        if group.tag == f"{_XS}choice":
            emptiable = any(_emptiable(item) for item in _model_items(group))
            single = high == 1 and all(p.max_occurs == 1 for p in inner) and all(
                item.tag == f"{_XS}element" for item in _model_items(group))
        else:
            emptiable = all(p.min_occurs == 0 for p in inner)
            single = False
        return [Particle(
            tuple(name for p in inner for name in p.alternatives),
            frozenset().union(*(p.accepts for p in inner)),
            0 if emptiable else low,
            1 if single else None,
            True,
            any(p.wildcard for p in inner),
        )]

    def element_particle(self, node: etree._Element, children: list[str],
                         local_elements: dict[str, ElementDeclaration]) -> Particle:
        low, high = _occurs(node)
        reference = node.get("ref")
        if reference is not None:
            name = _local(reference)
            accepts = _members(self.substitutes, name)
        else:
            name = node.get("name")
            accepts = frozenset({name})
            local_elements[name] = self.element(node)
        children.append(name)
        return Particle((name,), accepts, low, high, False)

    def attribute(self, node: etree._Element) -> AttributeDeclaration:
        type_ref = node.get("type")
        if type_ref is not None:
            type_name = _local(type_ref)
            primitive, enumeration = self.simple_type(type_ref)
        else:
            inline = node.find(f"{_XS}simpleType")
            type_name = ""
            primitive, enumeration = (
                self.restriction(inline) if inline is not None else ("", ())
            )
        return AttributeDeclaration(
            node.get("name"), node.get("use") == "required", node.get("default"),
            type_name, primitive, enumeration,
        )

    def simple_type(self, reference: str) -> tuple[str, tuple[str, ...]]:
        """(primitive type, enumeration) of a named simple type."""
        name = _local(reference)
        if reference.startswith("xsd:") or name not in self.simple:
            return _PRIMITIVE.get(name, name), ()
        return self.restriction(self.simple[name])

    def restriction(self, node: etree._Element) -> tuple[str, tuple[str, ...]]:
        restriction = node.find(f"{_XS}restriction")
        if restriction is None:
            return "", ()
        primitive, inherited = self.simple_type(restriction.get("base"))
        own = tuple(e.get("value") for e in restriction.iterchildren(f"{_XS}enumeration"))
        return primitive, own or inherited


def _members(substitutes: Mapping[str, Sequence[str]], name: str) -> frozenset[str]:
    """``name`` and every element of its substitution group, through nested groups."""
    found = {name}
    pending = [name]
    while pending:
        for member in substitutes.get(pending.pop(), ()):
            if member not in found:
                found.add(member)
                pending.append(member)
    return frozenset(found)


def _local(reference: str) -> str:
    """A QName reference (``xsd:float``, ``OME:Image``) without its prefix."""
    return reference.rpartition(":")[2]


def _occurs(node: etree._Element) -> tuple[int, int | None]:
    high = node.get("maxOccurs", "1")
    return int(node.get("minOccurs", "1")), None if high == "unbounded" else int(high)


def _model_items(group: etree._Element) -> Iterator[etree._Element]:
    """The elements, wildcards and nested groups of a sequence or choice."""
    for item in group:
        if item.tag in (f"{_XS}element", f"{_XS}any", f"{_XS}sequence", f"{_XS}choice"):
            yield item


def _emptiable(node: etree._Element) -> bool:
    """Whether a particle can match no element at all."""
    if _occurs(node)[0] == 0:
        return True
    if node.tag == f"{_XS}sequence":
        return all(_emptiable(item) for item in _model_items(node))
    if node.tag == f"{_XS}choice":
        return any(_emptiable(item) for item in _model_items(node))
    return False


def _xsd_tree() -> etree._ElementTree:
    parser = etree.XMLParser(no_network=True, remove_comments=True)
    return etree.parse(str(XSD_PATH), parser)


@cache
def xsd_index() -> XsdIndex:
    """The NBO XSD's declarations, read once per process."""
    return _Reader(_xsd_tree().getroot()).build()


class _XmlNamespaceResolver(etree.Resolver):  # type: ignore[misc]
    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        if system_url.endswith("/xml.xsd"):
            return self.resolve_string(_XML_NAMESPACE_STUB, context)
        return None


#: Held while compiling or validating with :func:`xsd_schema`: an lxml ``XMLSchema`` keeps
#: the last validation's errors on itself, so it validates one document at a time.
SCHEMA_LOCK = threading.RLock()


def _schema_tree() -> etree._ElementTree:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_XmlNamespaceResolver())
    return etree.parse(str(XSD_PATH), parser)


def compile_schema(tree: etree._ElementTree) -> etree.XMLSchema:
    """``tree`` (an XSD) compiled by libxml2, one compilation at a time: libxml2 sets up its
    built-in types on a first compilation, and two at once in two threads can fail
    ("the given type is not a built-in type": seen when a thread checking a run's Planes
    compiled its schema while ``validate`` compiled the NBO XSD)."""
    with SCHEMA_LOCK:
        return etree.XMLSchema(tree)


@cache
def _compiled_schema() -> etree.XMLSchema:
    return compile_schema(_schema_tree())


#: the XSD's identity constraints: IDs unique per kind, references that must resolve
_IDENTITY_CONSTRAINTS = tuple(f"{_XS}{kind}" for kind in ("key", "keyref", "unique"))


@cache
def _compiled_schema_without_keys() -> etree.XMLSchema:
    return compile_schema(schema_tree_without_keys())


def schema_tree_without_keys() -> etree._ElementTree:
    """The NBO XSD without its identity constraints, parsed anew for the caller to adapt
    and compile (see :func:`xsd_schema_without_keys`); a schema compiled from it is the
    caller's own, so a thread validating with it needs no lock."""
    tree = _schema_tree()
    for constraint in list(tree.iter(*_IDENTITY_CONSTRAINTS)):
        constraint.getparent().remove(constraint)
    return tree


def xsd_schema() -> etree.XMLSchema:
    """The NBO XSD compiled by libxml2, once per process (about 50 ms).

    Thread-safe; callers hold :data:`SCHEMA_LOCK` while validating and reading its errors.
    """
    with SCHEMA_LOCK:
        return _compiled_schema()


def resolve_declarations() -> None:
    """Work out every global element's declaration now (about 20 ms), rather than as each is
    first asked for: the recorder does this while it is set up, so that rendering and
    checking a run's record, during the run and after its last frame, find them done."""
    deque(xsd_index().elements.values(), maxlen=0)


def start_compiling_schema() -> threading.Thread | None:
    """Begin compiling the NBO XSD (:func:`xsd_schema`) in a thread of its own, unless it is
    compiled already; returns that thread (None if there was nothing to do).

    libxml2 compiles with the GIL released, so a caller that has Python work to do first
    (reading a file, loading the rules table) gets the schema for free on a second core:
    ``validate`` of a small file spends a fifth of its own time compiling it. A later
    :func:`xsd_schema` call waits for the thread (the compilation holds
    :data:`SCHEMA_LOCK`) and takes its result. A compilation that fails is not kept, so
    that call compiles again and raises the error itself.
    """
    if _compiled_schema.cache_info().currsize:
        return None
    thread = threading.Thread(target=_compile_ahead, name="nbo-xsd-compile")
    thread.start()
    return thread


def _compile_ahead() -> None:
    """:func:`xsd_schema`, its error left to the caller's own call (see
    :func:`start_compiling_schema`): raised here, it would be printed to stderr as a thread's
    traceback."""
    try:
        xsd_schema()
    except (etree.Error, OSError):
        return


def xsd_schema_without_keys() -> etree.XMLSchema:
    """The NBO XSD without its identity constraints (keys, key references, unique IDs),
    compiled by libxml2 once per process; it checks everything else alike.

    libxml2 follows each of the XSD's 72 identity constraints at every element it
    validates, which makes validating a record of 100,000 Planes three times slower;
    :func:`~nbo_recorder.nbo.schema.validate_nbo` checks a long run's Planes with this
    schema and the rest of the record with the whole XSD. Callers hold :data:`SCHEMA_LOCK`.
    """
    with SCHEMA_LOCK:
        return _compiled_schema_without_keys()


# --- the look-ups ---------------------------------------------------------------------------


def element_declaration(name: str) -> ElementDeclaration | None:
    """The global NBO XSD declaration of element ``name`` (None if there is none)."""
    return xsd_index().elements.get(name)


def xsd_element(name: str) -> Any:
    """The global NBO XSD declaration of element ``name`` (None if there is none).

    The same :class:`ElementDeclaration` as :func:`element_declaration`, typed ``Any`` for
    the callers that read ``declaration.type.attributes`` without a None check (as they did
    when this returned an xmlschema declaration); new code uses the typed function.
    """
    return element_declaration(name)


def xsd_attribute(element: str, attribute: str) -> AttributeDeclaration | None:
    """The XSD declaration of ``element``'s ``attribute`` (None if it has no such attribute)."""
    declaration = element_declaration(element)
    if declaration is None:
        return None
    return declaration.type.attributes.get(attribute)


def xsd_allows(element: str, item: str, *, child: bool = False) -> bool:
    """Whether the NBO XSD lets ``element`` carry ``item`` (an attribute or a child element).

    The spreadsheet lists a few items the XSD has no place for (e.g. Pixels
    SequentialAcquisition); a valid record cannot hold them. Elements the XSD does not
    declare globally are given the benefit of the doubt.
    """
    return _allows(element, item, child)


@cache
def _allows(element: str, item: str, child: bool) -> bool:
    """:func:`xsd_allows`, answered once per question: grading asks it for every attribute
    of every element, 100,000 Planes included."""
    declaration = element_declaration(element)
    if declaration is None or not declaration.type.complex:
        return declaration is None
    if not child:
        return item in declaration.type.attributes
    return item in declaration.type.children


def allowed_values(element: str, attribute: str) -> tuple[str, ...]:
    """The XSD enumeration of an attribute (empty when it is not enumerated)."""
    declaration = xsd_attribute(element, attribute)
    return () if declaration is None else declaration.enumeration


@cache
def _fits(element: str, attribute: str, text: str) -> bool:
    """Whether libxml2 accepts ``text`` as ``element@attribute`` under the NBO XSD.

    A lone ``element`` carrying only that attribute is validated; only complaints about
    that attribute's value count (the missing attributes and children do not). libxml2
    checks nothing of an abstract element, so one of its concrete substitutes stands in.
    Two attribute names in the XSD have a stray space (``"ID "``, ``" ConfocalFieldNumber"``):
    no XML can carry them, so no value of theirs is refused here.
    """
    name = xsd_index().concrete(element)
    try:
        probe = etree.Element(f"{{{NBO_NAMESPACE}}}{name}", {attribute: text})
    except ValueError:
        return True
    schema = xsd_schema()
    with SCHEMA_LOCK:
        schema.validate(probe)
        log = schema.error_log
    marker = f"attribute '{attribute}':"
    return not any(marker in entry.message for entry in log)


def value_problem(element: str, attribute: str, value: str | bool | int | float) -> str | None:
    """Why ``value`` is not allowed for ``element@attribute`` (None when it is).

    The message names the allowed values of an enumerated attribute, or the XSD type.
    """
    declaration = xsd_attribute(element, attribute)
    text = attribute_text(value)
    if declaration is None or text is None:
        return None
    if _fits(element, attribute, text):
        return None
    choices = declaration.enumeration
    if choices:
        listed = ", ".join(repr(c) for c in choices)
        return f"{value!r} is not an NBO v2.01 {element}@{attribute}; allowed: {listed}"
    kind = declaration.primitive or "value"
    return f"{value!r} is not a valid {kind} for NBO {element}@{attribute}"
