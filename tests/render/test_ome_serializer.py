"""The renderer's OME serializer writes what ``ome_types.to_xml`` writes, byte for byte: it
only keeps one serializer (and its class bindings) across documents."""

from __future__ import annotations

from typing import Any

import pytest
from ome_types import to_xml

from nbo_recorder.judge.reader import read
from nbo_recorder.render.bindings import ome_to_xml


@pytest.mark.parametrize("options", [(), ("--rig", "spinning-disk", "--study",
                                          "hardware_profiles/example_study.yaml")])
def test_ome_to_xml_is_ome_types_to_xml(demo_file: Any, options: tuple[str, ...]) -> None:
    ome = read(demo_file(*options)).ome
    expected = to_xml(ome)
    assert ome_to_xml(ome) == expected
    ome.images[0].name = "renamed after construction"  # set later: still written
    assert ome_to_xml(ome) == to_xml(ome) != expected
