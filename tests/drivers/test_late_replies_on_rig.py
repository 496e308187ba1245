"""End to end on the simulated spinning-disk rig: a slow CSU-W1 never makes a wrong record.

Before the fix, the disk-number answer (``1``) that arrived after its query timed out was
read as the disk speed: the file said 1 rpm. Here the CSU-W1 answers late for a while in
the middle of a run; every frame must record the true speed (from the simulator's own
state, read by a ``frameReady`` handler connected before the recorder's) or
``unknown (...)`` naming the late reply, and the frames after the fault the true speed.
"""

from __future__ import annotations

import threading
from pathlib import Path

import useq

from nbo_recorder import sim
from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.cli.acquisition import bundled_profile, bundled_rig_config
from nbo_recorder.rig import load_core
from nbo_recorder.sim import SimCSUW1
from tests.helpers import load, planes, snapped

LATE_S = 1.3
"""Delay of every CSU-W1 answer while the fault is on (the driver waits 1 s)."""
FAULT_S = 1.5
"""How long the fault stays on (wall clock)."""
FAULTY_FRAME = 2
"""The fault starts when this frame (0-based) has been snapped."""
PINHOLES = {1: "pinhole-50um", 2: "pinhole-25um"}


def test_slow_csuw1_never_records_another_commands_answer(tmp_path: Path) -> None:
    core = load_core(bundled_rig_config("sim_spinning_disk.cfg"))
    unit = sim.get_instrument("csuw1", SimCSUW1)
    truth: list[tuple[int, int]] = []
    timers: list[threading.Timer] = []

    def observe(*_: object) -> None:
        truth.append((unit.speed_rpm, unit.disk))
        if len(truth) == FAULTY_FRAME + 1:  # the recorder reads this frame's state next
            unit.set_fault(f"slow:{LATE_S}")
            timers.append(threading.Timer(FAULT_S, unit.set_fault, args=(None,)))
            timers[0].start()

    # ahead of the recorder, which reads the state in its own imageSnapped handler
    core.events.imageSnapped.connect(observe, priority=2000)
    out = tmp_path / "late.ome.tif"
    seq = useq.MDASequence(
        channels=["488-GFP", "561-mCherry"], time_plan=snapped(4)
    )
    recorder = Recorder(core, bundled_profile("sim_spinning_disk.yaml"))
    try:
        core.mda.run(seq, output=recorder.sink(out))
    finally:
        for timer in timers:
            timer.join()
        core.unloadAllDevices()

    _, ome = load(out)
    views = sorted(planes(ome), key=lambda v: v.ifd)
    assert len(views) == len(truth) == 8
    recorded = [(view.settings.get("spinning_disk.speed_setpoint_rpm"),
                 view.settings.get("pinholes")) for view in views]
    unknown = 0
    for (speed, pinholes), (true_rpm, true_disk) in zip(recorded, truth, strict=True):
        assert true_rpm == 4000 and true_disk == 1
        assert speed == f"{true_rpm} rpm" or str(speed).startswith("unknown ("), recorded
        assert pinholes in (PINHOLES[true_disk], "not observed"), recorded
        if str(speed).startswith("unknown ("):
            unknown += 1
            assert "late reply" in str(speed) or "out of step" in str(speed), speed
    assert unknown and recorded[:FAULTY_FRAME] == [("4000 rpm", "pinhole-50um")] * FAULTY_FRAME
    assert str(recorded[FAULTY_FRAME][0]).startswith("unknown ("), "the fault was hit"
    assert recorded[-1] == ("4000 rpm", "pinhole-50um"), "after the fault the truth again"
    assert "NBO_SYNC" in unit.commands, "the driver resynchronised"
