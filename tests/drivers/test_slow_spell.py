"""After a slow spell, the OBIS driver reads values again soon after the laser answers again.

The simulator's ``slow:S`` fault delays every answer by S seconds and, like a real
instrument, works through its input in order: each query sent during the spell adds S to
the backlog. A driver that sends a new resynchronisation query on every call while the
laser is slow therefore comes back in step long after the laser does (measured before the
fix: 1.9 s after a 0.4 s spell-delay, 6.75 s after a 1 s one; 15 s after 5 s of 4 s
delays at the default 1 s timeout). The driver now waits for the query it already sent.
The truth is the simulator's own setpoint, changed while the driver was out of step.
"""

from __future__ import annotations

import time

import pytest
from sim_helpers import Connect

from nbo_recorder import sim
from nbo_recorder.drivers import InstrumentError, ObisLaserDriver
from nbo_recorder.sim import SimObis

TIMEOUT_S = 0.25
SPELL_S = 2.0
"""How long the laser answers late while the driver polls it without pause."""


def _poll_through_spell(driver: ObisLaserDriver, laser: SimObis, late_s: float) -> int:
    laser.set_fault(f"slow:{late_s}")
    start, calls, errors = time.monotonic(), 0, 0
    while time.monotonic() - start < SPELL_S:
        calls += 1
        try:
            driver.power_setpoint_mw()
        except InstrumentError:
            errors += 1
    assert errors == calls, "every answer of the spell came too late to be taken"
    return calls


@pytest.mark.slow
@pytest.mark.parametrize(("late_s", "bound_s"), [(0.4, 1.0), (1.0, 3.0)])
def test_values_are_read_again_soon_after_the_laser_answers_again(
    connect: Connect, late_s: float, bound_s: float
) -> None:
    driver = connect(ObisLaserDriver, "sim://obis?name=spell", timeout_s=TIMEOUT_S)
    laser = sim.get_instrument("spell", SimObis)
    _poll_through_spell(driver, laser, late_s)
    laser.set_fault(None)
    laser.setpoint_w = 0.033  # behind the driver's back: a stale answer would show
    back = time.monotonic()
    while True:
        try:
            value = driver.power_setpoint_mw()
            break
        except InstrumentError as error:
            assert time.monotonic() - back < bound_s, f"not back in step: {error}"
    took = time.monotonic() - back
    assert value == pytest.approx(33.0), "the first value read again is the truth"
    assert took < bound_s, f"back in step {took:.2f} s after the laser answered again"
    for _ in range(5):  # and it stays in step: every later answer is the truth
        assert driver.power_setpoint_mw() == pytest.approx(laser.setpoint_w * 1000)


def test_a_swallowed_resynchronisation_query_is_sent_again(connect: Connect) -> None:
    """Waiting for the query already sent must not wait forever for one that was lost."""
    driver = connect(ObisLaserDriver, "sim://obis?name=lost", timeout_s=TIMEOUT_S)
    laser = sim.get_instrument("lost", SimObis)
    laser.set_fault("timeout")  # commands are swallowed: no answer ever comes
    for _ in range(3):
        with pytest.raises(InstrumentError):
            driver.power_setpoint_mw()
    laser.set_fault(None)
    laser.setpoint_w = 0.021
    deadline = time.monotonic() + 4 * TIMEOUT_S
    while True:
        try:
            assert driver.power_setpoint_mw() == pytest.approx(21.0)
            break
        except InstrumentError as error:
            assert time.monotonic() < deadline, f"never sent the query again: {error}"
