"""Tier-aware NBO validation on small hand-written documents.

``VALID`` is the smallest document this suite found that the NBO XSD accepts with an
OME root holding one Instrument (with one Objective) and one Image with Pixels; the
other cases edit it. The XSD is loaded once per process by ``get_schema``.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nbo_recorder.nbo import NBO_NAMESPACE
from nbo_recorder.nbo.schema import (
    ValidationResult,
    attribute_compliance,
    validate_nbo,
)

VALID = f"""\
<OME xmlns="{NBO_NAMESPACE}">
  <Experiment ID="Experiment:0" Purpose="Localization" LabellingMethod="Immunofluorescence">
    <ExperimenterRef ID="Experimenter:0"/>
    <Sample ID="Sample:0" Name="HeLa" BiologicalOrigin="true" SampleType="Cell"
            LiveSample="false" Organism="Homo sapiens" MetrologySample="false"/>
  </Experiment>
  <Experimenter ID="Experimenter:0"/>
  <Instrument ID="Instrument:0" Name="Demo scope">
    <InvertedMicroscopeStand ID="MicroscopeStand:0" Manufacturer="Acme" Model="IX-1"
                             CatalogNumber="S-1" Type="Compound"/>
    <AcquisitionSoftware ID="Software:0" Name="nbo-recorder" Version="0.1.0"
                         Developer="nbo-recorder authors" WebsiteURL="https://example.org/r"/>
    <GenericExcitationSource ID="LightSource:0" Manufacturer="Acme" Model="L-1"
                             CatalogNumber="L-1"/>
    <Objective ID="Objective:0" Manufacturer="Acme" Model="60x" CatalogNumber="O-1"
               Magnification="60" LensNA="1.4" Correction="PlanApo" ImmersionType="Mineral Oil"
               InfinityCorrected="true" ContrastModulation="None" DIC="false"
               WorkingDistance="0.13" CorrectionCollar="false" ObjectiveViewField="25"
               ImageDistance="180"/>
    <EmissionFilter ID="Filter:0" Manufacturer="Acme" Model="F-1" CatalogNumber="F-1"
                    Type="BandPass" CoatingMethod="HardCoated" LightPathLocation="Infinity space"
                    AttenuationMethod="Absorption">
      <TransmittanceRange Wavelength="525" FWHMBandwidth="50"/>
    </EmissionFilter>
    <StandardDichroic ID="Dichroic:0" Manufacturer="Acme" Model="DM-1" CatalogNumber="DM-1"
                      MirrorType="Planar" Type="LongPass" CoatingMethod="HardCoated"
                      LightPathLocation="Infinity space" AttenuationMethod="Reflection">
      <TransmittanceRange Wavelength="505" FWHMBandwidth="100"/>
    </StandardDichroic>
    <GenericDetector ID="Detector:0" Manufacturer="Acme" Model="D-1" CatalogNumber="D-1"
                     MaxBitDepth="16bit" QuantumEfficiency="0.8" ElectronicConversionFactor="0.5"
                     ReadOutNoise="1.2" DetectorNoiseModel="Poisson" DarkCurrentRate="0.001">
      <Map/>
    </GenericDetector>
  </Instrument>
  <Image ID="Image:0" Name="img">
    <InstrumentRef ID="Instrument:0"/>
    <ExperimentRef ID="Experiment:0"/>
    <SampleRef ID="Sample:0"/>
    <AcquisitionSoftwareRef ID="Software:0"/>
    <MicroscopeStandSettings ID="MicroscopeStand:0"/>
    <ObjectiveSettings ID="Objective:0"/>
    <Pixels ID="Pixels:0" DimensionOrder="XYZCT" SizeX="64" SizeY="64" SizeZ="1" SizeC="1"
            SizeT="1" PhysicalSizeX="0.1" PhysicalSizeY="0.1" PixelType="uint16">
      <Plane ID="Plane:0" TheZ="0" TheT="0" TheC="0" Timestamp="0"/>
      <Channel ID="Channel:0" Name="GFP" IlluminationType="Wide-field_Fluorescence"
               ContrastMethod="Fluorescence">
        <Fluorophore ID="Fluorophore:0" Manufacturer="Acme" Model="EGFP" CatalogNumber="G-1"/>
        <LightPath ID="LightPath:0">
          <LightSourceSettings ID="LightSource:0" IlluminationPowerSettings="10"/>
          <GenericDetectorSettings ID="Detector:0" EffectiveBitDepth="16bit" AnalogGain="1"
                                   AmplificationGain="1"/>
        </LightPath>
      </Channel>
      <AdditionalDimensionMap ID="AdditionalDimensionMap:0" Size="1" Type="Other" Order="0"
                              Unit="none">
        <TheAdditionalDimension ID="TheAdditionalDimension:0" TheAdditionalDimensionIndex="1"/>
        <Description>none</Description>
        <AnnotationRef ID="Annotation:0"/>
      </AdditionalDimensionMap>
      <MetadataOnly/>
    </Pixels>
  </Image>
  <StructuredAnnotations>
    <CommentAnnotation ID="Annotation:0" Namespace="https://example.org/r">
      <Value>placeholder</Value>
    </CommentAnnotation>
  </StructuredAnnotations>
</OME>
"""

OBJECTIVE = "/OME/Instrument[1]/Objective[1]"
PIXELS = "/OME/Image[1]/Pixels[1]"


def edit(old: str, new: str, document: str = VALID) -> str:
    """``document`` with the single occurrence of ``old`` replaced by ``new``."""
    assert document.count(old) == 1, old
    return document.replace(old, new)


def without_element(tag: str, document: str = VALID) -> str:
    """``document`` without the (single) ``tag`` element and its content."""
    pattern = rf"\s*<{tag}\b.*?</{tag}>" if f"</{tag}>" in document else rf"\s*<{tag}\b[^>]*/>"
    result, count = re.subn(pattern, "", document, count=1, flags=re.S)
    assert count == 1, tag
    return result


def error_attributes(result: ValidationResult) -> set[tuple[str, str | None]]:
    """(path, attribute) of every error."""
    return {(error.path, error.attribute) for error in result.errors}


@pytest.mark.parametrize("tier", [1, 2, 3])
def test_valid_minimal_document_passes(tier: int) -> None:
    result = validate_nbo(VALID, tier)
    assert result.ok, result.errors
    assert result.deferred == ()


def test_accepts_elements_and_trees_without_modifying_them() -> None:
    root = ET.fromstring(without_element("AdditionalDimensionMap"))
    before = ET.tostring(root)
    assert validate_nbo(root, 1).ok
    assert validate_nbo(ET.ElementTree(root), 1).ok
    assert ET.tostring(root) == before


def test_an_lxml_record_inside_a_larger_document_is_graded_as_its_text() -> None:
    # validate reads the record out of the file's OME-XML with lxml: nested under another
    # element, with its namespace declared there, it is graded as the record on its own is
    from lxml import etree  # type: ignore[import-untyped]

    document = edit(' ImageDistance="180"', "")
    body = document[document.index("<OME"):].replace(f' xmlns="{NBO_NAMESPACE}"', "", 1)
    wrapped = f'<Outer xmlns="{NBO_NAMESPACE}"><Value>{body}tail</Value></Outer>'
    outer = etree.fromstring(wrapped.encode())
    record = outer[0][0]
    before = etree.tostring(outer)
    result = validate_nbo(record, 1)
    assert result.ok, result.errors
    assert [(d.path, d.attribute) for d in result.deferred] == [(OBJECTIVE, "ImageDistance")]
    assert error_attributes(validate_nbo(record, 3)) == {(OBJECTIVE, "ImageDistance")}
    assert etree.tostring(outer) == before


def test_missing_tier3_attribute_is_deferred_at_tier1() -> None:
    # ImageDistance: Objective, Tier 3, "R" in the workbook; required by the XSD.
    document = edit(' ImageDistance="180"', "")
    result = validate_nbo(document, 1)
    assert result.ok, result.errors
    assert [(d.path, d.attribute, d.tier, d.requirement) for d in result.deferred] == [
        (OBJECTIVE, "ImageDistance", 3, "MUST")
    ]
    assert validate_nbo(document, 2).ok
    at_tier3 = validate_nbo(document, 3)
    assert not at_tier3.ok
    assert error_attributes(at_tier3) == {(OBJECTIVE, "ImageDistance")}


def test_missing_tier1_attribute_fails() -> None:
    result = validate_nbo(edit(' LensNA="1.4"', ""), 1)
    assert not result.ok
    assert error_attributes(result) == {(OBJECTIVE, "LensNA")}
    assert "missing required attribute" in result.errors[0].message
    assert result.deferred == ()


def test_wrong_enumeration_value_names_allowed_values() -> None:
    result = validate_nbo(edit('Correction="PlanApo"', 'Correction="SuperPlan"'), 1)
    assert not result.ok
    (error,) = result.errors
    assert (error.path, error.attribute) == (OBJECTIVE, "Correction")
    assert "SuperPlan" in error.message
    assert "'PlanApo'" in error.message and "'Achromat'" in error.message


def test_malformed_type_fails() -> None:
    result = validate_nbo(edit('LensNA="1.4"', 'LensNA="high"'), 3)
    assert not result.ok
    assert error_attributes(result) == {(OBJECTIVE, "LensNA")}


def test_missing_tier2_child_is_deferred_and_later_content_still_checked() -> None:
    # AdditionalDimensionMap: Basic, Tier 2 in the workbook; the XSD requires one per Pixels.
    document = without_element("AdditionalDimensionMap")
    result = validate_nbo(document, 1)
    assert result.ok, result.errors
    assert [(d.path, d.child, d.tier) for d in result.deferred] == [
        (PIXELS, "AdditionalDimensionMap", 2)
    ]
    assert not validate_nbo(document, 2).ok
    broken = edit("<MetadataOnly/>", "<MetadataOnly/><Unknown/>", document)
    errors = validate_nbo(broken, 1).errors
    assert [error.path for error in errors] == [PIXELS]
    assert "Unknown" in errors[0].message


def test_missing_tier1_child_fails() -> None:
    # Image/ObjectiveSettings: Core, Tier 1, cardinality 1.
    result = validate_nbo(without_element("ObjectiveSettings"), 1)
    assert not result.ok
    assert [error.path for error in result.errors] == ["/OME/Image[1]"]
    assert "ObjectiveSettings" in result.errors[0].message


def test_missing_unit_attribute_follows_its_value_attribute() -> None:
    # The XSD requires TuningAccuracy and TuningAccuracyUnit on acousto-optical devices;
    # the workbook lists TuningAccuracy only (Adv-Confoc row 49: Tier 3.0, "R").
    device = (
        '<AcoustoOpticalTuneableFilter ID="AcoustoOpticalDevice:0" Manufacturer="Acme"'
        ' Model="T-1" CatalogNumber="T-1" Polarization="Planar" Bragg="true"/>'
    )
    document = edit("</Instrument>", device + "</Instrument>")
    result = validate_nbo(document, 1)
    assert result.ok, result.errors
    assert {(d.attribute, d.tier) for d in result.deferred} == {
        ("TuningAccuracy", 3),
        ("TuningAccuracyUnit", 3),
    }
    assert not validate_nbo(document, 3).ok


def test_not_well_formed_xml_is_an_error() -> None:
    result = validate_nbo("<OME", 1)
    assert not result.ok
    assert "not well-formed" in result.errors[0].message


def test_root_must_be_nbo_ome() -> None:
    result = validate_nbo('<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"/>', 1)
    assert not result.ok
    assert NBO_NAMESPACE in result.errors[0].message


def test_bad_tier_is_rejected() -> None:
    with pytest.raises(ValueError, match="tier"):
        validate_nbo(VALID, 0)


def test_attribute_compliance_lists_present_and_missing() -> None:
    document = edit(' ImageDistance="180"', "")
    by_path = {entry.path: entry for entry in attribute_compliance(document, 3)}
    objective = by_path[OBJECTIVE]
    assert objective.element == "Objective"
    # Iris is Tier 2 "R" in the workbook (row 234) although the XSD makes it optional.
    assert [status.name for status in objective.missing_must] == ["ImageDistance", "Iris"]
    statuses = {status.name: status for status in objective.attributes}
    assert statuses["LensNA"].present and statuses["LensNA"].requirement == "MUST"
    assert not statuses["LotNumber"].present and statuses["LotNumber"].requirement == "SHOULD"
    tier1 = {entry.path: entry for entry in attribute_compliance(document, 1)}
    assert "ImageDistance" not in {status.name for status in tier1[OBJECTIVE].attributes}
    basic_only = attribute_compliance(document, 1, extensions=["basic"])
    assert OBJECTIVE not in {entry.path for entry in basic_only}


def _long_run(planes: int, odd: dict[int, str]) -> str:
    """VALID with ``planes`` Planes (one per time point), Plane ``k`` written as ``odd[k]``
    where given (``{k}`` there stands for its index)."""
    rows = [odd.get(k, '<Plane ID="Plane:{k}" TheZ="0" TheT="{k}" TheC="0" Timestamp="{k}"/>')
            .format(k=k) for k in range(planes)]
    document = edit('<Plane ID="Plane:0" TheZ="0" TheT="0" TheC="0" Timestamp="0"/>',
                    "".join(rows))
    return edit('SizeT="1"', f'SizeT="{planes}"', document)


def test_a_long_runs_planes_are_checked_as_closely_as_a_short_runs(monkeypatch) -> None:
    # a record of many Planes is validated in two parts (the Planes against the XSD without
    # its identity constraints): what libxml2 finds must not depend on it
    from lxml import etree  # type: ignore[import-untyped]

    from nbo_recorder.nbo import schema

    document = _long_run(600, {
        150: '<Plane ID="Plane:{k}" TheZ="-1" TheT="{k}" TheC="0"/>',  # not a count
        200: '<Plane ID="Plane:{k}" TheZ="0" TheC="0"/>',  # no TheT
        250: '<Plane ID="Plane:{k}" TheZ="0" TheT="{k}" TheC="0" ExposureTime="1" '
             'ExposureTimeUnit="parsec"/>',
        300: '<Plane ID="Plane:{k}" TheZ="0" TheT="{k}" TheC="0">'
             '<AnnotationRef ID="Annotation:nowhere"/></Plane>',  # refers to nothing
        310: '<Plane ID="Plane:{k}" TheZ="0" TheT="{k}" TheC="0" Colour="red"/>',
    })
    document = edit('<Objective ID="Objective:0"', '<Objective ID="Objective:0" Manufacturer="B" '
                    'Model="B" CatalogNumber="B" Magnification="4" LensNA="0.1" '
                    'Correction="Achromat" ImmersionType="Air" InfinityCorrected="true" '
                    'ContrastModulation="None" DIC="false"/><Objective ID="Objective:0"',
                    document)  # an ID used twice
    at = {k: f"{PIXELS}/Plane[{k + 1}]" for k in (150, 200, 250, 300, 310)}
    for tier in (1, 3):
        parts = validate_nbo(document, tier)
        monkeypatch.setattr(schema, "SET_ASIDE_MIN_PLANES", 10**9)
        whole = validate_nbo(document, tier)
        monkeypatch.undo()
        assert parts == whole
        errors = {(e.path, e.attribute): e.message for e in whole.errors}
        assert {(at[150], "TheZ"), (at[200], "TheT"), (at[250], "ExposureTimeUnit"),
                (at[310], "Colour")} <= set(errors), errors
        assert any("Annotation:nowhere" in m for m in errors.values()), errors
        assert any("Objective:0" in m and "Duplicate" in m for m in errors.values()), errors
    # validated in place, the record keeps its Planes, in order
    root = etree.fromstring(document.encode())
    before = etree.tostring(root)
    validate_nbo(root, 1, in_place=True)
    assert etree.tostring(root) == before


def test_no_identity_constraint_of_the_xsd_selects_a_plane() -> None:
    # what lets a long run's childless Planes be validated without the identity
    # constraints (schema._PlanesAside): none of them selects a Plane or reaches into one
    # except through AnnotationRef children, and a Plane with children is never set aside
    from lxml import etree

    from nbo_recorder.nbo import XSD_PATH

    xs = "{http://www.w3.org/2001/XMLSchema}"
    selectors = [s.get("xpath") for kind in ("key", "keyref", "unique")
                 for c in etree.parse(str(XSD_PATH)).iter(f"{xs}{kind}")
                 for s in c.iter(f"{xs}selector")]
    assert len(selectors) == 72
    for xpath in selectors:
        assert "Plane" not in xpath, xpath
        assert "//" not in xpath or xpath == ".//OME:AnnotationRef", xpath


def test_the_schema_compiled_ahead_is_the_one_validation_uses(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """``validate`` starts compiling the XSD in a thread; the schema it then validates with is
    that thread's, and a compilation that fails there is raised by the caller's own call
    (nothing printed by the thread)."""
    from lxml import etree

    from nbo_recorder.nbo import xsd_index

    monkeypatch.setattr(xsd_index, "_compiled_schema", functools.cache(
        xsd_index._compiled_schema.__wrapped__))
    thread = xsd_index.start_compiling_schema()
    assert thread is not None
    thread.join()
    compiled = xsd_index._compiled_schema.cache_info().currsize
    assert compiled == 1
    assert xsd_index.start_compiling_schema() is None
    ahead = xsd_index.xsd_schema()
    assert ahead is xsd_index.xsd_schema()
    nbo = etree.fromstring(VALID.encode())
    assert ahead.validate(nbo), ahead.error_log

    broken = tmp_path / "broken.xsd"
    broken.write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
                      '<xs:element name="a" type="nowhere"/></xs:schema>')
    monkeypatch.setattr(xsd_index, "XSD_PATH", broken)
    monkeypatch.setattr(xsd_index, "_compiled_schema", functools.cache(
        xsd_index._compiled_schema.__wrapped__))
    thread = xsd_index.start_compiling_schema()
    assert thread is not None
    thread.join()
    assert capfd.readouterr().err == ""
    with pytest.raises(etree.XMLSchemaParseError, match="nowhere"):
        xsd_index.xsd_schema()
