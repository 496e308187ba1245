"""Scan time of ``nbo-recorder catalog`` over 1,000 files, serial and in parallel.

Run by hand (not part of the unit suite; nothing is asserted):

    python benchmarks/bench_catalog.py [--files 1000] [--rounds 3] [--keep DIR]

The files are the two demo outputs' OME-XML (widefield and spinning-disk, alternately) on
an 8×8 page each, with the objective model and acquisition date varied per file, in 10
sub-folders: the scan reads only the XML, so the pixel data does not matter. Each round
scans the folder with ``--workers 1`` (in-process) and with the default workers (one process
per CPU), interleaved, each in a fresh process (``nbo-recorder catalog FOLDER --out ...``,
interpreter start and the Parquet write included). Prints the median and worst wall time
of each, and the rows written.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

CLI = "import sys; from nbo_recorder.cli.main import main; sys.exit(main(sys.argv[1:]))"


def make_files(folder: Path, count: int) -> None:
    """``count`` small OME-TIFFs carrying the demo outputs' OME-XML, varied per file."""
    from nbo_recorder.cli.main import main

    folder.mkdir(parents=True, exist_ok=True)
    xmls = []
    for options in ((), ("--rig", "spinning-disk")):
        demo = folder / f"demo-{len(xmls)}.ome.tif"
        assert main(["demo", "--out", str(demo), *options]) == 0
        xmls.append(str(tifffile.TiffFile(demo).pages.first.description))
        demo.unlink()
    for k in range(count):
        xml = xmls[k % 2]
        xml = re.sub(r'(<Objective [^>]*?)Model="[^"]*"', rf'\1Model="objective {k % 5}"', xml)
        xml = re.sub(r"<AcquisitionDate>[^<]*</AcquisitionDate>",
                     f"<AcquisitionDate>2025-01-{k % 28 + 1:02d}T10:00:00Z</AcquisitionDate>",
                     xml)
        sub = folder / f"day-{k % 10}"
        sub.mkdir(exist_ok=True)
        tifffile.imwrite(sub / f"file-{k:04d}.ome.tif", np.zeros((8, 8), np.uint8),
                         description=xml.encode(), metadata=None)


def run_scan(folder: Path, out: Path, workers: list[str]) -> tuple[float, str]:
    """Wall time of one ``catalog`` run in a fresh process, and what it printed."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, "catalog", str(folder), "--out",
                           str(out), *workers], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None,
                        help="make the files in this folder and keep them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        make_files(folder / "files", args.files)
        print(f"made {args.files} files in {time.perf_counter() - start:.1f} s "
              f"({os.cpu_count()} CPUs)")
        variants = {"serial (--workers 1)": ["--workers", "1"],
                    f"parallel ({os.cpu_count()} processes)": []}
        times: dict[str, list[float]] = {name: [] for name in variants}
        printed = ""
        for _ in range(args.rounds):
            for name, extra in variants.items():
                seconds, printed = run_scan(folder / "files", folder / "catalog.parquet", extra)
                times[name].append(seconds)
        print(printed)
        print(f"| scan of {args.files} files | median s | worst s |")
        print("|---|---|---|")
        for name, values in times.items():
            print(f"| {name} | {statistics.median(values):.2f} | {max(values):.2f} |")
    finally:
        if args.keep is None:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
