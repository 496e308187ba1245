"""What the command line promises besides its results: help, errors, warnings, pipes, progress."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import warnings

import pytest
import typer
import useq

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.cli import console
from nbo_recorder.cli.main import app, main
from tests.helpers import DEMO_PROFILE, REPO


def _flat(text: str) -> str:
    """Help text as one line: wrapping (at spaces, or after a hyphen) undone."""
    return re.sub(r"-\s+", "-", re.sub(r"\s+", " ", text))


def _commands(command, path=()):
    """Every runnable command of the CLI with its path: ("acquire",), ("profile", "init"), ..."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(typer.main.get_command(app)))


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "COLUMNS")}
    env["TERM"] = "xterm-256color"  # a terminal type with colours: still none into a pipe
    kwargs.setdefault("capture_output", True)
    return subprocess.run([sys.executable, "-m", "nbo_recorder.cli.main", *args],
                          text=True, timeout=120, env=env, cwd=REPO, **kwargs)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_the_public_commands_are_all_there():
    assert set(COMMANDS) == {
        ("demo",), ("acquire",), ("recover",), ("methods",), ("validate",), ("conformance",),
        ("profile", "init"), ("profile", "check"), ("profile", "import-micrometa"),
        ("profile", "export-micrometa"), ("report",), ("deposit",), ("catalog", "scan"),
        ("catalog", "query")}


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_help_lists_every_option_with_its_help_and_default(path, capsys):
    assert main([*path, "--help"]) == 0
    text = _flat(capsys.readouterr().out)
    for param in COMMANDS[path].params:
        if param.name == "help":
            continue
        names = param.opts if param.param_type_name == "option" else [param.metavar]
        for name in names:
            assert name in text, f"{' '.join(path)}: {name} missing from --help"
        assert param.help, f"{' '.join(path)} {names[0]}: no help text"
        assert _flat(param.help) in text, f"{' '.join(path)} {names[0]}: help not shown"
        flag = getattr(param, "is_flag", False)
        if param.param_type_name == "option" and not param.required and not flag:
            shown = param.show_default
            default = shown if isinstance(shown, str) else param.default
            assert f"default: {_flat(str(default))}" in _flat(text.replace("(", "")), (
                f"{' '.join(path)} {names[0]}: default not shown")


def test_defaults_shown_are_the_defaults_used(capsys):
    assert main(["acquire", "--help"]) == 0
    text = _flat(capsys.readouterr().out)
    for shown in ("[default: continue]", "[default: stop]", "[default: 10.0]"):
        assert shown in text
    assert main(["validate", "--help"]) == 0
    text = _flat(capsys.readouterr().out)
    assert "[default: 1;" in text and "[default: core,basic,advconf,calib]" in text


def test_missing_profile_file_is_one_clear_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nowhere.yaml"
    assert main(["profile", "export-micrometa", str(missing)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("nbo-recorder: error:") and "nowhere.yaml" in line
    assert main(["conformance", "--mm-config", "demo", "--profile", str(missing)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "error:" in line and "nowhere.yaml" in line


@pytest.mark.parametrize(("args", "named"), [
    (["validate", "x.ome.tif", "--tier", "5"], "'--tier'"),
    (["validate", "x.ome.tif", "--tier", "one"], "'--tier'"),
    (["acquire", "--mm-config", "demo", "--profile", "p.yaml", "--sequence", "s.yaml",
      "--out", "o.ome.tif", "--on-write-error", "retry"], "'--on-write-error'"),
    (["acquire", "--mm-config", "demo", "--profile", "p.yaml", "--sequence", "s.yaml",
      "--out", "o.ome.tif", "--write-retry-s", "soon"], "'--write-retry-s'"),
    (["acquire", "--profile", "p.yaml"], "'--mm-config'"),
    (["methods", "x.ome.tif", "--format", "pdf"], "'--format'"),
    (["validate", "x.ome.tif", "--bogus"], "--bogus"),
    (["profile", "frobnicate"], "'frobnicate'"),
    ([], "Missing command"),
])
def test_usage_errors_are_one_line_naming_the_option_and_exit_2(args, named, capsys):
    assert main(args) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "error:" in line and named in line and "--help" in line


def test_usage_error_exits_2_from_the_console_script_too():
    result = _run("validate", "x.ome.tif", "--tier", "7")
    assert result.returncode == 2
    assert "'--tier'" in _one_error_line(result.stderr)


def test_python_warnings_are_one_line(tmp_path, capsys, monkeypatch):
    from nbo_recorder.judge import validate
    from nbo_recorder.judge.reader import NotOmeTiffError

    def warn_then_fail(*args, **kwargs):
        warnings.warn("camera buffer 90% full;\n  frames may be dropped", RuntimeWarning,
                      stacklevel=1)
        raise NotOmeTiffError("x.ome.tif: not a readable TIFF")

    monkeypatch.setattr(validate, "validate_file", warn_then_fail)
    hook = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["validate", str(tmp_path / "x.ome.tif")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("nbo-recorder: warning: camera buffer 90% full; frames may be dropped")
    assert err[1] == "nbo-recorder: x.ome.tif: not a readable TIFF"
    assert len(err) == 2
    assert warnings.showwarning is hook  # the usual display is back after the command


@pytest.fixture
def recorded(demo_core, tmp_path):
    out = tmp_path / "one.ome.tif"
    demo_core.mda.run(useq.MDASequence(channels=["DAPI"]),
                      output=Recorder(demo_core, DEMO_PROFILE).sink(out))
    return out


def test_output_into_a_closed_pipe_ends_quietly(recorded):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte: every write fails
    try:
        result = _run("validate", str(recorded), "--all", stdout=write_end, capture_output=False,
                      stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert "Broken pipe" not in result.stderr and "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr
    assert result.returncode == 141


def test_validate_piped_into_head_has_no_broken_pipe_error(recorded):
    env = {**os.environ, "FILE": str(recorded), "PY": sys.executable}
    result = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$PY" -m nbo_recorder.cli.main validate "$FILE" --all '
                       '| head -1'],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert result.stdout.count("\n") == 1
    assert "Broken pipe" not in result.stderr and "Traceback" not in result.stderr
    assert result.returncode in (0, 1, 141)  # 141 only when head left before the last write


def test_no_colour_codes_when_not_a_terminal(recorded):
    for args in (["--help"], ["acquire", "--help"], ["validate", str(recorded)],
                 ["validate", str(recorded), "--tier", "9"],
                 ["validate", str(REPO / "pyproject.toml")]):
        result = _run(*args)
        assert "\x1b[" not in result.stdout + result.stderr, args


def test_help_loads_no_hardware_or_xml_library():
    # the one store module --help may load is the format table its --format option lists
    # (plain Python, no engine); every other recorder stage stays unloaded
    probe = ("import sys\n"
             "from nbo_recorder.cli.main import main\n"
             "assert main(['--help']) == 0\n"
             "assert main(['acquire', '--help']) == 0\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('pymmcore_plus', 'pymmcore', 'ome_types', 'xmlschema', 'useq', 'tifffile')\n"
             "       or m.startswith(('nbo_recorder.capture', 'nbo_recorder.render', "
             "'nbo_recorder.store', 'nbo_recorder.judge', 'nbo_recorder.conformance.'))\n"
             "       and m not in ('nbo_recorder.store', 'nbo_recorder.store.formats')))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, to see the progress bar a user sees."""

    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_only_on_a_terminal(monkeypatch, capsys):
    with console.progress_display("recording x.ome.tif", "frames") as update:
        update(3, 10, "12.0 fps")
    assert capsys.readouterr().err == ""
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    with console.progress_display("recording x.ome.tif", "frames") as update:
        update(3, 10, "12.0 fps, backlog 0.0 MB")
    shown = term.getvalue()
    assert "recording x.ome.tif" in shown and "3/10 frames" in shown and "12.0 fps" in shown


def test_acquisition_progress_counts_the_frames_written(tmp_path, monkeypatch):
    seq = tmp_path / "seq.json"
    seq.write_text(json.dumps({"time_plan": {"interval": 0.3, "loops": 3}}))
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    out = tmp_path / "p.ome.tif"
    assert main(["acquire", "--mm-config", "demo", "--profile", str(DEMO_PROFILE),
                 "--sequence", str(seq), "--out", str(out)]) == 0
    shown = term.getvalue()
    assert "recording p.ome.tif" in shown and "3/3 frames" in shown and "backlog" in shown


def test_frame_rate_is_measured_over_the_recent_window():
    rate = console.FrameRate(window_s=2.0)
    assert rate.add(0, now=0.0) is None
    assert rate.add(10, now=1.0) == pytest.approx(10.0)
    assert rate.add(40, now=2.0) == pytest.approx(20.0)
    assert rate.add(100, now=4.0) == pytest.approx(30.0)  # the sample at 0 s has left
