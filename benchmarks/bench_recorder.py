"""Benchmarks of nbo-recorder against pymmcore-plus's own writer and against no writer.

Run by hand (not part of the unit suite); it prints a table and writes the same as JSON:

    python benchmarks/bench_recorder.py [--quick] [--only burst] [--json benchmarks/results.json]

Every comparison is a ratio measured in the same run, with the variants interleaved and
repeated, so a shared, noisy machine affects all of them alike; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nbo_recorder.capture.documents import FrameRecord, Run, RunStart, StateSnapshot  # noqa: E402
from nbo_recorder.profile.load import load_profile  # noqa: E402

PROFILE = REPO / "hardware_profiles" / "mm_demo.yaml"


def demo_core(size: int, buffer_mb: int | None = None, config: str = "demo") -> Any:
    from nbo_recorder.rig import load_core

    core = load_core(config)
    core.setProperty("Camera", "OnCameraCCDXSize", str(size))
    core.setProperty("Camera", "OnCameraCCDYSize", str(size))
    core.setProperty("Camera", "FastImage", "1")
    core.setExposure(0)
    if buffer_mb:
        core.setCircularBufferMemoryFootprint(buffer_mb)
    return core


def _run_variant(core: Any, variant: str, frames: int, workdir: Path) -> dict[str, Any]:
    import useq

    from nbo_recorder.capture.recorder import Recorder

    seq = useq.MDASequence(time_plan={"interval": 0, "loops": frames})
    out = workdir / f"{variant}.ome.tif"
    out.unlink(missing_ok=True)
    output: Any = None
    if variant == "pymmcore-plus":
        output = str(out)
    elif variant == "nbo-recorder":
        output = Recorder(core, PROFILE).sink(out)
    t0 = time.perf_counter()
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            core.mda.run(seq, output=output)
        except Exception as exc:  # pymmcore-plus's writer fails with 'Buffer overflowed'
            error = f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - t0
    overflowed = error is not None and "Buffer overflowed" in error
    if variant == "nbo-recorder" and output.errors:
        error = "; ".join(output.errors)
    size = out.stat().st_size if out.exists() else 0
    out.unlink(missing_ok=True)
    # the recorder's early warning, given while frames still come (before the overflow)
    warned = any("circular buffer" in str(w.message) for w in caught)
    return {"wall_s": wall, "error": error, "bytes": size, "overflowed": overflowed,
            "buffer_warning": warned}


def bench_mda(size: int, frames: int, repeats: int, buffer_mb: int | None) -> dict[str, Any]:
    """The same hardware-sequenced MDA with no writer, pymmcore-plus's OME-TIFF, nbo-recorder."""
    core = demo_core(size, buffer_mb)
    variants = ["none", "pymmcore-plus", "nbo-recorder"]
    walls: dict[str, list[float]] = {v: [] for v in variants}
    errors: dict[str, str | None] = {v: None for v in variants}
    overflowed = dict.fromkeys(variants, 0)
    warned_first = dict.fromkeys(variants, 0)
    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        for v in variants:  # warm-up: first-use costs (imports, schema loads) of each variant
            _run_variant(core, v, min(frames, 20), Path(tmp))
        for _ in range(repeats):
            for v in variants:
                r = _run_variant(core, v, frames, Path(tmp))
                walls[v].append(r["wall_s"])
                errors[v] = errors[v] or r["error"]
                overflowed[v] += r["overflowed"]
                warned_first[v] += r["overflowed"] and r["buffer_warning"]
    med = {v: statistics.median(w) for v, w in walls.items()}
    return {
        "size": size, "frames": frames, "repeats": repeats, "buffer_mb": buffer_mb,
        "median_wall_s": med, "fps": {v: frames / med[v] for v in variants},
        "ratio_to_no_writer": {v: med[v] / med["none"] for v in variants},
        "errors": errors, "all_walls_s": walls,
        # rounds that ended in 'Buffer overflowed', and of those, the ones the recorder's
        # early warning came in first
        "overflowed_rounds": overflowed, "warned_before_overflow": warned_first,
    }


def bench_verify(size: int, frames: int, repeats: int) -> dict[str, Any]:
    """Cost of each ``verify`` policy: the same 512² z-stack (snapped frames, 10 ms exposure)
    on the demo rig and on the simulated spinning-disk rig (whose serial instruments are
    Python devices, re-read per the policy), as a wall-time ratio to no writer."""
    import useq

    from nbo_recorder.capture.recorder import Recorder
    from nbo_recorder.cli.acquisition import bundled_profile, bundled_rig_config

    rigs = {"demo": ("demo", PROFILE, "DAPI"),
            "spinning-disk": (bundled_rig_config("sim_spinning_disk.cfg"),
                              bundled_profile("sim_spinning_disk.yaml"), "488-GFP")}
    policies = ["events", "every-frame", "interval:0.5"]
    out: dict[str, Any] = {"size": size, "frames": frames, "repeats": repeats}
    for rig, (config, profile, channel) in rigs.items():
        core = demo_core(size, config=config)
        core.setExposure(10)
        seq = useq.MDASequence(channels=[channel],
                               z_plan={"range": frames - 1, "step": 1})
        walls: dict[str, list[float]] = {v: [] for v in ["none", *policies]}
        with tempfile.TemporaryDirectory(dir=REPO) as tmp:
            for _ in range(repeats + 1):  # the first round warms up and is dropped
                for variant in walls:
                    path = Path(tmp) / "verify.ome.tif"
                    path.unlink(missing_ok=True)
                    output = (None if variant == "none"
                              else Recorder(core, profile, verify=variant).sink(path))
                    t0 = time.perf_counter()
                    core.mda.run(seq, output=output)
                    walls[variant].append(time.perf_counter() - t0)
        core.unloadAllDevices()
        med = {v: statistics.median(w[1:]) for v, w in walls.items()}
        out[rig] = {"median_wall_s": med,
                    "ratio_to_no_writer": {v: med[v] / med["none"] for v in med}}
    return out


def bench_writer(size: int, frames: int, repeats: int) -> dict[str, Any]:
    """Raw writer throughput: nbo-recorder's page writer vs plain tifffile, same frames.

    Plain tifffile leaves its bytes in the page cache, so its rate is that of copying them
    there, which on this machine swings with the cache (0.4-3.5 GB/s for the same code in
    one sitting). The recorder's writer pushes its file to disk as it goes
    (:mod:`~nbo_recorder.store.write_behind`) and is timed to the file's fsync, as a
    recording is finished. So it is compared both with tifffile as it is used (``ratio``)
    and with tifffile followed by an fsync of its file, both then timed until the bytes are
    on disk (``ratio_on_disk``, the comparison of like with like). The variants are
    alternated, in a rotating order.
    """
    import tifffile

    from nbo_recorder.store.tiff_writer import TiffPageWriter

    rng = np.random.default_rng(0)
    data = [rng.integers(0, 4000, (size, size), dtype=np.uint16) for _ in range(4)]
    nbytes = frames * data[0].nbytes

    def fsync(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def plain(path: Path) -> None:
        with tifffile.TiffWriter(path, bigtiff=True) as tw:
            for i in range(frames):
                tw.write(data[i % 4], contiguous=True)

    def plain_synced(path: Path) -> None:
        plain(path)
        fsync(path)

    def ours(path: Path) -> None:
        w = TiffPageWriter(path, bigtiff=True)
        for i in range(frames):
            w.write(data[i % 4])
        w.close()
        fsync(path)

    fns: dict[str, Callable[[Path], None]] = {
        "tifffile": plain, "tifffile, synced": plain_synced, "nbo-recorder": ours}
    results: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        for round_ in range(repeats):
            turn = round_ % len(order)
            for name in order[turn:] + order[:turn]:
                path = Path(tmp) / "writer.tif"
                t0 = time.perf_counter()
                fns[name](path)
                results[name].append(nbytes / (time.perf_counter() - t0) / 1e6)
                path.unlink()
                fsync(Path(tmp))
    med = {k: statistics.median(v) for k, v in results.items()}
    return {"size": size, "frames": frames, "median_MB_per_s": med,
            "ratio": med["nbo-recorder"] / med["tifffile"],
            "ratio_on_disk": med["nbo-recorder"] / med["tifffile, synced"],
            "all_MB_per_s": results}


def bench_page_cpu(size: int, frames: int, repeats: int) -> dict[str, Any]:
    """CPU time of the writing thread per page: tifffile writing each page (as the recorder's
    writer did before it repeated pages) vs nbo-recorder's writer, the same frames, alternated.

    That time is what the writer thread takes from the acquisition thread under the GIL.
    """
    import tifffile

    from nbo_recorder.store.tiff_writer import TiffPageWriter

    rng = np.random.default_rng(0)
    data = [rng.integers(0, 4000, (size, size), dtype=np.uint16) for _ in range(4)]

    def tifffile_pages(path: Path) -> None:
        with open(path, "wb", buffering=0) as fh, tifffile.TiffWriter(fh, bigtiff=True) as tw:
            for i in range(frames):
                tw.write(data[i % 4], description="placeholder" if i == 0 else None,
                         metadata=None, contiguous=False, photometric="minisblack",
                         software="nbo-recorder")

    def ours(path: Path) -> None:
        w = TiffPageWriter(path, bigtiff=True)
        for i in range(frames):
            w.write(data[i % 4])
        w.close()

    fns: dict[str, Callable[[Path], None]] = {"tifffile page by page": tifffile_pages,
                                              "nbo-recorder": ours}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        for _ in range(repeats):
            for name, fn in fns.items():
                path = Path(tmp) / "pages.tif"
                t0 = time.thread_time()
                fn(path)
                cpu[name].append((time.thread_time() - t0) / frames * 1e6)
                path.unlink()
    med = {k: statistics.median(v) for k, v in cpu.items()}
    return {"size": size, "frames": frames, "median_cpu_us_per_page": med, "all_us": cpu}


def synthetic_run(planes: int, channels: int = 2) -> tuple[Run, Any]:
    """A run of ``planes`` frames that alternate between a few observed states."""
    profile = load_profile(PROFILE)
    base = {("Objective", "Label"): "Nikon 10X S Fluor", ("Core", "Shutter"): "LED Shutter",
            ("Camera", "Gain"): "1", ("Camera", "Binning"): "1", ("Camera", "Offset"): "0",
            ("Camera", "BitDepth"): "16", ("Camera", "CCDTemperature"): "0",
            ("Excitation", "Label"): "Empty", ("Emission", "Label"): "89402m",
            ("Dichroic", "Label"): "89402bs", ("Core", "AutoShutter"): "1",
            ("LED Shutter", "State"): "0"}
    snaps = {}
    for uid, led in enumerate(("470nm", "550nm")):
        values = dict(base)
        values[("LED", "Label")] = led
        snaps[uid] = StateSnapshot(uid, MappingProxyType(values), 0.0, "bench")
    start = RunStart(started_at="2026-11-23T00:00:00+00:00",
                     profile=profile.model_dump(mode="json"), sequence={}, width=512,
                     height=512, dtype="uint16", camera="Camera", versions={"bench": "1"},
                     position_names=(None,))
    frames = [FrameRecord(index=i, p=0, t=i // channels, c=i % channels, z=0,
                          channel=("FITC", "TRITC")[i % channels], elapsed_ms=i * 10.0,
                          exposure_ms=10.0, x_um=0.0, y_um=0.0, z_um=1.0, pixel_size_um=1.0,
                          snapshot=i % channels) for i in range(planes)]
    return Run(start=start, snapshots=snaps, frames=frames), profile


def bench_finalise(counts: list[int], validate_max: int) -> list[dict[str, Any]]:
    """Time to build the OME-XML for N planes, its size, and (up to a size) XSD validity."""
    from nbo_recorder.render.ome import build_ome_xml

    out = []
    for n in counts:
        run, profile = synthetic_run(n)
        t0 = time.perf_counter()
        xml = build_ome_xml(run, profile, "nbo-recorder bench")
        dt = time.perf_counter() - t0
        entry: dict[str, Any] = {"planes": n, "build_s": dt, "xml_bytes": len(xml.encode())}
        if n <= validate_max:
            import ome_types
            import xmlschema

            schema = xmlschema.XMLSchema(Path(ome_types.__file__).parent / "ome-2016-06.xsd")
            t0 = time.perf_counter()
            entry["valid"] = schema.is_valid(xml)
            entry["validate_s"] = time.perf_counter() - t0
        out.append(entry)
    return out


_RSS_CHILD = """
import json, resource, sys, tempfile, useq
sys.path.insert(0, {repo!r})
sys.path.insert(0, {repo!r} + "/benchmarks")
from bench_recorder import demo_core, PROFILE
from nbo_recorder.capture.recorder import Recorder

def main():
    core = demo_core(512)
    seq = useq.MDASequence(time_plan={{"interval": 0, "loops": {frames}}})
    error, written = None, 0
    with tempfile.TemporaryDirectory(dir={repo!r}) as d:
        sink = Recorder(core, PROFILE).sink(d + "/rss.ome.tif")
        try:
            core.mda.run(seq, output=sink)
        except Exception as exc:
            error = f"{{type(exc).__name__}}: {{exc}}"
        written = len(sink.run.frames) if sink.run else 0
    core.unloadAllDevices()
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"peak_rss_kib": kib, "written": written, "error": error}}), flush=True)

main()
"""


def bench_rss(counts: list[int]) -> list[dict[str, Any]]:
    """Peak RSS of a whole recording process for different frame counts (512x512)."""
    out = []
    for n in counts:
        code = _RSS_CHILD.format(repo=str(REPO), frames=n)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=600)
        line = next((ln for ln in res.stdout.splitlines() if ln.startswith("{")), None)
        if line is None:
            out.append({"frames": n, "error": f"exit {res.returncode}: {res.stderr[-300:]}"})
            continue
        child = json.loads(line)
        out.append({"frames": n, "frames_written": child["written"], "error": child["error"],
                    "peak_rss_mb": child["peak_rss_kib"] / 1024})
    return out


_LONG_CHILD = """
import json, os, resource, sys, tempfile, threading, time
sys.path.insert(0, {repo!r})
sys.path.insert(0, {repo!r} + "/benchmarks")
sys.modules["ome_types.units"] = None  # as where pint is not installed
import useq
from bench_recorder import demo_core, PROFILE

core = demo_core({size})
page = os.sysconf("SC_PAGE_SIZE")
samples, stop, sink = [], threading.Event(), None

def sample():
    while not stop.wait(0.25):
        rss = int(open("/proc/self/statm").read().split()[1]) * page / 2**20
        samples.append((time.perf_counter() - start, rss))

seq = useq.MDASequence(time_plan={{"interval": 0, "loops": {frames}}})
with tempfile.TemporaryDirectory(dir={repo!r}) as folder:
    if {writer!r} == "nbo-recorder":
        from nbo_recorder.capture.recorder import Recorder
        sink = Recorder(core, PROFILE).sink(folder + "/long.ome.tif")
    thread = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    thread.start()
    core.mda.run(seq, output=sink)
    wall = time.perf_counter() - start
    stop.set()
    thread.join()
    written = len(sink.run.frames) if sink is not None and sink.run is not None else None
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"wall_s": wall, "peak_rss_mib": peak, "written": written,
                  "samples": samples}}), flush=True)
core.unloadAllDevices()
"""


def bench_long_rss(frames: int, size: int) -> dict[str, Any]:
    """Memory over a long run: ``frames`` hardware-sequenced frames of ``size``², no writer
    and nbo-recorder, each in a fresh process; RSS sampled every 0.25 s from a thread.

    Reported: each run's peak RSS, and its RSS at 10 % and 95 % of its wall time (the
    frames come at a steady rate): the growth over the run, what each keeps per frame.
    """
    out: dict[str, Any] = {"frames": frames, "size": size}
    for writer in ("none", "nbo-recorder"):
        code = _LONG_CHILD.format(repo=str(REPO), size=size, frames=frames, writer=writer)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=3600, cwd=REPO)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("{")), None)
        if line is None:
            raise RuntimeError(f"{writer}: exit {done.returncode}: {done.stderr[-500:]}")
        child = json.loads(line)
        wall = child["wall_s"]

        def rss_at(fraction: float, samples: list[list[float]] = child["samples"],
                   wall: float = wall) -> float:
            return next(rss for at, rss in samples if at >= fraction * wall)
        out[writer] = {"wall_s": wall, "peak_rss_mib": child["peak_rss_mib"],
                       "written": child["written"], "rss_at_10_percent_mib": rss_at(0.10),
                       "rss_at_95_percent_mib": rss_at(0.95)}
    return out


def bench_capture(frames: int) -> dict[str, Any]:
    """Per-frame state-capture cost on the acquisition thread (RecordingSink._on_frame)."""
    import useq

    from nbo_recorder.capture.recorder import Recorder
    from nbo_recorder.capture.sink import RecordingSink
    from nbo_recorder.capture.state import StateMonitor

    core = demo_core(512)
    durations: list[float] = []
    original = RecordingSink._on_frame

    def timed(self: RecordingSink, *args: Any) -> None:
        t0 = time.perf_counter_ns()
        original(self, *args)
        durations.append((time.perf_counter_ns() - t0) / 1000)

    RecordingSink._on_frame = timed  # type: ignore[method-assign]
    reads = {"n": 0}
    real_read = StateMonitor.read

    def counting_read(self: StateMonitor, key: Any) -> Any:
        reads["n"] += 1
        return real_read(self, key)

    StateMonitor.read = counting_read  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory(dir=REPO) as tmp:
            seq = useq.MDASequence(time_plan={"interval": 0, "loops": frames})
            sink = Recorder(core, PROFILE).sink(Path(tmp) / "cap.ome.tif")
            core.mda.run(seq, output=sink)
    finally:
        RecordingSink._on_frame = original  # type: ignore[method-assign]
        StateMonitor.read = real_read  # type: ignore[method-assign]
    steady = durations[1:]
    return {"frames": frames, "median_us": statistics.median(steady),
            "p95_us": float(np.percentile(steady, 95)), "first_frame_us": durations[0],
            "device_reads_during_run": reads["n"]}


_BURST_CHILD = """
import json, resource, sys, tempfile, time, warnings
sys.path.insert(0, {repo!r})
if not {with_pint!r}:
    sys.modules["ome_types.units"] = None  # as where pint is not installed
import useq
from nbo_recorder.rig import load_core

core = load_core("demo")
core.setProperty("Camera", "FastImage", "1")
seq = useq.MDASequence(channels=[{{"config": "FITC", "exposure": {exposure}}}],
                       time_plan={{"interval": 0, "loops": {frames}}})
with tempfile.TemporaryDirectory(dir={repo!r}) as folder:
    out = folder + "/burst" + {suffix!r}
    output = None
    if {writer!r} == "pymmcore-plus":
        output = out
    elif {writer!r} == "nbo-recorder":
        from nbo_recorder.capture.recorder import Recorder
        output = Recorder(core, {profile!r}).sink(out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        core.mda.run(seq, output=output)
        wall = time.perf_counter() - start
full = any("circular buffer" in str(w.message) for w in caught)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
# the result first: unloading the demo devices after a burst sometimes aborts the process
# (glibc: double free), with pymmcore-plus's writer as with nbo-recorder's
print(json.dumps({{"wall_s": wall, "buffer_warning": full, "peak_rss_mib": rss}}), flush=True)
core.unloadAllDevices()
"""
#: a round whose wall time exceeds the no-writer run's by more than this is "slow mode"
SLOW_RATIO = 1.3


def bench_burst(frames: int, rounds: int, exposure_ms: float = 0.5, *,
                zarr: bool = True, with_pint: bool = False) -> dict[str, Any]:
    """The issue #17 scenario: a hardware-sequenced time-lapse of ``frames`` 512² frames, one
    channel (FITC, ``exposure_ms``), demo camera FastImage; no writer, pymmcore-plus's
    OME-TIFF writer and nbo-recorder, and with ``zarr`` both writing OME-Zarr (issue #18;
    pymmcore-plus through ome-writers), each in a fresh process, alternated round by round.

    Per variant: the wall time of ``core.mda.run`` divided by the same round's no-writer run
    (median and worst round), the rounds above :data:`SLOW_RATIO`, the rounds in which the
    camera's circular buffer filled past half (nbo-recorder's warning; its own runs only),
    and the process's peak RSS.

    Unless ``with_pint``, every variant runs as on a rig PC where pint is not installed: none
    of nbo-recorder, pymmcore-plus and ome-types depends on it (the test extra installs it, for
    bioio), and where it is installed ome-types imports it, with dask, for 25 MiB.
    """
    variants = {"none": ("none", ".ome.tif"),
                "pymmcore-plus": ("pymmcore-plus", ".ome.tif"),
                "nbo-recorder": ("nbo-recorder", ".ome.tif"),
                "pymmcore-plus ome-zarr": ("pymmcore-plus", ".ome.zarr"),
                "nbo-recorder ome-zarr": ("nbo-recorder", ".ome.zarr")}
    if not zarr:
        variants = {k: v for k, v in variants.items() if v[1] != ".ome.zarr"}
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for _ in range(rounds):
        for variant, (writer, suffix) in variants.items():
            code = _BURST_CHILD.format(repo=str(REPO), frames=frames, exposure=exposure_ms,
                                       writer=writer, suffix=suffix, profile=str(PROFILE),
                                       with_pint=with_pint)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                  text=True, timeout=600, cwd=REPO)
            line = next((ln for ln in done.stdout.splitlines() if ln.startswith("{")), None)
            if line is None:
                raise RuntimeError(f"{variant}: exit {done.returncode}: {done.stderr[-500:]}")
            runs[variant].append(json.loads(line))
    out: dict[str, Any] = {"frames": frames, "rounds": rounds, "exposure_ms": exposure_ms,
                           "slow_ratio": SLOW_RATIO, "with_pint": with_pint, "variants": {}}
    for variant in variants:
        ratios = [r["wall_s"] / n["wall_s"] for r, n in zip(runs[variant], runs["none"],
                                                            strict=True)]
        out["variants"][variant] = {
            "median_ratio": statistics.median(ratios), "worst_ratio": max(ratios),
            "slow_rounds": sum(r > SLOW_RATIO for r in ratios),
            "buffer_warnings": sum(r["buffer_warning"] for r in runs[variant]),
            "median_wall_s": statistics.median(r["wall_s"] for r in runs[variant]),
            "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs[variant]),
            "ratios": ratios}
    return out




def bench_scale(planes: int, rounds: int) -> dict[str, Any]:
    """``nbo-recorder recover`` and ``nbo-recorder validate`` of a file of ``planes`` planes
    (8x8 frames, as a crash leaves it: pages and journal, no OME-XML), each the wall time of
    a fresh process running the command (``python -m nbo_recorder.cli.main``, as the console
    script runs it); median and worst of ``rounds``.

    The crashed file is written once; each round recovers a fresh copy of it (and of its
    journal) and then validates the recovered copy, so every round does the same work. One
    round alone sits inside this machine's run-to-run spread (a third of a second either way
    near 2 s), hence the rounds.
    """
    from bench_scale import crashed_file, fresh_copy

    times: dict[str, list[float]] = {"recover_s": [], "validate_s": []}
    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        pristine = crashed_file(Path(tmp), planes)
        for _ in range(rounds):
            path = fresh_copy(pristine, Path(tmp) / "big.ome.tif")
            for key, command, codes in (("recover_s", "recover", (0,)),
                                        ("validate_s", "validate", (0, 1))):
                began = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "nbo_recorder.cli.main", command, str(path)],
                    capture_output=True, text=True, timeout=900, cwd=REPO)
                times[key].append(time.perf_counter() - began)
                if done.returncode not in codes:
                    raise RuntimeError(f"{key}: {done.stderr[-500:]}")
            path.unlink()
    return {"planes": planes, "rounds": rounds,
            **{k: statistics.median(v) for k, v in times.items()},
            **{k.removesuffix("_s") + "_worst_s": max(v) for k, v in times.items()}, "all_s": times}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results.json"))
    parser.add_argument("--only", choices=["burst", "large"],
                        help="burst: only the issue #17 burst scenario, the start-up times and "
                        "the 100,000-plane validate/recover; large: only the 2048² MDA and "
                        "writer throughput")
    parser.add_argument("--with-pint", action="store_true",
                        help="let ome-types import pint in the burst runs (where it is installed)")
    args = parser.parse_args(argv)
    quick = args.quick
    reps = 2 if quick else 5
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "quick": quick}
    if args.only == "large":
        report["mda_2048"] = bench_mda(2048, 50 if quick else 200, max(2, reps - 2), None)
        report["writer_2048"] = bench_writer(2048, 50 if quick else 200, reps)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(format_large_table(report))
        return 0
    report["burst_600"] = bench_burst(600, 3 if quick else 7, with_pint=args.with_pint)
    report["startup"] = bench_startup_figures(5)
    report["scale"] = bench_scale(10_000 if quick else 100_000, 2 if quick else 5)
    if args.only == "burst":
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(format_burst_table(report))
        return 0
    report["mda_512"] = bench_mda(512, 100 if quick else 300, reps, None)
    report["mda_2048"] = bench_mda(2048, 50 if quick else 200, max(2, reps - 2), None)
    report["verify_512"] = bench_verify(512, 30 if quick else 100, reps)
    report["writer_2048"] = bench_writer(2048, 50 if quick else 200, reps)
    report["page_cpu_512"] = bench_page_cpu(512, 600, reps)
    report["finalise"] = bench_finalise([1000, 10000, 100000], 10000 if quick else 100000)
    report["peak_rss"] = bench_rss([100, 2000] if not quick else [100, 500])
    report["long_rss"] = bench_long_rss(10_000 if quick else 100_000, 64)
    report["capture"] = bench_capture(300 if quick else 1000)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(format_burst_table(report))
    print()
    print(format_table(report))
    return 0


def bench_startup_figures(rounds: int) -> dict[str, Any]:
    """The start-up figures of ``benchmarks/bench_startup.py`` (fresh process each).

    Run as a program of its own: Linux counts the memory of the process that starts a child
    in the child's peak RSS (``ru_maxrss`` keeps the high-water mark from before ``exec``),
    and this process, with numpy and the recorder imported, is larger than ``validate``.
    """
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "startup.json"
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_startup.py"),
                        "--rounds", str(rounds), "--json", str(out)],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        summary: dict[str, Any] = json.loads(out.read_text())["summary"]
    return summary


def format_burst_table(r: dict[str, Any]) -> str:
    """The issue #17 figures: the burst scenario per writer, start-up, scale."""
    b = r["burst_600"]
    lines = [f"512² x {b['frames']} frames, FITC {b['exposure_ms']} ms, hardware-sequenced; "
             f"{b['rounds']} alternated rounds, fresh process per run; ratio = wall time / "
             "the same round's no-writer run; "
             + ("pint installed" if b.get("with_pint") else "pint not installed"), "",
             "| writer | median ratio | worst round | rounds > "
             f"{b['slow_ratio']}x | buffer > half full | peak RSS |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, v in b["variants"].items():
        warned = str(v["buffer_warnings"]) if name.startswith("nbo-recorder") else "n/a"
        lines.append(f"| {name} | {v['median_ratio']:.2f} | {v['worst_ratio']:.2f} | "
                     f"{v['slow_rounds']} | {warned} | {v['peak_rss_mib']:.0f} MiB |")
    lines += ["", "| start-up (fresh process) | median | worst |", "|---|---:|---:|"]
    labels = {"help_s": "`nbo-recorder --help`", "recorder_s": "`Recorder(core, profile)`",
              "validate_s": "`nbo-recorder validate` (demo file)",
              "validate_peak_rss_mib": "validate peak RSS (MiB)"}
    for name, figures in r["startup"].items():
        lines.append(f"| {labels[name]} | {figures['median']:.3f} | {figures['worst']:.3f} |")
    sc = r["scale"]
    lines += ["", f"| {sc['planes']:,} planes (8x8 frames, fresh process, "
              f"{sc['rounds']} rounds) | median s | worst s |", "|---|---:|---:|",
              "| `nbo-recorder recover` (journal + pages, no OME-XML) | "
              f"{sc['recover_s']:.2f} | {sc['recover_worst_s']:.2f} |",
              "| `nbo-recorder validate` of the recovered file | "
              f"{sc['validate_s']:.2f} | {sc['validate_worst_s']:.2f} |"]
    return "\n".join(lines)


def format_table(r: dict[str, Any]) -> str:
    lines = ["| measurement | value |", "|---|---|"]
    for key in ("mda_512", "mda_2048"):
        lines += _mda_rows(r[key])
    v = r["verify_512"]
    for rig in ("demo", "spinning-disk"):
        ratios = ", ".join(f"{policy} {ratio:.2f} x" for policy, ratio
                           in v[rig]["ratio_to_no_writer"].items() if policy != "none")
        own = v[rig]["median_wall_s"]["every-frame"] / v[rig]["median_wall_s"]["events"]
        lines.append(f"| verify policy, {rig} rig, {v['size']}² z-stack x {v['frames']} | "
                     f"{ratios} no-writer wall (every-frame / events: {own:.2f} x) |")
    lines.append(_writer_row(r["writer_2048"]))
    c = r["page_cpu_512"]
    lines.append(f"| writer thread CPU per {c['size']}² page (x {c['frames']}): nbo-recorder vs "
                 f"tifffile page by page | "
                 f"{c['median_cpu_us_per_page']['nbo-recorder']:.0f} vs "
                 f"{c['median_cpu_us_per_page']['tifffile page by page']:.0f} µs |")
    for f in r["finalise"]:
        valid = f" valid={f['valid']}" if "valid" in f else ""
        lines.append(f"| finalise {f['planes']} planes | {f['build_s']:.3f} s, "
                     f"{f['xml_bytes'] / 1e6:.1f} MB XML{valid} |")
    for p in r["peak_rss"]:
        value = (f"{p['peak_rss_mb']:.0f} MB ({p['frames_written']} written)"
                 if "peak_rss_mb" in p else "failed")
        err = f" ({p['error']})" if p.get("error") else ""
        lines.append(f"| peak RSS, {p['frames']} frames 512² | {value}{err} |")
    lr = r["long_rss"]
    nbo, none = lr["nbo-recorder"], lr["none"]
    lines.append(f"| peak RSS, {lr['frames']} frames {lr['size']}²: nbo-recorder vs no writer | "
                 f"{nbo['peak_rss_mib']:.0f} vs {none['peak_rss_mib']:.0f} MiB; from 10 % to "
                 f"95 % of the run {nbo['rss_at_10_percent_mib']:.0f} → "
                 f"{nbo['rss_at_95_percent_mib']:.0f} MiB vs {none['rss_at_10_percent_mib']:.0f}"
                 f" → {none['rss_at_95_percent_mib']:.0f} MiB |")
    c = r["capture"]
    lines.append(f"| per-frame capture, {c['frames']} frames | median {c['median_us']:.1f} µs, "
                 f"p95 {c['p95_us']:.1f} µs, {c['device_reads_during_run']} property reads "
                 f"in the whole run |")
    return "\n".join(lines)


def _mda_rows(m: dict[str, Any]) -> list[str]:
    """Table rows of one :func:`bench_mda` result, a variant each."""
    rows = []
    for v, ratio in m["ratio_to_no_writer"].items():
        err = f" ({m['errors'][v]})" if m["errors"][v] else ""
        if m["overflowed_rounds"][v]:
            err += (f"; {m['overflowed_rounds'][v]} of {m['repeats']} rounds overflowed"
                    + (f", warned first in {m['warned_before_overflow'][v]}"
                       if v == "nbo-recorder" else ""))
        rows.append(f"| {m['size']}² x {m['frames']}: {v} | {m['fps'][v]:.0f} fps, "
                    f"{ratio:.2f} x no-writer wall{err} |")
    return rows


def _writer_row(w: dict[str, Any]) -> str:
    """The table row of a :func:`bench_writer` result."""
    rates = w["median_MB_per_s"]
    return (f"| writer {w['size']}² x {w['frames']}: nbo-recorder vs tifffile | "
            f"{rates['nbo-recorder']:.0f} vs {rates['tifffile']:.0f} MB/s ({w['ratio']:.0%}); "
            f"vs tifffile and an fsync {rates['tifffile, synced']:.0f} MB/s "
            f"({w['ratio_on_disk']:.0%}) |")


def format_large_table(r: dict[str, Any]) -> str:
    """The large-frame part of the report (``--only large``)."""
    return "\n".join(["| measurement | value |", "|---|---|", *_mda_rows(r["mda_2048"]),
                      _writer_row(r["writer_2048"])])


if __name__ == "__main__":
    sys.exit(main())
