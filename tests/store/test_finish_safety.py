"""Finishing can always be finished: a full disk or a kill at any write of the finishing step.

The finishing step writes with ``os.pwrite`` only (the pages and the journal use other
calls), so replacing ``os.pwrite`` fails exactly the n-th write of that step. Ground truth:
the camera's frames as pymmcore-plus delivered them, and the files read back with tifffile.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import useq
from ome_types.model import OME

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.cli.main import main
from nbo_recorder.render.ome import OmeDocument
from nbo_recorder.store import recovery as recovery_module
from nbo_recorder.store.journal import journal_path
from nbo_recorder.store.tiff_pages import description_patch, first_description
from nbo_recorder.store.tiff_writer import PLACEHOLDER, WriterError, finish_description
from tests.helpers import DEMO_PROFILE, REPO, load, planes

FRAMES = 6
FRAME_BYTES = 512 * 512 * 2  # the demo camera's frames


class Killed(BaseException):
    """Stands for SIGKILL: no ``except Exception`` or ``except OSError`` sees it."""


def _sha1(a: np.ndarray) -> str:
    return hashlib.sha1(a.tobytes()).hexdigest()


def _page_hashes(path: Path) -> list[str]:
    with tifffile.TiffFile(path) as tf:
        return [_sha1(p.asarray()) for p in tf.pages]


def _record(core: Any, path: Path, monkeypatch: pytest.MonkeyPatch | None = None,
            errors: list[str] | None = None) -> list[str]:
    """Record FRAMES frames; with ``monkeypatch``, the OME-XML is never written (as a crash
    at finalisation leaves the file). Returns the SHA-1 of each frame the camera delivered;
    the sink's errors are added to ``errors``."""
    from nbo_recorder.capture import sink as sink_module

    if monkeypatch is not None:
        def fail(*_: Any, **__: Any) -> str:
            raise RuntimeError("finalisation interrupted by the test")

        monkeypatch.setattr(sink_module, "build_ome_xml", fail)
    acquired: list[str] = []

    def keep(img: np.ndarray, *_: Any) -> None:
        acquired.append(_sha1(img))

    sink = Recorder(core, DEMO_PROFILE).sink(path)
    core.mda.events.frameReady.connect(keep)
    try:
        core.mda.run(useq.MDASequence(z_plan={"range": FRAMES - 1, "step": 1}), output=sink)
    finally:
        core.mda.events.frameReady.disconnect(keep)
    if errors is not None:
        errors.extend(sink.errors)
    if monkeypatch is not None:
        monkeypatch.undo()
    return acquired


class Pwrite:
    """``os.pwrite`` that fails its n-th call: ENOSPC (after writing half, if ``short``),
    or :class:`Killed`; it counts every call."""

    def __init__(self, fail_at: int | None, *, kill: bool = False, short: bool = False):
        self.real = os.pwrite
        self.calls = 0
        self.fail_at, self.kill, self.short = fail_at, kill, short

    def __call__(self, fd: int, data: Any, offset: int) -> int:
        self.calls += 1
        if self.calls == self.fail_at:
            if self.kill:
                raise Killed
            if self.short and len(data) > 1:
                return self.real(fd, bytes(data)[:len(data) // 2], offset)
            raise OSError(errno.ENOSPC, "No space left on device")
        if self.short and self.fail_at is not None and self.calls == self.fail_at + 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(fd, data, offset)


def _assert_recovers(path: Path, frames: list[str], ome_schema: Any) -> None:
    """``nbo-recorder recover`` finishes ``path`` with every frame, pixels as acquired."""
    assert main(["recover", str(path)]) == 0
    assert not journal_path(path).exists()
    xml, ome = load(path)
    ome_schema.validate(xml)
    assert _page_hashes(path) == frames
    assert sorted(v.ifd for v in planes(ome)) == list(range(len(frames)))


def _assert_placeholder_file(path: Path, frames: list[str]) -> None:
    """tifffile opens ``path``: every frame, and the placeholder description."""
    assert _page_hashes(path) == frames
    with tifffile.TiffFile(path) as tf:
        assert tf.pages[0].description.startswith(PLACEHOLDER)
    assert journal_path(path).exists()


def test_a_clean_finish_takes_exactly_two_writes(demo_core, tmp_path, monkeypatch):
    """The parametrised failures below cover every write of the finishing step."""
    pwrite = Pwrite(None)
    monkeypatch.setattr(os, "pwrite", pwrite)
    out = tmp_path / "clean.ome.tif"
    frames = _record(demo_core, out)
    assert pwrite.calls == 2  # the description appended, then the entry pointed at it
    assert _page_hashes(out) == frames and not journal_path(out).exists()


@pytest.mark.parametrize(("fail_at", "short"), [(1, False), (1, True), (2, False)],
                         ids=["append", "append-short", "point-entry"])
def test_disk_full_while_finishing_leaves_a_file_recover_finishes(
    demo_core, tmp_path, monkeypatch, ome_schema, fail_at, short
):
    out = tmp_path / "full.ome.tif"
    size_before_finish: list[int] = []
    pwrite = Pwrite(fail_at, short=short)

    def counting(fd: int, data: Any, offset: int) -> int:
        if pwrite.calls == 0:
            size_before_finish.append(os.fstat(fd).st_size)
        return pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", counting)
    errors: list[str] = []
    frames = _record(demo_core, out, errors=errors)
    monkeypatch.undo()
    assert len(frames) == FRAMES
    error = " ".join(errors)  # names the file, the bytes needed and what to do
    assert "No space left on device" in error and "bytes needed" in error
    assert f"run `nbo-recorder recover {out}`" in error
    _assert_placeholder_file(out, frames)
    if fail_at == 1:  # the appended bytes were given back
        assert out.stat().st_size == size_before_finish[0]
    _assert_recovers(out, frames, ome_schema)


def test_the_finishing_error_names_the_file_the_bytes_and_recover(tmp_path, monkeypatch):
    path = tmp_path / "w.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint16), description=PLACEHOLDER,
                     metadata=None)
    before = path.read_bytes()
    xml = "<OME>" + "x" * 1000 + "</OME>"
    needed = len(before) % 2 + len(xml) + 1  # word alignment, the text, its NUL
    monkeypatch.setattr(os, "pwrite", Pwrite(1))
    with pytest.raises(WriterError) as err:
        finish_description(path, xml)
    message = str(err.value)
    assert err.value.errno == errno.ENOSPC
    assert str(path) in message and f"({needed} bytes needed" in message
    assert "unchanged" in message
    assert path.read_bytes() == before


def test_a_kill_between_the_finishing_writes_leaves_a_file_recover_finishes(
    demo_core, tmp_path, monkeypatch, ome_schema
):
    out = tmp_path / "killed.ome.tif"
    frames = _record(demo_core, out, monkeypatch)
    monkeypatch.setattr(os, "pwrite", Pwrite(2, kill=True))
    with pytest.raises(Killed):  # the new description is on disk, nothing points at it yet
        finish_description(out, "<OME/>" + " " * 5000)
    monkeypatch.undo()
    _assert_placeholder_file(out, frames)
    _assert_recovers(out, frames, ome_schema)


@pytest.mark.slow
def test_a_real_sigkill_between_the_finishing_writes(tmp_path, ome_schema):
    """A child process records on the demo rig and SIGKILLs itself at the second write."""
    out, log = tmp_path / "sigkill.ome.tif", tmp_path / "hashes.log"
    child = f"""
import hashlib, os, signal, useq
from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.rig import load_core
real, calls = os.pwrite, [0]
def pwrite(fd, data, offset):
    calls[0] += 1
    if calls[0] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(fd, data, offset)
os.pwrite = pwrite
core = load_core("demo")
core.setProperty("Camera", "Mode", "Noise")
log = open({str(log)!r}, "a", buffering=1)
core.mda.events.frameReady.connect(
    lambda img, *_: log.write(hashlib.sha1(img.tobytes()).hexdigest() + "\\n"))
# frames 1 ms apart are snapped, never a burst whose last frame the engine may lose
core.mda.run(useq.MDASequence(time_plan={{"interval": 0.001, "loops": {FRAMES}}}),
             output=Recorder(core, {str(DEMO_PROFILE)!r}).sink({str(out)!r}))
"""
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert proc.returncode == -9, proc.stderr[-2000:]
    frames = log.read_text().split()
    assert len(frames) == FRAMES
    _assert_placeholder_file(out, frames)
    _assert_recovers(out, frames, ome_schema)


def _torn(core: Any, path: Path, monkeypatch: pytest.MonkeyPatch,
          cut: int = FRAME_BYTES // 2) -> list[str]:
    """An unfinished file whose last page lost its last ``cut`` bytes; the intact frames'
    hashes."""
    frames = _record(core, path, monkeypatch)
    os.truncate(path, path.stat().st_size - cut)
    return frames[:-1]


@pytest.mark.parametrize("fail_at", [1, 2, 3], ids=["relink", "append", "point-entry"])
def test_disk_full_during_recover_changes_nothing(demo_core, tmp_path, monkeypatch, capsys,
                                                  ome_schema, fail_at):
    out = tmp_path / "torn.ome.tif"
    frames = _torn(demo_core, out, monkeypatch)
    before, journal = out.read_bytes(), journal_path(out).read_bytes()
    monkeypatch.setattr(os, "pwrite", Pwrite(fail_at))
    assert main(["recover", str(out)]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(out) in err
    assert "No space left on device" in err and "bytes needed" in err
    assert out.read_bytes() == before and journal_path(out).read_bytes() == journal
    _assert_recovers(out, frames, ome_schema)


@pytest.mark.parametrize("cut", [FRAME_BYTES // 2, 100])
@pytest.mark.parametrize("kill_at", [2, 3], ids=["after-relink", "after-append"])
def test_a_kill_inside_recover_leaves_a_file_recover_finishes(demo_core, tmp_path,
                                                              monkeypatch, ome_schema, kill_at,
                                                              cut):
    """Recover of a file with a torn last page: unlink it, append, point (three writes).

    With only 100 bytes missing, the appended OME-XML would complete the torn page's
    outline if it were still linked: recover must not then take garbage for a frame.
    """
    out = tmp_path / "torn.ome.tif"
    frames = _torn(demo_core, out, monkeypatch, cut)
    monkeypatch.setattr(os, "pwrite", Pwrite(kill_at, kill=True))
    with pytest.raises(Killed):
        recovery_module.recover(out)
    monkeypatch.undo()
    _assert_placeholder_file(out, frames)
    _assert_recovers(out, frames, ome_schema)


def test_recover_finishes_a_file_whose_description_points_past_its_end(
    demo_core, tmp_path, monkeypatch, ome_schema
):
    """What the old two-step finish left after a failed append: every later recover failed."""
    out = tmp_path / "dangling.ome.tif"
    frames = _record(demo_core, out, monkeypatch)
    size = out.stat().st_size
    at, data = description_patch(out, first_description(out), size + 64, b"x" * 9000)
    with out.open("r+b") as fh:
        fh.seek(at)
        fh.write(data)
    assert first_description(out).value is None
    _assert_recovers(out, frames, ome_schema)


def test_recover_out_on_a_full_disk_leaves_nothing_behind(demo_core, tmp_path, monkeypatch,
                                                          capsys):
    out = tmp_path / "part.ome.tif"
    _record(demo_core, out, monkeypatch)
    before = out.read_bytes()
    target = tmp_path / "elsewhere" / "copy.ome.tif"
    target.parent.mkdir()

    def copy_until_full(src: Path, dst: Path) -> None:
        Path(dst).write_bytes(Path(src).read_bytes()[:1000])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recovery_module.shutil, "copyfile", copy_until_full)
    assert main(["recover", str(out), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and "bytes needed" in err and "Traceback" not in err
    assert list(target.parent.iterdir()) == []  # no broken copy, no temporary file
    assert out.read_bytes() == before and journal_path(out).exists()


@pytest.mark.parametrize("fail_at", [1, 2])
def test_recover_out_failing_while_finishing_leaves_nothing_behind(
    demo_core, tmp_path, monkeypatch, fail_at
):
    out = tmp_path / "part.ome.tif"
    _record(demo_core, out, monkeypatch)
    before = out.read_bytes()
    target = tmp_path / "elsewhere" / "copy.ome.tif"
    target.parent.mkdir()
    monkeypatch.setattr(os, "pwrite", Pwrite(fail_at))
    assert main(["recover", str(out), "--out", str(target)]) == 2
    assert list(target.parent.iterdir()) == []
    assert out.read_bytes() == before


def test_a_result_that_does_not_read_back_is_undone(demo_core, tmp_path, monkeypatch, capsys):
    """Recover reads its result back with tifffile before it calls it a success."""
    out = tmp_path / "part.ome.tif"
    _record(demo_core, out, monkeypatch)
    before = out.read_bytes()
    monkeypatch.setattr(recovery_module, "build_ome",
                        lambda *_: OmeDocument("<not-ome/>", OME()))
    assert main(["recover", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not read back" in err and "put back as it was" in err
    assert out.read_bytes() == before and journal_path(out).exists()
