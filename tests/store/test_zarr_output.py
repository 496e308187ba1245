"""OME-Zarr output: the store a run writes, read back by independent OME-Zarr readers.

Ground truth comes from outside the recorder: pixel hashes from a ``frameReady`` handler of
the test, the pixel size from the core, the z step and channel names from the sequence, the
store's validity from yaozarrs, ome-zarr-py and bioio, the OME-XML's from the OME XSD, and
the record itself from the OME-TIFF output of the same sequence.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import useq

pytest.importorskip("tensorstore")
yaozarrs = pytest.importorskip("yaozarrs")

from nbo_recorder.capture.recorder import Recorder  # noqa: E402
from nbo_recorder.cli.main import main  # noqa: E402
from nbo_recorder.judge.reader import nbo_record, read  # noqa: E402
from tests.helpers import DEMO_PROFILE, snapped  # noqa: E402

CHANNELS = ["DAPI", "FITC"]
Z_STEP = 1.0


def _sequence() -> useq.MDASequence:
    return useq.MDASequence(
        channels=CHANNELS, z_plan={"range": 2, "step": Z_STEP}, time_plan=snapped(2),
        stage_positions=[(0, 0, 0), {"x": 50, "y": 20, "z": 0, "name": "well B2"}])


class Frames:
    """Hashes of the frames the core hands out, by (p, t, c, z), taken by the test itself."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.sha1: dict[tuple[int, int, int, int], str] = {}
        self.pixel_size_um: set[float] = set()
        core.mda.events.frameReady.connect(self.on_frame)

    def on_frame(self, img: np.ndarray, event: useq.MDAEvent, meta: dict[str, Any]) -> None:
        i = event.index
        self.sha1[(i.get("p", 0), i.get("t", 0), i.get("c", 0), i.get("z", 0))] = \
            hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest()
        self.pixel_size_um.add(self.core.getPixelSizeUm())

    def close(self) -> None:
        self.core.mda.events.frameReady.disconnect(self.on_frame)


def _record(core: Any, out: Path) -> Frames:
    frames = Frames(core)
    sink = Recorder(core, DEMO_PROFILE).sink(out)
    core.mda.run(_sequence(), output=sink)
    frames.close()
    sink.raise_if_failed()
    return frames


@pytest.fixture
def store(demo_core: Any, tmp_path: Path) -> tuple[Path, Frames]:
    out = tmp_path / "exp.ome.zarr"
    return out, _record(demo_core, out)


def test_store_validates_and_reads_back_with_ome_zarr_py(store: tuple[Path, Frames]) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    out, frames = store
    yaozarrs.validate_zarr_store(out)
    (pixel,) = frames.pixel_size_um
    for p in (0, 1):
        nodes = list(Reader(parse_url(str(out / str(p))))())
        image = nodes[0]
        assert [a["name"] for a in image.metadata["axes"]] == ["t", "c", "z", "y", "x"]
        assert image.metadata["channel_names"] == CHANNELS
        scale = image.metadata["coordinateTransformations"][0][0]["scale"]
        assert scale[2:] == pytest.approx([Z_STEP, pixel, pixel])
        data = np.asarray(image.data[0])
        assert data.shape[:3] == (2, 2, 3)
        for t, c, z in np.ndindex(*data.shape[:3]):
            sha = hashlib.sha1(np.ascontiguousarray(data[t, c, z]).tobytes()).hexdigest()
            assert sha == frames.sha1[(p, t, c, z)], (p, t, c, z)


def test_store_reads_back_with_bioio(store: tuple[Path, Frames]) -> None:
    from bioio import BioImage
    from bioio_ome_zarr import Reader

    out, frames = store
    (pixel,) = frames.pixel_size_um
    for p, name in ((0, None), (1, "well B2")):
        # bioio-ome-zarr reads one image group; it refuses the bioformats2raw root
        image = BioImage(out / str(p), reader=Reader)
        if name:
            assert image.scenes == (name,)
        assert (image.dims.T, image.dims.C, image.dims.Z) == (2, 2, 3)
        assert image.channel_names == CHANNELS
        sizes = image.physical_pixel_sizes
        assert (sizes.Z, sizes.Y, sizes.X) == pytest.approx((Z_STEP, pixel, pixel))
        data = image.get_image_data("TCZYX")
        for t, c, z in np.ndindex(2, 2, 3):
            sha = hashlib.sha1(np.ascontiguousarray(data[t, c, z]).tobytes()).hexdigest()
            assert sha == frames.sha1[(p, t, c, z)]


def test_per_plane_json_matches_the_ome_xml_planes(store: tuple[Path, Frames]) -> None:
    out, _ = store
    recorded = read(out)
    for p in (0, 1):
        attrs = json.loads((out / str(p) / "zarr.json").read_text())["attributes"]
        planes = attrs["nbo-recorder"]["planes"]
        ome_planes = recorded.ome.images[p].pixels.planes
        assert len(planes) == len(ome_planes) == 12
        for mine, theirs in zip(planes, ome_planes, strict=True):
            assert (mine["t"], mine["c"], mine["z"]) == (theirs.the_t, theirs.the_c,
                                                         theirs.the_z)
            assert mine["exposure_ms"] == pytest.approx(theirs.exposure_time)
            assert mine["delta_t_s"] == pytest.approx(theirs.delta_t)


_VOLATILE = re.compile(r"(Date|Time|Timestamp|ID|Ref|Ifd|IFD)$")
_NUMBERED = re.compile(r"\d+(\.\d+)?")


def _canonical(record: ET.Element) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    """The record's elements with their attributes and text, leaving out what differs between
    two runs of one sequence: times, IDs and the numbers in timing text."""
    out = []
    for element in record.iter():
        attrs = tuple(sorted((k, v) for k, v in element.attrib.items()
                             if not _VOLATILE.search(k)))
        text = _NUMBERED.sub("#", (element.text or "").strip())
        out.append((str(element.tag), attrs, text))
    return out


def test_metadata_xml_is_ome_and_carries_the_tiff_outputs_record(
        demo_core: Any, tmp_path: Path, ome_schema: Any) -> None:
    zarr_out, tiff_out = tmp_path / "exp.ome.zarr", tmp_path / "exp.ome.tif"
    _record(demo_core, tiff_out)
    _record(demo_core, zarr_out)
    xml = (zarr_out / "OME" / "METADATA.ome.xml").read_text()
    ome_schema.validate(xml)
    assert "<TiffData" not in xml
    zarr_record, tiff_record = nbo_record(xml), read(tiff_out).nbo
    assert zarr_record is not None and tiff_record is not None
    assert _canonical(zarr_record) == _canonical(tiff_record)
    tiff_ome, zarr_ome = read(tiff_out).ome, read(zarr_out).ome
    assert [i.name for i in zarr_ome.images] == [i.name for i in tiff_ome.images]
    assert zarr_ome.instruments == tiff_ome.instruments


def test_validate_and_methods_say_the_same_of_both_outputs(
        demo_core: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    verdicts, methods = {}, {}
    for name in ("exp.ome.tif", "exp.ome.zarr"):
        _record(demo_core, tmp_path / name)
        capsys.readouterr()
        for tier in (1, 2):
            code = main(["validate", str(tmp_path / name), "--tier", str(tier), "--json"])
            report = json.loads(capsys.readouterr().out)
            verdicts[name, tier] = (code, report["verdicts"],
                                    sorted((f["path"], f["attribute"], f["status"])
                                           for f in report["failures"]))
        assert main(["methods", str(tmp_path / name)]) == 0
        methods[name] = capsys.readouterr().out
    for tier in (1, 2):
        assert verdicts["exp.ome.tif", tier] == verdicts["exp.ome.zarr", tier]
    assert "objective" in methods["exp.ome.tif"].lower()
    assert methods["exp.ome.zarr"] == methods["exp.ome.tif"]


def test_existing_store_is_refused_without_overwrite(demo_core: Any, store: tuple[Path, Frames]
                                                     ) -> None:
    out, _ = store
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(FileExistsError, match="--overwrite"):
        Recorder(demo_core, DEMO_PROFILE).sink(out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    sink = Recorder(demo_core, DEMO_PROFILE).sink(out, overwrite=True)
    demo_core.mda.run(useq.MDASequence(channels=["DAPI"]), output=sink)
    sink.raise_if_failed()
    assert read(out).pages == 1
    yaozarrs.validate_zarr_store(out)


def test_overwrite_never_removes_a_folder_that_is_not_a_store(demo_core: Any,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "notes.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OSError, match="not a Zarr store"):
        Recorder(demo_core, DEMO_PROFILE).sink(out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"


def test_an_unknown_format_or_a_missing_backend_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "exp"
    assert main(["demo", "--format", "hdf5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'--format'" in err and "ome-tiff" in err and "ome-zarr" in err
    monkeypatch.setitem(sys.modules, "tensorstore", None)  # as if it were not installed
    assert main(["demo", "--format", "ome-zarr", "--out", str(out)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "'tensorstore'" in lines[0] and "pip install" in lines[0]
    assert not list(tmp_path.iterdir()), "nothing written"
