"""Every file a kill leaves opens in Bio-Formats once recovered, with the frames written.

Kills at seeded random frames (``before``/``mid``/``after`` a page, see ``kill_child.py``) of
a two-position, two-channel z-stack time-lapse: most cut a time point, a z-stack or a
position short. Each file is recovered through ``recover``; then

* tifffile reads every page, and the OME-XML (parsed here with ElementTree) places each page
  by its TiffData as exactly one plane of one Image whose Pixels hold every plane they
  declare (SizeZ x SizeC x SizeT TiffData, each (Z, C, T) once), at the indices of the frame
  the camera delivered to that page, with its pixels;
* Bio-Formats' ``ImageInfo`` (all files in one JVM) opens every file, reading all planes,
  and reports the series count and each series' SizeZ/C/T the OME-XML declares.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import tifffile

from nbo_recorder.store.recovery import recover
from tests.helpers import bioformats_jar, bioformats_read_all

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("kill_child.py")
FRAMES = 36  # kill_child.SEQUENCE
CHILDREN, KILLS_PER_CHILD = 6, 4
OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"


def _cuts(seed: int) -> list[list[tuple[str, int]]]:
    """Per child, its runs' (mode, frame): at least one page is whole in every run."""
    rng = random.Random(seed)
    cuts = []
    for _ in range(CHILDREN):
        runs = []
        for _ in range(KILLS_PER_CHILD):
            mode = rng.choice(("before", "mid", "after"))
            runs.append((mode, rng.randrange(0, FRAMES - 1) if mode == "after"
                         else rng.randrange(1, FRAMES)))
        cuts.append(runs)
    return cuts


def _ground_truth(log: Path) -> tuple[dict[tuple[int, int], tuple[Any, ...]], set[tuple[int, int]]]:
    """(run, frame) -> (p, t, c, z, channel, sha1) as the camera delivered it; pages written."""
    frames: dict[tuple[int, int], tuple[Any, ...]] = {}
    written = set()
    for line in log.read_text().splitlines():
        parts = line.split()
        if parts[0] == "frame":
            run, k, p, t, c, z = map(int, parts[1:7])
            frames[run, k] = (p, t, c, z, parts[7], parts[8])
        elif parts[0] == "written":
            written.add((int(parts[1]), int(parts[2])))
    return frames, written


def _check_file(path: Path, truth: dict[int, tuple[Any, ...]], expected_pages: int) -> list[
        tuple[int, int, int]]:
    """Assert the file holds the frames written, each declared once; per Image its sizes."""
    with tifffile.TiffFile(path) as tf:
        xml = tf.pages[0].description
        pixels = [hashlib.sha1(page.asarray().tobytes()).hexdigest() for page in tf.pages]
    assert len(pixels) == expected_pages, f"{path.name}: pages {len(pixels)} != {expected_pages}"
    root = ET.fromstring(xml)
    seen: list[int] = []
    sizes = []
    for image in root.iter(f"{OME}Image"):
        px = image.find(f"{OME}Pixels")
        assert px is not None
        size = tuple(int(px.get(f"Size{a}", "0")) for a in "ZCT")
        sizes.append(size)
        names = [ch.get("Name") for ch in px.iter(f"{OME}Channel")]
        assert len(names) == size[1]
        placed = {}
        for td in px.iter(f"{OME}TiffData"):
            assert td.get("PlaneCount") == "1"
            zct = tuple(int(td.get(f"First{a}", "0")) for a in "ZCT")
            assert zct not in placed, f"{path.name}: plane {zct} declared twice"
            placed[zct] = int(td.get("IFD", "-1"))
        grid = {(z, c, t) for z in range(size[0]) for c in range(size[1]) for t in range(size[2])}
        assert set(placed) == grid, f"{path.name}: {image.get('ID')} declares {size} " \
                                    f"but holds planes {sorted(placed)}"
        for axis, own in enumerate((3, 2, 1)):  # z, c, t in a ground-truth entry
            # the Image numbers each axis 0, 1, ... in the order of the frames' own indices
            pairs = sorted({(truth[ifd][own], zct[axis]) for zct, ifd in placed.items()})
            assert [mine for _, mine in pairs] == list(range(size[axis])), (path.name, axis)
        assert len({truth[ifd][0] for ifd in placed.values()}) == 1, "one position per Image"
        for (_, c, _), ifd in placed.items():
            assert names[c] == truth[ifd][4], f"{path.name}: IFD {ifd} channel"
            assert pixels[ifd] == truth[ifd][5], f"{path.name}: IFD {ifd} pixels"
        seen.extend(placed.values())
    assert sorted(seen) == list(range(expected_pages)), f"{path.name}: every page exactly once"
    return sizes


def test_every_killed_and_recovered_file_opens_in_bioformats(tmp_path):
    jar = bioformats_jar()
    children = []
    for i, runs in enumerate(_cuts(20261202)):
        folder = tmp_path / f"child{i}"
        folder.mkdir()
        args = [f"{mode}:{frame}" for mode, frame in runs]
        children.append((folder, runs, subprocess.Popen(
            [sys.executable, str(CHILD), str(folder), str(folder / "log"), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
        if len(children) % 2 == 0:  # two at a time: the machine has two cores
            for *_, proc in children[-2:]:
                proc.wait(timeout=300)
    files: list[tuple[Path, list[tuple[int, int, int]]]] = []
    for folder, runs, proc in children:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == -9, f"the last run was meant to be SIGKILLed: {err[-2000:]!r}"
        frames, written = _ground_truth(folder / "log")
        for run, (mode, frame) in enumerate(runs):
            expected = frame + 1 if mode == "after" else frame
            assert {k for r, k in written if r == run} >= set(range(expected))
            path = folder / f"run{run}.ome.tif"
            report = recover(path)
            assert report.frames_recovered == expected
            truth = {k: v for (r, k), v in frames.items() if r == run}
            files.append((path, _check_file(path, truth, expected)))
    assert len(files) == CHILDREN * KILLS_PER_CHILD >= 20
    opened = bioformats_read_all(jar, [(path, len(sizes)) for path, sizes in files], tmp_path)
    refused = {path.name: opened[str(path)]["error"] for path, sizes in files
               if opened[str(path)]["verdicts"] != [True] * len(sizes)}
    assert not refused, f"Bio-Formats refused {len(refused)} of {len(files)}: {refused}"
    for path, sizes in files:
        result = opened[str(path)]
        assert result["series"] == len(sizes), path
        assert [(s["Z"], s["C"], s["T"]) for s in result["sizes"]] == sizes, path
