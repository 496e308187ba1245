"""What the command line prints besides results: errors, warnings, progress, exit codes.

Every command runs inside :func:`guarded`, which turns what can go wrong into one clear line on
stderr and the documented exit code (0 ok, 1 findings, 2 bad input, 130 interrupted), and
shows Python warnings raised meanwhile (by the recorder, pymmcore-plus, ...) as one
``warning:`` line each instead of ``RuntimeWarning`` with a library's file path. A reader that
goes away (``nbo-recorder validate FILE | head -1``) ends the command quietly. Progress bars
(:func:`progress_display`) are drawn with rich on stderr, and only when stderr is a terminal:
pipes, files and tests see exactly the output they saw before.

Besides typer, this module imports only :mod:`nbo_recorder.rig` (for its error class; no
hardware library), so ``nbo-recorder --help`` stays light.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO, TypeVar

import typer
from typer.core import TyperGroup

from nbo_recorder.rig import RigError

if TYPE_CHECKING:
    from nbo_recorder.capture.sink import SinkProgress

#: the program name every message starts with
PROG = "nbo-recorder"

#: exit code of a command that stopped because its reader closed the pipe (128 + SIGPIPE)
EXIT_BROKEN_PIPE = 141
#: exit code of a command interrupted by Ctrl-C (128 + SIGINT)
EXIT_INTERRUPTED = 130
#: exit code of unusable input: a missing file, a bad value, an unreadable profile
EXIT_BAD_INPUT = 2

T = TypeVar("T")


def command_group(
    help: str, *, short_help: str | None = None, cls: type[TyperGroup] | None = None,
) -> typer.Typer:
    """A typer command group as every group of this CLI is made.

    Help is plain text (click's formatter): it stays readable at 80 columns and in a pipe,
    where rich's boxed panels squeeze the help column. Defaults are shown, ``-h`` works as
    ``--help``, no shell-completion options are added, and errors are never shown as rich
    tracebacks (:func:`guarded` and :func:`nbo_recorder.cli.main.main` report them).
    """
    return typer.Typer(
        cls=cls, help=help, short_help=short_help, add_completion=False,
        pretty_exceptions_enable=False, rich_markup_mode=None, no_args_is_help=False,
        context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})


class CommandError(Exception):
    """A command cannot go on; ``str(self)`` is the line to print, ``code`` the exit code.

    Commands raise it for failures of their own (``--strict`` refusing to start, a recovery
    that cannot be done) so that :func:`guarded` needs no import of the modules that define
    the underlying errors.
    """

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT, *, label: str = "error: ") -> None:
        super().__init__(message)
        self.code = code
        self.label = label


def say(line: str, *, prefix: str = PROG) -> None:
    """Print ``prefix: line`` (just ``line`` when ``prefix`` is empty) on stderr.

    A stderr nobody reads any more is not an error worth a traceback.
    """
    try:
        print(f"{prefix}: {line}" if prefix else line, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        pass


def one_line(text: str) -> str:
    """``text`` on one line: its non-blank lines joined with ``; `` (a space after a line that
    already ends in punctuation)."""
    joined = ""
    for part in (p.strip() for p in text.splitlines()):
        if part:
            gap = "" if not joined else " " if joined.endswith((";", ":", ",", ".")) else "; "
            joined += gap + part
    return joined


def aligned_rows(header: Sequence[str], rows: Sequence[Sequence[str]], *,
                 rule: bool = False) -> list[str]:
    """``header`` and ``rows`` as lines of left-aligned columns two spaces apart (trailing
    spaces cut); with ``rule``, a dashed line under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(header)]
    if rule:
        out.append("  ".join("-" * w for w in widths))
    return out + [line(row) for row in rows]


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int,
    file: TextIO | None = None, line: str | None = None,
) -> None:
    say(f"warning: {one_line(str(message))}")


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """While inside, each Python warning shown is printed as one ``warning: ...`` line.

    Which warnings are shown is left to the warning filters; only their form changes. The
    previous hook is restored on the way out (``warnings.catch_warnings`` saves it).
    """
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        yield


def _silence_stdout() -> None:
    """Point stdout at the null device, so flushing at exit cannot raise BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # not a real file descriptor (an in-process test): nothing is flushed at exit


def guarded(run: Callable[[], T], *, prefix: str = PROG) -> T | int:
    """Run a command; its result, or the exit code of what stopped it, said on stderr.

    Bad input (``ValueError``, ``OSError`` and ``RigError``; the recorder's own errors subclass
    these or are raised as :class:`CommandError`) is one ``error:`` line (a message of several
    lines, such as Micro-Manager's, joined by :func:`one_line`) and exit code 2 instead of a
    traceback;
    Ctrl-C is 130; a closed output pipe ends quietly with 141. Anything else is a bug in
    nbo-recorder and keeps its traceback.
    """
    try:
        with one_line_warnings():
            result = run()
        sys.stdout.flush()  # a reader that went away is noticed here, not at interpreter exit
        return result
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        say("interrupted", prefix=prefix)
        return EXIT_INTERRUPTED
    except CommandError as exc:
        say(f"{exc.label}{one_line(str(exc))}", prefix=prefix)
        return exc.code
    except (ValueError, OSError, RigError) as exc:
        say(f"error: {one_line(str(exc))}", prefix=prefix)
        return EXIT_BAD_INPUT


def _no_progress(done: int, total: int | None, note: str) -> None:
    """The progress update used when stderr is not a terminal: nothing is drawn."""


#: ``update(done, total, note)``: how far a long step has got
ProgressUpdate = Callable[[int, int | None, str], None]


@contextmanager
def progress_display(description: str, unit: str) -> Iterator[ProgressUpdate]:
    """A rich progress bar on stderr for a long step, or a no-op when stderr is no terminal.

    Yields ``update(done, total, note)``: ``done`` of ``total`` ``unit`` (``total`` None while
    unknown), with a short ``note`` after the bar (rate, backlog, a pause).
    """
    if not sys.stderr.isatty():
        yield _no_progress
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.fields[of]} " + unit),
               TextColumn("{task.fields[note]}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), redirect_stdout=False) as bar:
        task = bar.add_task(description, total=None, of="?", note="")

        def update(done: int, total: int | None, note: str) -> None:
            bar.update(task, completed=done, total=total,
                       of="?" if total is None else str(total), note=note)

        yield update


class FrameRate:
    """Frames per second over the last few seconds, from successive frame counts."""

    def __init__(self, window_s: float = 3.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, frames: int, now: float | None = None) -> float | None:
        """Record the count at ``now``; the rate over the window, None until it can be told."""
        now = time.monotonic() if now is None else now
        self._samples.append((now, frames))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def acquisition_note(progress: SinkProgress, fps: float | None) -> str:
    """The text after an acquisition's bar: frame rate, data waiting for the disk, a pause."""
    parts = [f"{fps:.1f} fps" if fps is not None else "– fps",
             f"backlog {progress.backlog_bytes / 1e6:.1f} MB"]
    if progress.paused:
        parts.append("PAUSED: waiting to write (see the warning)")
    return ", ".join(parts)
