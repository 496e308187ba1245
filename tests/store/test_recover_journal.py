"""`recover` verifies before it cuts: malformed, foreign and cut-short journals, damaged IFDs.

Each case ends in a clear error (exit 2, the file unchanged) or a correct file; none loses an
intact page. Ground truth: the frames the camera delivered, and tifffile reading the files.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import useq

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.cli.main import main
from nbo_recorder.store.journal import journal_path
from nbo_recorder.store.tiff_pages import intact_pages
from tests.helpers import DEMO_PROFILE, annotations, bioformats_ome_xml, load, planes

FRAMES = 6


def _sha1(a: np.ndarray) -> str:
    return hashlib.sha1(a.tobytes()).hexdigest()


def _page_hashes(path: Path) -> list[str]:
    with tifffile.TiffFile(path) as tf:
        return [_sha1(p.asarray()) for p in tf.pages]


def _unfinished(core: Any, path: Path, monkeypatch: pytest.MonkeyPatch,
                run_id: str | None = None) -> list[str]:
    """FRAMES frames whose OME-XML was never written; the camera's frames' SHA-1.

    With ``run_id``, the file's placeholder names that run (as the journal's id does).
    """
    from nbo_recorder.capture import sink as sink_module
    from nbo_recorder.store.tiff_writer import TiffPageWriter

    def fail(*_: Any, **__: Any) -> str:
        raise RuntimeError("finalisation interrupted by the test")

    monkeypatch.setattr(sink_module, "build_ome_xml", fail)
    if run_id is not None:
        monkeypatch.setattr(sink_module, "TiffPageWriter",
                            lambda p, **kw: TiffPageWriter(p, **{**kw, "run_id": run_id}))
    acquired: list[str] = []

    def keep(img: np.ndarray, *_: Any) -> None:
        acquired.append(_sha1(img))

    core.mda.events.frameReady.connect(keep)
    try:
        core.mda.run(useq.MDASequence(z_plan={"range": FRAMES - 1, "step": 1}),
                     output=Recorder(core, DEMO_PROFILE).sink(path))
    finally:
        core.mda.events.frameReady.disconnect(keep)
    monkeypatch.undo()
    return acquired


def _lines(path: Path) -> list[str]:
    return journal_path(path).read_text().splitlines()


def _rewrite(path: Path, lines: list[str]) -> None:
    journal_path(path).write_text("\n".join(lines) + "\n")


def _refused(path: Path, capsys: Any, *words: str) -> str:
    """Recover exits 2 with one clear line containing ``words``; file and journal unchanged."""
    before, journal = path.read_bytes(), journal_path(path).read_bytes()
    assert main(["recover", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err
    assert path.read_bytes() == before and journal_path(path).read_bytes() == journal
    return err


def _frame_line(lines: list[str]) -> int:
    """The index in ``lines`` of the journal's third frame line."""
    return [n for n, line in enumerate(lines) if line.startswith('{"f"')][2]


@pytest.mark.parametrize("bad", [
    '{"f": {"index": 3}}',                      # valid JSON, wrong shape
    "[1, 2, 3]",                                # not an object at all
    '{"f": ["two", 0, 0, 0, 0, null, 1.0, 10.0, null, null, null, 1.0, 0]}',
    '{"snapshot": {"uid": "x"}}',
    '{"f": [0, 0, 0]}',
    '{"frame": [1]}',                           # an unknown kind of line
    '"just a string"',
    "{not json}",
], ids=["f-object", "list", "f-types", "snapshot", "f-short", "unknown-key", "string",
        "not-json"])
def test_a_malformed_line_is_reported_by_its_number(demo_core, tmp_path, monkeypatch, capsys,
                                                    bad):
    out = tmp_path / "bad.ome.tif"
    _unfinished(demo_core, out, monkeypatch)
    lines = _lines(out)
    at = _frame_line(lines)
    lines.insert(at, bad)
    _rewrite(out, lines)
    _refused(out, capsys, f"{journal_path(out)}:{at + 1}:")


def test_a_start_line_of_the_wrong_shape_is_reported(demo_core, tmp_path, monkeypatch, capsys):
    out = tmp_path / "start.ome.tif"
    _unfinished(demo_core, out, monkeypatch)
    lines = _lines(out)
    doc = json.loads(lines[0])
    del doc["start"]["width"]
    _rewrite(out, [json.dumps(doc), *lines[1:]])
    _refused(out, capsys, f"{journal_path(out)}:1: malformed start line", "width")


def test_a_journal_from_another_run_is_refused(demo_core, tmp_path, monkeypatch, capsys):
    """A 256 px run's journal beside a 512 px file: nothing truncated, nothing changed."""
    out, other = tmp_path / "512.ome.tif", tmp_path / "256.ome.tif"
    frames = _unfinished(demo_core, out, monkeypatch)
    demo_core.setROI(0, 0, 256, 256)
    _unfinished(demo_core, other, monkeypatch)
    own_run = json.loads(_lines(out)[0])["run"]
    journal_path(other).replace(journal_path(out))
    _refused(out, capsys, "is the journal of run", f"written by run {own_run}")
    assert _page_hashes(out) == frames
    # even under the file's own run id, its frames' geometry gives the journal away
    lines = _lines(out)
    doc = json.loads(lines[0])
    doc["run"] = own_run
    _rewrite(out, [json.dumps(doc), *lines[1:]])
    _refused(out, capsys, "does not belong to", "256x256", "512x512", "bytes per page")
    assert _page_hashes(out) == frames


def test_a_journal_with_another_run_id_is_refused(demo_core, tmp_path, monkeypatch, capsys):
    out = tmp_path / "id.ome.tif"
    _unfinished(demo_core, out, monkeypatch, run_id="a" * 32)
    lines = _lines(out)
    doc = json.loads(lines[0])
    assert len(doc["run"]) == 32
    doc["run"] = "b" * 32
    _rewrite(out, [json.dumps(doc), *lines[1:]])
    _refused(out, capsys, f"journal of run {'b' * 32}", f"written by run {'a' * 32}")


def test_the_same_run_id_recovers(demo_core, tmp_path, monkeypatch, ome_schema):
    out = tmp_path / "id.ome.tif"
    frames = _unfinished(demo_core, out, monkeypatch, run_id="c" * 32)
    lines = _lines(out)
    doc = json.loads(lines[0])
    doc["run"] = "c" * 32
    _rewrite(out, [json.dumps(doc), *lines[1:]])
    assert main(["recover", str(out)]) == 0
    assert _page_hashes(out) == frames
    ome_schema.validate(load(out)[0])


@pytest.mark.parametrize("torn", [False, True], ids=["whole-lines", "torn-last-line"])
def test_a_journal_cut_short_keeps_every_intact_page(demo_core, tmp_path, monkeypatch, capsys,
                                                     ome_schema, torn):
    """Pages the journal has no line for stay in the file, without plane metadata."""
    out = tmp_path / "short.ome.tif"
    frames = _unfinished(demo_core, out, monkeypatch)
    lines = _lines(out)
    keep = _frame_line(lines) + 1  # up to frame 2: frames 3-5 and the stop line are lost
    text = "\n".join(lines[:keep]) + "\n" + (lines[keep][:20] if torn else "")
    journal_path(out).write_text(text)
    assert main(["recover", str(out)]) == 0
    said = capsys.readouterr().out
    assert "3 pages without plane metadata (IFD 3-5)" in said
    assert _page_hashes(out) == frames  # all six pages, pixels as acquired
    xml, ome = load(out)
    ome_schema.validate(xml)
    assert sorted(v.ifd for v in planes(ome)) == [0, 1, 2]
    status = next(a["status"] for a in annotations(ome).values() if "status" in a)
    assert "kept in the file without plane metadata" in status


@pytest.mark.slow
def test_pages_kept_without_metadata_do_not_stop_bioformats(demo_core, tmp_path, monkeypatch):
    out = tmp_path / "short.ome.tif"
    _unfinished(demo_core, out, monkeypatch)
    lines = _lines(out)
    _rewrite(out, lines[:_frame_line(lines) + 1])
    assert main(["recover", str(out)]) == 0
    ns = {"ome": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}
    pixels = bioformats_ome_xml(out).findall(".//ome:Pixels", ns)
    assert [(p.get("SizeZ"), p.get("SizeT")) for p in pixels] == [("3", "1")]  # 3 of 6 planes


def test_dry_run_says_what_it_would_keep_and_changes_nothing(demo_core, tmp_path, monkeypatch,
                                                             capsys):
    out = tmp_path / "dry.ome.tif"
    _unfinished(demo_core, out, monkeypatch)
    lines = _lines(out)
    _rewrite(out, lines[:_frame_line(lines) + 1])
    before, journal = out.read_bytes(), journal_path(out).read_bytes()
    assert main(["recover", str(out), "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert f"{out}: would keep 3 frames with their metadata" in said
    assert "would keep 3 pages without plane metadata (IFD 3-5)" in said
    assert "nothing was changed" in said
    assert out.read_bytes() == before and journal_path(out).read_bytes() == journal


def _ifd_entries(path: Path, page: int) -> tuple[int, int]:
    """Offset of page ``page``'s first IFD entry and the number of entries (classic TIFF)."""
    ifd = intact_pages(path)[page].ifd_offset
    with path.open("rb") as fh:
        fh.seek(ifd)
        n = struct.unpack("<H", fh.read(2))[0]
    return ifd + 2, n


_rng = random.Random(1411)
FLIPS = sorted({(_rng.randrange(12), _rng.randrange(8)) for _ in range(10)})


@pytest.mark.parametrize(("entry", "bit"), [(e, b) for e in range(12) for b in (0, 7)][::3]
                         + FLIPS)
def test_byte_flips_in_the_last_ifd_never_give_an_unreadable_success(
    demo_core, tmp_path, monkeypatch, capsys, entry, bit
):
    out = tmp_path / "flip.ome.tif"
    frames = _unfinished(demo_core, out, monkeypatch)
    first, n = _ifd_entries(out, FRAMES - 1)
    at = first + (entry % n) * 12 + 8 + bit % 4  # a byte of the entry's value field
    data = bytearray(out.read_bytes())
    data[at] ^= 1 << bit
    out.write_bytes(bytes(data))
    before = out.read_bytes()
    code = main(["recover", str(out)])
    capsys.readouterr()
    if code == 2:  # refused: nothing changed
        assert out.read_bytes() == before
        return
    assert code == 0
    with tifffile.TiffFile(out) as tf:  # whatever was kept reads back
        got = [_sha1(p.asarray()) for p in tf.pages]
    assert got[:FRAMES - 1] == frames[:FRAMES - 1]  # the undamaged pages all stay
    assert len(got) in (FRAMES - 1, FRAMES)


def test_a_damaged_ifd_in_the_middle_is_unlinked_and_the_pages_after_it_kept(
    demo_core, tmp_path, monkeypatch, capsys, ome_schema
):
    out = tmp_path / "middle.ome.tif"
    frames = _unfinished(demo_core, out, monkeypatch)
    first, n = _ifd_entries(out, 2)
    data = bytearray(out.read_bytes())
    for k in range(n):  # make page 2 claim to be compressed (tag 259 = 5, LZW)
        tag = struct.unpack_from("<H", data, first + k * 12)[0]
        if tag == 259:
            struct.pack_into("<H", data, first + k * 12 + 8, 5)
    out.write_bytes(bytes(data))
    assert main(["recover", str(out)]) == 0
    said = capsys.readouterr().out
    assert "dropped page 2 and its frame: tifffile reads it as compressed" in said
    assert _page_hashes(out) == frames[:2] + frames[3:]
    xml, ome = load(out)
    ome_schema.validate(xml)
    assert sorted(v.ifd for v in planes(ome)) == [0, 1, 2, 3, 4]
