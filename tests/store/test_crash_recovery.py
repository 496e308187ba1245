"""Crash safety: SIGKILL at chosen and random frames, then `recover`."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from pathlib import Path

import pytest
import tifffile

from nbo_recorder.cli.main import main
from nbo_recorder.store.journal import journal_path
from tests.helpers import annotations, load, planes

pytestmark = pytest.mark.slow  # end-to-end suite: deselect with -m 'not slow'

CHILD = Path(__file__).with_name("crash_child.py")
FRAMES = 12  # 2 channels x 2 z x 3 t in crash_child.py
_rng = random.Random(20261123)
KILLS = [("mid", 0), ("before", 0), ("after", 0), ("mid", _rng.randrange(1, FRAMES)),
         ("before", _rng.randrange(1, FRAMES)), ("after", _rng.randrange(1, FRAMES - 1)),
         ("finalise", FRAMES)]


def _run_child(tmp_path: Path, mode: str, frame: int) -> tuple[Path, dict[int, str], set[int]]:
    out, log = tmp_path / "crash.ome.tif", tmp_path / "child.log"
    proc = subprocess.run([sys.executable, str(CHILD), str(out), str(log), mode, str(frame)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, f"child was meant to die by SIGKILL: {proc.stderr[-2000:]}"
    hashes, written = {}, set()
    for line in log.read_text().splitlines():
        parts = line.split()
        if parts[0] == "hash":
            hashes[int(parts[1])] = parts[2]
        elif parts[0] == "written":
            written.add(int(parts[1]))
    return out, hashes, written


@pytest.mark.parametrize(("mode", "frame"), KILLS, ids=[f"{m}-{f}" for m, f in KILLS])
def test_sigkill_then_recover_keeps_exactly_the_written_frames(
    tmp_path, ome_schema, capsys, mode, frame
):
    out, hashes, written = _run_child(tmp_path, mode, frame)
    assert journal_path(out).exists(), "the journal must survive the crash"
    expected = {"mid": frame, "before": frame, "after": frame + 1, "finalise": FRAMES}[mode]
    assert len(written) in (expected, expected - 1 if mode == "after" else expected)

    if expected == 0:  # died inside the first frame: nothing to recover, and it says so
        assert main(["recover", str(out)]) == 2
        assert "no frame was completely written" in capsys.readouterr().err
        return
    assert main(["recover", str(out)]) == 0
    assert not journal_path(out).exists()
    xml, ome = load(out)
    ome_schema.validate(xml)
    with tifffile.TiffFile(out) as tf:
        pages = [hashlib.sha1(p.asarray().tobytes()).hexdigest() for p in tf.pages]
    assert len(pages) == expected, f"frames recovered {len(pages)} != fully written {expected}"
    assert pages == [hashes[k] for k in range(expected)], "pixels must be identical"
    views = planes(ome)
    assert sorted(v.ifd for v in views) == list(range(expected))
    status = next(a["status"] for a in annotations(ome).values() if "status" in a)
    assert status.startswith("incomplete"), status
    # each plane still says which channel it is: the child alternates DAPI/FITC every 2 frames
    for v in views:
        assert v.channel == ("DAPI", "FITC")[(v.ifd // 2) % 2]


def test_recover_to_a_new_file_leaves_the_partial_untouched(tmp_path, ome_schema):
    out, _, _ = _run_child(tmp_path, "mid", 5)
    before = out.read_bytes()
    copy = tmp_path / "recovered.ome.tif"
    assert main(["recover", str(out), "--out", str(copy)]) == 0
    assert out.read_bytes() == before and journal_path(out).exists()
    ome_schema.validate(load(copy)[0])
    with tifffile.TiffFile(copy) as tf:
        assert len(tf.pages) == 5


def test_recover_without_journal_says_why(tmp_path, capsys):
    plain = tmp_path / "plain.ome.tif"
    tifffile.imwrite(plain, [[1, 2], [3, 4]])
    assert main(["recover", str(plain)]) == 2
    assert "no journal" in capsys.readouterr().err


