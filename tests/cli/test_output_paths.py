"""Output paths that cannot be written are refused before anything is created (exit 2).

Each case gets one clear line naming the path, and leaves the folder exactly as it was:
no rig is loaded, no TIFF or journal created. A run whose first frame did not reach the
disk leaves no empty TIFF and journal behind, and nothing that could hold a frame is ever
removed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from nbo_recorder.capture.output_path import discard_empty_outputs, name_max
from nbo_recorder.cli.main import main
from nbo_recorder.store.journal import journal_path
from tests.helpers import DEMO_PROFILE


def _acquire(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    seq = tmp_path / "seq.yaml"
    seq.write_text(yaml.safe_dump({"channels": [{"config": "Cy5", "group": "Channel"}]}))
    return ["acquire", "--mm-config", "demo", "--profile", str(DEMO_PROFILE),
            "--sequence", str(seq), "--out", str(out), *extra]


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("nbo-recorder: error: "), lines[0]
    return lines[0]


def _listing(folder: Path) -> dict[str, bool]:
    return {p.name: p.is_dir() for p in folder.iterdir()}


@pytest.mark.parametrize("overwrite", [False, True])
def test_out_an_existing_directory(tmp_path, capsys, overwrite):
    out = tmp_path / "results"
    out.mkdir()
    args = _acquire(tmp_path, out, *(["--overwrite"] if overwrite else []))
    before = _listing(tmp_path)
    assert main(args) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"{out} is a directory" in line
    assert _listing(tmp_path) == before and not any(out.iterdir())


def test_journal_path_already_a_directory(tmp_path, capsys):
    out = tmp_path / "run.ome.tif"
    journal_path(out).mkdir()
    args = _acquire(tmp_path, out, "--overwrite")
    before = _listing(tmp_path)
    assert main(args) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"{journal_path(out)} is a directory" in line
    assert _listing(tmp_path) == before


def test_a_tiff_name_that_fits_with_a_journal_name_that_does_not(tmp_path, capsys):
    limit = name_max(tmp_path)
    name = "r" * (limit - len(".ome.tif")) + ".ome.tif"  # exactly the limit: it fits
    out = tmp_path / name
    assert len(os.fsencode(out.name)) == limit
    with open(out, "wb"):  # the volume accepts the TIFF's name itself
        pass
    out.unlink()
    assert main(_acquire(tmp_path, out)) == 2
    line = _error_line(capsys.readouterr().err)
    journal_bytes = len(os.fsencode(journal_path(out).name))
    assert f"journal name is {journal_bytes} bytes, over the {limit}" in line
    assert "choose a shorter output name" in line
    assert not any(tmp_path.glob("r*"))


def test_a_journal_left_by_an_earlier_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run.ome.tif"
    journal_path(out).write_text('{"start": {}}\n')
    assert main(_acquire(tmp_path, out)) == 2
    line = _error_line(capsys.readouterr().err)
    assert "an earlier run did not finish" in line and f"recover {out}" in line
    assert journal_path(out).read_text() == '{"start": {}}\n' and not out.exists()


FRAME = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)


def test_discard_removes_an_empty_tiff_and_its_journal(tmp_path):
    out = tmp_path / "run.ome.tif"
    out.write_bytes(b"")
    journal_path(out).write_text('{"start": {}}\n')
    assert discard_empty_outputs(out, FRAME.nbytes)
    assert not out.exists() and not journal_path(out).exists()


def test_discard_never_removes_a_file_holding_a_page(tmp_path):
    out = tmp_path / "run.ome.tif"
    tifffile.imwrite(out, FRAME)
    journal_path(out).write_text('{"start": {}}\n')
    assert not discard_empty_outputs(out, FRAME.nbytes)
    assert np.array_equal(tifffile.imread(out), FRAME) and journal_path(out).exists()
    unreadable = tmp_path / "torn.ome.tif"  # not a TIFF to tifffile, but frame-sized
    unreadable.write_bytes(b"\0" * (FRAME.nbytes + 8))
    assert not discard_empty_outputs(unreadable, FRAME.nbytes)
    assert unreadable.stat().st_size == FRAME.nbytes + 8
