"""An OME-Zarr store in a deposit and in the catalog, beside an OME-TIFF: issue 19 names
``deposit exp1.ome.tif exp2.ome.zarr``. Ground truth is read from the store's own
``OME/METADATA.ome.xml`` with ome-types and from the copied bytes, never from the crate code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
import rdflib
from ome_types import from_xml

from nbo_recorder.cli.main import main
from tests.helpers import OBJECTIVE_QUERY, crate_graph

pytest.importorskip("tensorstore")


def _ome(path: Path) -> Any:
    if path.is_dir():
        return from_xml((path / "OME" / "METADATA.ome.xml").read_text(encoding="utf-8"))
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return from_xml(tif.pages.first.description)


def _objectives(path: Path) -> set[str]:
    ome = _ome(path)
    models = {o.id: o.model for i in ome.instruments for o in i.objectives}
    return {str(models[img.objective_settings.id]) for img in ome.images
            if img.objective_settings is not None}


@pytest.fixture(scope="module")
def inputs(demo_file: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A widefield OME-Zarr store and a spinning-disk OME-TIFF, side by side in one folder."""
    folder = tmp_path_factory.mktemp("facility")
    store = folder / "wide.ome.zarr"
    shutil.copytree(demo_file("--format", "ome-zarr"), store)
    tiff = folder / "disk.ome.tif"
    shutil.copy(demo_file("--rig", "spinning-disk"), tiff)
    return {"zarr": store, "tiff": tiff}


def test_a_store_is_deposited_whole_and_found_by_its_objective(
        inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "crate"
    assert main(["deposit", str(inputs["zarr"]), str(inputs["tiff"]), "--out", str(out)]) in (
        0, 1)
    store = inputs["zarr"]
    copied = out / store.name
    for part in store.rglob("*"):
        if part.is_file():
            assert (copied / part.relative_to(store)).read_bytes() == part.read_bytes(), part
    metadata = json.loads((out / "ro-crate-metadata.json").read_text(encoding="utf-8"))
    graph = crate_graph(metadata)
    used = {path.name: _objectives(path) for path in inputs.values()}
    for model in set().union(*used.values()):
        answer = {str(row[0]) for row in graph.query(
            OBJECTIVE_QUERY, initBindings={"wanted": rdflib.Literal(model)})}
        assert answer == {name for name, own in used.items() if model in own}


def test_the_catalog_has_a_row_per_image_and_channel_of_the_store_too(
        inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "catalog.parquet"
    assert main(["catalog", str(inputs["zarr"].parent), "--out", str(out)]) == 0
    rows = duckdb.sql(f"SELECT file, image, channel, channel_name FROM '{out}'").fetchall()
    for path in inputs.values():
        ome = _ome(path)
        expected = {(i, c, ch.name) for i, image in enumerate(ome.images)
                    for c, ch in enumerate(image.pixels.channels)}
        found = {(image, channel, name) for file, image, channel, name in rows
                 if Path(file).name == path.name}
        assert found == expected, path.name
