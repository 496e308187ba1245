"""Simulated Yokogawa CSU-W1 spinning-disk confocal unit (ASCII, 115200 baud).

URL: ``sim://csuw1`` with optional ``max_rpm`` (answer of ``MS_MAX, ?``, default 4000)
plus the common ``name``, ``time_scale`` and ``fault`` parameters.

Grammar from the protocol notes: commands end in ``\\r`` (nothing else ends a
command), no echo, one reply line ending in ``\\r``: ``<value>:A`` on success (a set
answers ``:A``), ``<code>:N`` on failure (30005 bad command name, 30006 argument count,
30007 argument value, 30204 disk stopped). Moves are answered when finished (disk change
3 s, bright-field bypass 2 s, dichroic 0.8 s, emission filter 0.3 s, real-world
times), and a command arriving while the unit is still moving (for example from a
second handle, or after :meth:`SimulatedInstrument.set_busy_for` simulated a keypad
operation) is answered with a bare ``N``. Query arguments accept spaces around commas
(``DC_SLCT, ?`` and ``DC_SLCT,?`` both work).

``MS_ADJUST,<exposure ms>`` is modelled with 3 scans of the field per disk revolution
(200 frames/s at 4000 rpm): the unit picks the fastest speed at which the exposure is a
whole number of scans; exposures shorter than one scan at top speed answer 30007.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

from nbo_recorder.sim._base import Reply, SimulatedInstrument

DISK_CHANGE_S = 3.0
BYPASS_CHANGE_S = 2.0
DICHROIC_CHANGE_S = 0.8
FILTER_CHANGE_S = 0.3
MIN_SPEED_RPM = 1500
SCANS_PER_REVOLUTION = 3

BAD_COMMAND = "30005"
BAD_ARGUMENT_COUNT = "30006"
BAD_ARGUMENT_VALUE = "30007"
DISK_STOPPED = "30204"
ALARM = "30014"


class SimCSUW1(SimulatedInstrument):
    """State and command grammar of one CSU-W1 unit with two filter wheels."""

    kind: ClassVar[str] = "csuw1"
    baudrate: ClassVar[int] = 115200
    command_terminators: ClassVar[bytes] = b"\r"
    reply_terminator: ClassVar[bytes] = b"\r"
    options: ClassVar[frozenset[str]] = frozenset({"max_rpm"})

    def __init__(self, name: str, options: Mapping[str, str]) -> None:
        super().__init__(name, options)
        self.max_speed_rpm = int(options.get("max_rpm", "4000"))
        if self.max_speed_rpm < MIN_SPEED_RPM:
            raise ValueError(f"sim://csuw1 max_rpm must be at least {MIN_SPEED_RPM}")
        self.disk = 1
        self.bypass = False
        self.speed_rpm = self.max_speed_rpm
        self.disk_running = True
        self.dichroic = 1
        self.filters = {1: 1, 2: 1}
        self.shutter_open = False

    def error_reply(self, command: str) -> Sequence[Reply]:
        """The unit reports an alarm for every command (``error`` fault)."""
        return [Reply(f"{ALARM}:N\r".encode())]

    def busy_reply(self, command: str, now: float) -> Sequence[Reply]:
        """A busy unit answers a bare ``N``; the host is expected to retry."""
        return [Reply(b"N\r")]

    def handle(self, command: str, now: float) -> Sequence[Reply]:
        """Parse ``NAME[,arg...]`` and answer ``<value>:A`` or ``<code>:N``."""
        name, *args = [token.strip() for token in command.split(",")]
        try:
            value, duration_s = self._execute(name, args)
        except _Rejected as rejected:
            return [Reply(f"{rejected.code}:N\r".encode())]
        return [Reply(f"{value}:A\r".encode(), self.scaled(duration_s))]

    def _execute(self, name: str, args: list[str]) -> tuple[str, float]:
        """Apply one command; return the reply value and the real-world duration."""
        query = args[-1:] == ["?"]
        if name == "DC_SLCT":
            _count(args, 1)
            if query:
                return ("-1" if self.bypass else str(self.disk)), 0.0
            disk = _number(args[0], 1, 2)
            moving = disk != self.disk or self.bypass
            self.disk, self.bypass = disk, False
            return "", DISK_CHANGE_S if moving else 0.0
        if name == "MS":
            _count(args, 1)
            if query:
                return str(self.speed_rpm), 0.0
            self.speed_rpm = _number(args[0], MIN_SPEED_RPM, self.max_speed_rpm)
            return "", 0.0
        if name == "MS_MAX":
            _count(args, 1)
            if not query:
                raise _Rejected(BAD_ARGUMENT_VALUE)
            return str(self.max_speed_rpm), 0.0
        if name in ("MS_RUN", "MS_STOP"):
            _count(args, 0)
            self.disk_running = name == "MS_RUN"
            return "", 0.0
        if name == "MS_ADJUST":
            _count(args, 1)
            self.speed_rpm = self._speed_for_exposure(args[0])
            return "", 0.0
        if name == "DMM_POS":
            _count(args, 2)
            _number(args[0], 1, 1)
            if query:
                return str(self.dichroic), 0.0
            position = _number(args[1], 1, 3)
            moving = position != self.dichroic
            self.dichroic = position
            return "", DICHROIC_CHANGE_S if moving else 0.0
        if name == "FW_POS":
            _count(args, 2)
            wheel = _number(args[0], 1, 2)
            if query:
                return str(self.filters[wheel]), 0.0
            position = _number(args[1], 1, 10)
            moving = position != self.filters[wheel]
            self.filters[wheel] = position
            return "", FILTER_CHANGE_S if moving else 0.0
        if name in ("BF_ON", "BF_OFF"):
            _count(args, 0)
            inserted = name == "BF_ON"
            moving = inserted != self.bypass
            self.bypass = inserted
            return "", BYPASS_CHANGE_S if moving else 0.0
        if name == "BF_POS":
            _count(args, 1)
            if not query:
                raise _Rejected(BAD_ARGUMENT_VALUE)
            return ("ON" if self.bypass else "OFF"), 0.0
        if name in ("SHO", "SHC"):
            _count(args, 0)
            self.shutter_open = name == "SHO"
            return "", 0.0
        if name == "SH":
            _count(args, 1)
            if not query:
                raise _Rejected(BAD_ARGUMENT_VALUE)
            return ("OPEN" if self.shutter_open else "CLOSE"), 0.0
        raise _Rejected(BAD_COMMAND)

    def _speed_for_exposure(self, text: str) -> int:
        try:
            exposure_ms = float(text)
        except ValueError:
            raise _Rejected(BAD_ARGUMENT_VALUE) from None
        if not self.disk_running:
            raise _Rejected(DISK_STOPPED)
        scan_ms_at_max = 60000 / (self.max_speed_rpm * SCANS_PER_REVOLUTION)
        scans = math.floor(exposure_ms / scan_ms_at_max) if exposure_ms > 0 else 0
        if scans < 1:
            raise _Rejected(BAD_ARGUMENT_VALUE)
        return round(scans * 60000 / (exposure_ms * SCANS_PER_REVOLUTION))


class _Rejected(Exception):
    """A command the unit refuses, with its error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _count(args: list[str], expected: int) -> None:
    if len(args) != expected:
        raise _Rejected(BAD_ARGUMENT_COUNT)


def _number(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _Rejected(BAD_ARGUMENT_VALUE) from None
    if not low <= value <= high:
        raise _Rejected(BAD_ARGUMENT_VALUE)
    return value
