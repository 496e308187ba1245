"""Simulated Coherent OBIS LX/LS laser (SCPI-like ASCII, 115200 baud).

URL: ``sim://obis?wavelength=488&max_mw=100`` with optional ``min_mw`` (low power
limit, default 0), ``rated_mw`` (nominal power, default ``max_mw``), ``serial``,
``model``, ``firmware``, ``cdrh`` (``1``: emission starts 5 s after
``SOUR:AM:STAT ON``, the default; ``0``: at once), plus the common ``name``,
``time_scale`` and ``fault`` parameters.

Behaviour modelled on the protocol notes: commands end in ``\\r`` (``\\r\\n``
accepted), replies end in ``\\r\\n``; with ``SYST1:COMM:HAND On`` every command is
acknowledged with ``OK`` (a query sends its value line first); an error is a line
starting ``ERR`` (``ERR-100`` unknown command, ``ERR-102`` bad or out-of-range
parameter; the real codes are not documented) and is queued for ``SYST:ERR:NEX?``,
which answers SCPI-style entries such as ``-102,"Parameter out of range"``.
The simulated laser powers up with handshake off. Measured power is the setpoint times
:attr:`SimObis.output_ratio` while emitting, 0 W otherwise. ``SYST:STAT?`` reports
the live bits: emission on (``0x02``) once switched on, and CDRH delay (``0x10``) while the
start-up delay runs (or :attr:`SimObis.status_word` verbatim when a test sets it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import ClassVar

from nbo_recorder.sim._base import Reply, SimulatedInstrument

STATUS_EMISSION = 0x02
STATUS_CDRH_DELAY = 0x10
"""Live ``SYST:STAT?`` bits (as Coherent's status word defines them)."""

CDRH_DELAY_S = 5.0
"""Real-world delay between ``SOUR:AM:STAT ON`` and emission with CDRH mode on."""

UNKNOWN_COMMAND = "ERR-100"
BAD_PARAMETER = "ERR-102"
ERROR_TEXT = {UNKNOWN_COMMAND: "Unknown command", BAD_PARAMETER: "Parameter out of range"}
"""Entry ``SYST:ERR:NEX?`` reports for each error code (SCPI style: ``-100,"..."``)."""

_MODES_BY_COMMAND = {
    ("SOUR:AM:INT", "CWP"): "CWP",
    ("SOUR:AM:INT", "CWC"): "CWC",
    ("SOUR:AM:EXT", "DIG"): "DIGITAL",
    ("SOUR:AM:EXT", "ANAL"): "ANALOG",
    ("SOUR:AM:EXT", "MIX"): "MIXED",
}


class SimObis(SimulatedInstrument):
    """State and command grammar of one OBIS laser head."""

    kind: ClassVar[str] = "obis"
    baudrate: ClassVar[int] = 115200
    command_terminators: ClassVar[bytes] = b"\r\n"
    reply_terminator: ClassVar[bytes] = b"\r\n"
    options: ClassVar[frozenset[str]] = frozenset(
        {"wavelength", "max_mw", "min_mw", "rated_mw", "serial", "model", "firmware", "cdrh"}
    )

    def __init__(self, name: str, options: Mapping[str, str]) -> None:
        super().__init__(name, options)
        self.wavelength_nm = float(options.get("wavelength", "488"))
        self.max_power_w = float(options.get("max_mw", "100")) / 1000
        self.min_power_w = float(options.get("min_mw", "0")) / 1000
        self.rated_power_w = float(options.get("rated_mw", str(self.max_power_w * 1000))) / 1000
        if not 0 <= self.min_power_w <= self.max_power_w:
            raise ValueError("sim://obis needs 0 <= min_mw <= max_mw")
        rated_mw = f"{self.rated_power_w * 1000:g}"
        self.model = options.get("model", f"OBIS {self.wavelength_nm:g}nm LX {rated_mw}mW")
        self.serial_number = options.get("serial", f"SIM{self.wavelength_nm:g}{rated_mw}")
        self.firmware = options.get("firmware", "1.0.0-sim")
        self.cdrh = options.get("cdrh", "1") == "1"
        self.handshake = False
        self.prompt = False
        self.setpoint_w = self.min_power_w
        self.emission = False
        self.emission_requested_at = 0.0
        self.mode = "CWP"
        self.errors: list[str] = []
        self.status_word: int | None = None
        """Value ``SYST:STAT?`` reports instead of the live bits (test hook; None: live)."""
        self.fault_word = 0
        """Value of ``SYST:FAUL?`` (test hook)."""
        self.output_ratio = 1.0
        """Measured / set power while emitting (test hook: a weak diode reads < 1)."""
        self.diode_hours = 1234.5
        self.base_temperature_c = 25.0
        self.diode_temperature_c = 25.3

    # ------------------------------------------------------------------ model

    def is_emitting(self, now: float) -> bool:
        """True once emission has been switched on and the CDRH delay has passed."""
        delay = self.scaled(CDRH_DELAY_S) if self.cdrh else 0.0
        return self.emission and now >= self.emission_requested_at + delay

    def status(self, now: float) -> int:
        """``SYST:STAT?``: emission on and CDRH delay as they are now (or the test hook's)."""
        if self.status_word is not None:
            return self.status_word
        live = 0
        if self.emission:
            live |= STATUS_EMISSION
            if not self.is_emitting(now):
                live |= STATUS_CDRH_DELAY
        return live

    def measured_power_w(self, now: float) -> float:
        """Output power the internal photodiode reports, in W."""
        return self.setpoint_w * self.output_ratio if self.is_emitting(now) else 0.0

    # ------------------------------------------------------------------ grammar

    def error_reply(self, command: str) -> Sequence[Reply]:
        """The OBIS answers a rejected command with one ``ERR-nnn`` line."""
        return [Reply(f"{UNKNOWN_COMMAND}\r\n".encode())]

    def handle(self, command: str, now: float) -> Sequence[Reply]:
        """Parse one SCPI-like command and produce its reply lines."""
        head, _, argument = command.strip().partition(" ")
        head = re.sub(r"^(SYST|SOUR)1:", r"\1:", head.upper())
        argument = argument.strip()
        try:
            if head.endswith("?"):
                if argument:
                    raise _ScpiError(BAD_PARAMETER)
                return self._value(self._query(head, now))
            self._set(head, argument, now)
            return self._ok()
        except _ScpiError as error:
            self.errors.append(error.code)
            return [Reply(f"{error.code}\r\n".encode())]

    def _query(self, head: str, now: float) -> str:
        simple = {
            "*IDN?": f"Coherent, Inc - {self.model} - V{self.firmware} - Jan 01 2024",
            "SYST:INF:MOD?": self.model,
            "SYST:INF:SNUM?": self.serial_number,
            "SYST:INF:FVER?": self.firmware,
            "SYST:INF:WAV?": f"{self.wavelength_nm:g}",
            "SYST:INF:POW?": _watts(self.rated_power_w),
            "SOUR:POW:LIM:HIGH?": _watts(self.max_power_w),
            "SOUR:POW:LIM:LOW?": _watts(self.min_power_w),
            "SOUR:POW:LEV:IMM:AMPL?": _watts(self.setpoint_w),
            "SOUR:POW:LEV?": _watts(self.measured_power_w(now)),
            "SOUR:AM:STAT?": "ON" if self.emission else "OFF",
            "SOUR:AM:SOUR?": self.mode,
            "SYST:STAT?": f"{self.status(now):08X}",
            "SYST:FAUL?": f"{self.fault_word:08X}",
            "SYST:DIOD:HOUR?": f"{self.diode_hours:.2f}",
            "SOUR:TEMP:BAS?": f"{self.base_temperature_c:.2f}C",
            "SOUR:TEMP:DIOD?": f"{self.diode_temperature_c:.2f}",
            "SYST:ERR:COUN?": str(len(self.errors)),
            "SYST:COMM:HAND?": "ON" if self.handshake else "OFF",
            "SYST:COMM:PROM?": "ON" if self.prompt else "OFF",
        }
        if head == "SYST:ERR:NEX?":
            if not self.errors:
                return '0,"No error"'
            code = self.errors.pop(0)
            return f'{code.removeprefix("ERR")},"{ERROR_TEXT[code]}"'
        if head not in simple:
            raise _ScpiError(UNKNOWN_COMMAND)
        return simple[head]

    def _set(self, head: str, argument: str, now: float) -> None:
        word = argument.upper()
        if head in ("SYST:COMM:HAND", "SYST:COMM:PROM"):
            if word not in ("ON", "OFF"):
                raise _ScpiError(BAD_PARAMETER)
            if head == "SYST:COMM:HAND":
                self.handshake = word == "ON"
            else:
                self.prompt = word == "ON"
        elif head == "SYST:ERR:CLE" and not argument:
            self.errors.clear()
        elif head == "SOUR:POW:LEV:IMM:AMPL":
            try:
                watts = float(argument)
            except ValueError:
                raise _ScpiError(BAD_PARAMETER) from None
            if not self.min_power_w <= watts <= self.max_power_w:
                raise _ScpiError(BAD_PARAMETER)
            self.setpoint_w = watts
        elif head == "SOUR:AM:STAT":
            if word not in ("ON", "OFF"):
                raise _ScpiError(BAD_PARAMETER)
            if word == "ON" and not self.emission:
                self.emission_requested_at = now
            self.emission = word == "ON"
        elif head in ("SOUR:AM:INT", "SOUR:AM:EXT"):
            if (head, word) not in _MODES_BY_COMMAND:
                raise _ScpiError(BAD_PARAMETER)
            self.mode = _MODES_BY_COMMAND[(head, word)]
        else:
            raise _ScpiError(UNKNOWN_COMMAND)

    def _value(self, text: str) -> Sequence[Reply]:
        return [Reply(f"{text}\r\n".encode()), *self._ok()]

    def _ok(self) -> Sequence[Reply]:
        return [Reply(b"OK\r\n")] if self.handshake else []


class _ScpiError(Exception):
    """A command the simulated laser rejects, with its ``ERR-nnn`` code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _watts(value: float) -> str:
    return f"{value:.5f}"
