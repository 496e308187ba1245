"""``nbo-recorder`` command line: demo, acquire, recover, validate, methods, report, profile,
conformance, deposit, catalog.

Built with typer: the help comes from the option declarations, and rich draws the progress
bars (:mod:`nbo_recorder.cli.console`). The commands, option names, defaults and exit codes
are the public contract: 0 ok, 1 findings (``validate``, ``conformance``, ``profile check``,
``acquire --strict``), 2 bad input (a usage error, a missing file, an unusable profile: one
line on stderr, never a traceback), 130 interrupted. :func:`main` is the console script and
is callable from Python, returning the exit code.

Only typer is imported at start-up; every command imports the recorder parts it needs, so
``nbo-recorder --help`` does not load pymmcore-plus, ome-types or xmlschema.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType, SimpleNamespace


def _interrupted_while_starting(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C while the command's modules are still being imported: exit 130, quietly.

    Nothing has been created yet, so there is nothing to finish; a KeyboardInterrupt here
    would print an import traceback. :func:`main` puts the ordinary handler back.
    """
    os.write(2, b"nbo-recorder: interrupted\n")
    os._exit(130)


def _start_as_the_program() -> None:
    """What the command sets up in a process of its own, before anything is imported.

    * Ctrl-C while importing exits quietly (:func:`_interrupted_while_starting`).
    * ome-types goes without pint. Where pint is installed (bioio needs it), ome-types
      imports it, and through it dask, for ``*_quantity`` properties nbo-recorder never
      reads: 0.8 s and 25 MiB more for every command that reads or writes OME, on a 2-core
      rig PC. ome-types treats pint as optional (``ome-types[pint]``); marking its units
      module as absent makes it load as it does where pint is not installed.
    """
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    if "ome_types" not in sys.modules:
        sys.modules["ome_types.units"] = None  # type: ignore[assignment]


# Only when started as the program (console script or ``python -m``), and before the imports
# below, which take a few tenths of a second from a cold disk: imported by other code, the
# module leaves that code's Ctrl-C handling and its ome-types alone.
if __name__ == "__main__" or os.path.basename(getattr(sys, "argv", [""])[0]) == "nbo-recorder":
    _start_as_the_program()

from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast  # noqa: E402

import typer  # noqa: E402
from typer.core import TyperGroup  # noqa: E402

from nbo_recorder.cli.acquisition import DEMO_RIGS  # noqa: E402
from nbo_recorder.cli.conformance import add_conformance_command  # noqa: E402
from nbo_recorder.cli.console import (  # noqa: E402
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    PROG,
    command_group,
    guarded,
    one_line,
    say,
)
from nbo_recorder.cli.deposit import add_deposit_commands  # noqa: E402
from nbo_recorder.cli.profile import profile_app  # noqa: E402
from nbo_recorder.cli.recover import add_recover_command  # noqa: E402
from nbo_recorder.cli.report import add_report_command  # noqa: E402
from nbo_recorder.store.formats import FORMAT_SUFFIXES, OutputFormat  # noqa: E402

if TYPE_CHECKING:
    from nbo_recorder.capture.recorder import RecorderOptions
    from nbo_recorder.nbo.rules import Extension

_MM_CONFIG_HELP = "'demo' (MMConfig_demo.cfg from mm-test-adapters) or a .cfg path"
_EXTENSIONS = "core,basic,advconf,calib"
_FORMAT_HELP = ("output format: " + ", ".join(f"{name} ({suffix})" for name, suffix in
                                           FORMAT_SUFFIXES.items())
                + "; the suffix is added to --out when it has none")
_VERIFY_HELP = ("when the properties of silent devices (no change events: Python devices, "
                "keypad changes) are re-read: every frame, every S seconds, or only at a new "
                "channel, position or time point (the file says which values were assumed)")
_STUDY_HELP = ("what only the user knows, recorded in the NBO record: experiment, sample, "
               "mounting medium, cover glass and each channel's fluorophore (NBO element and "
               "attribute names; the sequence's metadata.nbo wins over it)")


def _verify_option(value: str) -> str:
    """The ``--verify`` value, checked before anything is loaded (a ValueError: exit 2)."""
    from nbo_recorder.capture.policy import VerifyPolicy

    try:
        return str(VerifyPolicy.parse(value))
    except ValueError as exc:
        raise ValueError(f"--verify: {exc}") from None


class _Commands(TyperGroup):
    """The top-level group: whatever command runs, it runs inside :func:`guarded`."""

    def invoke(self, ctx: Any) -> Any:
        return guarded(lambda: super(_Commands, self).invoke(ctx))


#: the ``nbo-recorder`` command group
app = command_group("Record live Micro-Manager state as NBO/OME metadata in OME-TIFF files.",
                    cls=_Commands)


@app.command(
    "demo", short_help="acquire on the simulated demo rig and summarise the file",
    help="Acquire a short multi-channel z/t sequence on a simulated rig, write it as an "
         "OME-TIFF with its NBO record, and print what the file records.")
def demo(
    out: Annotated[Path, typer.Option(
        "--out", metavar="FILE.ome.tif",
        help="output file (replaced if it exists)")] = Path("demo.ome.tif"),
    output_format: Annotated[OutputFormat | None, typer.Option(
        "--format", show_default="from the --out suffix",
        help=_FORMAT_HELP)] = None,
    rig: Annotated[Literal["spinning-disk", "widefield"], typer.Option(
        "--rig", metavar="widefield|spinning-disk",
        help="simulated rig: Micro-Manager's demo widefield or the spinning-disk confocal "
             "with simulated serial instruments")] = "widefield",
    verify: Annotated[str, typer.Option(
        "--verify", metavar="events|every-frame|interval:S", help=_VERIFY_HELP)] = "every-frame",
    study: Annotated[Path | None, typer.Option(
        "--study", metavar="STUDY.yaml", show_default="none", help=_STUDY_HELP)] = None,
) -> int:
    from nbo_recorder.cli.acquisition import (
        bundled_profile,
        bundled_rig_config,
        demo_sequence,
        output_for,
        record,
        summarise,
    )

    config, profile, _ = DEMO_RIGS[rig]
    checked = _verify_option(verify)
    if output_format is not None and out == Path("demo.ome.tif"):
        out = Path("demo")
    out = output_for(out, output_format)
    record(bundled_rig_config(config), bundled_profile(profile), demo_sequence(rig), out,
           overwrite=True, options={"verify": checked}, study=study)
    print(summarise(out))
    return 0


@app.command(
    "acquire", short_help="run a useq-schema sequence and record it",
    help="Load the rig, apply --set values, run a useq-schema sequence and record it with the "
         "live hardware state into an OME-TIFF with its NBO record.")
def acquire(
    mm_config: Annotated[str, typer.Option("--mm-config", metavar="CFG", help=_MM_CONFIG_HELP)],
    profile: Annotated[Path, typer.Option(
        "--profile", metavar="PROFILE.yaml", help="hardware profile YAML")],
    sequence: Annotated[Path, typer.Option(
        "--sequence", metavar="SEQUENCE.yaml", help="useq-schema MDASequence (YAML or JSON)")],
    out: Annotated[Path, typer.Option(
        "--out", metavar="FILE.ome.tif|FILE.ome.zarr",
        help="output .ome.tif, or .ome.zarr store")],
    output_format: Annotated[OutputFormat | None, typer.Option(
        "--format", show_default="from the --out suffix",
        help=_FORMAT_HELP)] = None,
    settings: Annotated[list[str] | None, typer.Option(
        "--set", metavar="DEVICE.PROPERTY=VALUE", show_default="none",
        help="apply a device property before the sequence (repeatable)")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="replace an existing output file")] = False,
    on_device_error: Annotated[Literal["continue", "stop"], typer.Option(
        "--on-device-error", help="a bound property that cannot be read is recorded as "
                                  "unknown; 'stop' also ends the acquisition")] = "continue",
    on_write_error: Annotated[Literal["stop", "pause"], typer.Option(
        "--on-write-error", help="when a frame cannot be written (disk full, I/O error): "
                                 "finish the file with what was written and stop, or pause "
                                 "the acquisition and resume once the frame is written")] = "stop",
    write_retry_s: Annotated[float, typer.Option(
        "--write-retry-s", metavar="S",
        help="with --on-write-error pause: seconds between retries")] = 10.0,
    max_pause_s: Annotated[float | None, typer.Option(
        "--max-pause-s", metavar="S", show_default="pause until the write succeeds or Ctrl-C",
        help="with --on-write-error pause: stop after pausing this long")] = None,
    tier: Annotated[int | None, typer.Option(
        "--tier", metavar="N", min=1, max=3, show_default="no pre-flight check",
        help="before the first frame, list what the file would lack at this tier")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="with --tier: refuse to start when anything is missing")] = False,
    verify: Annotated[str, typer.Option(
        "--verify", metavar="events|every-frame|interval:S", help=_VERIFY_HELP)] = "every-frame",
    study: Annotated[Path | None, typer.Option(
        "--study", metavar="STUDY.yaml", show_default="none", help=_STUDY_HELP)] = None,
) -> int:
    from nbo_recorder.cli.acquisition import load_sequence, output_for, record, summarise

    checked = _verify_option(verify)
    out = output_for(out, output_format)
    planned = load_sequence(sequence)
    if strict and tier is None:
        raise ValueError("--strict needs --tier N")
    options: RecorderOptions = {
        "on_device_error": on_device_error, "on_write_error": on_write_error,
        "write_retry_s": write_retry_s, "max_pause_s": max_pause_s, "verify": checked,
    }
    record(mm_config, profile, planned, out, overwrite=overwrite, settings=settings or (),
           options=options, tier=tier, strict=strict, study=study)
    print(summarise(out))
    return 0


@app.command(
    "methods", short_help="write a Materials & Methods paragraph from a file",
    help="Write a Materials & Methods paragraph from what a file records, item by item of "
         "the QUAREP-LiMi bare-minimum checklist; items the file lacks are listed as missing.")
def methods(
    file: Annotated[Path, typer.Argument(
        metavar="FILE", help="an OME-TIFF written by nbo-recorder", show_default=False)],
    fmt: Annotated[Literal["text", "markdown"], typer.Option(
        "--format", metavar="text|markdown", help="plain text or Markdown")] = "text",
) -> int:
    from nbo_recorder.judge.methods import methods_of

    print(methods_of(file).text(fmt))
    return 0


@app.command(
    "validate", short_help="grade a file against the NBO tiers (exit 0 pass, 1 a MUST missing, "
                           "2 not a readable OME-TIFF)",
    help="Grade a file against the NBO tiers: every attribute up to --tier, present or "
         "missing, each row naming its component (ID and name) or Image/channel/plane range; "
         "rows that differ only in that collapse into one with a count. Exit code 0: pass, "
         "1: a MUST attribute missing, 2: not a readable OME-TIFF.")
def validate(
    file: Annotated[str, typer.Argument(
        metavar="FILE", show_default=False, help="the OME-TIFF to grade")],
    tier: Annotated[int, typer.Option(
        "--tier", metavar="N", min=1, max=3, help="NBO tier to grade")] = 1,
    extensions: Annotated[str, typer.Option(
        "--extensions", metavar="LIST",
        help=f"comma-separated subset of {_EXTENSIONS}")] = _EXTENSIONS,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
    all_rows: Annotated[bool, typer.Option(
        "--all", help="list attributes of every tier, not only up to --tier")] = False,
) -> int:
    import json

    from nbo_recorder.judge.reader import NotOmeTiffError
    from nbo_recorder.judge.validate import format_report, validate_file
    from nbo_recorder.nbo.rules import EXTENSIONS

    chosen = tuple(e.strip() for e in extensions.split(",") if e.strip())
    bad = [e for e in chosen if e not in EXTENSIONS]
    if bad:
        raise ValueError(f"--extensions: unknown {bad}; choose from {','.join(EXTENSIONS)}")
    try:
        report = validate_file(Path(file), tier, cast("tuple[Extension, ...]", chosen))
    except NotOmeTiffError as exc:
        if as_json:
            print(json.dumps({"file": file, "readable": False, "error": str(exc)}))
        else:
            say(str(exc))
        return EXIT_BAD_INPUT
    if as_json:
        print(report.json_text())
    else:
        print(format_report(report, all_rows=all_rows))
    return 0 if report.passed else 1



# the rest of the commands, listed by --help after these in the order of a file's life
add_recover_command(app)
add_report_command(app)
app.add_typer(profile_app, name="profile")
add_conformance_command(app)
add_deposit_commands(app)

def parse_args(argv: Sequence[str]) -> SimpleNamespace:
    """The parameters a command line would run its command with, without running it.

    For checking options and defaults without hardware; raises typer's usage errors as
    :func:`main` would report them.
    """
    command = typer.main.get_command(app)
    words = list(argv)
    while isinstance(command, TyperGroup):
        command, words = command.commands[words[0]], words[1:]
    return SimpleNamespace(**command.make_context(PROG, words).params)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for bad input, also for usage errors)."""
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: KeyboardInterrupt
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command = typer.main.get_command(app)
        result = command.main(args=args, prog_name=PROG, standalone_mode=False)
    except typer.TyperException as exc:  # a usage error: unknown option, bad value, ...
        where = getattr(exc, "ctx", None)
        path = where.command_path if where is not None else PROG
        say(f"error: {one_line(exc.format_message())} (see '{path} --help')", prefix=path)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # while typer reads the command line, before guarded() runs
        say("interrupted")
        return EXIT_INTERRUPTED
    return int(result) if result is not None else 0


if __name__ == "__main__":
    sys.exit(main())
