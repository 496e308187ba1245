"""``nbo-recorder deposit`` and ``nbo-recorder catalog``: from rig to repository.

Wired into the main CLI by :func:`add_deposit_commands`:

* ``deposit FILE... --study STUDY.yaml --out CRATE/`` writes an RO-Crate 1.1 with the NBO
  records as JSON-LD and the REMBI sections (:mod:`nbo_recorder.deposit.crate`). Exit 0,
  1 when mandatory REMBI fields are missing (the crate is still written; they are listed),
  2 for bad input (a file with no OME metadata, a bad study file, a non-empty folder).
* ``catalog FOLDER --out catalog.parquet`` scans a folder (:mod:`nbo_recorder.deposit.catalog`);
  files it cannot read are reported as warnings and skipped. ``catalog query FILE SQL`` runs
  SQL with DuckDB on a catalog, the table being ``catalog``.

``catalog`` is a group whose default command is the scan: ``catalog FOLDER`` and
``catalog scan FOLDER`` are the same (a folder named ``query`` is written ``./query``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from nbo_recorder.cli.console import aligned_rows, command_group, say

EXIT_FINDINGS = 1


class _CatalogGroup(TyperGroup):
    """``catalog``: ``query`` by name, anything else is the folder of a scan."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["scan", *args]
        return list(super().parse_args(ctx, args))


catalog_app = command_group(
    "Catalog the OME files under a folder into Parquet (one row per image and channel), "
    "and query it with SQL.", cls=_CatalogGroup)


def add_deposit_commands(app: typer.Typer) -> None:
    """Add ``deposit`` and the ``catalog`` group to the ``nbo-recorder`` command group."""
    app.command(
        "deposit", short_help="package files as an RO-Crate with REMBI and NBO as JSON-LD",
        help="Copy recorded files into a folder and write its ro-crate-metadata.json "
             "(RO-Crate 1.1): each file with size and SHA-256, its NBO record as JSON-LD, "
             "its acquisition and software, and the REMBI sections filled from the records "
             "and the study file. Exit 1 when mandatory REMBI fields are missing (the crate "
             "is written and they are listed), 2 for unusable input.",
    )(deposit)
    app.add_typer(catalog_app, name="catalog",
                  short_help="catalog a folder of OME files into Parquet; query it with SQL")


def deposit(
    files: Annotated[list[Path], typer.Argument(
        metavar="FILE...", show_default=False,
        help="OME-TIFF files or OME-Zarr stores to deposit")],
    out: Annotated[Path, typer.Option(
        "--out", metavar="CRATE/", help="folder to write the crate into (new or empty)")],
    study: Annotated[Path | None, typer.Option(
        "--study", metavar="STUDY.yaml", show_default="none",
        help="the acquisition study file, with a 'rembi:' block for the REMBI Study (title, "
             "description, authors, license, keywords, release_date, ...)")] = None,
) -> int:
    from nbo_recorder.deposit.crate import METADATA_NAME, load_deposit_study
    from nbo_recorder.deposit.crate import deposit as write_crate

    result = write_crate(files, load_deposit_study(study), out)
    print(f"{result.folder / METADATA_NAME}: RO-Crate {len(result.files)} file(s): "
          + ", ".join(result.files))
    if result.missing:
        print(f"mandatory REMBI fields missing ({len(result.missing)}):")
        for item in result.missing:
            print(f"  {item}")
        return EXIT_FINDINGS
    return 0


@catalog_app.command(
    "scan", short_help="scan a folder (the default: 'catalog FOLDER')",
    help="Read the OME-XML (never the pixels) of every OME-TIFF and OME-Zarr store under "
         "FOLDER, in parallel, and write one row per image and channel to Parquet. Files "
         "that are not readable are reported and skipped.")
def scan(
    folder: Annotated[Path, typer.Argument(
        metavar="FOLDER", show_default=False, help="folder to scan (recursively)")],
    out: Annotated[Path, typer.Option(
        "--out", metavar="CATALOG.parquet", help="Parquet file to write (replaced)")],
    workers: Annotated[int | None, typer.Option(
        "--workers", metavar="N", min=1, show_default="the CPUs",
        help="processes reading files")] = None,
    regrade: Annotated[bool, typer.Option(
        "--regrade", help="grade every file with validate's rules instead of reading the "
                          "tier verdict nbo-recorder recorded (slower)")] = False,
) -> int:
    from nbo_recorder.deposit.catalog import scan as scan_folder
    from nbo_recorder.deposit.catalog import write_parquet

    if not out.parent.is_dir():  # before the scan, not after it
        raise FileNotFoundError(f"--out {out}: folder {out.parent} does not exist")
    found = scan_folder(folder, workers=workers, regrade=regrade)
    for name, reason in found.skipped:
        say(f"warning: skipped {name}: {reason}")
    write_parquet(found.rows, out)
    print(f"{out}: {len(found.rows)} rows from {found.files - len(found.skipped)} file(s); "
          f"{len(found.skipped)} skipped")
    return 0


@catalog_app.command(
    "query", short_help="run SQL on a catalog (table 'catalog') with DuckDB",
    help="Run SQL with DuckDB on a catalog Parquet file, which is the table 'catalog', and "
         "print the result as a table.")
def query(
    file: Annotated[Path, typer.Argument(
        metavar="CATALOG.parquet", show_default=False, help="a catalog written by scan")],
    sql: Annotated[str, typer.Argument(
        metavar="SQL", show_default=False, help="e.g. \"SELECT file FROM catalog\"")],
) -> int:
    from nbo_recorder.deposit.catalog import query as run_query

    names, rows = run_query(file, sql)
    print(format_table(names, rows))
    return 0


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def format_table(names: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned under a header, one line per row, and the row count."""
    lines = aligned_rows(names, [[_cell(v) for v in row] for row in rows], rule=True)
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)
