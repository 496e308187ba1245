"""An NBO record as JSON-LD: flat nodes under the shipped ``@context`` (``context.jsonld``).

The 4DN-BINA-OME record a file embeds is turned into linked data element by element, with no
hand-written list of NBO elements, so every element and attribute of NBO v2.01 is covered:

* an element becomes a node typed ``nbo:<Element>``; its attributes become ``nbo:<Attribute>``
  literals (the text the file holds, never reinterpreted), its child elements become
  ``nbo:<Child>`` links, and the text of an element with attributes (a MapAnnotation's ``M``)
  becomes ``rdf:value``;
* a child with only text and no attributes (``Description``) is a literal of its parent;
* a ``...Ref`` element is a link to the node it names (``nbo:ObjectiveSettings`` →
  ``nbo:ID`` → the ``Objective`` node): in NBO the ``ID`` of a reference or of a
  ``...Settings`` element names another element, so it becomes a link, never a node ID;
* node IDs are local to the crate: ``#<file>/<NBO ID>`` for elements with an ID, the parent's
  ID plus the element name (and a counter when repeated) for the others.

The NBO namespace IRI is the one the NBO XSD declares, with ``#`` (see ``context.jsonld``).
The graph is flat (every node at the top of ``@graph``), as RO-Crate asks.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: The ``@context`` the project ships: NBO terms under ``nbo:``, REMBI fields under ``rembi:``.
CONTEXT_PATH = Path(__file__).with_name("context.jsonld")

Node = dict[str, Any]


@cache
def shipped_context() -> dict[str, str]:
    """The term definitions of ``context.jsonld`` (prefix -> namespace IRI)."""
    data = json.loads(CONTEXT_PATH.read_text(encoding="utf-8"))
    return dict(data["@context"])


def local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag.rpartition("}")[2]


def file_node_id(relative_path: str) -> str:
    """The crate-local prefix of the nodes describing one file (``#<path>``)."""
    return "#" + quote(relative_path, safe="/.")


def nbo_node_id(file_id: str, nbo_id: str) -> str:
    """The node ID of the element whose NBO ``ID`` is ``nbo_id`` in the file ``file_id``."""
    return f"{file_id}/{quote(nbo_id, safe=':-._')}"


def _is_reference(name: str) -> bool:
    """In NBO, the ``ID`` of these elements names another element."""
    return name.endswith(("Ref", "Settings"))


def _add(node: Node, key: str, value: Any) -> None:
    """Append ``value`` to ``node[key]``, making it a list from the second value on."""
    if key not in node:
        node[key] = value
    elif isinstance(node[key], list):
        node[key].append(value)
    else:
        node[key] = [node[key], value]


def record_nodes(record: ET.Element, subject: Node, file_id: str) -> list[Node]:
    """The NBO ``record`` as flat JSON-LD nodes; the root's content goes into ``subject``.

    ``subject`` is the node of the file itself (its RO-Crate ``File`` entity): it gets the
    type ``nbo:OME`` and the root element's attributes and children, so a query goes from a
    file straight to its images and instrument. ``file_id`` prefixes every node ID
    (:func:`file_node_id`). Returns the other nodes.
    """
    nodes: list[Node] = []
    types = subject.get("@type", [])
    subject["@type"] = [*(types if isinstance(types, list) else [types]), "nbo:OME"]
    _fill(record, subject, file_id, file_id, nodes)
    return nodes


def _fill(element: ET.Element, node: Node, base: str, file_id: str, nodes: list[Node]) -> None:
    """Put ``element``'s attributes, text and children into ``node``; collect child nodes.

    ``base`` prefixes the IDs of children without an NBO ID of their own.
    """
    for name, value in element.attrib.items():
        if name == "ID":
            if _is_reference(local(element.tag)):
                node["nbo:ID"] = {"@id": nbo_node_id(file_id, value)}
            continue
        node[f"nbo:{local(name)}"] = value
    text = (element.text or "").strip()
    if text and len(element) == 0 and element.attrib:
        node["rdf:value"] = text
    seen: Counter[str] = Counter()
    for child in element:
        name = local(child.tag)
        key = f"nbo:{name}"
        if name.endswith("Ref") and "ID" in child.attrib and len(child) == 0:
            _add(node, key, {"@id": nbo_node_id(file_id, child.attrib["ID"])})
            continue
        if not child.attrib and len(child) == 0:
            if (child.text or "").strip():
                _add(node, key, (child.text or "").strip())
            continue
        seen[name] += 1
        own = child.attrib.get("ID")
        if own is not None and not _is_reference(name):
            child_id = nbo_node_id(file_id, own)
        else:
            child_id = f"{base}/{quote(name, safe='-')}-{seen[name]}"
        child_node: Node = {"@id": child_id, "@type": key}
        _fill(child, child_node, child_id, file_id, nodes)
        nodes.append(child_node)
        _add(node, key, {"@id": child_id})
