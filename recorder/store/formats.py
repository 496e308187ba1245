"""The output formats the recorder writes, and which one a path asks for.

Kept free of any optional package, so the CLI and the sink can tell the format (and say
which package is missing) without importing an engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

OutputFormat = Literal["ome-tiff", "ome-zarr"]
#: each format and the suffix its outputs get (``--format`` values, in this order)
FORMAT_SUFFIXES: dict[OutputFormat, str] = {"ome-tiff": ".ome.tif", "ome-zarr": ".ome.zarr"}


def is_zarr_path(path: str | Path) -> bool:
    """True when ``path`` names an OME-Zarr store (``*.zarr``, e.g. ``exp1.ome.zarr``)."""
    return Path(path).name.lower().endswith(".zarr")


def format_of(path: str | Path) -> OutputFormat:
    """The format a recording at ``path`` is written in: OME-Zarr for ``*.zarr``, else
    OME-TIFF."""
    return "ome-zarr" if is_zarr_path(path) else "ome-tiff"


def is_foreign_folder(path: Path) -> bool:
    """True when ``path`` is a non-empty folder that is not a Zarr store (no ``zarr.json``):
    never replaced by an OME-Zarr output, whatever ``overwrite`` says."""
    return path.is_dir() and not (path / "zarr.json").is_file() and any(path.iterdir())
