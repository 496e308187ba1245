"""``nbo-recorder recover``: finish a recording that did not finish, from its journal.

Wired into the main CLI by :func:`add_recover_command`. Exit code 0 when the file was
finished (or, with ``--dry-run``, could be), 2 when it cannot be: no journal, a journal that
is malformed or belongs to another file, a result that would not read back, or no room for
the OME-XML (the message names the path and the bytes needed). A failed ``recover`` leaves
the file as it was and no ``--out`` file behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nbo_recorder.cli.console import CommandError, progress_display


def add_recover_command(app: typer.Typer) -> None:
    """Add the ``recover`` command to the ``nbo-recorder`` command group."""
    app.command(
        "recover", short_help="make a crashed recording a valid OME-TIFF again",
        help="Rebuild the OME-XML of a recording that did not finish (crash, power loss, full "
             "disk) from the journal written beside it, keeping every intact frame; the file "
             "is marked incomplete. The journal is checked against the file first, and a "
             "page the journal does not describe is kept, without plane metadata.",
    )(recover)


def recover(
    partial: Annotated[Path, typer.Argument(
        metavar="FILE", show_default=False,
        help="the .ome.tif left by the crash (its journal beside it)")],
    out: Annotated[Path | None, typer.Option(
        "--out", show_default="in place",
        help="write the recovered file here instead of in place")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="say which pages and frames would be kept or dropped; change "
                          "nothing")] = False,
) -> int:
    from nbo_recorder.cli.acquisition import summarise, summarise_outline
    from nbo_recorder.store.recovery import RecoveryError
    from nbo_recorder.store.recovery import recover as recover_file

    with progress_display(f"recovering {partial.name}", "pages") as update:
        try:
            report = recover_file(partial, out, dry_run=dry_run,
                                  progress=lambda done, total: update(done, total, ""))
        except RecoveryError as exc:
            raise CommandError(str(exc)) from exc
    lines = report.lines()
    if not dry_run:
        lines[0] += "; marked incomplete"
    print("\n".join(lines))
    if report.outline is not None:  # what the file was verified to read back as
        print(summarise_outline(report.path, *report.outline))
    elif not dry_run:
        print(summarise(report.path))
    return 0
