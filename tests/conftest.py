"""Shared fixtures: a real Micro-Manager core with the compiled demo adapters, the OME XSD."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def demo_core() -> Iterator[Any]:
    """A UniMMCore with MMConfig_demo.cfg loaded (the real demo adapters)."""
    from recorder.rig import load_core

    core = load_core("demo")
    yield core
    core.unloadAllDevices()


@pytest.fixture(scope="session")
def ome_schema() -> Any:
    """The OME 2016-06 XSD shipped by ome-types, loaded once."""
    import ome_types
    import xmlschema

    return xmlschema.XMLSchema(Path(ome_types.__file__).parent / "ome-2016-06.xsd")
