"""A run's frames kept as packed rows give back exactly the records appended."""

from __future__ import annotations

import dataclasses
import math
import random
import sys
import threading

import pytest

from nbo_recorder.capture.documents import FrameRecord, FrameTable


def _records(count: int, seed: int) -> list[FrameRecord]:
    """Records as an acquisition makes them, and some it never should (which a table must
    keep as they are all the same)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        odd = rng.random() < 0.1
        out.append(FrameRecord(
            index=i, p=rng.randrange(3), t=i // 2, c=i % 2, z=rng.randrange(40),
            channel=rng.choice(["FITC", "TRITC", None, "Cy5 ünïcode"]),
            elapsed_ms=rng.uniform(0, 1e7), exposure_ms=rng.choice([0.5, 10.0, -0.0]),
            x_um=rng.choice([None, 0.0, -0.0, 12.25, rng.uniform(-1e4, 1e4)]),
            y_um=rng.choice([None, 1.5]), z_um=rng.choice([None, rng.uniform(-50, 50)]),
            pixel_size_um=rng.choice([0.0, 0.65, 1.3]), snapshot=rng.randrange(10_000),
            hardware_triggered=rng.random() < 0.5, g=rng.randrange(4),
            width=rng.choice([512, 256, 0]), height=rng.choice([512, 256, 0]),
        ) if not odd else FrameRecord(
            index=i, p=0, t=rng.choice([2 ** 40, 3, -(2 ** 35)]), c=0, z=0,
            channel="FITC", elapsed_ms=rng.choice([10, float("nan"), math.inf]),
            exposure_ms=10.0, x_um=rng.choice([float("nan"), None, 1.0]), y_um=None,
            z_um=None, pixel_size_um=1.0, snapshot=0) if rng.random() < 0.8 else FrameRecord(
            index=i, p=0, t=0, c=0, z=0, channel=["not", "a", "name"],  # type: ignore[arg-type]
            elapsed_ms=1.0, exposure_ms=1.0, x_um=None, y_um=None, z_um=None,
            pixel_size_um=1.0, snapshot=0))
    return out


def _same(a: FrameRecord, b: FrameRecord) -> bool:
    """Equal, field by field, in type and value (10 == 10.0 and 0.0 == -0.0 are not
    enough: the OME-XML prints them differently), NaN equal to NaN."""
    for field in dataclasses.fields(FrameRecord):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if not ((x == y and math.copysign(1, x) == math.copysign(1, y))
                    or (x != x and y != y)):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("seed", range(3))
def test_the_records_come_back_as_they_were_appended(seed):
    records = _records(9000, seed)  # two compressed chunks and rows after them
    table = FrameTable(records)
    assert len(table) == len(records)
    assert all(_same(a, b) for a, b in zip(table, records, strict=True))
    assert all(_same(table[k], records[k]) for k in range(len(records)))
    assert all(_same(a, b) for a, b in zip(table[-5:], records[-5:], strict=True))
    assert _same(table[-1], records[-1])
    with pytest.raises(IndexError):
        table[len(records)]
    with_nan = [r for r in records if any(v != v for v in dataclasses.astuple(r))]
    assert with_nan, "the odd records are there to be kept whole"
    clean = [r for r in records if r not in with_nan]
    assert FrameTable(clean) == clean and clean == FrameTable(clean)
    assert FrameTable(clean) != clean[:-1]


def test_a_reader_sees_only_whole_records_while_frames_are_appended():
    records = _records(20_000, 7)
    table = FrameTable()
    torn: list[int] = []
    failed: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                seen = len(table)
                if seen and not _same(table[seen - 1], records[seen - 1]):
                    torn.append(seen - 1)
                for k, record in enumerate(table):
                    if k % 997 == 0 and not _same(record, records[k]):
                        torn.append(k)
        except BaseException as exc:  # raised in the thread, it would not fail the test
            failed.append(exc)

    reader = threading.Thread(target=read)
    # threads take turns every microsecond instead of every 5 ms, so the reader also runs
    # between the steps of an append and of its own reading
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    reader.start()
    try:
        for record in records:
            table.append(record)
    finally:
        done.set()
        reader.join()
        sys.setswitchinterval(switching)
    assert failed == []
    assert torn == []
    assert all(_same(a, b) for a, b in zip(table, records, strict=True))
