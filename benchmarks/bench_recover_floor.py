"""How close ``nbo-recorder recover`` of 100,000 planes can come to issue #17's 2 s here.

``recover`` must at least: start Python, import the libraries it writes and checks OME-TIFF
with (ome-types for the OME model, tifffile, msgspec for the journal), read every frame line
of the journal, write one OME ``Plane``, one ``TiffData`` and one NBO ``Plane`` per frame
into the file and sync it, and read the page chain back with an independent reader
(tifffile). The *floor* child does only that, each part the cheapest way Python has (one
untyped msgspec decode of all frame lines, one ``%``-format per element), with none of the
real command's checks, layout, plan, Instrument or compliance. Its wall time in a fresh
process is a lower bound for any ``recover`` built on this stack on this machine.

Each round copies the same crashed file (:func:`bench_scale.crashed_file`) and runs, in
fresh processes and in alternating order, ``python -c pass``, the floor child and the real
command (``python -m nbo_recorder.cli.main recover``). Run by hand:

    python benchmarks/bench_recover_floor.py [--planes 100000] [--rounds 5] [--json PATH]

It prints the medians (and ranges) of each part of the floor, of the floor's and the real
command's process wall times, and the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_recorder import REPO
from bench_scale import crashed_file, fresh_copy

#: The floor child. Its parts mirror what the recorder writes for each frame (attributes as
#: in a recovered file); it prints each part's seconds as one JSON object.
_FLOOR = r'''
import json, os, sys, time
T = {}
t = time.perf_counter()
sys.modules["ome_types.units"] = None  # as the nbo-recorder command does (no pint)
import msgspec, tifffile
import ome_types.model
T["import ome-types, tifffile, msgspec"] = time.perf_counter() - t

t = time.perf_counter()
with open(PATH + ".nbo-journal", "rb") as f:
    lines = f.read().split(b"\n")
rows = msgspec.json.decode(b"[" + b",".join([l[5:-1] for l in lines if l[:5] == b'{"f":']) + b"]")
T["journal: one untyped msgspec decode"] = time.perf_counter() - t

t = time.perf_counter()
ome = ('<Plane TheZ="%d" TheT="%d" TheC="%d" DeltaT="%r" DeltaTUnit="s" ExposureTime="%r" '
       'ExposureTimeUnit="ms" PositionX="%r" PositionXUnit="\u00b5m" PositionY="%r" '
       'PositionYUnit="\u00b5m" PositionZ="%r" PositionZUnit="\u00b5m"/>')
tiff = '<TiffData IFD="%d" FirstZ="%d" FirstT="%d" FirstC="%d" PlaneCount="1"/>'
nbo = ('<Plane ID="Plane:%d:%d" TheZ="%d" TheT="%d" TheC="%d" Timestamp="%r" '
       'TimestampUnit="s" ExposureTime="%r" ExposureTimeUnit="ms" PositionX="%r" '
       'PositionXUnit="\u00b5m" PositionY="%r" PositionYUnit="\u00b5m" PositionZ="%r" '
       'PositionZUnit="\u00b5m" />')
text = "".join([
    "".join([tiff % (r[0], r[4], r[2], r[3]) for r in rows]),
    "".join([ome % (r[4], r[2], r[3], r[6] / 1000, r[7], r[8], r[9], r[10]) for r in rows]),
    "".join([nbo % (r[1], r[0], r[4], r[2], r[3], r[6] / 1000, r[7], r[8], r[9], r[10])
             for r in rows]),
]).encode()
T["text: TiffData, OME Plane, NBO Plane per frame"] = time.perf_counter() - t

t = time.perf_counter()
fd = os.open(PATH, os.O_WRONLY)
os.pwrite(fd, text, os.fstat(fd).st_size)
os.fsync(fd)
os.close(fd)
T["write and fsync"] = time.perf_counter() - t

t = time.perf_counter()
with tifffile.TiffFile(PATH) as tf:
    assert len(tf.pages) == len(rows), (len(tf.pages), len(rows))
T["read the page chain back (tifffile)"] = time.perf_counter() - t
print(json.dumps(T))
'''


def _wall(argv: list[str]) -> tuple[float, str]:
    """A command's wall time in a fresh process, and what it printed; it must succeed."""
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=REPO)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{argv[1:3]}: {done.stderr[-800:]}")
    return wall, done.stdout


def bench_floor(planes: int, rounds: int) -> dict[str, Any]:
    """The floor's parts and process wall, the real command's, and a bare interpreter's."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "recorder")],
                   check=True)
    walls: dict[str, list[float]] = {"python -c pass": [], "floor": [], "recover": []}
    parts: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        folder = Path(tmp)
        pristine = crashed_file(folder, planes)
        order = ["python -c pass", "floor", "recover"]
        for k in range(rounds):
            for variant in order if k % 2 == 0 else order[::-1]:
                if variant == "python -c pass":
                    wall, _ = _wall([sys.executable, "-c", "pass"])
                elif variant == "floor":
                    path = fresh_copy(pristine, folder / "big.ome.tif")
                    wall, out = _wall([sys.executable, "-c", f"PATH = {str(path)!r}\n{_FLOOR}"])
                    for name, seconds in json.loads(out.splitlines()[-1]).items():
                        parts.setdefault(name, []).append(seconds)
                else:
                    path = fresh_copy(pristine, folder / "big.ome.tif")
                    wall, _ = _wall([sys.executable, "-m", "nbo_recorder.cli.main", "recover",
                                     str(path)])
                walls[variant].append(wall)
    return {"planes": planes, "rounds": rounds,
            "parts_s": {k: _summary(v) for k, v in parts.items()},
            "walls_s": {k: _summary(v) for k, v in walls.items()}}


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def format_table(result: dict[str, Any]) -> str:
    """The result as a Markdown table: seconds, median (min-max) of the rounds."""
    rows = [f"{result['planes']:,} planes, {result['rounds']} rounds, fresh processes",
            "", "| part | median s | range s |", "|---|---:|---:|"]
    for section, prefix in (("parts_s", "floor: "), ("walls_s", "process wall: ")):
        for name, s in result[section].items():
            rows.append(f"| {prefix}{name} | {s['median']:.2f} | "
                        f"{s['min']:.2f}-{s['max']:.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--planes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    result = bench_floor(args.planes, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
