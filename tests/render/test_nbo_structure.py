"""The embedded NBO record has no structural XSD error: validated raw, every error classified.

Both shipped rigs' demo files are recorded once per module (``nbo-recorder demo`` and ``demo
--rig spinning-disk``, through the command line's ``main``), and the NBO record each embeds is
validated as it stands in the file (no tier, no placeholders) against the shipped NBO v2.01 XSD
with xmlschema. Every error is sorted into one of three classes:

* ``attribute``: a required attribute is missing — a value nobody stated or observed; listed;
* ``element``: a required child element is missing (no child of that name, nor of its
  substitution group, exists) — allowed only for the microscope stand of a profile that does
  not say whether its stand is inverted or upright (the widefield demo's);
* ``structural``: anything else (an unexpected or misplaced element, a value the XSD refuses,
  a broken key); there must be none.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import xmlschema
import yaml

from nbo_recorder.nbo import NBO_NAMESPACE, XSD_PATH

REPO = Path(__file__).resolve().parents[2]
RIGS = {"widefield": ("mm_demo.yaml", []), "spinning-disk": ("sim_spinning_disk.yaml",
                                                              ["--rig", "spinning-disk"])}
STAND = {("Instrument", "MicroscopeStandGroup"), ("Image", "MicroscopeStandSettings")}


@cache
def get_schema() -> xmlschema.XMLSchema:
    """The NBO XSD loaded by xmlschema: a reader of it independent of the recorder's own."""
    return xmlschema.XMLSchema(str(XSD_PATH))


@dataclass(frozen=True)
class Problem:
    """One raw XSD error: its class, the element it is about and what is wrong."""

    kind: str
    element: str
    what: str


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@cache
def members(name: str) -> frozenset[str]:
    """``name`` and every element that may stand for it (substitution groups, nested)."""
    groups = get_schema().maps.substitution_groups
    found = {name}
    for member in groups.get(f"{{{NBO_NAMESPACE}}}{name}", ()):
        found |= members(member.local_name)
    return frozenset(found)


_EXPECTED = re.compile(r"Tag (.+) expected")
_MISSING_ATTRIBUTE = re.compile(r"missing required attribute '([^']+)'")


def declared(elem: ET.Element, parent: Any) -> Iterator[tuple[ET.Element, Any]]:
    """Each element of the tree under ``elem`` with its XSD declaration: the global one, or
    the local one in its parent's content model (``TransmittanceRange`` is declared inside
    the filter types)."""
    declaration = get_schema().maps.elements.get(elem.tag)
    if declaration is None and parent is not None and parent.type.has_complex_content():
        declaration = next((d for d in parent.type.content.iter_elements()
                            if d.name == elem.tag), None)
    if declaration is None:
        return
    yield elem, declaration
    for child in elem:
        yield from declared(child, declaration)


def classify(root: ET.Element) -> list[Problem]:
    """Every error of ``root`` against the NBO XSD, classified (see the module docstring)."""
    problems = []
    for error in get_schema().iter_errors(root):
        reason = error.reason or str(error)
        elem = error.elem
        element = local(elem.tag) if isinstance(elem, ET.Element) else "?"
        attribute = _MISSING_ATTRIBUTE.search(reason)
        expected = _EXPECTED.search(reason)
        if attribute:
            problems.append(Problem("attribute", element, attribute[1]))
            continue
        if expected and isinstance(elem, ET.Element):
            names = [n.rsplit(":", 1)[-1] for n in re.findall(r"'([^']+)'", expected[1])]
            present = {local(child.tag) for child in elem}
            if names and all(not members(n) & present for n in names):
                problems.append(Problem("element", element, "|".join(names)))
                continue
        problems.append(Problem("structural", element, reason))
    return problems


@pytest.fixture(scope="module")
def records(demo_nbo_record: Callable[..., ET.Element]) -> dict[str, ET.Element]:
    """The NBO record of each shipped rig's demo file, as ``nbo-recorder demo`` writes it."""
    return {rig: demo_nbo_record(*options) for rig, (_, options) in RIGS.items()}


def stand_stated(rig: str) -> bool:
    """Whether the rig's shipped profile says if its stand is inverted or upright."""
    data = yaml.safe_load((REPO / "hardware_profiles" / RIGS[rig][0]).read_text())
    return data.get("microscope", {}).get("type") in ("Inverted", "Upright")


@pytest.mark.parametrize("rig", list(RIGS))
def test_raw_record_has_no_structural_error(records, rig, record_property):
    problems = classify(records[rig])
    counts = {kind: sum(p.kind == kind for p in problems)
              for kind in ("attribute", "element", "structural")}
    record_property("raw XSD errors by class", counts)
    record_property("missing attributes", sorted({(p.element, p.what) for p in problems
                                                   if p.kind == "attribute"}))
    assert [p for p in problems if p.kind == "structural"] == []


@pytest.mark.parametrize("rig", list(RIGS))
def test_only_an_unstated_stand_is_a_missing_element(records, rig):
    missing = {(p.element, p.what) for p in classify(records[rig]) if p.kind == "element"}
    if stand_stated(rig):
        assert missing == set()
    else:
        assert missing == STAND
        assert records[rig].find(f"{{{NBO_NAMESPACE}}}Instrument/{{{NBO_NAMESPACE}}}"
                                 "InvertedMicroscopeStand") is None


@pytest.mark.parametrize("rig", list(RIGS))
def test_missing_attributes_are_the_required_ones_each_element_lacks(records, rig):
    """The ``attribute`` class is exactly what the XSD's declarations say is required and absent."""
    absent: Counter[tuple[str, str]] = Counter()
    for elem, declaration in declared(records[rig], None):
        attributes = getattr(declaration.type, "attributes", {})
        absent.update((local(elem.tag), name) for name, attribute in attributes.items()
                      if attribute.use == "required" and name not in elem.attrib)
    found = Counter((p.element, p.what) for p in classify(records[rig]) if p.kind == "attribute")
    assert found == absent


def test_classification_sees_a_misplaced_element(records):
    """The checks above can fail: an ObjectiveSettings moved after Pixels is structural."""
    root = copy.deepcopy(records["spinning-disk"])
    image = root.find(f"{{{NBO_NAMESPACE}}}Image")
    assert image is not None
    settings = image.find(f"{{{NBO_NAMESPACE}}}ObjectiveSettings")
    assert settings is not None
    image.remove(settings)
    image.append(settings)
    structural = [p for p in classify(root) if p.kind == "structural"]
    assert [p.element for p in structural] == ["Image"]
