"""The libxml2-based validator and XSD look-ups agree with xmlschema, an independent reader.

xmlschema (pure Python, a test dependency only) validates the same documents raw, with no
tier: every required attribute it finds missing must come back from :func:`validate_nbo` as
deferred when the rules table puts the attribute above the target tier and as an error
otherwise; every required child it finds missing must come back as deferred or as an error
of that element; and the document is valid at a tier exactly when nothing at or below it is
missing. The documents are the NBO records of both shipped rigs' demo files (written by
``nbo-recorder demo``), and small edits of one. The look-ups (attributes, defaults,
enumerations, children, value checks) are compared with xmlschema's reading of the XSD for
every global element.
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pytest
import xmlschema
from xmlschema.validators import XMLSchemaChildrenValidationError

from nbo_recorder.nbo import NBO_NAMESPACE, XSD_PATH
from nbo_recorder.nbo.rules import load_rules
from nbo_recorder.nbo.schema import (
    ValidationResult,
    allowed_values,
    validate_nbo,
    value_problem,
    xsd_allows,
    xsd_attribute,
)

RIGS = {"widefield": [], "spinning-disk": ["--rig", "spinning-disk"],
        "spinning-disk with study": ["--rig", "spinning-disk", "--study",
                                     "hardware_profiles/example_study.yaml"]}
_MISSING_ATTRIBUTE = re.compile(r"missing required attribute '([^']+)'")
NS = f"{{{NBO_NAMESPACE}}}"


@cache
def reference() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD_PATH))


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def paths(root: ET.Element) -> dict[ET.Element, tuple[str, tuple[str, ...]]]:
    """``/OME/Instrument[1]/Objective[2]`` and the ancestry of every element."""
    found = {root: (f"/{local(root.tag)}", (local(root.tag),))}
    for parent in root.iter():
        counts: dict[str, int] = {}
        for child in parent:
            name = local(child.tag)
            counts[name] = counts.get(name, 0) + 1
            path, names = found[parent]
            found[child] = (f"{path}/{name}[{counts[name]}]", (*names, name))
    return found


@dataclass(frozen=True)
class Expected:
    """What xmlschema finds missing, with each item's rules-table tier."""

    attributes: dict[tuple[str, str], int]
    children: dict[str, str]
    other: list[str]


def raw_problems(root: ET.Element) -> Expected:
    """xmlschema's errors of ``root``: missing attributes (by rules tier), the first missing
    child of each element, and anything else."""
    located = paths(root)
    rules = load_rules()
    attributes: dict[tuple[str, str], int] = {}
    children: dict[str, str] = {}
    other: list[str] = []
    for error in reference().iter_errors(root):
        path, names = located.get(error.elem, ("/", ()))
        missing = _MISSING_ATTRIBUTE.search(error.reason or "")
        if missing:
            name = missing[1]
            rule = rules.resolve(names[-1], name, "attribute", names)
            if rule is None and name.endswith("Unit"):
                rule = rules.resolve(names[-1], name[:-4], "attribute", names)
            attributes[(path, name)] = rule.tier if rule else 0
        elif isinstance(error, XMLSchemaChildrenValidationError) and error.particle is not None \
                and (error.occurs or 0) < error.particle.min_occurs:
            children[path] = str(error.particle)
        else:
            other.append(f"{path}: {error.reason}")
    return Expected(attributes, children, other)


def check_tiers(root: ET.Element, expected: Expected) -> None:
    """At each tier, validate_nbo sorts xmlschema's findings as the rules table says."""
    for tier in (1, 2, 3):
        result = validate_nbo(root, tier)
        deferred = {(d.path, d.attribute) for d in result.deferred if d.attribute}
        errors = {(e.path, e.attribute) for e in result.errors if e.attribute}
        assert deferred == {k for k, t in expected.attributes.items() if t > tier}, tier
        assert errors == {k for k, t in expected.attributes.items() if t <= tier}, tier
        child_paths = {d.path for d in result.deferred if d.child} | {
            e.path for e in result.errors if e.attribute is None}
        assert set(expected.children) <= child_paths, tier
        nothing_due = all(t > tier for t in expected.attributes.values())
        if nothing_due and not expected.other and not any(
                path not in {d.path for d in result.deferred} for path in expected.children):
            assert result.ok, result.errors
        else:
            assert not result.ok


@pytest.fixture(scope="module")
def records(demo_nbo_record: Callable[..., ET.Element]) -> dict[str, ET.Element]:
    """The NBO record of each shipped rig's demo file, as ``nbo-recorder demo`` writes it."""
    return {rig: demo_nbo_record(*options) for rig, options in RIGS.items()}


@pytest.mark.parametrize("rig", list(RIGS))
def test_demo_records_sorted_as_xmlschema_and_the_rules_table_say(records, rig):
    root = records[rig]
    expected = raw_problems(root)
    assert expected.attributes, "the demo records lack values nobody stated"
    assert expected.other == []
    check_tiers(root, expected)


def edited(root: ET.Element, *, drop: str | None = None, attrib: tuple[str, str] | None = None,
           value: tuple[str, str, str] | None = None, move_first: str | None = None) -> ET.Element:
    """A copy of ``root`` with one edit made on the first element of a name."""
    work = ET.fromstring(ET.tostring(root))
    parents = {child: parent for parent in work.iter() for child in parent}
    if drop:
        element = next(work.iter(NS + drop))
        parents[element].remove(element)
    if attrib:
        del next(work.iter(NS + attrib[0])).attrib[attrib[1]]
    if value:
        next(work.iter(NS + value[0])).set(value[1], value[2])
    if move_first:
        element = next(work.iter(NS + move_first))
        parent = parents[element]
        parent.remove(element)
        parent.insert(0, element)
    return work


def test_wrong_value_misplaced_element_and_tier1_gap_are_errors(records):
    root = records["spinning-disk with study"]
    # Objective Correction: enumerated; Image/Pixels is the Image's last required child;
    # Objective LensNA: Core tier 1 MUST.
    document = edited(root, value=("Objective", "Correction", "SuperPlan"),
                      move_first="Pixels", attrib=("Objective", "LensNA"))
    expected = raw_problems(document)
    result = validate_nbo(document, 1)
    located = {e.path: e for e in result.errors}
    objective = paths(document)[next(document.iter(NS + "Objective"))][0]
    image = paths(document)[next(document.iter(NS + "Image"))][0]
    assert (objective, "Correction") in {(e.path, e.attribute) for e in result.errors}
    assert (objective, "LensNA") in {(e.path, e.attribute) for e in result.errors}
    assert image in located
    assert any("Correction" in text for text in expected.other)
    assert image in expected.children or any(text.startswith(image) for text in expected.other)
    assert expected.attributes[(objective, "LensNA")] == 1


def test_missing_tier3_only_attribute_is_deferred_at_tier1(records):
    root = records["spinning-disk with study"]
    # Objective ImageDistance: tier 3 in the workbook, required by the XSD.
    # the shipped spinning-disk profile does not state it
    assert "ImageDistance" not in next(root.iter(NS + "Objective")).attrib
    document = root
    expected = raw_problems(document)
    objective = paths(document)[next(document.iter(NS + "Objective"))][0]
    assert expected.attributes[(objective, "ImageDistance")] == 3
    result = validate_nbo(document, 1)
    assert (objective, "ImageDistance") in {(d.path, d.attribute) for d in result.deferred}
    assert (objective, "ImageDistance") not in {(e.path, e.attribute) for e in result.errors}
    check_tiers(document, expected)


@pytest.mark.parametrize("drop", ["AdditionalDimensionMap", "ObjectiveSettings", "Pixels",
                                  "MicroscopeStandSettings", "TransmittanceRange"])
def test_missing_children_sorted_as_xmlschema_says(records, drop):
    document = edited(records["spinning-disk with study"], drop=drop)
    expected = raw_problems(document)
    assert expected.children or expected.other
    check_tiers(document, expected)


# --- the look-ups -------------------------------------------------------------------------


def global_elements() -> list[tuple[str, object]]:
    return [(declaration.local_name, declaration)
            for name, declaration in reference().maps.elements.items()
            if name.startswith(NS) and declaration.type.is_complex()]


def test_attribute_declarations_match_xmlschema():
    checked = 0
    for name, declaration in global_elements():
        declared = {k: v for k, v in declaration.type.attributes.items() if k}
        for attribute in declared:
            assert xsd_allows(name, attribute), (name, attribute)
        for attribute, reference_attribute in declared.items():
            ours = xsd_attribute(name, attribute)
            assert ours is not None, (name, attribute)
            enumeration = getattr(reference_attribute.type, "enumeration", None) or ()
            assert ours.required == (reference_attribute.use == "required"), (name, attribute)
            assert ours.default == reference_attribute.default, (name, attribute)
            assert allowed_values(name, attribute) == tuple(str(v) for v in enumeration)
            checked += 1
        assert xsd_attribute(name, "NoSuchAttribute") is None
        assert not xsd_allows(name, "NoSuchAttribute")
    assert checked > 900


def test_allowed_children_match_xmlschema():
    for name, declaration in global_elements():
        content = declaration.type.content
        names = {e.local_name for e in content.iter_elements() if e.local_name} \
            if hasattr(content, "iter_elements") else set()
        for child in names:
            assert xsd_allows(name, child, child=True), (name, child)
        assert not xsd_allows(name, "NoSuchChild", child=True)


def test_value_checks_match_xmlschema():
    samples = ("1", "-1", "2.5", "abc", "true", "", "Other", "Planar", "2024-01-01")
    for name, declaration in global_elements():
        for attribute, reference_attribute in declaration.type.attributes.items():
            if not attribute or attribute != attribute.strip():
                continue  # the XSD's two names with a stray space: no XML can carry them
            for text in samples:
                valid = reference_attribute.type.is_valid(text)
                problem = value_problem(name, attribute, text)
                assert (problem is None) == valid, (name, attribute, text, problem)


def test_value_problem_names_allowed_values_or_type():
    assert value_problem("Objective", "LensNA", "1.4") is None
    assert value_problem("Objective", "LensNA", "high") == (
        "'high' is not a valid float for NBO Objective@LensNA")
    problem = value_problem("Objective", "Correction", "SuperPlan")
    assert problem is not None and "'PlanApo'" in problem


def test_importing_the_validator_reads_no_schema():
    code = (
        "import sys\n"
        "import nbo_recorder.nbo.schema as s\n"
        "from nbo_recorder.nbo import xsd_index\n"
        "assert xsd_index.xsd_index.cache_info().currsize == 0\n"
        f"s.validate_nbo('<OME xmlns=\"{NBO_NAMESPACE}\"/>', 1)\n"
        "assert xsd_index.xsd_index.cache_info().currsize == 1\n"
        "print('xmlschema' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_result_type_is_unchanged():
    assert isinstance(validate_nbo(f'<OME xmlns="{NBO_NAMESPACE}"/>', 1), ValidationResult)


def test_the_index_names_the_global_elements_xmlschema_finds() -> None:
    """The index works its declarations out as they are asked for; as a mapping it still
    holds every global element the XSD declares (xmlschema's list), and no other."""
    code = (
        "from nbo_recorder.nbo.xsd_index import xsd_index\n"
        "elements = xsd_index().elements\n"
        "assert elements.get('NoSuchElement') is None and 'NoSuchElement' not in elements\n"
        "print(len(elements), ' '.join(sorted(elements)))\n"
        "print(sum(1 for name in elements if elements[name].abstract))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    declared = {d.local_name: d for name, d in reference().maps.elements.items()
                if name.startswith(NS)}
    count, names = out[0].split(" ", 1)
    assert int(count) == len(declared)
    assert names.split() == sorted(declared)
    assert int(out[1]) == sum(1 for d in declared.values() if d.abstract)
