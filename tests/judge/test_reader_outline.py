"""The outline a summary reads: everything but what a file holds per plane."""

from __future__ import annotations

import pytest
import tifffile
from ome_types import from_xml

from nbo_recorder.judge.reader import NotOmeTiffError, read_outline


@pytest.mark.parametrize("options", [(), ("--format", "ome-zarr")])
def test_the_outline_is_the_whole_model_without_planes(demo_file, options):
    path = demo_file(*options)
    pages, outline = read_outline(path)
    xml = ((path / "OME" / "METADATA.ome.xml").read_text() if path.is_dir()
           else tifffile.TiffFile(path).pages[0].description)
    whole = from_xml(xml)  # ome-types on the file's own OME-XML, every element kept
    assert pages == sum(len(image.pixels.planes) for image in whole.images) == 18
    assert outline.instruments == whole.instruments
    assert outline.structured_annotations.map_annotations == \
        whole.structured_annotations.map_annotations
    for mine, theirs in zip(outline.images, whole.images, strict=True):
        assert mine.pixels.channels == theirs.pixels.channels
        assert mine.objective_settings == theirs.objective_settings
        assert (mine.name, mine.pixels.size_t, mine.pixels.physical_size_x) == \
            (theirs.name, theirs.pixels.size_t, theirs.pixels.physical_size_x)
        assert mine.pixels.planes == [] and mine.pixels.tiff_data_blocks == []
    nbo = [a for a in whole.structured_annotations.xml_annotations if a.id == "Annotation:nbo"]
    assert nbo and nbo[0].value.any_elements  # the whole model holds the NBO record ...
    kept = [a for a in outline.structured_annotations.xml_annotations if a.id == "Annotation:nbo"]
    assert kept and not kept[0].value.any_elements  # ... the outline only its annotation


def test_a_file_that_is_not_ome_gets_the_readers_error(tmp_path):
    path = tmp_path / "broken.ome.tif"
    tifffile.imwrite(path, [[0]], description="<OME xmlns='x'><Image></OME>", metadata=None)
    with pytest.raises(NotOmeTiffError, match="not well-formed"):
        read_outline(path)
