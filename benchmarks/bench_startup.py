"""Start-up costs of nbo-recorder, each measured in a fresh Python process.

Run by hand (not part of the unit suite); it prints a table and writes the same as JSON:

    python benchmarks/bench_startup.py [--rounds 5] [--file demo.ome.tif] [--json PATH]

What is measured, per round, each in its own new process (so no import or cache of an
earlier measurement helps a later one):

* ``--help``: wall time of ``nbo-recorder --help``, interpreter start included;
* ``Recorder()``: the time ``Recorder(core, "hardware_profiles/mm_demo.yaml")`` takes on the
  loaded demo core, as the process itself measures it (imports of the recorder module and
  loading the core are outside);
* ``validate``: wall time of ``nbo-recorder validate FILE``, interpreter start included, and
  the peak resident memory of that process (``ru_maxrss`` of the child, MiB).

The measurements are interleaved round by round; the table gives the median and the worst
round. The commands run as ``python -m nbo_recorder.cli.main``, as the console script runs
them. The package's sources (and ``--pythonpath``'s) are compiled to bytecode first, as
``pip install`` does: where ``PYTHONDONTWRITEBYTECODE`` is set (this machine sets it) an
editable install would otherwise compile every module again in every process.
``--file`` defaults to a demo file written once with ``nbo-recorder demo``.
``--pythonpath DIR`` runs every measurement with ``DIR`` first on ``PYTHONPATH`` (a tree laid
out as the installed package, e.g. an older checkout), to compare two versions on one machine.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "hardware_profiles" / "mm_demo.yaml"

CLI = ["-m", "nbo_recorder.cli.main"]
RECORDER = (
    "import time\n"
    "from nbo_recorder.capture.recorder import Recorder\n"
    "from nbo_recorder.rig import load_core\n"
    "core = load_core('demo')\n"
    "start = time.perf_counter()\n"
    "Recorder(core, {profile!r})\n"
    "print(time.perf_counter() - start)\n"
)


def _environment(pythonpath: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    return env


def _child(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``args``; (wall time s, peak RSS MiB, stdout) of that process alone."""
    start = time.perf_counter()
    process = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):  # validate exits 1 when a MUST is missing
        raise RuntimeError(f"{args[-2:]} exited with {process.returncode}")
    return wall, usage.ru_maxrss / 1024, out


def compile_sources(pythonpath: str | None) -> None:
    """Write the bytecode of the package's modules (and of ``pythonpath``'s), as pip does.

    Symbolic links are followed (``compileall.compile_dir`` skips them): a tree laid out as
    the installed package is usually links to a checkout's folders.
    """
    for root in (REPO / "recorder", REPO / "drivers", REPO / "mocks",
                 *([Path(pythonpath)] if pythonpath else [])):
        for folder, _, names in os.walk(root, followlinks=True):
            for name in names:
                if name.endswith(".py"):
                    compileall.compile_file(os.path.join(folder, name), quiet=1)


def measure(rounds: int, demo_file: Path, pythonpath: str | None) -> dict[str, list[float]]:
    """Every measurement, ``rounds`` times, interleaved."""
    env = _environment(pythonpath)
    python = sys.executable
    found: dict[str, list[float]] = {
        "help_s": [], "recorder_s": [], "validate_s": [], "validate_peak_rss_mib": []}
    for _ in range(rounds):
        found["help_s"].append(_child([python, *CLI, "--help"], env)[0])
        _, _, out = _child([python, "-c", RECORDER.format(profile=str(PROFILE))], env)
        found["recorder_s"].append(float(out.strip().splitlines()[-1]))
        wall, rss, _ = _child([python, *CLI, "validate", str(demo_file)], env)
        found["validate_s"].append(wall)
        found["validate_peak_rss_mib"].append(rss)
    return found


def summary(found: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Median and worst (largest) of each measurement."""
    return {name: {"median": statistics.median(values), "worst": max(values)}
            for name, values in found.items()}


def table(summary_: dict[str, dict[str, float]], rounds: int) -> str:
    labels = {"help_s": ("nbo-recorder --help", "s"),
              "recorder_s": ("Recorder(core, profile)", "s"),
              "validate_s": ("nbo-recorder validate (demo file)", "s"),
              "validate_peak_rss_mib": ("validate peak RSS", "MiB")}
    lines = [f"Start-up, fresh process per measurement, {rounds} rounds", "",
             "| measurement | median | worst |", "|---|---:|---:|"]
    for name, figures in summary_.items():
        label, unit = labels[name]
        median, worst = figures["median"], figures["worst"]
        lines.append(f"| {label} | {median:.3f} {unit} | {worst:.3f} {unit} |")
    return "\n".join(lines)


def demo(folder: Path, pythonpath: str | None) -> Path:
    """A demo file written by ``nbo-recorder demo``."""
    out = folder / "demo.ome.tif"
    subprocess.run([sys.executable, *CLI, "demo", "--out", str(out)], cwd=REPO, check=True,
                   env=_environment(pythonpath), stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (>= 5; default 5)")
    parser.add_argument("--file", type=Path, help="OME-TIFF to validate (default: a demo file)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "startup.json",
                        help="where to write the figures (default benchmarks/startup.json)")
    parser.add_argument("--pythonpath", help="a package tree to put first on PYTHONPATH")
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds must be at least 5")
    compile_sources(args.pythonpath)
    with tempfile.TemporaryDirectory() as folder:
        demo_file = args.file or demo(Path(folder), args.pythonpath)
        found = measure(args.rounds, demo_file, args.pythonpath)
    result: dict[str, Any] = {"rounds": args.rounds, "python": sys.version.split()[0],
                              "pythonpath": args.pythonpath, "summary": summary(found),
                              "runs": found}
    print(table(result["summary"], args.rounds))
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
