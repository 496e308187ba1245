"""``nbo-recorder`` command line: demo, acquire, recover, validate, methods, profile, ..."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nbo_recorder import sim
from nbo_recorder.capture.recorder import RecorderOptions, RecordingError
from nbo_recorder.cli.conformance import add_conformance_command
from nbo_recorder.cli.profile import add_profile_commands
from nbo_recorder.profile.model import ProfileError
from nbo_recorder.rig import DEMO, RigError
from nbo_recorder.store.recovery import RecoveryError

#: The demo rigs: Micro-Manager config, bundled profile, and the sequence the demo runs.
DEMO_RIGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "widefield": ("demo", "mm_demo.yaml", {
        "channels": [
            {"config": "DAPI", "group": "Channel", "exposure": 10},
            {"config": "FITC", "group": "Channel-Multiband", "exposure": 15},
        ],
        "z_plan": {"range": 2.0, "step": 1.0},
        "time_plan": {"interval": 0.05, "loops": 3},
        "axis_order": "tpcz",
    }),
    "spinning-disk": ("sim_spinning_disk.cfg", "sim_spinning_disk.yaml", {
        "channels": [
            {"config": "488-GFP", "group": "Channel", "exposure": 20},
            {"config": "561-mCherry", "group": "Channel", "exposure": 30},
            {"config": "BF-LED", "group": "Channel", "exposure": 5},
        ],
        "z_plan": {"range": 2.0, "step": 1.0},
        "time_plan": {"interval": 0.05, "loops": 3},
        "axis_order": "tpcz",
    }),
}


def bundled_profile(name: str) -> Path:
    """A profile shipped with nbo-recorder (repository checkout or installed wheel)."""
    here = Path(__file__).resolve().parents[1]  # the nbo_recorder package folder
    for candidate in (here.parent / "hardware_profiles" / name, here / "hardware_profiles" / name):
        if candidate.is_file():
            return candidate
    raise ProfileError(f"bundled profile {name!r} not found next to {here}")


def bundled_rig_config(name: str) -> str:
    """``"demo"`` or the path of a simulated rig's .cfg shipped in ``mocks/rigs``."""
    if name == DEMO:
        return DEMO

    return str(Path(sim.__file__).resolve().parent / "rigs" / name)


def _load_sequence(path: Path) -> Any:
    import useq

    if not path.is_file():
        raise ValueError(f"{path}: sequence file not found")
    from nbo_recorder.render.nbo import study_problems

    try:
        sequence = useq.MDASequence.from_file(path)
    except Exception as exc:
        raise ValueError(f"{path}: not a valid useq-schema MDASequence: {exc}") from exc
    problems = study_problems(sequence.metadata)
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return sequence


class PreflightRefused(RuntimeError):
    """--strict and the pre-flight check found gaps at the requested tier."""


def record(
    mm_config: str, profile: str | Path, sequence: Any, out: Path, *, overwrite: bool,
    settings: Sequence[str] = (), options: RecorderOptions | None = None,
    tier: int | None = None, strict: bool = False,
) -> Path:
    """Load the rig, apply settings, run ``sequence`` and record it to ``out``.

    ``options`` go to :class:`~nbo_recorder.capture.recorder.Recorder` (what to do on device and
    write errors). With ``tier``, a pre-flight check lists (on stderr) what the file would lack
    at that NBO tier before the first frame; with ``strict`` too, any gap refuses the
    acquisition. Ctrl-C cancels the acquisition and still finishes the file.
    """
    from nbo_recorder.rig import load_core

    core = load_core(mm_config)
    try:
        _record_on(core, profile, sequence, out, overwrite=overwrite, settings=settings,
                   options=options or {}, tier=tier, strict=strict)
    finally:
        # Unload while the core is still referenced: MMCore can abort the interpreter
        # ("exception not rethrown") when a core with loaded devices is torn down at exit.
        core.unloadAllDevices()
    return out


def _record_on(
    core: Any, profile: str | Path, sequence: Any, out: Path, *, overwrite: bool,
    settings: Sequence[str], options: RecorderOptions, tier: int | None, strict: bool,
) -> None:
    from nbo_recorder.capture.recorder import Recorder
    from nbo_recorder.rig import apply_settings

    apply_settings(core, settings)
    recorder = Recorder(core, profile, **options)
    sink = recorder.sink(out, overwrite=overwrite)
    if tier is not None:
        gaps = recorder.preflight(tier)
        print(f"pre-flight, NBO tier {tier}: "
              + (f"{len(gaps)} item(s) would be missing" if gaps else "nothing missing"),
              file=sys.stderr)
        for gap in gaps:
            print(f"  {gap}", file=sys.stderr)
        if gaps and strict:
            raise PreflightRefused(f"--strict: not starting; {len(gaps)} item(s) missing for "
                                   f"tier {tier} (listed above)")
    _run_cancelable(core, sequence, sink)
    sink.raise_if_failed()


def _run_cancelable(core: Any, sequence: Any, sink: Any) -> None:
    """Run the acquisition on a worker thread, so that Ctrl-C cancels it cleanly.

    Run on the main thread, a KeyboardInterrupt would unwind pymmcore-plus's runner
    mid-event; here it becomes ``core.mda.cancel()`` and the file is finished (status
    'canceled') before the interrupt is passed on.
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            core.mda.run(sequence, output=sink)
        except BaseException as exc:  # re-raised on the calling thread below
            failure.append(exc)

    worker = threading.Thread(target=run, name="nbo-acquisition")
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        print("nbo-recorder: interrupted; canceling the acquisition and finishing "
              f"{sink.path}", file=sys.stderr)
        core.mda.cancel()
        sink.stop_waiting()  # a write-error pause may be holding the last frames
        worker.join()
        raise
    if failure:
        raise failure[0]


def summarise(path: Path) -> str:
    """A short human summary of what a file records, read back from the file itself."""
    from nbo_recorder.read.reader import read

    f = read(path)
    ome = f.ome
    sa = ome.structured_annotations
    observed = {a.id: {m.k: m.value for m in a.value.ms}
                for a in (sa.map_annotations if sa else [])}
    lines = [f"{path}: {f.pages} frames in {len(ome.images)} image(s)"]
    status = next((v.get("status") for v in observed.values() if "status" in v), None)
    if status:
        lines.append(f"  acquisition: {status}")
    for inst in ome.instruments:
        parts = [f"{len(inst.objectives)} objectives", f"{len(inst.filters)} filters",
                 f"{len(inst.dichroics)} dichroics", f"{len(inst.detectors)} detectors",
                 f"{len(inst.light_source_group)} light sources"]
        lines.append("  instrument: " + ", ".join(parts))
    for img in ome.images:
        px = img.pixels
        obj = img.objective_settings.id if img.objective_settings else "unknown"
        lines.append(f"  {img.name}: {px.size_c} channels x {px.size_z} z x {px.size_t} t, "
                     f"pixel {px.physical_size_x} µm, objective {obj}")
        for ch in px.channels:
            bits = [f"    channel {ch.name}:"]
            if ch.light_source_settings is not None:
                ls = ch.light_source_settings
                bits.append(f"light {ls.id}" + (f" {ls.wavelength:g} nm" if ls.wavelength else ""))
            if ch.light_path is not None:
                refs = [r.id for r in ch.light_path.excitation_filters]
                refs += [r.id for r in ch.light_path.emission_filters]
                if ch.light_path.dichroic_ref is not None:
                    refs.append(ch.light_path.dichroic_ref.id)
                bits.append("path " + ", ".join(refs))
            if ch.pinhole_size is not None:
                bits.append(f"pinhole {ch.pinhole_size:g} µm")
            if ch.detector_settings is not None:
                ds = ch.detector_settings
                bits.append(f"detector gain {ds.gain} offset {ds.offset} binning "
                            f"{ds.binning.value if ds.binning else None}")
            for ref in ch.annotation_refs:
                for key, value in observed.get(ref.id, {}).items():
                    if key and key.endswith(("power_mw", "intensity_percent")):
                        bits.append(f"{key.split('].')[0].split('[')[1]} {value}")
            lines.append(" ".join(bits))
    return "\n".join(lines)


def _cmd_demo(args: argparse.Namespace) -> int:
    import useq

    out = Path(args.out)
    config, profile, sequence = DEMO_RIGS[args.rig]
    record(bundled_rig_config(config), bundled_profile(profile), useq.MDASequence(**sequence),
           out, overwrite=True)
    print(summarise(out))
    return 0


def _cmd_acquire(args: argparse.Namespace) -> int:
    sequence = _load_sequence(Path(args.sequence))
    if args.strict and args.tier is None:
        raise ValueError("--strict needs --tier N")
    options: RecorderOptions = {
        "on_device_error": args.on_device_error, "on_write_error": args.on_write_error,
        "write_retry_s": args.write_retry_s, "max_pause_s": args.max_pause_s,
    }
    out = record(args.mm_config, args.profile, sequence, Path(args.out),
                 overwrite=args.overwrite, settings=args.set, options=options,
                 tier=args.tier, strict=args.strict)
    print(summarise(out))
    return 0


def _cmd_recover(args: argparse.Namespace) -> int:
    from nbo_recorder.store.recovery import recover

    report = recover(Path(args.partial), Path(args.out) if args.out else None)
    expected = report.frames_expected if report.frames_expected is not None else "unknown"
    print(f"{report.path}: recovered {report.frames_recovered} frames "
          f"({report.frames_journaled} journaled, {report.intact_pages} intact pages, "
          f"{expected} planned); marked incomplete")
    print(summarise(report.path))
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from nbo_recorder.read.methods import build_methods
    from nbo_recorder.read.reader import read

    print(build_methods(read(Path(args.file)).ome).text(args.format))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    import json

    from nbo_recorder.nbo.rules import EXTENSIONS
    from nbo_recorder.read.reader import NotOmeTiffError
    from nbo_recorder.read.validate import format_report, validate_file

    extensions = tuple(e.strip() for e in args.extensions.split(",") if e.strip())
    bad = [e for e in extensions if e not in EXTENSIONS]
    if bad:
        raise ValueError(f"--extensions: unknown {bad}; choose from {','.join(EXTENSIONS)}")
    try:
        report = validate_file(Path(args.file), args.tier, extensions)
    except NotOmeTiffError as exc:
        if args.json:
            print(json.dumps({"file": args.file, "readable": False, "error": str(exc)}))
        else:
            print(f"nbo-recorder: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(format_report(report, all_rows=args.all))
    return 0 if report.passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbo-recorder",
        description="Record live Micro-Manager state as NBO/OME metadata in OME-TIFF files.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="acquire on the simulated demo rig and summarise the file")
    demo.add_argument("--out", default="demo.ome.tif",
                      help="output file (default: demo.ome.tif, replaced if it exists)")
    demo.add_argument("--rig", choices=sorted(DEMO_RIGS), default="widefield",
                      help="simulated rig: Micro-Manager's demo widefield (default) or the "
                           "spinning-disk confocal with simulated serial instruments")
    demo.set_defaults(func=_cmd_demo)
    acq = sub.add_parser("acquire", help="run a useq-schema sequence and record it")
    acq.add_argument("--mm-config", required=True,
                     help="'demo' (MMConfig_demo.cfg from mm-test-adapters) or a .cfg path")
    acq.add_argument("--profile", required=True, help="hardware profile YAML")
    acq.add_argument("--sequence", required=True, help="useq-schema MDASequence (YAML or JSON)")
    acq.add_argument("--out", required=True, help="output .ome.tif")
    acq.add_argument("--set", action="append", default=[], metavar="DEVICE.PROPERTY=VALUE",
                     help="apply a device property before the sequence (repeatable)")
    acq.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    acq.add_argument("--on-device-error", choices=["continue", "stop"], default="continue",
                     help="a bound property that cannot be read is recorded as unknown; "
                          "'stop' also ends the acquisition (default: continue)")
    acq.add_argument("--on-write-error", choices=["stop", "pause"], default="stop",
                     help="when a frame cannot be written (disk full, I/O error): finish the "
                          "file with what was written and stop (default), or pause the "
                          "acquisition and resume once the frame is written")
    acq.add_argument("--write-retry-s", type=float, default=10.0, metavar="S",
                     help="with --on-write-error pause: seconds between retries (default 10)")
    acq.add_argument("--max-pause-s", type=float, default=None, metavar="S",
                     help="with --on-write-error pause: stop after pausing this long "
                          "(default: pause until the write succeeds or Ctrl-C)")
    acq.add_argument("--tier", type=int, choices=[1, 2, 3],
                     help="before the first frame, list what the file would lack at this tier")
    acq.add_argument("--strict", action="store_true",
                     help="with --tier: refuse to start when anything is missing")
    acq.set_defaults(func=_cmd_acquire)
    add_profile_commands(sub)
    add_conformance_command(sub)
    rec = sub.add_parser("recover", help="make a crashed recording a valid OME-TIFF again")
    rec.add_argument("partial", help="the .ome.tif left by the crash (its journal beside it)")
    rec.add_argument("--out", help="write the recovered file here instead of in place")
    rec.set_defaults(func=_cmd_recover)
    val = sub.add_parser("validate", help="grade a file against the NBO tiers (exit 0 pass, "
                                          "1 a MUST missing, 2 not a readable OME-TIFF)")
    val.add_argument("file")
    val.add_argument("--tier", type=int, choices=[1, 2, 3], default=1)
    val.add_argument("--extensions", default="core,basic,advconf,calib",
                     help="comma-separated subset of core,basic,advconf,calib")
    val.add_argument("--json", action="store_true", help="machine-readable report")
    val.add_argument("--all", action="store_true",
                     help="list attributes of every tier, not only up to --tier")
    val.set_defaults(func=_cmd_validate)
    met = sub.add_parser("methods", help="write a Materials & Methods paragraph from a file")
    met.add_argument("file", help="an OME-TIFF written by nbo-recorder")
    met.add_argument("--format", choices=["text", "markdown"], default="text")
    met.set_defaults(func=_cmd_methods)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        print("nbo-recorder: interrupted", file=sys.stderr)
        return 130
    except PreflightRefused as exc:
        print(f"nbo-recorder: {exc}", file=sys.stderr)
        return 1
    except (ProfileError, RigError, RecoveryError, RecordingError, ValueError, OSError) as exc:
        print(f"nbo-recorder: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
