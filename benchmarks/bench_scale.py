"""``recover`` and ``validate`` of a many-plane file, each in a fresh process (issue #17).

The file is what :func:`bench_recorder.bench_scale` builds: the synthetic run of
:func:`bench_recorder.synthetic_run` as a crash leaves it (8x8 pages and the journal, no
OME-XML). It is built once per size and copied for each round, so the rounds time only
``recover`` and then ``validate_file(path, 1)`` of the recovered file. Run by hand:

    python benchmarks/bench_scale.py [--planes 10000 100000] [--rounds 3] [--profile DIR]

Per size and step it prints the median wall time and the median CPU time (user + system) of
the child process; the machine is shared, so the CPU time and the ratio between sizes say
more than one wall time. ``--profile DIR`` also writes a cProfile file per size and step
(``DIR/recover-100000.prof``; read it with ``python -m pstats``).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_recorder import REPO, synthetic_run

from nbo_recorder.store.journal import JournalWriter, journal_path
from nbo_recorder.store.tiff_writer import TiffPageWriter

_CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
start = time.perf_counter()
{body}
print(time.perf_counter() - start)
"""

_STEPS = {
    "recover": "from nbo_recorder.store.recovery import recover\nrecover({path!r})",
    "validate": "from nbo_recorder.judge.validate import validate_file\n"
                "validate_file({path!r}, 1)",
}


def crashed_file(folder: Path, planes: int) -> Path:
    """Write the synthetic run of ``planes`` 8x8 frames as a crash leaves it; its path."""
    run, _ = synthetic_run(planes)
    path = folder / f"crashed-{planes}.ome.tif"
    journal = JournalWriter(journal_path(path))
    journal.start(replace(run.start, width=8, height=8))
    writer = TiffPageWriter(path, bigtiff=True, run_id=journal.run_id)
    frame = np.zeros((8, 8), dtype=np.uint16)
    for record in run.frames:
        journal.frame(replace(record, width=8, height=8), run.snapshots[record.snapshot])
        writer.write(frame)
    writer.close()
    journal.close()
    return path


def fresh_copy(pristine: Path, path: Path) -> Path:
    """Copy the crashed file ``pristine`` and its journal to ``path`` and return ``path``,
    so that each timed round starts from the same crash."""
    shutil.copyfile(pristine, path)
    shutil.copyfile(journal_path(pristine), journal_path(path))
    return path


def _child(step: str, path: Path, profile: Path | None) -> tuple[float, float]:
    """Run one step in a fresh process: its own wall time and the child's CPU seconds."""
    code = _CHILD.format(repo=str(REPO), body=_STEPS[step].format(path=str(path)))
    argv = [sys.executable]
    if profile is not None:
        script = path.with_name(f"{step}.py")
        script.write_text(code)
        argv += ["-m", "cProfile", "-o", str(profile), str(script)]
    else:
        argv += ["-c", code]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=REPO)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{step}: {done.stderr[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(done.stdout.split()[-1]), cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--planes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="write cProfile files into this folder")
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"{'planes':>7} {'step':<9} {'wall s':>7} {'cpu s':>7}")
    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        folder = Path(tmp)
        for planes in args.planes:
            pristine = crashed_file(folder, planes)
            times: dict[str, list[tuple[float, float]]] = {s: [] for s in _STEPS}
            for k in range(args.rounds):
                path = fresh_copy(pristine, folder / "big.ome.tif")
                for step in _STEPS:
                    prof = (args.profile / f"{step}-{planes}.prof"
                            if args.profile and k == 0 else None)
                    times[step].append(_child(step, path, prof))
                path.unlink()
            for step, got in times.items():
                wall = statistics.median(w for w, _ in got)
                cpu = statistics.median(c for _, c in got)
                print(f"{planes:>7} {step:<9} {wall:>7.2f} {cpu:>7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
