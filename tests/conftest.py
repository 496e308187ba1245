"""Shared fixtures: a real Micro-Manager core with the compiled demo adapters, the OME XSD."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pydevices import PyEmissionWheel, PyLaser


@pytest.fixture
def demo_core() -> Iterator[Any]:
    """A UniMMCore with MMConfig_demo.cfg loaded (the real demo adapters)."""
    from nbo_recorder.rig import load_core

    core = load_core("demo")
    yield core
    core.unloadAllDevices()


@pytest.fixture(scope="session")
def ome_schema() -> Any:
    """The OME 2016-06 XSD shipped by ome-types, loaded once."""
    import ome_types
    import xmlschema

    return xmlschema.XMLSchema(Path(ome_types.__file__).parent / "ome-2016-06.xsd")


@pytest.fixture
def py_core(demo_core):
    """Demo rig plus two Python devices and a config group that moves them silently."""
    demo_core.loadPyDevice("PyWheel", PyEmissionWheel())
    demo_core.loadPyDevice("PyLaser", PyLaser())
    demo_core.initializeDevice("PyWheel")
    demo_core.initializeDevice("PyLaser")
    for preset, label, power, led in (("GFP", "Py-HQ535", "0.02", "470nm"),
                                      ("RFP", "Py-HQ700", "0.05", "550nm")):
        demo_core.defineConfig("PyChannel", preset, "PyWheel", "Label", label)
        demo_core.defineConfig("PyChannel", preset, "PyLaser", "PowerW", power)
        demo_core.defineConfig("PyChannel", preset, "LED", "Label", led)
        demo_core.defineConfig("PyChannel", preset, "Core", "Shutter", "LED Shutter")
    return demo_core
