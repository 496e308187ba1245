"""Study files and the fluorophore table: user facts stated once, checked before the first frame.

Ground truth comes from the table and example files read with plain YAML, and from the NBO XSD
read with xmlschema, never from the module under test; the recording test reads the embedded
NBO record back from the written file.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import xmlschema
import yaml

from nbo_recorder.judge.reader import nbo_record, read_ome_xml
from nbo_recorder.nbo import XSD_PATH
from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.load import load_profile
from nbo_recorder.profile.study import (
    TABLE_PATH,
    StudyError,
    fluorophores,
    load_study,
    lookup_fluorophore,
    read_table,
    study_for_run,
)
from tests.helpers import DEMO_PROFILE, REPO

EXAMPLE = REPO / "hardware_profiles" / "example_study.yaml"
SPINNING_DISK = REPO / "hardware_profiles" / "sim_spinning_disk.yaml"
TABLE = yaml.safe_load(TABLE_PATH.read_text(encoding="utf-8"))["fluorophores"]


@pytest.fixture(scope="module")
def xsd() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD_PATH))


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_every_table_row_has_a_source_peaks_in_order_and_an_nbo_type(xsd):
    types = set(xsd.types["FluorescentLabelType"].enumeration)
    for row in TABLE:
        assert re.search(r"https?://\S+", row["source"]), row["name"]
        assert 300 < row["excitation_nm"] < row["emission_nm"] < 800, row["name"]
        assert row.get("type") is None or row["type"] in types, row["name"]
        found = lookup_fluorophore(row["name"])
        assert found is not None
        assert (found.excitation_nm, found.emission_nm) == (row["excitation_nm"],
                                                            row["emission_nm"])


def test_lookup_ignores_case_spaces_and_knows_aliases():
    assert lookup_fluorophore("alexa fluor 488") is lookup_fluorophore("AF488")
    assert lookup_fluorophore("egfp") is lookup_fluorophore("EGFP")
    assert lookup_fluorophore("not-a-dye") is None


def test_a_table_row_without_source_is_refused(tmp_path):
    path = tmp_path / "table.yaml"
    path.write_text(yaml.safe_dump({"fluorophores": [
        {"name": "X", "excitation_nm": 400, "emission_nm": 450, "source": " "}]}))
    with pytest.raises(StudyError, match=r"table\.yaml: fluorophores\[0\]: no source"):
        read_table(path)


def test_example_study_is_valid_nbo_and_fills_the_fluorophore_must_attributes():
    profile = load_profile(SPINNING_DISK)
    metadata, gaps = study_for_run(EXAMPLE, profile, None, ["488-GFP", "561-mCherry", "BF-LED"])
    assert gaps == []
    given = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    nbo = metadata["nbo"]
    assert nbo["Sample"] == given["Sample"]
    gfp = nbo["Fluorophore"]["488-GFP"]
    egfp = next(r for r in TABLE if r["name"] == "EGFP")
    assert (gfp["ExcitationWavelength"], gfp["EmissionWavelength"]) == (
        egfp["excitation_nm"], egfp["emission_nm"])
    assert gfp["Type"] == egfp["type"]
    assert gfp["Manufacturer"] == given["Fluorophore"]["488-GFP"]["Manufacturer"]


def test_unknown_key_names_file_key_and_the_allowed_keys(tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["Sample"]["Organsim"] = "Homo sapiens"
    path = _write(tmp_path, data)
    with pytest.raises(StudyError) as err:
        load_study(path)
    line = next(x for x in str(err.value).splitlines() if "Organsim" in x)
    assert line.strip().startswith(f"{path}: Sample.Organsim: unknown key")
    assert "Organism" in line and "CoverGlass" in line


def test_values_outside_nbo_vocabularies_list_the_allowed_values(tmp_path, xsd):
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    bad = copy.deepcopy(data)
    bad["Experiment"]["Purpose"] = "Fun"
    bad["Sample"]["CoverGlass"]["CoverGlassNo"] = "1.5"
    bad["Sample"]["MountingMedium"]["RefractiveIndex"] = "high"
    bad["Mystery"] = {}
    with pytest.raises(StudyError) as err:
        load_study(_write(tmp_path, bad))
    text = str(err.value)
    for purpose in xsd.types["ExperimentPurpose"].enumeration:
        assert repr(purpose) in text
    assert "Sample.CoverGlass.CoverGlassNo: '1.5'" in text
    assert "'#1.5H (0.17 -0.18)'" in text
    assert "Sample.MountingMedium.RefractiveIndex" in text
    assert "Mystery: unknown key; allowed: Experiment, Experimenter, Sample, Fluorophore" in text
    assert isinstance(err.value, ProfileError)  # the CLI's exit-2 error


def test_sequence_metadata_is_checked_and_wins_over_the_study_file():
    profile = load_profile(SPINNING_DISK)
    own = {"nbo": {"Sample": {"Name": "from the sequence"}}}
    metadata, _ = study_for_run(EXAMPLE, profile, own)
    assert metadata["nbo"]["Sample"]["Name"] == "from the sequence"
    assert metadata["nbo"]["Sample"]["Organism"] == "Homo sapiens"
    with pytest.raises(StudyError, match=r"metadata\.nbo: Sample\.LiveSample"):
        study_for_run(None, profile, {"nbo": {"Sample": {"LiveSample": "perhaps"}}})


def test_fluorophore_not_in_table_without_peaks_is_named_with_peaks_it_is_not():
    profile = load_profile(DEMO_PROFILE)
    named = {ch for ch, info in profile.channels.items() if info.fluor
             and not any(info.fluor.casefold() in (r["name"].casefold(),
                                                  *(a.casefold() for a in r.get("aliases", ())))
                         for r in TABLE)}
    assert named  # mm_demo names FITC and Rhodamine, which the table lacks
    _, gaps = fluorophores({}, profile)
    assert {re.match(r"channel '([^']+)'", g)[1] for g in gaps} == named  # type: ignore[index]
    stated = {"Fluorophore": {ch: {"ExcitationWavelength": 500, "EmissionWavelength": 520}
                              for ch in named}}
    filled, gaps = fluorophores(stated, profile)
    assert gaps == []
    assert all(filled[ch]["Name"] == profile.channels[ch].fluor for ch in named)


@pytest.fixture(scope="module")
def recorded_with_study(tmp_path_factory) -> Path:
    """The spinning-disk demo recorded with the example study (what ``--study`` will do)."""
    from nbo_recorder.cli.acquisition import (
        DEMO_RIGS,
        bundled_rig_config,
        demo_sequence,
        record,
    )

    sequence = demo_sequence("spinning-disk")
    metadata, gaps = study_for_run(EXAMPLE, load_profile(SPINNING_DISK), sequence.metadata,
                                   [c.config for c in sequence.channels])
    assert gaps == []
    out = tmp_path_factory.mktemp("study") / "study.ome.tif"
    record(bundled_rig_config(DEMO_RIGS["spinning-disk"][0]), SPINNING_DISK,
           sequence.model_copy(update={"metadata": metadata}), out, overwrite=True)
    return out


def test_recorded_file_carries_the_study_and_table_peaks(recorded_with_study):
    record = nbo_record(read_ome_xml(recorded_with_study))
    assert record is not None
    ns = {"n": record.tag.split("}")[0][1:]} if record.tag.startswith("{") else {}
    prefix = "n:" if ns else ""
    given = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    sample = record.find(f".//{prefix}Sample", ns)
    assert sample is not None and sample.get("Organism") == given["Sample"]["Organism"]
    assert record.find(f".//{prefix}Experiment", ns).get("Purpose") == "Localization"
    mcherry = next(r for r in TABLE if r["name"] == "mCherry")
    by_channel = {ch.get("Name"): ch.find(f"{prefix}Fluorophore", ns)
                  for ch in record.iterfind(f".//{prefix}Channel", ns)}
    fluor = by_channel["561-mCherry"]
    assert float(fluor.get("ExcitationWavelength")) == mcherry["excitation_nm"]
    assert float(fluor.get("EmissionWavelength")) == mcherry["emission_nm"]
    assert fluor.get("Type") == mcherry["type"]


def test_one_study_file_serves_acquire_and_deposit(tmp_path: Path) -> None:
    """The ``rembi:`` block ``deposit`` reads is left alone by an acquisition's study check,
    and nothing of it reaches what the acquisition records; an unknown key still fails."""
    source = yaml.safe_load((REPO / "hardware_profiles" / "example_study.yaml").read_text())
    source["rembi"] = {"title": "Mitochondria in fixed HeLa cells", "keywords": ["HeLa"]}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(source), encoding="utf-8")
    loaded = load_study(path)
    assert "rembi" not in loaded
    assert loaded["Sample"] == source["Sample"]
    source["Rembi"] = {"title": "a typo"}
    path.write_text(yaml.safe_dump(source), encoding="utf-8")
    with pytest.raises(ProfileError, match="Rembi: unknown key"):
        load_study(path)
