"""The recorder does its NBO XSD work while it is set up, not while a camera streams."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_the_xsd_is_compiled_and_its_declarations_worked_out_by_recorder() -> None:
    """In a fresh process: before ``Recorder(...)`` nothing of the XSD is compiled or worked
    out; after it, the schema is compiled and every global element's declaration is worked
    out, so rendering a run's record (in the sink's compliance thread during the run, and
    after its last frame) works none out."""
    code = (
        "from nbo_recorder.nbo import xsd_index as x\n"
        "from nbo_recorder.capture.recorder import Recorder\n"
        "from nbo_recorder.rig import load_core\n"
        "core = load_core('demo')\n"
        "assert x._compiled_schema.cache_info().currsize == 0\n"
        "assert x.xsd_index.cache_info().currsize == 0\n"
        f"Recorder(core, {str(REPO / 'hardware_profiles' / 'mm_demo.yaml')!r})\n"
        "reader = x.xsd_index().elements._reader\n"
        "print(x._compiled_schema.cache_info().currsize, len(reader.elements),"
        " len(reader.global_nodes))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split()
    compiled, worked_out, declared = map(int, out[-3:])
    assert compiled == 1
    assert worked_out == declared > 200
