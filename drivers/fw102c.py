"""Driver for the Thorlabs FW102C motorized filter wheel (ASCII over serial).

Commands are lower case and end in ``\\r``. The controller echoes each command
(``pos?\\r``), then sends the value line if there is one (``3\\r``), then the prompt
``>``. After ``pos=n`` the prompt only comes once the wheel has stopped, so moves get a
longer timeout (6 s by default). Anything between echo and prompt on a setting command,
or a line containing ``error``, is reported as an instrument error.

A reply that arrives after its command timed out would otherwise be read as the next
command's: after such a late reply the driver sends :data:`SYNC_COMMAND` and drops every
line before its echo, so replies and commands are paired again.
"""

from __future__ import annotations

import re

from nbo_recorder.drivers._serial import (
    Deadline,
    InstrumentReplyError,
    InstrumentReportedError,
    ReplyKind,
    SerialDriver,
    SerialLine,
    WrongInstrument,
    identifying,
)

BAUD_RATE = 115200
TERMINATOR = b"\r"
PROMPT = b">"
POSITION_COUNTS = (6, 12)
MAX_REPLY_LINES = 4
SYNC_COMMAND = "*idn?"
"""Resynchronisation query: its echo marks where replies to earlier commands end (the
driver asks for the identity only while connecting, when the line is in step)."""


class FW102CDriver(SerialDriver):
    """One FW102C filter wheel controller on a serial port (or a ``sim://fw102c`` URL)."""

    def __init__(self, port: str, *, timeout_s: float = 1.0, move_timeout_s: float = 6.0) -> None:
        self._line = SerialLine(
            port,
            device=f"FW102C filter wheel on {port}",
            baudrate=BAUD_RATE,
            timeout_s=timeout_s,
        )
        self.move_timeout_s = move_timeout_s
        with self._closed_on_failure():
            self._connect()

    def _connect(self) -> None:
        with identifying(self.device, "not an FW102C: no echo and value for '*idn?'"):
            identity = self._query("*idn?")
        if not re.search(r"FW\d{3}C", identity):
            raise WrongInstrument(
                self.device,
                "identity does not name an FW102C/FW212C",
                command="*idn?",
                reply=identity.encode(),
            )
        self.identity = identity
        """``*idn?`` text, e.g. ``THORLABS FW102C/FW212C Filter Wheel version 1.07``."""
        self.firmware_version = identity.split()[-1]
        """Last token of the identity, the firmware version."""
        self.position_count = self._read_position_count()
        """Number of filter positions the controller is set up for (6 or 12)."""

    @property
    def device(self) -> str:
        """Human-readable name of this filter wheel, as used in error messages."""
        return self._line.device

    # ------------------------------------------------------------------ position

    def position(self) -> int:
        """Current filter position, 1-based."""
        return self._query_integer("pos?")

    def set_position(self, position: int) -> None:
        """Turn to a filter position (1 up to :attr:`position_count`); waits for the stop."""
        if isinstance(position, bool) or position not in range(1, self.position_count + 1):
            raise ValueError(
                f"{self.device}: filter position {position!r} is outside 1-{self.position_count}"
            )
        self._set(f"pos={position}", Deadline(self.move_timeout_s))

    def _read_position_count(self) -> int:
        count = self._query_integer("pcount?")
        if count not in POSITION_COUNTS:
            raise InstrumentReplyError(
                self.device,
                "position count is neither 6 nor 12",
                command="pcount?",
                reply=str(count).encode(),
            )
        return count

    # ------------------------------------------------------------------ settings

    def high_speed(self) -> bool:
        """True in high-speed mode (``speed=1``), False in slow mode."""
        return self._query_flag("speed?")

    def set_high_speed(self, fast: bool) -> None:
        """Choose high-speed (True) or slow (False) rotation."""
        self._set(f"speed={int(fast)}")

    def trigger_output(self) -> bool:
        """True when the trigger connector is an output (``trig=1``), False for input."""
        return self._query_flag("trig?")

    def set_trigger_output(self, output: bool) -> None:
        """Make the trigger connector an output (True) or an input (False)."""
        self._set(f"trig={int(output)}")

    def sensors_always_on(self) -> bool:
        """True when the position sensors stay on when idle (``sensors=1``)."""
        return self._query_flag("sensors?")

    def set_sensors_always_on(self, always_on: bool) -> None:
        """Keep the position sensors on when idle (True) or switch them off (False)."""
        self._set(f"sensors={int(always_on)}")

    def save_settings(self) -> None:
        """Store the current settings as the power-up defaults."""
        self._set("save")

    # ------------------------------------------------------------------ lifecycle


    # ------------------------------------------------------------------ protocol

    def _exchange(self, command: str, deadline: Deadline) -> list[str]:
        """Send a command, check its echo, return the lines before the prompt.

        After a late reply the line is first resynchronised with :data:`SYNC_COMMAND`;
        a late answer to it (recognised by its echo) is skipped.
        """
        with self._line.exchange():
            self._line.ensure_in_step(SYNC_COMMAND, TERMINATOR, self._classify_sync_reply,
                                       before=command)
            self._line.send(command, TERMINATOR)
            echo = self._line.read_text_line(command, TERMINATOR, deadline)
            while echo.lstrip(PROMPT.decode()) == SYNC_COMMAND != command:
                self._line.read_until(command, PROMPT, deadline)
                self._line.note_stale_reply()
                echo = self._line.read_text_line(command, TERMINATOR, deadline)
            if echo != command:
                raise InstrumentReplyError(
                    self.device,
                    "expected the command's echo",
                    command=command,
                    reply=echo.encode(),
                )
            before_prompt = self._line.read_until(command, PROMPT, deadline)
            *complete, rest = before_prompt.split(TERMINATOR)
            if rest or len(complete) > MAX_REPLY_LINES:
                raise InstrumentReplyError(
                    self.device,
                    "unexpected bytes before the prompt",
                    command=command,
                    reply=before_prompt + PROMPT,
                )
            lines = [self._line.decode(command, raw) for raw in complete]
        for line in lines:
            if "error" in line.lower():
                raise InstrumentReportedError(
                    self.device,
                    "controller reports an error",
                    command=command,
                    reply=line.encode(),
                )
        return lines

    def _classify_sync_reply(self, deadline: Deadline) -> ReplyKind:
        """Read one line while resynchronising: the sentinel's echo ends the stale part."""
        raw = self._line.read_until(SYNC_COMMAND, TERMINATOR, deadline)
        if raw.decode("ascii", "replace").lstrip(PROMPT.decode()) != SYNC_COMMAND:
            return "stale"
        self._line.read_until(SYNC_COMMAND, PROMPT, deadline)
        return "sentinel"

    def _set(self, command: str, deadline: Deadline | None = None) -> None:
        lines = self._exchange(command, deadline or Deadline(self._line.timeout_s))
        if lines:
            raise InstrumentReplyError(
                self.device,
                "expected only the prompt",
                command=command,
                reply="\r".join(lines).encode(),
            )

    def _query(self, command: str) -> str:
        lines = self._exchange(command, Deadline(self._line.timeout_s))
        if len(lines) != 1:
            raise InstrumentReplyError(
                self.device,
                "expected one value line",
                command=command,
                reply="\r".join(lines).encode(),
            )
        return lines[0]

    def _query_integer(self, command: str) -> int:
        text = self._query(command)
        if not text.strip().isdigit():
            raise InstrumentReplyError(
                self.device, "expected a whole number", command=command, reply=text.encode()
            )
        return int(text)

    def _query_flag(self, command: str) -> bool:
        value = self._query_integer(command)
        if value not in (0, 1):
            raise InstrumentReplyError(
                self.device, "expected 0 or 1", command=command, reply=str(value).encode()
            )
        return value == 1
