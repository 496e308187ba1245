"""The facility catalog: one row per image and channel of every OME file under a folder.

:func:`scan` finds OME-TIFF files (``*.tif``, ``*.tiff``) and OME-Zarr stores (``*.ome.zarr``)
under a folder and reads only their OME-XML (never a pixel), in parallel across files
(processes: parsing XML holds the GIL). Each image × channel becomes a :data:`COLUMNS` row:
the file, rig, date, objective, light sources with their wavelengths and the powers the
channel-settings annotation recorded, filters and dichroics, detector settings, exposure,
the NBO tier verdicts, stale calibrations and the run's status. A file that is not readable
or has no OME metadata is reported (:attr:`Scan.skipped`, with the reason) and the scan goes
on. :func:`write_parquet` writes the rows with DuckDB; :func:`query` runs SQL on the result.
The Parquet file is the interface to any other engine (Spark, Trino, pandas, Polars).

Tier verdicts: a file nbo-recorder wrote carries the verdict of the NBO XSD at acquisition
(the ``tier reached`` entry of its NBO-compliance annotation); the catalog reports it
(``tier_source`` = ``recorded``). Any other file, or every file with ``regrade=True``, is
graded with ``validate``'s rules (``graded``): ``tier_N`` is then true when no MUST attribute
up to tier N is missing in any extension, as ``nbo-recorder validate --tier N`` passes.
"""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbo_recorder.judge.reader import NotOmeTiffError, map_annotations, read_xml
from nbo_recorder.judge.validate import grade
from nbo_recorder.nbo.rules import EXTENSIONS, TIERS
from nbo_recorder.vocabulary import (
    NS_CALIBRATION,
    NS_CHANNEL,
    NS_NBO_COMPLIANCE,
    NS_RUN,
    OME_NAMESPACE,
)

#: Column name -> DuckDB type, in order: the catalog's schema.
COLUMNS: dict[str, str] = {
    "file": "VARCHAR", "format": "VARCHAR", "image": "INTEGER", "image_name": "VARCHAR",
    "channel": "INTEGER", "channel_name": "VARCHAR", "rig": "VARCHAR", "date": "VARCHAR",
    "objective": "VARCHAR", "objective_id": "VARCHAR", "objective_na": "DOUBLE",
    "objective_magnification": "DOUBLE", "light_sources": "VARCHAR[]",
    "light_source_powers": "VARCHAR[]", "excitation_nm": "DOUBLE", "emission_nm": "DOUBLE",
    "filters": "VARCHAR[]", "dichroics": "VARCHAR[]", "detector": "VARCHAR",
    "detector_gain": "DOUBLE", "detector_offset": "DOUBLE", "detector_binning": "VARCHAR",
    "exposure_ms": "DOUBLE", "has_nbo": "BOOLEAN", "tier_reached": "INTEGER",
    "tier_1": "BOOLEAN", "tier_2": "BOOLEAN", "tier_3": "BOOLEAN", "tier_source": "VARCHAR",
    "calibrations": "VARCHAR[]", "stale_calibrations": "VARCHAR[]", "status": "VARCHAR",
}

#: File name endings the scan looks at (an ``.ome.zarr`` store is a folder).
TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIX = ".ome.zarr"

_NS = {"o": OME_NAMESPACE}
#: below this many files the scan runs in this process: starting workers costs more
_SERIAL_BELOW = 16


@dataclass
class Scan:
    """The rows found and the files skipped (path, reason)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0


def candidates(folder: Path) -> Iterator[Path]:
    """OME-TIFF files and OME-Zarr stores under ``folder``, sorted; stores are not entered."""
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        stores = sorted(d for d in dirs if d.endswith(ZARR_SUFFIX))
        dirs[:] = sorted(d for d in dirs if not d.endswith(ZARR_SUFFIX))
        for store in stores:
            yield here / store
        for name in sorted(names):
            if name.lower().endswith(TIFF_SUFFIXES):
                yield here / name


def scan(folder: str | Path, *, workers: int | None = None,
         regrade: bool = False) -> Scan:
    """Catalog every OME file under ``folder`` (ValueError if it is not a folder).

    ``workers``: processes reading files (default: the CPUs; 1 reads in this process).
    """
    top = Path(folder)
    if not top.is_dir():
        raise ValueError(f"{top}: not a folder")
    paths = list(candidates(top))
    jobs = [(str(p), p.relative_to(top).as_posix(), regrade) for p in paths]
    count = workers if workers is not None else (os.cpu_count() or 1)
    result = Scan(files=len(paths))
    if count <= 1 or len(jobs) < _SERIAL_BELOW:
        outcomes: Iterable[tuple[list[dict[str, Any]], str | None]] = map(_scan_one, jobs)
        _collect(result, jobs, outcomes)
    else:
        with ProcessPoolExecutor(max_workers=count) as pool:
            chunk = max(1, len(jobs) // (count * 8))
            _collect(result, jobs, pool.map(_scan_one, jobs, chunksize=chunk))
    return result


def _collect(result: Scan, jobs: Sequence[tuple[str, str, bool]],
             outcomes: Iterable[tuple[list[dict[str, Any]], str | None]]) -> None:
    for (_, name, _), (rows, problem) in zip(jobs, outcomes, strict=True):
        if problem is not None:
            result.skipped.append((name, problem))
        result.rows.extend(rows)


def _scan_one(job: tuple[str, str, bool]) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of one file, or why it was skipped. Never raises: a scan never stops."""
    path, name, regrade = job
    try:
        recorded = read_xml(path)
        return file_rows(recorded.tree, recorded.nbo, name, regrade=regrade), None
    except NotOmeTiffError as exc:
        return [], str(exc)
    except Exception as exc:  # an unforeseen defect of one file must not end the scan
        return [], f"{path}: {type(exc).__name__}: {exc}"


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _verdicts(tree: ET.Element, nbo: ET.Element | None, name: str,
              regrade: bool) -> tuple[int, dict[int, bool], str]:
    """(tier reached, tier -> passed, 'recorded' or 'graded') for one file."""
    if nbo is not None and not regrade:
        for summary in map_annotations(tree, NS_NBO_COMPLIANCE).values():
            reached = summary.get("tier reached")
            if reached is not None:
                level = int(reached) if reached.isdigit() else 0
                return level, {t: level >= t for t in TIERS}, "recorded"
    report = grade(tree, nbo, name, 1, EXTENSIONS)
    passed = {t: all(report.verdicts[f"tier {t}"].values()) and not report.schema_errors
              for t in TIERS}
    level = max((t for t in TIERS if all(passed[s] for s in TIERS if s <= t)), default=0)
    return level, passed, "graded"


def file_rows(tree: ET.Element, nbo: ET.Element | None, name: str, *,
              regrade: bool = False) -> list[dict[str, Any]]:
    """The catalog rows (one per image and channel) of a file's OME-XML ``tree``."""
    instrument = {el.get("ID", ""): el for el in tree.iterfind("o:Instrument/*", _NS)}
    microscope = tree.find("o:Instrument/o:Microscope", _NS)
    nbo_instrument = nbo.find("{*}Instrument") if nbo is not None else None
    rig = (nbo_instrument.get("Name") if nbo_instrument is not None else None) or (
        " ".join(filter(None, (microscope.get("Manufacturer"), microscope.get("Model"))))
        if microscope is not None else None)
    channel_maps = map_annotations(tree, NS_CHANNEL)
    calibrations = list(map_annotations(nbo, NS_CALIBRATION).values()) if nbo is not None else []
    run = next(iter(map_annotations(tree, NS_RUN).values()), {})
    level, passed, source = _verdicts(tree, nbo, name, regrade)
    common = {
        "file": name, "format": "OME-Zarr" if name.endswith(ZARR_SUFFIX) else "OME-TIFF",
        "rig": rig, "has_nbo": nbo is not None, "tier_reached": level,
        **{f"tier_{t}": passed[t] for t in TIERS}, "tier_source": source,
        "calibrations": [f"{c.get('id')} ({c.get('date')})" for c in calibrations],
        "stale_calibrations": [f"{c.get('id')} ({c.get('date')})" for c in calibrations
                               if c.get("stale", "").startswith("yes")],
        "status": run.get("status"),
    }
    rows = []
    for i, image in enumerate(tree.iterfind("o:Image", _NS)):
        date = image.findtext("o:AcquisitionDate", None, _NS)
        objective_ref = image.find("o:ObjectiveSettings", _NS)
        objective = instrument.get(objective_ref.get("ID", "")) if objective_ref is not None \
            else None
        pixels = image.find("o:Pixels", _NS)
        if pixels is None:
            continue
        exposures: dict[str, str] = {}
        for plane in pixels.iterfind("o:Plane", _NS):
            exposures.setdefault(plane.get("TheC", "0"), plane.get("ExposureTime", ""))
        for c, channel in enumerate(pixels.iterfind("o:Channel", _NS)):
            rows.append({
                **common, "image": i, "image_name": image.get("Name"), "channel": c,
                "channel_name": channel.get("Name"), "date": date,
                "objective": objective.get("Model") if objective is not None else None,
                "objective_id": objective_ref.get("ID") if objective_ref is not None else None,
                "objective_na": _number(objective.get("LensNA")) if objective is not None
                else None,
                "objective_magnification": _number(objective.get("NominalMagnification"))
                if objective is not None else None,
                "excitation_nm": _number(channel.get("ExcitationWavelength")),
                "emission_nm": _number(channel.get("EmissionWavelength")),
                "exposure_ms": _number(exposures.get(str(c))),
                **_channel_parts(channel, instrument, channel_maps),
            })
    return rows


def _model(element: ET.Element | None, fallback: str) -> str:
    if element is None:
        return fallback
    return element.get("Model") or element.get("ID") or fallback


def _channel_parts(channel: ET.Element, instrument: dict[str, ET.Element],
                   channel_maps: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A channel's light sources (with powers), filters, dichroics and detector settings."""
    settings: dict[str, str] = {}
    for ref in channel.iterfind("o:AnnotationRef", _NS):
        settings.update(channel_maps.get(ref.get("ID", ""), {}))
    sources, powers = [], []
    for ls in channel.iterfind("o:LightSourceSettings", _NS):
        ident = ls.get("ID", "")
        wavelength = ls.get("Wavelength") or (instrument.get(ident, ET.Element("x"))
                                              .get("Wavelength"))
        label = _model(instrument.get(ident), ident)
        sources.append(f"{label} ({wavelength} nm)" if wavelength else label)
        local_id = ident.partition(":")[2]
        for key in ("power_mw", "intensity_percent", "attenuation_percent"):
            value = settings.get(f"light_source[{local_id}].{key}")
            if value:
                powers.append(f"{local_id}: {value}")
    filters, dichroics = [], []
    path = channel.find("o:LightPath", _NS)
    refs = list(path) if path is not None else []
    filter_set = channel.find("o:FilterSetRef", _NS)
    if filter_set is not None:
        refs += list(instrument.get(filter_set.get("ID", ""), ET.Element("x")))
    for ref in refs:
        ident = ref.get("ID", "")
        if ref.tag.endswith("DichroicRef"):
            dichroics.append(_model(instrument.get(ident), ident))
        elif ref.tag.endswith("FilterRef"):
            filters.append(_model(instrument.get(ident), ident))
    detector = channel.find("o:DetectorSettings", _NS)
    detector_id = detector.get("ID", "") if detector is not None else ""
    return {
        "light_sources": sources, "light_source_powers": powers,
        "filters": filters, "dichroics": dichroics,
        "detector": _model(instrument.get(detector_id), detector_id) if detector_id else None,
        "detector_gain": _number(detector.get("Gain")) if detector is not None else None,
        "detector_offset": _number(detector.get("Offset")) if detector is not None else None,
        "detector_binning": detector.get("Binning") if detector is not None else None,
    }


def write_parquet(rows: Sequence[dict[str, Any]], out: str | Path) -> Path:
    """Write ``rows`` (:data:`COLUMNS`) to the Parquet file ``out`` with DuckDB.

    Raises FileNotFoundError when ``out``'s folder does not exist and OSError when DuckDB
    cannot write it (both name the file).
    """
    import duckdb

    target = Path(out)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"{target}: folder {target.parent} does not exist")
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "rows.jsonl"
        with lines.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({k: row.get(k) for k in COLUMNS}) + "\n")
        columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items()) + "}"
        with duckdb.connect() as con:
            try:
                con.execute(f"COPY (SELECT * FROM read_json(?, format='newline_delimited', "
                            f"columns={columns})) TO '{_sql_text(target)}' (FORMAT parquet)",
                            [str(lines)])
            except duckdb.IOException as exc:
                raise OSError(f"{target}: cannot write the catalog: {exc}") from None
    return target


def _sql_text(path: Path) -> str:
    """A path as the inside of an SQL string literal."""
    return str(path).replace("'", "''")


def query(parquet: str | Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` with DuckDB where the table ``catalog`` is the Parquet file.

    The file can also be named directly (``FROM 'catalog.parquet'``). Returns the column
    names and the rows; a missing file or an SQL error raises ValueError.
    """
    import duckdb

    source = Path(parquet)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such catalog file")
    with duckdb.connect() as con:
        try:
            con.execute(f"CREATE VIEW catalog AS SELECT * FROM read_parquet('{_sql_text(source)}')")
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description or []]
            return names, cursor.fetchall()
        except duckdb.Error as exc:
            raise ValueError(f"SQL: {str(exc).splitlines()[0]}") from None
