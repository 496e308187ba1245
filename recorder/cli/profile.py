"""``nbo-recorder profile ...``: write, check, import and export hardware profiles.

:data:`profile_app` is the ``profile`` command group that ``nbo_recorder.cli.main`` adds::

    nbo-recorder profile init --mm-config CFG [--out PROFILE.yaml] [--overwrite]
    nbo-recorder profile check PROFILE.yaml [--mm-config CFG] [--tier N] [--for micrometa]
    nbo-recorder profile import-micrometa MICROSCOPE.json [--out PROFILE.yaml] [--mm-config CFG]
    nbo-recorder profile export-micrometa PROFILE.yaml [--out MICROSCOPE.json] [--kept FILE]
        [--tier N]

Each command returns its exit code; bad input raises ``ProfileError``, ``RigError``,
``ValueError`` or ``OSError``, which the top-level command group turns into exit code 2 with
the message (``profile check``: 0 clean, 1 problems found, 2 unreadable input).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nbo_recorder.cli.console import command_group, say

if TYPE_CHECKING:
    pass

_MM_HELP = "'demo' (MMConfig_demo.cfg from mm-test-adapters) or a Micro-Manager .cfg path"

#: the ``profile`` command group
profile_app = command_group(
    "Hardware profiles without typing: generate a skeleton from a Micro-Manager "
    "configuration, check it, and exchange it with Micro-Meta App.",
    short_help="write, check, import and export hardware profiles")


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise ValueError(f"{path}: exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: output directory {path.parent} does not exist")



@profile_app.command(
    "init", short_help="a profile skeleton for every device of a Micro-Manager configuration",
    help="Load the configuration through the real core and write a profile with every device, "
         "label and relevant property bound, the facts the labels state, and a 'todo:' list of "
         "the static specs a human must supply.")
def init(
    mm_config: Annotated[str, typer.Option("--mm-config", metavar="CFG", help=_MM_HELP)],
    out: Annotated[Path | None, typer.Option(
        "--out", show_default="standard output", help="profile YAML to write")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="replace an existing --out file")] = False,
) -> int:
    from nbo_recorder.profile.skeleton import init_profile
    from nbo_recorder.render.nbo_checks import load_checked_profile
    from nbo_recorder.rig import DEMO, load_core, release_core

    if out is not None:
        _refuse_existing(out, overwrite)
    core = load_core(mm_config)
    try:
        name = "MMConfig_demo.cfg" if mm_config == DEMO else Path(mm_config).name
        result = init_profile(core, name)
    finally:
        release_core(core)
    result.profile()  # the skeleton must load as it is
    if out is None:
        sys.stdout.write(result.text)
    else:
        out.write_text(result.text, encoding="utf-8")
        load_checked_profile(out)
    where = str(out) if out else "standard output"
    say(f"wrote {where}: {len(result.data['components'])} components, "
        f"{len(result.data['bindings'])} bindings, {len(result.todo)} TODO entries "
        f"(see 'todo:'; 'nbo-recorder profile check' lists what is left)", prefix="")
    return 0


@profile_app.command(
    "check", short_help="list schema errors, binding mismatches, TODOs and missing NBO attributes",
    help="Report every problem, one per line. Exit code 0: clean, 1: problems found, "
         "2: unreadable input.")
def check(
    profile: Annotated[str, typer.Argument(
        metavar="PROFILE.yaml", show_default=False, help="profile YAML")],
    mm_config: Annotated[str | None, typer.Option(
        "--mm-config", metavar="CFG", show_default="bindings not checked",
        help=f"also check the bindings against {_MM_HELP}")] = None,
    tier: Annotated[int | None, typer.Option(
        "--tier", metavar="N", min=1, max=3, show_default="no tier check",
        help="also list NBO MUST attributes of this tier or below left empty")] = None,
    target: Annotated[str, typer.Option(
        "--for", metavar="TARGET",
        help="what --tier checks: 'nbo' (NBO MUST attributes) or 'micrometa' (what Micro-Meta "
             "App requires of each exported component)")] = "nbo",
) -> int:
    from nbo_recorder.profile.check import check_profile, format_result

    if target == "micrometa" and tier is None:
        tier = 1
    result = check_profile(profile, mm_config, tier, target)
    lines, summary = format_result(result, tier)
    for line in lines:
        print(line)
    say(f"{profile}: {summary}", prefix="")
    return result.exit_code


@profile_app.command(
    "import-micrometa", short_help="a profile from a Micro-Meta App microscope file",
    help="Map a Micro-Meta App microscope JSON to a profile, keeping component IDs. What the "
         "profile cannot hold is written next to it as PROFILE.micrometa-kept.json, for "
         "export-micrometa.")
def import_micrometa(
    microscope: Annotated[Path, typer.Argument(
        metavar="FILE", help="Micro-Meta App microscope JSON", show_default=False)],
    out: Annotated[Path | None, typer.Option(
        "--out", show_default="<microscope name>.yaml in the current directory",
        help="profile YAML to write")] = None,
    mm_config: Annotated[str | None, typer.Option(
        "--mm-config", metavar="CFG", show_default="no binding",
        help=f"bind state labels equal to component names: {_MM_HELP}")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="replace existing output files")] = False,
) -> int:
    from nbo_recorder.profile.micrometa import kept_path, read_micrometa
    from nbo_recorder.profile.micrometa_import import import_micrometa as to_profile
    from nbo_recorder.profile.yaml_writer import render_profile_yaml
    from nbo_recorder.render.nbo_checks import load_checked_profile

    out = out if out is not None else Path.cwd() / (microscope.stem + ".yaml")
    kept_file = kept_path(out)
    _refuse_existing(out, overwrite)
    _refuse_existing(kept_file, overwrite)
    doc = read_micrometa(microscope)
    core = None
    if mm_config:
        from nbo_recorder.rig import load_core, release_core

        core = load_core(mm_config)
    try:
        result = to_profile(doc, str(microscope), core)
    finally:
        if core is not None:
            release_core(core)
    kept_names = [f"{r.get('Name')!r} ({r.get('Schema_ID')})" for r in result.kept["components"]]
    header = [
        "Hardware profile imported by 'nbo-recorder profile import-micrometa' from "
        f"{microscope.name}",
        f"(Micro-Meta App instrument {result.data['name']!r}). Component ids are the Micro-Meta",
        "App IDs; 'extra' holds the record fields the profile model has no place for, so that",
        "'profile export-micrometa' can write them back. The canvas layout is in the kept file.",
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
    load_checked_profile(out)
    for line in [*result.warnings, *result.notes]:
        say(line)
    say(f"wrote {out} ({len(result.data['components'])} components, "
        f"{len(result.data['bindings'])} bindings) and {kept_file} "
        f"({len(result.kept['components'])} kept records)", prefix="")
    return 0


@profile_app.command(
    "export-micrometa", short_help="a Micro-Meta App microscope file from a profile",
    help="Write a Micro-Meta App microscope JSON (Schema_IDs, units as separate keys, "
         "'<Kind>/<uuid>' references), merging PROFILE.micrometa-kept.json when the profile "
         "was imported.")
def export_micrometa(
    profile: Annotated[Path, typer.Argument(
        metavar="PROFILE.yaml", show_default=False, help="profile YAML")],
    out: Annotated[Path | None, typer.Option(
        "--out", show_default="standard output", help="microscope JSON to write")] = None,
    kept: Annotated[Path | None, typer.Option(
        "--kept", show_default="PROFILE.micrometa-kept.json when it exists",
        help="kept data of an import")] = None,
    tier: Annotated[int | None, typer.Option(
        "--tier", metavar="N", min=1, max=3,
        show_default="an import's own; else the highest tier the profile satisfies",
        help="the file's Tier and ValidationTier")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="replace an existing --out file")] = False,
) -> int:
    from nbo_recorder.profile.micrometa import kept_path, read_micrometa
    from nbo_recorder.profile.micrometa_export import export_micrometa as to_micrometa
    from nbo_recorder.render.nbo_checks import load_checked_profile

    if out is not None:
        _refuse_existing(out, overwrite)
    loaded = load_checked_profile(profile)
    merged: Any = None
    kept_file = kept if kept is not None else kept_path(profile)
    if kept is not None or kept_file.is_file():
        merged = read_micrometa(kept_file)
        if not isinstance(merged, dict):
            raise ValueError(f"{kept_file}: not the kept data of an import (expected an object)")
    doc, warnings = to_micrometa(loaded, merged, tier)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
    for w in warnings:
        say(f"warning: {w}")
    where = str(out) if out else "standard output"
    say(f"wrote {where}: {len(doc['components'])} components, tier {doc['Tier']}"
        + (f" (merged {kept_file})" if merged is not None else ""), prefix="")
    return 0
