"""``nbo-recorder deposit``: the RO-Crate of the two demo outputs, checked by tools we did not
write (roc-validator, pyld, rdflib), and the REMBI sections checked against the files.

The network is never used: pyld gets a document loader and roc-validator an HTTP cache that
serve the RO-Crate context from the copy the ``rocrate`` package ships.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from nbo_recorder.cli.main import main
from tests.helpers import OBJECTIVE_QUERY, RO_CRATE_CONTEXT, crate_graph, ro_crate_context

NBO = "http://www.NamespaceTest.org/Schemas/NBO/2020-11"

STUDY = """\
schema_version: 1
Experiment:
  Name: Example - mitochondria and nuclei in fixed cells
rembi:
  title: Two demo acquisitions
  description: the widefield and spinning-disk demo outputs of nbo-recorder
  authors:
    - {name: Ada Example, affiliation: Example Imaging Facility}
  license: https://spdx.org/licenses/CC-BY-4.0
  keywords: [demo, microscopy]
  release_date: "2026-01-01"
  component_description: simulated rigs
"""


@pytest.fixture(scope="module")
def demos(demo_file: Any) -> dict[str, Path]:
    return {"widefield": demo_file(),
            "spinning-disk": demo_file("--rig", "spinning-disk", "--study",
                                       "hardware_profiles/example_study.yaml")}


@pytest.fixture(scope="module")
def crate(demos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crate")
    study = folder / "study.yaml"
    study.write_text(STUDY, encoding="utf-8")
    out = folder / "crate"
    assert main(["deposit", *map(str, demos.values()), "--study", str(study),
                 "--out", str(out)]) in (0, 1)
    return out


@pytest.fixture(scope="module")
def metadata(crate: Path) -> dict[str, Any]:
    return dict(json.loads((crate / "ro-crate-metadata.json").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def graph(metadata: dict[str, Any]) -> Any:
    """The crate expanded by pyld (offline loader) and parsed by rdflib."""
    return crate_graph(metadata)


def test_crate_passes_roc_validator_at_required_level(crate: Path, tmp_path: Path) -> None:
    """roc-validator, offline: its HTTP cache is filled from the shipped context first."""
    import requests
    from requests.adapters import BaseAdapter, HTTPAdapter
    from requests_cache import CachedSession
    from rocrate_validator import services
    from rocrate_validator.models import Severity, ValidationSettings
    from urllib3.response import HTTPResponse

    body = json.dumps(ro_crate_context()).encode()

    class Shipped(BaseAdapter):
        """Answers every request with the shipped RO-Crate context."""

        def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
            raw = HTTPResponse(body=io.BytesIO(body), status=200, preload_content=False,
                               headers={"Content-Type": "application/ld+json"})
            return HTTPAdapter().build_response(request, raw)

        def close(self) -> None:
            """Nothing to release."""

    cache = tmp_path / "http_cache"
    with CachedSession(cache_name=str(cache), backend="sqlite", expire_after=-1) as session:
        session.mount("https://", Shipped())
        assert session.get(RO_CRATE_CONTEXT).status_code == 200
    settings = ValidationSettings(
        rocrate_uri=str(crate), profile_identifier="ro-crate-1.1",
        requirement_severity=Severity.REQUIRED, offline=True, cache_path=str(cache))
    result = services.validate(settings)
    assert [issue.message for issue in result.get_issues()] == []
    assert result.passed()


def _objective_models(path: Path) -> set[str]:
    """The models of the objectives the file's images used, read with ome-types."""
    from ome_types import from_xml

    ome = from_xml(tifffile.TiffFile(path).pages.first.description)
    models = {o.id: o.model for i in ome.instruments for o in i.objectives}
    return {str(models[img.objective_settings.id]) for img in ome.images
            if img.objective_settings is not None}




def test_sparql_finds_the_files_that_used_each_objective(demos: dict[str, Path],
                                                         graph: Any) -> None:
    import rdflib

    used = {path.name: _objective_models(path) for path in demos.values()}
    models = set().union(*used.values())
    assert len(models) == 2  # the two demo rigs use different objectives
    for model in models:
        answer = {str(row[0]) for row in graph.query(
            OBJECTIVE_QUERY, initBindings={"wanted": rdflib.Literal(model)})}
        assert answer == {name for name, own in used.items() if model in own}


def test_every_file_is_listed_with_its_size_and_sha256(demos: dict[str, Path],
                                                       metadata: dict[str, Any],
                                                       crate: Path) -> None:
    entities = {e["@id"]: e for e in metadata["@graph"]}
    for path in demos.values():
        entity = entities[path.name]
        assert "File" in entity["@type"]
        assert int(entity["contentSize"]) == path.stat().st_size
        assert entity["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert (crate / path.name).read_bytes() == path.read_bytes()
    assert {p["@id"] for p in entities["./"]["hasPart"]} >= {p.name for p in demos.values()}


def test_acquisition_software_is_a_software_application(demos: dict[str, Path],
                                                        metadata: dict[str, Any]) -> None:
    """Each AcquisitionSoftware of the NBO record is a SoftwareApplication the file's
    CreateAction names as instrument, with the version the record states."""
    entities = {e["@id"]: e for e in metadata["@graph"]}
    for path in demos.values():
        root = ET.fromstring(tifffile.TiffFile(path).pages.first.description)
        stated = {(s.get("Name"), s.get("Version"))
                  for s in root.iter(f"{{{NBO}}}AcquisitionSoftware")}
        assert stated
        action = next(e for e in metadata["@graph"] if e["@type"] == "CreateAction"
                      and e["result"]["@id"] == path.name)
        named = [entities[i["@id"]] for i in action["instrument"]]
        apps = {(e["name"], e.get("softwareVersion")) for e in named
                if "SoftwareApplication" in e["@type"]}
        assert stated <= apps


def _section_values(metadata: dict[str, Any], section: str, file: str,
                    term: str) -> list[str]:
    kind = "rembi:" + section.replace(" ", "")
    node = next(e for e in metadata["@graph"] if e.get("@type") == kind
                and e.get("about", {}).get("@id") in (file, None))
    value = node.get(term, [])
    return value if isinstance(value, list) else [value]


def test_each_mapped_nbo_field_lands_in_the_rembi_section_the_table_names(
        demos: dict[str, Path], metadata: dict[str, Any]) -> None:
    from nbo_recorder.deposit import rembi

    path = demos["spinning-disk"]
    record = ET.fromstring(tifffile.TiffFile(path).pages.first.description)
    with rembi.TABLE_PATH.open(encoding="utf-8", newline="") as handle:
        table = list(csv.DictReader(handle))
    checked = 0
    for row in table:
        if not row["source"].startswith("nbo:"):
            continue
        element, _, attribute = row["source"][4:].partition("@")
        in_file = {el.get(attribute) for el in record.iter(f"{{{NBO}}}{element}")
                   if el.get(attribute) and not el.get(attribute, "").startswith("unknown (")}
        if not in_file:
            continue
        found = _section_values(metadata, row["section"], path.name, row["term"])
        assert any(re.search(rf"(^|\s){re.escape(v)}(\s|$)", f) for v in in_file
                   for f in found), (row, in_file, found)
        checked += 1
    assert checked >= 20


def test_missing_rembi_fields_are_listed_and_the_crate_is_still_written(
        demos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crate"
    assert main(["deposit", str(demos["spinning-disk"]), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    for field in ("Title", "Description", "Licence", "Keywords", "Release date"):
        assert f"REMBI Study / {field}" in printed
    assert "Organism" not in printed  # the example study states the organism
    metadata = json.loads((out / "ro-crate-metadata.json").read_text(encoding="utf-8"))
    study = next(e for e in metadata["@graph"] if e.get("@type") == "rembi:Study")
    assert "Title" in study["rembi:missing"]
    assert "rembi:title" not in study


def test_a_file_without_ome_metadata_is_refused_by_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((4, 4), np.uint8))
    out = tmp_path / "crate"
    assert main(["deposit", str(plain), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "plain.tif" in err and "Traceback" not in err
    assert not out.exists()


def test_unknown_rembi_key_is_refused(demos: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study.yaml"
    study.write_text("rembi:\n  titel: typo\n", encoding="utf-8")
    assert main(["deposit", str(demos["widefield"]), "--study", str(study),
                 "--out", str(tmp_path / "crate")]) == 2
    err = capsys.readouterr().err
    assert "titel" in err and "study.yaml" in err
