"""The public command line: demo and acquire, and what bad input gets."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time

import pytest
import yaml

from nbo_recorder.cli.main import main
from nbo_recorder.store.journal import journal_path
from tests.helpers import DEMO_PROFILE, annotations, load, planes, snapped


def test_demo_command_writes_and_summarises(tmp_path):
    out = tmp_path / "demo.ome.tif"
    result = subprocess.run(
        [sys.executable, "-m", "nbo_recorder.cli.main", "demo", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    _, ome = load(out)
    px = ome.images[0].pixels
    assert (px.size_c, px.size_z, px.size_t) == (2, 3, 3)
    assert f"{out}: 18 frames" in result.stdout
    assert "channel FITC: light LightSource:led-demo 470 nm" in result.stdout


_AS_THE_PROGRAM = """
import atexit, runpy, sys
atexit.register(lambda: print("loaded:", *sorted(m for m in ("ome_types", "pint", "dask")
                                                if m in sys.modules), file=sys.stderr))
sys.argv = ["nbo-recorder", *sys.argv[1:]]
runpy.run_module("nbo_recorder.cli.main", run_name="__main__")
"""


@pytest.mark.skipif(importlib.util.find_spec("pint") is None, reason="needs pint installed")
def test_the_command_keeps_pint_out_of_ome_types_and_other_programs_keep_it(tmp_path):
    # where pint is installed (bioio needs it), ome-types imports it, and dask through it:
    # the command, which reads no *_quantity property, skips 0.8 s and 25 MiB of imports
    out = tmp_path / "demo.ome.tif"
    result = subprocess.run([sys.executable, "-c", _AS_THE_PROGRAM, "demo", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "loaded: ome_types\n" in result.stderr  # rendered the OME without pint
    _, ome = load(out)  # and an independent parse of the file's OME-XML still works
    assert ome.images[0].pixels.size_c == 2
    # code that imports the command's module keeps ome-types as it is
    other = subprocess.run([sys.executable, "-c", "import sys, nbo_recorder.cli.main, ome_types;"
                            " print('pint' in sys.modules)"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert other.stdout.strip() == "True", other.stderr


def _sequence(tmp_path):
    seq = tmp_path / "seq.yaml"
    seq.write_text(yaml.safe_dump({"channels": [{"config": "Cy5", "group": "Channel"}],
                                   "time_plan": snapped(2)}))
    return seq


def test_acquire_applies_set_before_the_sequence(tmp_path, capsys):
    out = tmp_path / "exp1.ome.tif"
    code = main(["acquire", "--mm-config", "demo", "--profile", str(DEMO_PROFILE),
                 "--sequence", str(_sequence(tmp_path)), "--out", str(out),
                 "--set", "Camera.Gain=3", "--set", "Camera.Binning=2"])
    assert code == 0, capsys.readouterr().err
    _, ome = load(out)
    for pv in planes(ome):
        assert pv.settings["detector[cam-demo].gain"] == "3"
        assert pv.settings["detector[cam-demo].binning"] == "2"
    ds = ome.images[0].pixels.channels[0].detector_settings
    assert ds.gain == 3.0 and ds.binning.value == "2x2"


def test_acquire_refuses_existing_output_without_overwrite(tmp_path, capsys):
    out = tmp_path / "exp1.ome.tif"
    out.write_bytes(b"earlier experiment")
    args = ["acquire", "--mm-config", "demo", "--profile", str(DEMO_PROFILE),
            "--sequence", str(_sequence(tmp_path)), "--out", str(out)]
    assert main(args) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"earlier experiment"
    assert main([*args, "--overwrite"]) == 0
    assert load(out)[1].images


def test_acquire_bad_inputs_get_clear_errors(tmp_path, capsys):
    seq = _sequence(tmp_path)
    base = ["acquire", "--profile", str(DEMO_PROFILE), "--sequence", str(seq),
            "--out", str(tmp_path / "o.ome.tif")]
    assert main([*base, "--mm-config", str(tmp_path / "missing.cfg")]) == 2
    assert "missing.cfg: Micro-Manager configuration file not found" in capsys.readouterr().err
    assert main([*base, "--mm-config", "demo", "--set", "Camera.NoSuchProp=1"]) == 2
    assert "has no property 'NoSuchProp'" in capsys.readouterr().err
    assert main([*base, "--mm-config", "demo", "--set", "Gain=2"]) == 2
    assert "expected Device.Property=Value" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("channels: {config: [}\n")
    assert main(["acquire", "--mm-config", "demo", "--profile", str(DEMO_PROFILE),
                 "--sequence", str(broken), "--out", str(tmp_path / "o.ome.tif")]) == 2
    assert "broken.yaml: not a valid useq-schema MDASequence" in capsys.readouterr().err
    bad_profile = tmp_path / "rig.yaml"
    bad_profile.write_text("name: x\ncomponents:\n  - kind: objective\n    lens_na: high\n")
    assert main(["acquire", "--mm-config", "demo", "--profile", str(bad_profile),
                 "--sequence", str(seq), "--out", str(tmp_path / "o.ome.tif")]) == 2
    err = capsys.readouterr().err
    assert "rig.yaml: components[0].id" in err and "rig.yaml: components[0].lens_na" in err
    assert not (tmp_path / "o.ome.tif").exists()


def test_preflight_lists_gaps_and_strict_refuses_before_any_frame(tmp_path, capsys):
    out = tmp_path / "pf.ome.tif"
    args = ["acquire", "--mm-config", "demo", "--profile", str(DEMO_PROFILE),
            "--sequence", str(_sequence(tmp_path)), "--out", str(out), "--tier", "1"]
    assert main([*args, "--strict"]) == 1
    err = capsys.readouterr().err
    assert "pre-flight, NBO tier 1:" in err
    # mm_demo.yaml states no microscope type: the stand element the XSD needs is missing
    assert "Instrument <MicroscopeStandGroup>" in err
    assert "--strict: not starting" in err
    assert not out.exists(), "nothing may be acquired when --strict refuses"
    assert main(args) == 0
    assert "pre-flight, NBO tier 1:" in capsys.readouterr().err
    assert out.exists()


def test_preflight_reports_live_state_the_profile_cannot_resolve(demo_core):
    from nbo_recorder.capture.recorder import Recorder

    demo_core.setProperty("Objective", "Label", "Objective-2")  # an empty, unprofiled slot
    checked = Recorder(demo_core, DEMO_PROFILE).preflight(1)
    assert any(line.startswith("objective[Objective]: label 'Objective-2'")
               for line in checked.unresolved)


def test_sequence_metadata_outside_nbo_vocabulary_is_refused_before_acquiring(tmp_path, capsys):
    seq = tmp_path / "seq.yaml"
    seq.write_text(yaml.safe_dump({"channels": [{"config": "DAPI", "group": "Channel"}],
                                   "metadata": {"nbo": {"Sample": {"LiveSample": "perhaps"}}}}))
    out = tmp_path / "o.ome.tif"
    assert main(["acquire", "--mm-config", "demo", "--profile", str(DEMO_PROFILE),
                 "--sequence", str(seq), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "seq.yaml: metadata.nbo.Sample.LiveSample" in err
    assert not out.exists()


def test_ctrl_c_cancels_the_acquisition_and_still_finishes_the_file(tmp_path, ome_schema):
    seq = tmp_path / "long.yaml"
    seq.write_text(yaml.safe_dump({"time_plan": {"interval": 0.1, "loops": 600}}))  # ~60 s
    out = tmp_path / "interrupted.ome.tif"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbo_recorder.cli.main", "acquire", "--mm-config", "demo",
         "--profile", str(DEMO_PROFILE), "--sequence", str(seq), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
                not out.exists() or out.stat().st_size < 5 * 512 * 512 * 2):
            time.sleep(0.1)  # until a few frames are on disk
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "canceling the acquisition" in err
    assert not journal_path(out).exists()  # finished normally, nothing left to recover
    xml, ome = load(out)
    ome_schema.validate(xml)
    n = len(ome.images[0].pixels.planes)
    assert 5 <= n < 600
    status = next(a["status"] for a in annotations(ome).values() if "status" in a)
    assert status == "incomplete: canceled"
