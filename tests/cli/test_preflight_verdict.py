"""``acquire --tier N`` lists before the first frame exactly what ``validate --tier N`` reports
of the file written right after it: the same failing rows (element, attribute, what it is
about, status, reason) and the same NBO XSD errors.

The ground truth is ``validate`` run on the written file, a separate command reading the file
back; the pre-flight only had the devices' state and the sequence. Both rigs, with and without
the experimenter's study, at tiers 1 and 2.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nbo_recorder.cli.acquisition import bundled_profile, bundled_rig_config
from nbo_recorder.cli.main import main
from tests.helpers import DEMO_PROFILE, STUDY, snapped

#: a table row: tier, requirement, extension, status..., then the element and attribute
_ROW = re.compile(r"^\s*\d+ (MUST|SHOULD)\s+\S+\s+(?P<status>\S+)")
_STUDY_FILE = Path(bundled_profile("example_study.yaml"))

RIGS = {
    "widefield": ("demo", DEMO_PROFILE, [
        {"config": "DAPI", "group": "Channel", "exposure": 5},
        {"config": "FITC", "group": "Channel", "exposure": 10}]),
    "spinning-disk": (bundled_rig_config("sim_spinning_disk.cfg"),
                      bundled_profile("sim_spinning_disk.yaml"), [
        {"config": "488-GFP", "group": "Channel", "exposure": 5},
        {"config": "561-mCherry", "group": "Channel", "exposure": 5},
        {"config": "BF-LED", "group": "Channel", "exposure": 5}]),
}


def _gaps(text: str) -> set[str]:
    """The failing rows and XSD errors of a printed table (a pre-flight's or validate's)."""
    gaps = set()
    in_errors = False
    for line in text.splitlines():
        row = _ROW.match(line)
        if row and row[1] == "MUST" and row["status"] != "present":
            gaps.add(line.strip())
        elif line.startswith("invalid against the NBO XSD:"):
            in_errors = True
        elif in_errors and line.startswith("  /"):
            gaps.add(line.strip())
    return gaps


@pytest.mark.parametrize(("rig", "study", "tier"), [
    ("widefield", False, 1), ("widefield", True, 2),
    ("spinning-disk", False, 2), ("spinning-disk", True, 1),
])
def test_preflight_lists_what_validate_reports(tmp_path, capsys, rig, study, tier):
    config, profile, channels = RIGS[rig]
    sequence: dict[str, object] = {"channels": channels, "z_plan": {"range": 1, "step": 1},
                                   "time_plan": snapped(2), "axis_order": "tpcz"}
    extra: list[str] = []
    if study and rig == "widefield":
        sequence["metadata"] = STUDY  # stated in the sequence itself
    elif study:
        extra = ["--study", str(_STUDY_FILE)]  # a reusable study file
    seq = tmp_path / "seq.yaml"
    seq.write_text(yaml.safe_dump(sequence))
    out = tmp_path / "run.ome.tif"
    assert main(["acquire", "--mm-config", config, "--profile", str(profile), "--sequence",
                 str(seq), "--out", str(out), "--tier", str(tier), *extra]) == 0
    predicted = _gaps(capsys.readouterr().err)
    assert main(["validate", str(out), "--tier", str(tier)]) == 1
    reported = _gaps(capsys.readouterr().out)
    assert reported, "the shipped rigs do not reach the tier: the comparison has rows"
    assert predicted == reported
