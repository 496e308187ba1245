"""Simulated CoolLED pE-300 / pE-4000 LED light engine (ASCII, 57600 baud).

URL: ``sim://coolled?model=pE-300`` (``pE-300``: channels A-C; ``pE-4000``, the
default: channels A-D) with optional ``leds=405/470/550/635`` (installed LED per
channel, in nm; simulator defaults 400/460/550 for the pE-300 and 405/470/550/635 for
the pE-4000) plus the common ``name``, ``time_scale`` and ``fault`` parameters.

Grammar from the protocol notes: commands end in ``\\r`` or ``\\n``; replies end in
``\\r\\n``; every newly opened handle first receives the greeting line. ``CSS?`` and
every channel-setting command (``CSS<blocks>``, ``C<ch>I<n>``, ``C<ch>S``, ``C<ch>X``,
``CSN``, ``CSF``) answer the status line ``CSS`` + 6 characters per channel
``<ch><S|X><N|F><iii>``. An unselected channel is always off. ``LAMS`` answers one
``LAM:<ch>:<nm>`` line per channel, ``LOAD:<nm>`` (pE-4000 only) switches the channel
that offers that LED and answers its ``LAM`` line. Error replies are not documented;
this simulator answers ``ERROR`` to anything it rejects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from nbo_recorder.sim._base import Link, Reply, SimulatedInstrument

GREETING = b"CoolLED precisExcite, Hello, pleased to meet you\r\n"
ERROR_LINE = b"ERROR\r\n"

PE4000_LED_CHOICES_NM: dict[str, tuple[int, ...]] = {
    "A": (365, 385, 405, 435),
    "B": (460, 470, 490, 500),
    "C": (525, 550, 580, 595),
    "D": (635, 660, 740, 770),
}
"""LEDs a pE-4000 channel can switch between (protocol notes)."""

DEFAULT_LEDS_NM = {"pE-300": (400, 460, 550), "pE-4000": (405, 470, 550, 635)}

_BLOCK = re.compile(r"([A-H])([SX])([NF])(\d{3})")


@dataclass
class ChannelState:
    """One LED channel: selected (S/X), on (N/F), intensity 0-100 %, installed LED."""

    selected: bool = False
    on: bool = False
    intensity_pct: int = 0
    led_nm: int = 0


class SimCoolLED(SimulatedInstrument):
    """State and command grammar of one CoolLED light engine."""

    kind: ClassVar[str] = "coolled"
    baudrate: ClassVar[int] = 57600
    command_terminators: ClassVar[bytes] = b"\r\n"
    reply_terminator: ClassVar[bytes] = b"\r\n"
    options: ClassVar[frozenset[str]] = frozenset({"model", "leds"})

    def __init__(self, name: str, options: Mapping[str, str]) -> None:
        super().__init__(name, options)
        self.model = options.get("model", "pE-4000")
        if self.model not in DEFAULT_LEDS_NM:
            raise ValueError(f"sim://coolled model must be one of {sorted(DEFAULT_LEDS_NM)}")
        leds = DEFAULT_LEDS_NM[self.model]
        if "leds" in options:
            leds = tuple(int(nm) for nm in options["leds"].split("/"))
            if len(leds) != len(DEFAULT_LEDS_NM[self.model]):
                raise ValueError(f"sim://coolled {self.model} needs one LED per channel")
        self.channels = {
            letter: ChannelState(led_nm=nm) for letter, nm in zip("ABCD", leds, strict=False)
        }
        if self.model == "pE-4000":
            for letter, state in self.channels.items():
                if state.led_nm not in PE4000_LED_CHOICES_NM[letter]:
                    raise ValueError(f"a pE-4000 channel {letter} cannot hold {state.led_nm} nm")
        self.firmware = "1.0.0-sim"

    def status_line(self) -> str:
        """The ``CSS`` status string of all channels."""
        return "CSS" + "".join(
            f"{letter}{'S' if ch.selected else 'X'}{'N' if ch.on else 'F'}{ch.intensity_pct:03d}"
            for letter, ch in self.channels.items()
        )

    def on_attach(self, link: Link) -> bytes:
        """The light engine greets every new connection."""
        return GREETING

    def error_reply(self, command: str) -> Sequence[Reply]:
        """The simulator's (undocumented) error line."""
        return [Reply(ERROR_LINE)]

    def handle(self, command: str, now: float) -> Sequence[Reply]:
        """Parse one command and answer with a status, LED or text line."""
        command = command.strip()
        if command == "CSS?":
            return self._status()
        if command in ("CSN", "CSF"):
            for ch in self.channels.values():
                ch.on = ch.selected and command == "CSN"
            return self._status()
        if command.startswith("CSS"):
            return self._set_blocks(command[3:])
        if match := re.fullmatch(r"C([A-H])I(\d{1,3})", command):
            channel = self.channels.get(match[1])
            if channel is None or int(match[2]) > 100:
                return self.error_reply(command)
            channel.intensity_pct = int(match[2])
            return self._status()
        if match := re.fullmatch(r"C([A-H])([SX])", command):
            channel = self.channels.get(match[1])
            if channel is None:
                return self.error_reply(command)
            channel.selected = match[2] == "S"
            channel.on = channel.on and channel.selected
            return self._status()
        if command == "LAMS":
            return [
                Reply(f"LAM:{letter}:{ch.led_nm}\r\n".encode())
                for letter, ch in self.channels.items()
            ]
        if match := re.fullmatch(r"LOAD:(\d+)", command):
            return self._load(int(match[1]))
        if command == "XMODEL":
            return [Reply(f"XMODEL:{self.model}\r\n".encode())]
        if command == "XVER":
            return [Reply(f"XVER:{self.firmware}\r\n".encode())]
        return self.error_reply(command)

    def _status(self) -> Sequence[Reply]:
        return [Reply(f"{self.status_line()}\r\n".encode())]

    def _set_blocks(self, blocks: str) -> Sequence[Reply]:
        matches: list[re.Match[str]] = []
        for start in range(0, len(blocks), 6):
            m = _BLOCK.fullmatch(blocks[start : start + 6])
            if m is None or m[1] not in self.channels or int(m[4]) > 100:
                return self.error_reply(blocks)
            matches.append(m)
        if not matches:
            return self.error_reply(blocks)
        for m in matches:
            ch = self.channels[m[1]]
            ch.selected = m[2] == "S"
            ch.on = ch.selected and m[3] == "N"
            ch.intensity_pct = int(m[4])
        return self._status()

    def _load(self, nm: int) -> Sequence[Reply]:
        if self.model != "pE-4000":
            return self.error_reply(f"LOAD:{nm}")
        for letter, choices in PE4000_LED_CHOICES_NM.items():
            if nm in choices:
                self.channels[letter].led_nm = nm
                return [Reply(f"LAM:{letter}:{nm}\r\n".encode())]
        return self.error_reply(f"LOAD:{nm}")
