"""Driver for the Yokogawa CSU-W1 spinning-disk confocal unit (ASCII over serial).

Commands end in ``\\r``; each is answered by one ``\\r``-terminated line:
``<value>:A`` on success, ``<code>:N`` on failure. A unit that is still busy (a disk
change, a keypad operation) answers a bare ``N`` (``:N`` and ``30031:N``, initializing,
are treated the same way); the driver then waits and repeats the command, by default up
to 20 times at 1 s intervals as Micro-Manager's adapter does. Moves are only answered
when finished, so they get a longer timeout (8 s by default).

The unit does not echo commands, so a reply that arrives after its command timed out
could be read as the answer to the next one. After such a late reply the driver sends
:data:`SYNC_COMMAND` (an unknown command, answered ``30005:N``) and drops every line
before that answer; the unit answers in order, so the next reply is the next command's.

The unit does not report its pinhole diameter or pitch: those are static disk specs that
belong in the hardware profile, not here.
"""

from __future__ import annotations

import time

from nbo_recorder.drivers._serial import (
    Deadline,
    InstrumentBusy,
    InstrumentReplyError,
    InstrumentReportedError,
    ReplyKind,
    SerialDriver,
    SerialLine,
    identifying,
)

BAUD_RATE = 115200
TERMINATOR = b"\r"

DISKS = (1, 2)
MIN_DISK_SPEED_RPM = 1500
DICHROIC_POSITIONS = (1, 2, 3)
FILTER_WHEELS = (1, 2)
FILTER_POSITIONS = tuple(range(1, 11))

ERROR_MEANINGS: dict[str, str] = {
    "30005": "bad command name",
    "30006": "wrong number of arguments",
    "30007": "argument value out of range",
    "30141": "argument value out of range",
    "30012": "interlock",
    "30133": "interlock",
    **{str(code): "alarm" for code in range(30014, 30020)},
    "30031": "initializing",
    "30204": "disk stopped",
    "30301": "shutter error",
    "30302": "shutter error",
}
"""Meaning of the ``<code>:N`` error codes seen from the unit."""

_BUSY_CODES = ("", "30031")

SYNC_COMMAND = "NBO_SYNC"
"""Resynchronisation query: a command name the unit does not know, so it answers only
:data:`SYNC_REPLY` (bad command name), which no command of this driver draws."""
SYNC_REPLY = "30005:N"


class CSUW1Driver(SerialDriver):
    """One CSU-W1 unit on a serial port (or a ``sim://csuw1`` URL)."""

    def __init__(
        self,
        port: str,
        *,
        timeout_s: float = 1.0,
        move_timeout_s: float = 8.0,
        busy_retries: int = 20,
        busy_retry_interval_s: float = 1.0,
    ) -> None:
        self._line = SerialLine(
            port, device=f"CSU-W1 on {port}", baudrate=BAUD_RATE, timeout_s=timeout_s
        )
        self.move_timeout_s = move_timeout_s
        self.busy_retries = busy_retries
        self.busy_retry_interval_s = busy_retry_interval_s
        with self._closed_on_failure():
            self.max_disk_speed_rpm = self._connect()
            """Fastest disk speed the unit allows (``MS_MAX, ?``), in rpm."""

    def _connect(self) -> int:
        command = "MS_MAX, ?"
        with identifying(self.device, "not a CSU-W1: no '<value>:A' answer to the speed query"):
            reply = self._execute(command)
        return self._integer(command, reply)

    @property
    def device(self) -> str:
        """Human-readable name of this unit, as used in error messages."""
        return self._line.device

    # ------------------------------------------------------------------ disk

    def disk(self) -> int | None:
        """Pinhole disk in the light path (1 or 2), or None with the bright-field bypass in."""
        command = "DC_SLCT, ?"
        value = self._integer(command, self._execute(command))
        if value == -1:
            return None
        if value not in DISKS:
            raise InstrumentReplyError(
                self.device, "unknown disk number", command=command, reply=str(value).encode()
            )
        return value

    def select_disk(self, disk: int) -> None:
        """Move pinhole disk 1 or 2 into the light path (waits for the move)."""
        _check(self.device, "disk", disk, DISKS)
        self._execute(f"DC_SLCT,{disk}", move=True)

    def brightfield_bypass(self) -> bool:
        """True when the bright-field bypass is in (no confocal sectioning)."""
        command = "BF_POS, ?"
        reply = self._execute(command).upper()
        if "OFF" in reply:
            return False
        if "ON" in reply:
            return True
        raise InstrumentReplyError(
            self.device, "expected ON or OFF", command=command, reply=reply.encode()
        )

    def set_brightfield_bypass(self, inserted: bool) -> None:
        """Insert (True) or remove (False) the bright-field bypass (waits for the move)."""
        self._execute("BF_ON" if inserted else "BF_OFF", move=True)

    def disk_speed_rpm(self) -> int:
        """Disk speed setting in rpm."""
        command = "MS, ?"
        return self._integer(command, self._execute(command))

    def set_disk_speed_rpm(self, speed_rpm: int) -> None:
        """Set the disk speed (1500 rpm up to :attr:`max_disk_speed_rpm`)."""
        if not MIN_DISK_SPEED_RPM <= speed_rpm <= self.max_disk_speed_rpm:
            raise ValueError(
                f"{self.device}: disk speed {speed_rpm} rpm is outside "
                f"{MIN_DISK_SPEED_RPM}-{self.max_disk_speed_rpm} rpm"
            )
        self._execute(f"MS,{int(speed_rpm)}")

    def start_disk(self) -> None:
        """Start the disk motor."""
        self._execute("MS_RUN")

    def stop_disk(self) -> None:
        """Stop the disk motor."""
        self._execute("MS_STOP")

    def sync_disk_speed_to_exposure(self, exposure_ms: float) -> None:
        """Let the unit choose a disk speed that suits the exposure (whole ms)."""
        if not exposure_ms >= 1:
            raise ValueError(f"{self.device}: exposure {exposure_ms} ms must be at least 1 ms")
        self._execute(f"MS_ADJUST,{round(exposure_ms)}")

    # ------------------------------------------------------------------ dichroic & filters

    def dichroic(self) -> int:
        """Dichroic mirror position (1-3)."""
        command = "DMM_POS,1, ?"
        return self._integer(command, self._execute(command))

    def set_dichroic(self, position: int) -> None:
        """Move the dichroic mirror turret to position 1-3 (waits for the move)."""
        _check(self.device, "dichroic position", position, DICHROIC_POSITIONS)
        self._execute(f"DMM_POS,1,{position}", move=True)

    def filter_position(self, wheel: int) -> int:
        """Position (1-10) of emission filter wheel 1 or 2."""
        _check(self.device, "filter wheel", wheel, FILTER_WHEELS)
        command = f"FW_POS, {wheel}, ?"
        return self._integer(command, self._execute(command))

    def set_filter_position(self, wheel: int, position: int) -> None:
        """Move emission filter wheel 1 or 2 to position 1-10 (waits for the move)."""
        _check(self.device, "filter wheel", wheel, FILTER_WHEELS)
        _check(self.device, "filter position", position, FILTER_POSITIONS)
        self._execute(f"FW_POS,{wheel},{position}", move=True)

    # ------------------------------------------------------------------ shutter

    def shutter_open(self) -> bool:
        """True when the unit's internal shutter is open."""
        command = "SH, ?"
        reply = self._execute(command).upper()
        if "OPEN" in reply:
            return True
        if "CLOSE" in reply:
            return False
        raise InstrumentReplyError(
            self.device, "expected OPEN or CLOSE", command=command, reply=reply.encode()
        )

    def set_shutter_open(self, is_open: bool) -> None:
        """Open or close the unit's internal shutter."""
        self._execute("SHO" if is_open else "SHC")

    # ------------------------------------------------------------------ lifecycle


    # ------------------------------------------------------------------ protocol

    def _execute(self, command: str, *, move: bool = False) -> str:
        """Send a command, retrying while the unit is busy; return the value before ``:A``."""
        for attempt in range(self.busy_retries + 1):
            if attempt:
                time.sleep(self.busy_retry_interval_s)
            busy, value = self._exchange(command, move)
            if not busy:
                return value
        raise InstrumentBusy(
            self.device,
            f"still busy after {self.busy_retries} retries {self.busy_retry_interval_s:g} s apart"
            + self._line.out_of_step_note(),
            command=command,
            reply=value.encode(),
        )

    def _exchange(self, command: str, move: bool) -> tuple[bool, str]:
        """One command and its reply line: (busy, value or the raw busy reply).

        The unit does not echo, so after a late reply the line is resynchronised with
        :data:`SYNC_COMMAND` first; late answers to it are skipped.
        """
        with self._line.exchange():
            if not self._line.in_step:
                sync_deadline = Deadline(self._line.timeout_s)
                if not self._line.resynchronise(
                    SYNC_COMMAND,
                    TERMINATOR,
                    self._classify_sync_reply,
                    sync_deadline,
                    before=command,
                ):
                    return True, "N"
            deadline = Deadline(self.move_timeout_s if move else self._line.timeout_s)
            self._line.send(command, TERMINATOR)
            reply = self._line.read_text_line(command, TERMINATOR, deadline)
            while reply == SYNC_REPLY:
                self._line.note_stale_reply()
                reply = self._line.read_text_line(command, TERMINATOR, deadline)
        if reply == "N":
            return True, reply
        if reply == "A":
            return False, ""
        value, separator, status = reply.rpartition(":")
        if separator and status == "A":
            return False, value
        if separator and status == "N":
            if value in _BUSY_CODES:
                return True, reply
            meaning = ERROR_MEANINGS.get(value, "unknown error code")
            raise InstrumentReportedError(
                self.device,
                f"unit reports error {value} ({meaning})",
                command=command,
                reply=reply.encode(),
            )
        raise InstrumentReplyError(
            self.device,
            "reply is neither '<value>:A' nor '<code>:N'",
            command=command,
            reply=reply.encode(),
        )

    def _classify_sync_reply(self, deadline: Deadline) -> ReplyKind:
        """Read one reply line while resynchronising (see SerialLine.resynchronise)."""
        text = self._line.read_until(SYNC_COMMAND, TERMINATOR, deadline).decode("ascii", "replace")
        if text == SYNC_REPLY:
            return "sentinel"
        value, separator, status = text.rpartition(":")
        if text == "N" or (separator and status == "N" and value in _BUSY_CODES):
            return "busy"
        return "stale"

    def _integer(self, command: str, value: str) -> int:
        try:
            return int(value.strip())
        except ValueError:
            raise InstrumentReplyError(
                self.device, "expected an integer", command=command, reply=value.encode()
            ) from None


def _check(device: str, what: str, value: int, allowed: tuple[int, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{device}: {what} {value!r} is outside {allowed[0]}-{allowed[-1]}")
