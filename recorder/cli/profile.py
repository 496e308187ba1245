"""``nbo-recorder profile ...``: write, check, import and export hardware profiles.

``nbo_recorder.cli.main`` calls :func:`add_profile_commands` to add the ``profile`` command::

    nbo-recorder profile init --mm-config CFG [--out PROFILE.yaml] [--overwrite]
    nbo-recorder profile check PROFILE.yaml [--mm-config CFG] [--tier N]
    nbo-recorder profile import-micrometa MICROSCOPE.json [--out PROFILE.yaml] [--mm-config CFG]
    nbo-recorder profile export-micrometa PROFILE.yaml [--out MICROSCOPE.json] [--kept FILE]

Each sub-command's function returns the exit code; bad input raises ``ProfileError``,
``RigError``, ``ValueError`` or ``OSError``, which the top-level ``main`` turns into exit
code 2 with the message (``profile check``: 0 clean, 1 problems found, 2 unreadable input).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nbo_recorder.profile.model import ProfileError, load_profile
from nbo_recorder.rig import RigError

_MM_HELP = "'demo' (MMConfig_demo.cfg from mm-test-adapters) or a Micro-Manager .cfg path"


def add_profile_commands(subparsers: Any) -> None:
    """Add ``profile {init,check,import-micrometa,export-micrometa}`` to an argparse CLI."""
    profile = subparsers.add_parser(
        "profile", help="write, check, import and export hardware profiles",
        description="Hardware profiles without typing: generate a skeleton from a Micro-Manager "
                    "configuration, check it, and exchange it with Micro-Meta App.")
    sub = profile.add_subparsers(dest="profile_command", required=True)

    init = sub.add_parser(
        "init", help="a profile skeleton for every device of a Micro-Manager configuration",
        description="Load the configuration through the real core and write a profile with "
                    "every device, label and relevant property bound, the facts the labels "
                    "state, and a 'todo:' list of the static specs a human must supply.")
    init.add_argument("--mm-config", required=True, help=_MM_HELP)
    init.add_argument("--out", help="profile YAML to write (default: standard output)")
    init.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    init.set_defaults(func=cmd_init)

    check = sub.add_parser(
        "check", help="list schema errors, binding mismatches, TODOs and missing NBO attributes",
        description="Report every problem, one per line. Exit code 0: clean, 1: problems "
                    "found, 2: unreadable input.")
    check.add_argument("profile", help="profile YAML")
    check.add_argument("--mm-config", help=f"also check the bindings against {_MM_HELP}")
    check.add_argument("--tier", type=int, choices=(1, 2, 3),
                       help="also list NBO MUST attributes of this tier or below left empty")
    check.set_defaults(func=cmd_check)

    imp = sub.add_parser(
        "import-micrometa", help="a profile from a Micro-Meta App microscope file",
        description="Map a Micro-Meta App microscope JSON to a profile, keeping component IDs. "
                    "What the profile cannot hold is written next to it as "
                    "PROFILE.micrometa-kept.json, for export-micrometa.")
    imp.add_argument("microscope", help="Micro-Meta App microscope JSON")
    imp.add_argument("--out", help="profile YAML to write (default: <microscope name>.yaml in "
                                   "the current directory)")
    imp.add_argument("--mm-config", help=f"bind state labels equal to component names: {_MM_HELP}")
    imp.add_argument("--overwrite", action="store_true", help="replace existing output files")
    imp.set_defaults(func=cmd_import)

    exp = sub.add_parser(
        "export-micrometa", help="a Micro-Meta App microscope file from a profile",
        description="Write a Micro-Meta App microscope JSON (Schema_IDs, units as separate "
                    "keys, '<Kind>/<uuid>' references), merging PROFILE.micrometa-kept.json "
                    "when the profile was imported.")
    exp.add_argument("profile", help="profile YAML")
    exp.add_argument("--out", help="microscope JSON to write (default: standard output)")
    exp.add_argument("--kept", help="kept data of an import (default: "
                                    "PROFILE.micrometa-kept.json when it exists)")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    exp.set_defaults(func=cmd_export)


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise ValueError(f"{path}: exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: output directory {path.parent} does not exist")


def cmd_init(args: argparse.Namespace) -> int:
    from nbo_recorder.profile.skeleton import init_profile
    from nbo_recorder.rig import DEMO, load_core

    out = Path(args.out) if args.out else None
    if out is not None:
        _refuse_existing(out, args.overwrite)
    core = load_core(args.mm_config)
    try:
        name = "MMConfig_demo.cfg" if args.mm_config == DEMO else Path(args.mm_config).name
        result = init_profile(core, name)
    finally:
        core.unloadAllDevices()
    result.profile()  # the skeleton must load as it is
    if out is None:
        sys.stdout.write(result.text)
    else:
        out.write_text(result.text, encoding="utf-8")
        load_profile(out)
    where = str(out) if out else "standard output"
    print(f"wrote {where}: {len(result.data['components'])} components, "
          f"{len(result.data['bindings'])} bindings, {len(result.todo)} TODO entries "
          f"(see 'todo:'; 'nbo-recorder profile check' lists what is left)", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from nbo_recorder.profile.check import check_profile, format_result

    result = check_profile(args.profile, args.mm_config, args.tier)
    lines, summary = format_result(result, args.tier)
    for line in lines:
        print(line)
    print(f"{args.profile}: {summary}", file=sys.stderr)
    return result.exit_code


def cmd_import(args: argparse.Namespace) -> int:
    from nbo_recorder.profile.micrometa import import_micrometa, kept_path, read_micrometa
    from nbo_recorder.profile.skeleton import render_profile_yaml

    src = Path(args.microscope)
    out = Path(args.out) if args.out else Path.cwd() / (src.stem + ".yaml")
    kept_file = kept_path(out)
    _refuse_existing(out, args.overwrite)
    _refuse_existing(kept_file, args.overwrite)
    doc = read_micrometa(src)
    core = None
    if args.mm_config:
        from nbo_recorder.rig import load_core

        core = load_core(args.mm_config)
    try:
        result = import_micrometa(doc, str(src), core)
    finally:
        if core is not None:
            core.unloadAllDevices()
    kept_names = [f"{r.get('Name')!r} ({r.get('Schema_ID')})" for r in result.kept["components"]]
    header = [
        f"Hardware profile imported by 'nbo-recorder profile import-micrometa' from {src.name}",
        f"(Micro-Meta App instrument {result.data['name']!r}). Component ids are the Micro-Meta",
        "App IDs; 'extra' holds the record fields the profile model has no place for, so that",
        "'profile export-micrometa' can write them back. Canvas-layout keys were dropped.",
        "",
        f"Kept in {kept_file.name} (no profile kind; keep that file next to this one):",
        *[f"  {name}" for name in kept_names or ["(nothing)"]],
        "plus the instrument-level fields (ID, Tier, ValidationTier, versions, linkedFields).",
    ]
    if result.warnings:
        header += ["", "Warnings:", *[f"  {w}" for w in result.warnings]]
    text = render_profile_yaml(
        result.data, header=header, component_notes=result.comments,
        component_sections=result.sections,
        key_notes={"todo": ["What a human must still supply (machine-readable; delete entries "
                            "when done)."]})
    out.write_text(text, encoding="utf-8")
    kept_file.write_text(json.dumps(result.kept, indent=2, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    load_profile(out)
    for line in [*result.warnings, *result.notes]:
        print(f"nbo-recorder: {line}", file=sys.stderr)
    print(f"wrote {out} ({len(result.data['components'])} components, "
          f"{len(result.data['bindings'])} bindings) and {kept_file} "
          f"({len(result.kept['components'])} kept records)", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nbo_recorder.profile.micrometa import export_micrometa, kept_path, read_micrometa

    profile_path = Path(args.profile)
    out = Path(args.out) if args.out else None
    if out is not None:
        _refuse_existing(out, args.overwrite)
    profile = load_profile(profile_path)
    kept: Any = None
    kept_file = Path(args.kept) if args.kept else kept_path(profile_path)
    if args.kept or kept_file.is_file():
        kept = read_micrometa(kept_file)
        if not isinstance(kept, dict):
            raise ValueError(f"{kept_file}: not the kept data of an import (expected an object)")
    doc, warnings = export_micrometa(profile, kept)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
    for w in warnings:
        print(f"nbo-recorder: warning: {w}", file=sys.stderr)
    where = str(out) if out else "standard output"
    print(f"wrote {where}: {len(doc['components'])} components"
          + (f" (merged {kept_file})" if kept is not None else ""), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m nbo_recorder.cli.profile profile ...``), as cli.main."""
    parser = argparse.ArgumentParser(prog="nbo-recorder")
    sub = parser.add_subparsers(dest="command", required=True)
    add_profile_commands(sub)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except (ProfileError, RigError, ValueError, OSError) as exc:
        print(f"nbo-recorder: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
