"""Render the report as one self-contained HTML page, and write it beside the file.

The page is drawn by a Jinja2 template (``templates/report.html.j2``) with autoescaping on:
its styles, its one small script (the copy button) and its SVG drawings are inline, and it
refers to nothing outside itself, so it opens from a ``file://`` URL with no network.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from nbo_recorder.report.model import build_report
from nbo_recorder.report.spectra import AXIS_WIDTH, LABEL_WIDTH, ROW_HEIGHT
from nbo_recorder.report.views import Report

#: the suffixes a recording's name ends with, stripped to name its report
_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr")
#: the spectral strip's rows, top to bottom
SPECTRUM_ROWS = (("source", "light source"), ("excitation", "excitation"),
                 ("dichroic", "dichroic"), ("emission", "emission"))


def default_output(path: Path) -> Path:
    """``exp1.ome.tif`` -> ``exp1.report.html`` beside it (also for ``.ome.zarr`` stores)."""
    name = path.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(f"{name}.report.html")


def render(report: Report) -> str:
    """The page's HTML text."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nbo_recorder.report", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    template = env.get_template("report.html.j2")
    return template.render(r=report, axis_width=AXIS_WIDTH, label_width=LABEL_WIDTH,
                           row_height=ROW_HEIGHT, spectrum_rows=SPECTRUM_ROWS)


def write_report(path: str | Path, out: str | Path | None = None, tier: int = 1) -> Path:
    """Write the report of the file at ``path`` to ``out`` (default: :func:`default_output`).

    Raises FileNotFoundError for a missing file or output folder and ValueError (a
    :class:`~nbo_recorder.judge.reader.NotOmeTiffError`) for a file that is no readable
    OME-TIFF or OME-Zarr store; nothing is written then.
    """
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file")
    target = Path(out) if out is not None else default_output(source)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"--out {target}: folder {target.parent} does not exist")
    if target.is_dir():
        raise ValueError(f"--out {target}: is a folder; give the report's file name")
    html = render(build_report(source, tier))
    target.write_text(html, encoding="utf-8")
    return target
