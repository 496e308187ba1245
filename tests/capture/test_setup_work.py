"""The recorder does its NBO XSD and rules work while it is set up, not while a camera
streams: the sink checks the record's compliance in a thread during the run, and a first
check that had to read them took 0.2 s of Python from the acquisition."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO


def test_the_xsd_and_rules_are_ready_before_the_run(tmp_path: Path) -> None:
    """In a fresh process: before ``Recorder(...)`` nothing of the XSD or the rules table is
    compiled, worked out or read; ``Recorder(...)`` compiles the XSD (a broken one fails
    there); ``recorder.sink(...)`` works out every global element's declaration and reads
    the rules table, so rendering and checking the run's record works none of them out."""
    code = (
        "from nbo_recorder.nbo import rules, xsd_index as x\n"
        "from nbo_recorder.capture.recorder import Recorder\n"
        "from nbo_recorder.rig import load_core\n"
        "core = load_core('demo')\n"
        "caches = (x._compiled_schema, x.xsd_index, rules.load_rules)\n"
        "print(*(c.cache_info().currsize for c in caches))\n"
        f"recorder = Recorder(core, {str(REPO / 'hardware_profiles' / 'mm_demo.yaml')!r})\n"
        "print(x._compiled_schema.cache_info().currsize)\n"
        f"recorder.sink({str(tmp_path / 'run.ome.tif')!r})\n"
        "reader = x.xsd_index().elements._reader\n"
        "print(*(c.cache_info().currsize for c in caches), len(reader.elements),"
        " len(reader.global_nodes))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.splitlines()
    assert out[-3].split() == ["0", "0", "0"]
    assert out[-2] == "1"
    compiled, indexed, read, worked_out, declared = map(int, out[-1].split())
    assert (compiled, indexed, read) == (1, 1, 1)
    assert worked_out == declared > 200
