"""Shared test helpers: reading files back as a user would, Bio-Formats, and test rigs' facts.

Fixtures live in ``conftest.py``; plain functions and constants that several test modules use
live here, so no test module imports another.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from ome_types import OME

from nbo_recorder.judge.reader import PlaneSettings, annotation_values, plane_settings, read
from nbo_recorder.profile.load import parse_profile
from nbo_recorder.profile.model import Profile

REPO = Path(__file__).resolve().parent.parent
DEMO_PROFILE = REPO / "hardware_profiles" / "mm_demo.yaml"


def annotations(ome: OME) -> dict[str, dict[str, str]]:
    """Per MapAnnotation id, its key -> value pairs, as the one reader returns them."""
    return annotation_values(ome)


def load(path: Path) -> tuple[str, OME]:
    """The OME-XML text and OME model of a written file, read through the one reader."""
    recorded = read(path)
    return recorded.xml, recorded.ome


def planes(ome: OME) -> list[PlaneSettings]:
    """Per plane: channel-level settings overlaid with the plane's own annotation."""
    return list(plane_settings(ome))


def bioformats_jar() -> Path:
    jar = Path(os.environ.get("NBO_BIOFORMATS_JAR", REPO / ".ci/cache/bioformats_package.jar"))
    if not jar.is_file() or shutil.which("java") is None:
        if os.environ.get("CI"):
            pytest.fail(f"Bio-Formats is required in CI: jar {jar} or java missing (.ci/run)")
        pytest.skip("Bio-Formats jar or java not installed (bash .ci/run installs them)")
    return jar


def bioformats_ome_xml(path: Path) -> ET.Element:
    """What Bio-Formats' ImageInfo re-serialises from the file (offline, no pixels)."""
    result = subprocess.run(
        ["java", "-cp", str(bioformats_jar()), "loci.formats.tools.ImageInfo", "-nopix",
         "-omexml-only", str(path)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    text = result.stdout
    return ET.fromstring(text[text.index("<OME"):text.rindex("</OME>") + len("</OME>")])


_FILTER = {"CoatingMethod": "HardCoated", "LightPathLocation": "Infinity space"}
_OBJECTIVE = {"InfinityCorrected": True, "ContrastModulation": "None", "DIC": False}


def _dichroic(catalog: str, kind: str, centre: float, width: float) -> dict[str, Any]:
    return {"CatalogNumber": catalog, "Type": kind, **_FILTER,
            "TransmittanceRange[0].Wavelength": centre,
            "TransmittanceRange[0].FWHMBandwidth": width}


#: NBO tier-1 facts mm_demo.yaml does not state, per component id (test fixtures).
DEMO_FACTS: dict[str, dict[str, Any]] = {
    "obj-nikon-10x-sfluor": _OBJECTIVE,
    "obj-nikon-20x-pf-elwd": {**_OBJECTIVE, "CatalogNumber": "MRH08230"},
    "obj-nikon-40x-pf-elwd": {**_OBJECTIVE, "CatalogNumber": "MRH08430"},
    "ex-chroma-d360-40x": {**_FILTER, "CatalogNumber": "D360/40x"},
    "ex-chroma-hq480-40x": {**_FILTER, "CatalogNumber": "HQ480/40x"},
    "ex-chroma-hq570": {**_FILTER, "CatalogNumber": "HQ570",
                        "TransmittanceRange[0].FWHMBandwidth": 20},
    "ex-chroma-hq620-60x": {**_FILTER, "CatalogNumber": "HQ620/60x"},
    "em-chroma-hq620": {**_FILTER, "CatalogNumber": "HQ620",
                        "TransmittanceRange[0].FWHMBandwidth": 60},
    "em-chroma-d460-50m": {**_FILTER, "CatalogNumber": "D460/50m"},
    "em-chroma-hq535-50m": {**_FILTER, "CatalogNumber": "HQ535/50m"},
    "em-chroma-hq700-75m": {**_FILTER, "CatalogNumber": "HQ700/75m"},
    "em-chroma-89402m": {**_FILTER, "TransmittanceRange[0].Wavelength": 535,
                         "TransmittanceRange[0].FWHMBandwidth": 30},
    "dc-chroma-400dclp": _dichroic("400DCLP", "LongPass", 500, 200),
    "dc-chroma-q505lp": _dichroic("Q505LP", "LongPass", 605, 200),
    "dc-chroma-q585lp": _dichroic("Q585LP", "LongPass", 685, 200),
    "dc-chroma-89402bs": _dichroic("89402bs", "MultiPass", 535, 30),
    "fs-chroma-89402": {"CatalogNumber": "89402"},
    "led-demo": {"CatalogNumber": "DStateDevice",
                 "LightSourceSettings.IlluminationPowerSettings": 10,
                 **{f"LEDModule[{i}].IlluminationPower": 10 for i in range(4)}},
    "white-light-demo": {"CatalogNumber": "DShutter",
                         "LightSourceSettings.IlluminationPowerSettings": 5},
    "cam-demo": {"CatalogNumber": "DCam", "GenericDetectorSettings.AmplificationGain": 1},
    "stage-z-demo": {"CatalogNumber": "DStage"},
    "stage-xy-demo": {"CatalogNumber": "DXYStage", "Encoded": "Linear", "Motorized": True,
                      "ZRepeatability": 100, "XYRepeatability": 100},
}
DEMO_STAND = {"type": "Inverted", "extra": {"CatalogNumber": "MMConfig_demo", "Type": "Compound"}}

_FLUOROPHORE = {"Manufacturer": "Thermo Fisher", "Model": "DAPI dilactate",
                "CatalogNumber": "D3571", "Type": "Nucleic Acid_Organic dye"}
#: What the experimenter states in the sequence metadata (``metadata: {nbo: ...}``).
STUDY = {"nbo": {
    "Experiment": {"Purpose": "Localization", "LabellingMethod": "Immunofluorescence"},
    "Sample": {"Name": "HeLa fixed", "BiologicalOrigin": True, "SampleType": "Cell",
               "LiveSample": False, "Organism": "Homo sapiens"},
    "Experimenter": {"FirstName": "Ada", "LastName": "Lovelace"},
    "Fluorophore": {name: _FLUOROPHORE for name in ("DAPI", "FITC", "GFP-50", "GFP-25")},
}}


def demo_profile(facts: bool = True) -> Profile:
    """mm_demo.yaml, optionally completed with :data:`DEMO_FACTS` and the stand's type."""
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    if facts:
        data["microscope"].update(DEMO_STAND)
        for comp in data["components"]:
            comp["extra"] = DEMO_FACTS.get(comp["id"])
    return parse_profile(data, "mm_demo.yaml + NBO facts")


def snapped(loops: int) -> dict[str, float]:
    """A time plan of ``loops`` frames that the engine snaps one by one, not as one burst.

    pymmcore-plus ends a camera sequence when it finds the buffer empty and then the camera
    stopped; a last frame that lands between those two reads is never popped (the file then
    says "1 of N frames never reached the recorder"). On a loaded machine that happens now
    and then. Tests about bursts use bursts and allow for it; tests about anything else use
    this plan, whose frames are 1 ms apart and so are never sequenced.
    """
    return {"interval": 0.001, "loops": loops}


def py_profile() -> Profile:
    """mm_demo.yaml plus the Python devices of the ``py_core`` fixture (a wheel and a laser)."""
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    data["components"] += [
        {"kind": "filter", "id": "py-hq535", "model": "HQ535/50m", "filter_type": "BandPass",
         "transmittance_range": {"cut_in_nm": 510, "cut_out_nm": 560}},
        {"kind": "filter", "id": "py-hq700", "model": "HQ700/75m", "filter_type": "BandPass",
         "transmittance_range": {"cut_in_nm": 662.5, "cut_out_nm": 737.5}},
        {"kind": "laser", "id": "py-laser", "model": "Py laser", "wavelength_nm": 488},
    ]
    data["bindings"] += [
        {"device": "PyWheel", "role": "emission_filter",
         "labels": {"Py-HQ535": "py-hq535", "Py-HQ700": "py-hq700"}},
        {"device": "PyLaser", "role": "light_source", "component": "py-laser",
         "settings": {"power": {"property": "PowerW", "unit": "W"}}},
    ]
    return parse_profile(data, "test-profile")


#: ImageInfo over many files in one JVM (its start-up costs more than reading a small file).
#: An argument is FILE|SERIES: ImageInfo reads the pixels of one series per call. Once it
#: has read them it opens its viewer, which a headless JVM refuses: that is a success.
BATCH_JAVA = """
import loci.formats.tools.ImageInfo;

public class Batch {
  public static void main(String[] args) {
    for (String arg : args) {
      String file = arg.substring(0, arg.lastIndexOf('|'));
      int series = Integer.parseInt(arg.substring(arg.lastIndexOf('|') + 1));
      System.out.println("@@@ BEGIN " + file);
      for (int s = 0; s < series; s++) {
        System.out.println("@@@ SERIES " + s);
        boolean ok;
        try {
          ok = new ImageInfo().testRead(new String[] {"-no-upgrade", "-series", "" + s, file});
        } catch (java.awt.HeadlessException e) {
          ok = true;
        } catch (Throwable e) {
          System.out.println("@@@ ERROR " + e.toString().replace('\\n', ' '));
          ok = false;
        }
        System.out.println("@@@ END " + ok);
      }
    }
  }
}
"""


def bioformats_read_all(jar: Path, files: list[tuple[Path, int]],
                        work: Path) -> dict[str, dict[str, Any]]:
    """Per file (with its number of Images): per series whether ImageInfo read all its
    planes, the first error, the series count and each series' SizeZ/C/T it reports."""
    source = work / "Batch.java"
    source.write_text(BATCH_JAVA)
    proc = subprocess.run(
        ["java", "-Djava.awt.headless=true", "-cp", str(jar), str(source),
         *(f"{path}|{series}" for path, series in files)],
        capture_output=True, text=True, timeout=600)
    results: dict[str, dict[str, Any]] = {}
    entry: dict[str, Any] = {}
    series = -1
    for line in proc.stdout.splitlines():
        if line.startswith("@@@ BEGIN "):
            entry = results[line[len("@@@ BEGIN "):]] = {
                "verdicts": [], "error": None, "series": None, "sizes": [], "read": set()}
        elif line.startswith("@@@ SERIES "):
            series = int(line.split()[-1])
        elif line.startswith("@@@ ERROR "):
            entry["error"] = entry["error"] or line[len("@@@ ERROR "):]
        elif line.startswith("@@@ END "):
            entry["verdicts"].append(line.endswith("true") and series in entry["read"])
        elif match := re.search(r"Reading (?:series #(\d+) )?pixel data", line):
            # ImageInfo reads the series it was asked for, all its planes, then says [done]
            entry["reading"] = int(match[1] or 0)
        elif "[done]" in line and entry.get("reading") == series:
            entry["read"].add(series)
        elif series == 0 and (match := re.search(r"Series count = (\d+)", line)):
            entry["series"] = int(match[1])
        elif series == 0 and (match := re.search(r"\bSize([ZCT]) = (\d+)", line)):
            if match[1] == "Z":
                entry["sizes"].append({})
            entry["sizes"][-1][match[1]] = int(match[2])
    return results


RO_CRATE_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
NBO_NS = "http://www.NamespaceTest.org/Schemas/NBO/2020-11"


def ro_crate_context() -> dict[str, Any]:
    """The RO-Crate JSON-LD context as the rocrate package ships it (no network)."""
    import json

    import rocrate

    shipped = Path(rocrate.__file__).parent / "data" / "ro-crate.jsonld"
    return {"@context": json.loads(shipped.read_text(encoding="utf-8"))["@context"]}


def crate_graph(metadata: dict[str, Any]) -> Any:
    """An RO-Crate's metadata expanded by pyld (offline loader: the shipped context only)
    and parsed by rdflib."""
    import json

    import rdflib
    from pyld import jsonld

    document = ro_crate_context()

    def loader(url: str, options: object = None) -> dict[str, Any]:
        if url.rstrip("/") != RO_CRATE_CONTEXT:
            raise jsonld.JsonLdError(f"offline: {url}", "jsonld.LoadDocumentError",
                                     code="loading document failed")
        return {"contextUrl": None, "documentUrl": url, "document": document}

    expanded = jsonld.expand(metadata, {"documentLoader": loader,
                                        "base": "file:///crate/ro-crate-metadata.json"})
    assert expanded, "pyld expanded nothing"
    return rdflib.Graph().parse(data=json.dumps(expanded), format="json-ld")


#: SPARQL over a deposit's graph: the names of the files whose images used the objective
#: whose NBO Model is bound to ``?wanted``
OBJECTIVE_QUERY = f"""
PREFIX nbo: <{NBO_NS}#>
PREFIX schema: <http://schema.org/>
SELECT DISTINCT ?name WHERE {{
  ?file nbo:Image/nbo:ObjectiveSettings/nbo:ID/nbo:Model ?model ;
        schema:name ?name .
  FILTER (?model = ?wanted)
}}
"""
