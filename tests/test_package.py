"""The distribution as a user installs it: one import name, the public API, no import cycles.

The wheel is built from the repository with the real build backend and inspected as a zip; the
import graph is read from the package's source files (every ``import`` statement, those inside
functions included), not from the modules' own idea of what they import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO

#: Repository folder -> package it is installed as (pyproject.toml's package-dir).
FOLDERS = {"recorder": "nbo_recorder", "drivers": "nbo_recorder.drivers",
           "mocks": "nbo_recorder.sim"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir",
                    str(out), str(REPO)], check=True, capture_output=True, text=True)
    (built,) = out.glob("nbo_recorder-*.whl")
    return built


def test_wheel_installs_exactly_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert top - dist_info == {"nbo_recorder"}


def test_wheel_carries_every_module_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, package in FOLDERS.items():
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO / folder).as_posix()
            expected.add(f"{package.replace('.', '/')}/{rel}")
    for data in ("nbo_recorder/nbo/NBO_MicroscopyMetadataSpecifications_ALL_v02-01.xsd",
                 "nbo_recorder/nbo/nbo_rules.json", "nbo_recorder/nbo/ATTRIBUTION.md",
                 "nbo_recorder/hardware_profiles/mm_demo.yaml",
                 "nbo_recorder/hardware_profiles/sim_spinning_disk.yaml",
                 "nbo_recorder/sim/rigs/sim_spinning_disk.cfg", "nbo_recorder/py.typed"):
        expected.add(data)
    assert expected - names == set()


def test_public_api_from_a_fresh_interpreter() -> None:
    code = ("from nbo_recorder import Recorder, RecordingError, load_core, load_profile, read, "
            "validate_file, recover; import nbo_recorder, sys; "
            "assert sorted(nbo_recorder.__all__) == sorted(['Recorder', 'RecordingError', "
            "'load_core', 'load_profile', 'read', 'validate_file', 'recover']); "
            "assert callable(load_core) and isinstance(Recorder, type); print('ok')")
    done = _fresh_python(code)
    assert "ok" in done.stdout, done.stderr


def test_every_public_name_stays_itself_after_any_module_is_imported() -> None:
    """A subpackage named like a public function would replace it once imported (Python
    sets a subpackage as an attribute of its parent): ``read`` was shadowed this way."""
    names = sorted(_modules())
    code = ("import importlib, nbo_recorder\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "from nbo_recorder import read, validate_file, recover, load_core, load_profile\n"
            "import types\n"
            "assert not any(isinstance(f, types.ModuleType) for f in "
            "(read, validate_file, recover, load_core, load_profile)), read\n"
            "print('ok')")
    done = _fresh_python(code)
    assert "ok" in done.stdout, done.stderr[-2000:]


def test_importing_the_package_is_light() -> None:
    code = ("import sys, nbo_recorder; "
            "print([m for m in ('pymmcore_plus', 'ome_types', 'xmlschema', 'tifffile') "
            "if m in sys.modules])")
    done = _fresh_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter, outside the repository (the installed package)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd="/", timeout=120)


def _modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the installed package."""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement in ``path``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [a.name for a in node.names]
            yield base, names
            for n in names:  # ``from pkg import module`` imports the module
                if f"{base}.{n}" in known:
                    yield f"{base}.{n}", []


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _ in _imports(name, path, known):
            if target in known and target != name:
                graph[name].add(target)
    return graph


def test_the_graph_sees_the_whole_package() -> None:
    graph = _graph()
    assert {"nbo_recorder.capture.recorder", "nbo_recorder.render.ome",
            "nbo_recorder.drivers.mm_devices", "nbo_recorder.sim"} <= set(graph)
    assert "nbo_recorder.sim._base" in graph["nbo_recorder.sim"]


def test_no_import_cycle_between_the_package_modules() -> None:
    graph = _graph()
    # A package's __init__ that re-exports its own submodules is not a cycle of logic: drop
    # only the edges from a submodule back to its own package's __init__.
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_a_private_name_of_another() -> None:
    modules = _modules()
    known = set(modules)
    offences = []
    for name, path in modules.items():
        for target, names in _imports(name, path, known):
            if not target.startswith("nbo_recorder") or target == name:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                offences.append(f"{name} imports {private} from {target}")
            if any(part.startswith("_") and not part.startswith("__")
                   for part in target.split(".")) and not name.startswith(
                       target.rpartition(".")[0]):
                offences.append(f"{name} imports the private module {target}")
    assert offences == []


@pytest.mark.slow
def test_readme_python_example_runs_as_written(tmp_path: Path) -> None:
    """The README's "Recording from Python" block, run as a user would from a checkout."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Recording from Python"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("\n```", start)]
    (tmp_path / "hardware_profiles").mkdir()
    (tmp_path / "hardware_profiles" / "mm_demo.yaml").write_bytes(
        (REPO / "hardware_profiles" / "mm_demo.yaml").read_bytes())
    # os._exit: MMCore can abort at interpreter exit after a run (issue 14), not the example.
    (tmp_path / "example.py").write_text(
        code + "\nimport os, sys\nsys.stdout.flush()\nos._exit(0)\n")
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "DAPI"
    assert (tmp_path / "exp1.ome.tif").stat().st_size > 0
