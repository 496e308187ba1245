"""Reading a journal's frame lines: what the writer wrote comes back field for field, a value
of a convertible type is converted, and a wrong one is refused by its line number."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest

from nbo_recorder.capture.documents import (
    FrameRecord,
    RunStart,
    StateSnapshot,
    frame_records,
)
from nbo_recorder.store.journal import JournalError, JournalWriter, read_journal

START = RunStart(started_at="2026-01-01T00:00:00", profile={}, sequence={}, width=8,
                 height=8, dtype="uint16", camera="Camera", versions={})
SNAPSHOT = StateSnapshot(uid=0, values={("Camera", "Exposure"): "10"}, elapsed_s=0.0,
                         trigger="start")
FRAMES = [
    FrameRecord(index=0, p=0, t=0, c=0, z=0, channel="DAPI", elapsed_ms=0.5, exposure_ms=10.0,
                x_um=None, y_um=1.5, z_um=None, pixel_size_um=0.65, snapshot=0),
    FrameRecord(index=1, p=1, t=2, c=1, z=3, channel=None, elapsed_ms=12.25, exposure_ms=20.0,
                x_um=-3.0, y_um=None, z_um=7.5, pixel_size_um=0.0, snapshot=0,
                hardware_triggered=True, g=4, width=16, height=12),
]
_FIELDS = [f.name for f in fields(FrameRecord)]


def _journal(tmp_path: Path) -> Path:
    path = tmp_path / "run.ome.tif.nbo-journal"
    writer = JournalWriter(path)
    writer.start(START)
    for frame in FRAMES:
        writer.frame(frame, SNAPSHOT)
    writer.close()
    return path


def _with_last_frame(path: Path, values: list[object]) -> int:
    """Replace the last frame line's values; its 1-based line number."""
    lines = path.read_text().splitlines()
    lines[-1] = json.dumps({"f": values})
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def test_frames_come_back_as_written(tmp_path: Path) -> None:
    run = read_journal(_journal(tmp_path))
    assert run.frames == FRAMES
    assert run.snapshots == {0: SNAPSHOT}


def test_a_whole_number_for_a_float_field_is_read_as_a_float(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    _with_last_frame(path, [1, 0, 0, 0, 0, None, 12, 20, None, None, None, 1, 0])
    frame = read_journal(path).frames[-1]
    assert frame.elapsed_ms == 12.0 and type(frame.elapsed_ms) is float
    assert frame.pixel_size_um == 1.0 and type(frame.pixel_size_um) is float


@pytest.mark.parametrize("bad", [
    ["one", 0, 0, 0, 0, None, 1.0, 1.0, None, None, None, 1.0, 0],
    [1, 0, 0, 0, 0, 5, 1.0, 1.0, None, None, None, 1.0, 0],
    [1, 0, 0, 0, 0, None, "soon", 1.0, None, None, None, 1.0, 0],
])
def test_a_frame_value_of_the_wrong_type_is_refused_by_its_line(tmp_path: Path,
                                                                 bad: list[object]) -> None:
    path = _journal(tmp_path)
    line = _with_last_frame(path, bad)
    with pytest.raises(JournalError, match=rf":{line}: malformed frame line"):
        read_journal(path)


def _with_frame_lines(path: Path, lines: list[str]) -> int:
    """Append ``lines`` (frame lines as written, compact JSON) after the journal's frames;
    the 1-based line number of the first."""
    old = path.read_text().splitlines()
    path.write_text("\n".join([*old, *lines]) + "\n")
    return len(old) + 1


def _compact(values: list[object]) -> str:
    return json.dumps({"f": values}, separators=(",", ":"))


def test_frame_lines_without_the_later_fields_take_their_defaults(tmp_path: Path) -> None:
    """Journals written before ``hardware_triggered``, ``g``, ``width`` and ``height`` were
    recorded: a stretch of such lines is read at once, as each line would be."""
    path = _journal(tmp_path)
    _with_frame_lines(path, [_compact([i, 0, i, 0, 0, "DAPI", 1.5 * i, 10.0, None, 2.0, None,
                                       0.65, 0]) for i in range(2, 6)])
    frames = read_journal(path).frames
    assert frames[:2] == FRAMES
    assert frames[2:] == [FrameRecord(index=i, p=0, t=i, c=0, z=0, channel="DAPI",
                                      elapsed_ms=1.5 * i, exposure_ms=10.0, x_um=None,
                                      y_um=2.0, z_um=None, pixel_size_um=0.65, snapshot=0)
                          for i in range(2, 6)]


def test_a_stretch_of_lines_with_whole_numbers_for_floats_reads_them_as_floats(
        tmp_path: Path) -> None:
    """Many frame lines, read at once, convert a whole number in a float field as one line
    read alone does (and as pydantic would): to the float, never kept as an int."""
    path = _journal(tmp_path)
    _with_frame_lines(path, [_compact([i, 0, i, 0, 0, None, 100 * i, 10, 1, None, -2, 1, 0,
                                       False, 0, 8, 8]) for i in range(2, 6)])
    frames = read_journal(path).frames[2:]
    assert [f.elapsed_ms for f in frames] == [200.0, 300.0, 400.0, 500.0]
    assert {(type(f.elapsed_ms), type(f.exposure_ms), type(f.x_um), type(f.z_um),
             type(f.pixel_size_um)) for f in frames} == {(float,) * 5}
    assert {(f.index, f.width, type(f.index)) for f in frames} == {
        (i, 8, int) for i in range(2, 6)}


@pytest.mark.parametrize(("bad", "message"), [
    ([3, 0, 0, 0, 0, None, 1.0, 1.0, None, None, None, 1.0, 0, False, 0, 8, "eight"],
     "height"),
    ([1, 0, 0, 0, 0, None, 1.0, 1.0, None, None, None, 1.0, 0], "frame 1 after frame 2"),
    ([3, 0, 0, 0, 0, None, 1.0, 1.0, None, None, None, 1.0, 7], r"\(snapshot 7\) has no"),
    ([3, 0, 0, 0, 0, None, 1.0, 1.0, None, None, None, 1.0, 0, False, 0, 8, [8]], "height"),
], ids=["type", "order", "snapshot", "nested"])
def test_a_bad_line_among_many_frame_lines_is_refused_by_its_number(
        tmp_path: Path, bad: list[object], message: str) -> None:
    """Frame lines are read many at once; one that is wrong is still reported by its line."""
    path = _journal(tmp_path)
    good = [_compact([i, 0, 0, 0, 0, None, 1.0, 1.0, None, None, None, 1.0, 0])
            for i in (2, 4, 5)]
    first = _with_frame_lines(path, [good[0], _compact(bad), *good[1:]])
    with pytest.raises(JournalError, match=rf":{first + 1}: malformed frame line: .*{message}"):
        read_journal(path)


def test_lines_that_are_only_json_together_are_refused_by_their_number(tmp_path: Path) -> None:
    """Two damaged lines that would make one valid list if the frame lines were simply joined
    (one ends inside a string the next closes) are each not JSON, as read line by line."""
    path = _journal(tmp_path)
    first = _with_frame_lines(path, ['{"f":[2,0,0,0,0,"a]}', '{"f":[",1.0]}',
                                     _compact([3, 0, 0, 0, 0, None, 1.0, 1.0, None, None,
                                               None, 1.0, 0])])
    with pytest.raises(JournalError, match=rf":{first}: not a journal line"):
        read_journal(path)


def test_records_built_a_column_at_a_time_are_those_of_the_constructor() -> None:
    columns = list(zip(*[[getattr(f, name) for name in _FIELDS] for f in FRAMES], strict=True))
    assert frame_records(columns) == FRAMES
    assert frame_records(columns[:13]) == [replace(f, hardware_triggered=False, g=0, width=0,
                                                   height=0) for f in FRAMES]
    for wrong in (columns[:12], [*columns, columns[0]]):
        with pytest.raises(ValueError, match="columns for a FrameRecord"):
            frame_records(wrong)
