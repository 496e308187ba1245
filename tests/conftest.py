"""Shared fixtures: a real Micro-Manager core with the compiled demo adapters, the OME XSD."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
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


class OmeXsd:
    """The OME 2016-06 XSD shipped by ome-types, compiled by libxml2 (lxml).

    ``validate(xml)`` raises AssertionError listing every problem libxml2 finds. Loaded into
    xmlschema instead, the XSD took 1.2 s to load and 0.1 s per demo file on this 2-core
    machine (a few per cent of the suite); libxml2 takes 15 ms and 5 ms. The package does
    not validate OME-XML against this XSD itself, so this stays an independent check. It is
    compiled through ``compile_schema``, which only holds the package's lock: libxml2 can
    fail to compile two schemas at once, and ``validate`` compiles the NBO XSD in a thread.
    """

    def __init__(self, path: Path) -> None:
        from lxml import etree  # type: ignore[import-untyped]

        from nbo_recorder.nbo.xsd_index import compile_schema

        self._etree = etree
        self._schema = compile_schema(etree.parse(str(path)))

    def validate(self, xml: str | bytes) -> None:
        parser = self._etree.XMLParser(huge_tree=True, no_network=True)
        document = self._etree.fromstring(xml.encode() if isinstance(xml, str) else xml, parser)
        if not self._schema.validate(document):
            problems = "\n".join(f"line {e.line}: {e.message}" for e in self._schema.error_log)
            raise AssertionError(f"not valid against the OME 2016-06 XSD:\n{problems}")


@pytest.fixture(scope="session")
def ome_schema() -> OmeXsd:
    """The OME 2016-06 XSD shipped by ome-types, compiled once per session."""
    import ome_types

    return OmeXsd(Path(ome_types.__file__).parent / "ome-2016-06.xsd")


@pytest.fixture(scope="session")
def demo_nbo_record(demo_file: Callable[..., Path]) -> Callable[..., Any]:
    """The NBO record (an ElementTree root) of the file ``nbo-recorder demo OPTIONS`` writes
    (the session's :func:`demo_file`); copy it before changing it."""
    from nbo_recorder.judge.reader import nbo_record, read_ome_xml

    made: dict[tuple[str, ...], Any] = {}

    def record(*options: str) -> Any:
        if options not in made:
            root = nbo_record(read_ome_xml(demo_file(*options)))
            assert root is not None
            made[options] = root
        return made[options]

    return record


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


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``tmpfs("8m")``: a tmpfs of that size mounted under ``tmp_path`` (a real full disk), or
    a skip where this machine does not allow mounting one; unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        mnt = tmp_path / f"tmpfs-{len(mounted)}"
        mnt.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
        mounted.append(mnt)
        return mnt

    try:
        yield mount
    finally:
        for mnt in mounted:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture(scope="session")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """The file ``nbo-recorder demo OPTIONS`` writes (its path), recorded once per set of
    options in a session; read it, never change it."""
    from nbo_recorder.cli.main import main

    folder = tmp_path_factory.mktemp("demo-paths")
    made: dict[tuple[str, ...], Path] = {}

    def record(*options: str) -> Path:
        if options not in made:
            suffix = ".ome.zarr" if "ome-zarr" in options else ".ome.tif"
            out = folder / f"demo-{len(made)}{suffix}"
            assert main(["demo", "--out", str(out), *options]) == 0
            made[options] = out
        return made[options]

    return record

