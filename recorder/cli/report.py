"""``nbo-recorder report``: one self-contained HTML page showing what a file records.

Wired into the main CLI by :func:`add_report_command`. Prints the page's path; exit code 0
when it was written, 2 when the file is missing or no readable OME-TIFF / OME-Zarr store, or
``--out`` names a folder that does not exist (one line on stderr, nothing written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def add_report_command(app: typer.Typer) -> None:
    """Add the ``report`` command to the ``nbo-recorder`` command group."""
    app.command(
        "report", short_help="write a one-page visual report of a file (HTML)",
        help="Write one self-contained HTML page (inline styles and drawings, no network) "
             "showing what a file records: each channel's light path with its spectral "
             "bands, the instrument, NBO compliance per tier and extension, the settings "
             "that changed over the run, and the methods paragraph. Prints its path.",
    )(report)


def report(
    file: Annotated[Path, typer.Argument(
        metavar="FILE", show_default=False, help="the .ome.tif or .ome.zarr to show")],
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="X.report.html", show_default="<name>.report.html beside FILE",
        help="where to write the page")] = None,
    tier: Annotated[int, typer.Option(
        "--tier", metavar="N", min=1, max=3,
        help="NBO tier whose missing MUST items are listed")] = 1,
) -> int:
    from nbo_recorder.report.html import write_report

    print(write_report(file, out, tier))
    return 0
