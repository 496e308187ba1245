"""Driver for Coherent OBIS LX/LS lasers (SCPI-like ASCII over serial).

The laser speaks watts; this driver's API speaks milliwatts (``*_mw``) and converts at
the wire. At connect it switches the handshake on (``SYST1:COMM:HAND On``: every
command is then acknowledged with ``OK``, which lets the driver tell a finished command
from a lost one), switches the prompt off, clears the error queue and checks that
``*IDN?`` names Coherent. Static facts (model, serial number, wavelength, power limits)
are read once at connect; everything else is read from the laser on each call.

The laser does not echo commands, so a reply arriving after its command timed out could
be read as the next command's. After such a late reply the driver sends
:data:`SYNC_COMMAND` (``*IDN?``) and drops every line before its answer.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

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
COMMAND_TERMINATOR = b"\r"
REPLY_TERMINATOR = b"\r\n"

OPERATING_MODES: dict[str, str] = {
    "CWP": "SOUR:AM:INT CWP",
    "CWC": "SOUR:AM:INT CWC",
    "DIGITAL": "SOUR:AM:EXT DIG",
    "ANALOG": "SOUR:AM:EXT ANAL",
    "MIXED": "SOUR:AM:EXT MIX",
}
"""Operating mode as reported by ``SOUR:AM:SOUR?`` -> command that selects it."""

STATUS_FAULT = 0x01
STATUS_EMISSION = 0x02
STATUS_CDRH_DELAY = 0x10
"""``SYST:STAT?`` bits: laser fault, emission on, CDRH start-up delay running."""

EMISSION_STATES = ("Off", "CDRH delay", "Emitting", "Fault")
"""What :meth:`ObisLaserDriver.emission_state` reports; only ``Emitting`` gives light."""

SYNC_COMMAND = "*IDN?"
"""Resynchronisation query. The driver asks for the identity only while connecting, so
after a late reply a line starting :data:`SYNC_REPLY_START` can only answer this query."""
SYNC_REPLY_START = "Coherent"

_NUMBER = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*")
_HEX_WORD = re.compile(r"[0-9A-Fa-f]{8}")


class ObisLaserDriver(SerialDriver):
    """One OBIS laser head on a serial port (or a ``sim://obis`` URL)."""

    def __init__(self, port: str, *, timeout_s: float = 1.0) -> None:
        self._line = SerialLine(
            port, device=f"OBIS laser on {port}", baudrate=BAUD_RATE, timeout_s=timeout_s
        )
        with self._closed_on_failure():
            self._connect()

    def _connect(self) -> None:
        with identifying(self._line.device, "not an OBIS laser: no 'OK' to the handshake"):
            self._command("SYST1:COMM:HAND On")
        self._command("SYST1:COMM:PROM Off")
        self._command("SYST1:ERR:CLE")
        self.identity = self._query("*IDN?")
        """``*IDN?`` text, e.g. ``Coherent, Inc - OBIS 488nm LX 100mW - ...``."""
        if not self.identity.startswith("Coherent"):
            raise WrongInstrument(
                self._line.device,
                "identity does not start with 'Coherent'",
                command="*IDN?",
                reply=self.identity.encode(),
            )
        self.model = self._query("SYST:INF:MOD?")
        self.serial_number = self._query("SYST:INF:SNUM?")
        self.firmware_version = self._query("SYST:INF:FVER?")
        self.wavelength_nm = self._query_number("SYST:INF:WAV?")
        self.rated_power_mw = self._query_mw("SYST:INF:POW?")
        self.max_power_mw = self._query_mw("SOUR:POW:LIM:HIGH?")
        self.min_power_mw = self._query_mw("SOUR:POW:LIM:LOW?")
        self._line.device = (
            f"OBIS {self.wavelength_nm:g} nm laser ({self.model}) on {self._line.url}"
        )

    @property
    def device(self) -> str:
        """Human-readable name of this laser, as used in error messages."""
        return self._line.device

    # ------------------------------------------------------------------ power

    def set_power_mw(self, power_mw: float) -> None:
        """Set the output power setpoint in mW (sent to the laser in W)."""
        if not (math.isfinite(power_mw) and self.min_power_mw <= power_mw <= self.max_power_mw):
            raise ValueError(
                f"{self.device}: power setpoint {power_mw} mW is outside the laser's "
                f"limits {self.min_power_mw:g}-{self.max_power_mw:g} mW"
            )
        self._command(f"SOUR:POW:LEV:IMM:AMPL {power_mw / 1000:.6f}")

    def power_setpoint_mw(self) -> float:
        """Power setpoint in mW, as stored in the laser."""
        return self._query_mw("SOUR:POW:LEV:IMM:AMPL?")

    def measured_power_mw(self) -> float:
        """Output power in mW measured by the laser's internal photodiode."""
        return self._query_mw("SOUR:POW:LEV?")

    # ------------------------------------------------------------------ emission & mode

    def set_emission(self, on: bool) -> None:
        """Switch laser emission on or off (with CDRH on, light follows after 5 s)."""
        self._command(f"SOUR:AM:STAT {'ON' if on else 'OFF'}")

    def emission(self) -> bool:
        """True when emission is switched on."""
        state = self._query("SOUR:AM:STAT?")
        if state.upper() not in ("ON", "OFF"):
            raise InstrumentReplyError(
                self.device, "expected ON or OFF", command="SOUR:AM:STAT?", reply=state.encode()
            )
        return state.upper() == "ON"

    def emission_state(self) -> str:
        """What the laser reports it is doing, from ``SYST:STAT?`` (see :data:`EMISSION_STATES`).

        ``CDRH delay``: emission is switched on but the laser waits out its start-up delay and
        emits nothing yet; ``Emitting`` only once that is over.
        """
        status = self.status_word()
        if status & STATUS_FAULT:
            return "Fault"
        if status & STATUS_CDRH_DELAY:
            return "CDRH delay"
        return "Emitting" if status & STATUS_EMISSION else "Off"

    def operating_mode(self) -> str:
        """Operating mode: ``CWP``, ``CWC``, ``DIGITAL``, ``ANALOG`` or ``MIXED``."""
        mode = self._query("SOUR:AM:SOUR?").upper()
        if mode not in OPERATING_MODES:
            raise InstrumentReplyError(
                self.device, "unknown operating mode", command="SOUR:AM:SOUR?", reply=mode.encode()
            )
        return mode

    def set_operating_mode(self, mode: str) -> None:
        """Select the operating mode by the name ``SOUR:AM:SOUR?`` reports."""
        if mode not in OPERATING_MODES:
            raise ValueError(
                f"{self.device}: operating mode must be one of {list(OPERATING_MODES)}"
            )
        self._command(OPERATING_MODES[mode])

    # ------------------------------------------------------------------ diagnostics

    def status_word(self) -> int:
        """``SYST:STAT?`` status bits."""
        return self._query_hex("SYST:STAT?")

    def fault_word(self) -> int:
        """``SYST:FAUL?`` fault bits (0: no fault)."""
        return self._query_hex("SYST:FAUL?")

    def diode_hours(self) -> float:
        """Operating hours of the laser diode."""
        return self._query_number("SYST:DIOD:HOUR?")

    def base_temperature_c(self) -> float:
        """Temperature of the laser base plate in °C."""
        return self._query_number("SOUR:TEMP:BAS?")

    def diode_temperature_c(self) -> float:
        """Temperature of the laser diode in °C."""
        return self._query_number("SOUR:TEMP:DIOD?")

    def error_count(self) -> int:
        """Number of entries in the laser's error queue."""
        return round(self._query_number("SYST:ERR:COUN?"))

    def next_error(self) -> str:
        """Pop the oldest entry of the error queue (text as the laser sends it)."""
        return self._query("SYST:ERR:NEX?")

    # ------------------------------------------------------------------ lifecycle


    # ------------------------------------------------------------------ protocol

    def _read_line(self, command: str, deadline: Deadline) -> str:
        """Read one reply line, skipping late answers to :data:`SYNC_COMMAND` (and their OK)."""
        line = self._line.read_text_line(command, REPLY_TERMINATOR, deadline)
        while command != SYNC_COMMAND and line.startswith(SYNC_REPLY_START):
            self._line.note_stale_reply()
            line = self._line.read_text_line(command, REPLY_TERMINATOR, deadline)
            if line == "OK":
                line = self._line.read_text_line(command, REPLY_TERMINATOR, deadline)
        if line.startswith("ERR"):
            raise InstrumentReportedError(
                self.device, "laser reports an error", command=command, reply=line.encode()
            )
        return line

    def _resynchronise_if_needed(self, command: str) -> None:
        """After a late reply, drop every line before the answer to :data:`SYNC_COMMAND`."""
        self._line.ensure_in_step(SYNC_COMMAND, COMMAND_TERMINATOR, self._classify_sync_reply,
                                  before=command)

    def _classify_sync_reply(self, deadline: Deadline) -> ReplyKind:
        """Read one line while resynchronising; the identity line and its OK end it."""
        raw = self._line.read_until(SYNC_COMMAND, REPLY_TERMINATOR, deadline)
        if not raw.decode("ascii", "replace").startswith(SYNC_REPLY_START):
            return "stale"
        acknowledgement = self._line.read_text_line(SYNC_COMMAND, REPLY_TERMINATOR, deadline)
        if acknowledgement != "OK":
            raise InstrumentReplyError(
                self.device,
                "expected 'OK' after the identity",
                command=SYNC_COMMAND,
                reply=acknowledgement.encode(),
            )
        return "sentinel"

    def _command(self, command: str) -> None:
        """Send a setting command and wait for its ``OK``."""
        with self._line.exchange():
            self._resynchronise_if_needed(command)
            deadline = Deadline(self._line.timeout_s)
            self._line.send(command, COMMAND_TERMINATOR)
            reply = self._read_line(command, deadline)
            if reply != "OK":
                raise InstrumentReplyError(
                    self.device, "expected 'OK'", command=command, reply=reply.encode()
                )

    def _query(self, command: str) -> str:
        """Send a query; return its value line after checking the ``OK`` that follows."""
        with self._line.exchange():
            self._resynchronise_if_needed(command)
            deadline = Deadline(self._line.timeout_s)
            self._line.send(command, COMMAND_TERMINATOR)
            value = self._read_line(command, deadline)
            if value == "OK":
                raise InstrumentReplyError(
                    self.device, "expected a value before 'OK'", command=command, reply=b"OK"
                )
            acknowledgement = self._read_line(command, deadline)
            if acknowledgement != "OK":
                raise InstrumentReplyError(
                    self.device,
                    "expected 'OK' after the value",
                    command=command,
                    reply=f"{value}\r\n{acknowledgement}".encode(),
                )
            return value

    def _query_decimal(self, command: str) -> Decimal:
        """Query a number; a trailing unit letter (``24.5C``) is accepted and dropped."""
        text = self._query(command)
        match = _NUMBER.fullmatch(text)
        if match is None:
            raise InstrumentReplyError(
                self.device, "expected a number", command=command, reply=text.encode()
            )
        return Decimal(match[1])

    def _query_number(self, command: str) -> float:
        return float(self._query_decimal(command))

    def _query_mw(self, command: str) -> float:
        """Query a power in W and return it in mW (scaled in decimal: 0.0333 W -> 33.3)."""
        return float(self._query_decimal(command) * 1000)

    def _query_hex(self, command: str) -> int:
        text = self._query(command)
        if not _HEX_WORD.fullmatch(text):
            raise InstrumentReplyError(
                self.device, "expected 8 hex digits", command=command, reply=text.encode()
            )
        return int(text, 16)
