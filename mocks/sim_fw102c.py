"""Simulated Thorlabs FW102C motorized filter wheel (ASCII, 115200 baud).

URL: ``sim://fw102c?pcount=6`` (``6`` or ``12`` positions) plus the common ``name``,
``time_scale`` and ``fault`` parameters.

Grammar from the protocol notes: commands are lower case and end in ``\\r``; every
command is echoed (``pos?\\r``), followed by the value line if any (``3\\r``) and then
the prompt ``>`` (no terminator). After ``pos=n`` the prompt comes when the wheel has
stopped: it turns the short way round, 0.5 s per position at high speed and 1 s at low
speed (real-world times). The prompt also appears at power-up, i.e. on the first handle
opened on a new instance and on every handle after :meth:`SimFW102C.power_cycle`.
Errors are a line ``Command error CMD_NOT_DEFINED`` (unknown command) or
``Command error CMD_ARG_INVALID`` (bad value) between echo and prompt.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import ClassVar

from nbo_recorder.sim._base import Link, Reply, SimulatedInstrument

IDENTITY = "THORLABS FW102C/FW212C Filter Wheel version 1.07"
STEP_FAST_S = 0.5
STEP_SLOW_S = 1.0
NOT_DEFINED = "Command error CMD_NOT_DEFINED"
ARG_INVALID = "Command error CMD_ARG_INVALID"

_CHOICES: dict[str, tuple[int, ...]] = {
    "speed": (0, 1),
    "trig": (0, 1),
    "sensors": (0, 1),
    "pcount": (6, 12),
}


class SimFW102C(SimulatedInstrument):
    """State and command grammar of one FW102C filter wheel controller."""

    kind: ClassVar[str] = "fw102c"
    baudrate: ClassVar[int] = 115200
    command_terminators: ClassVar[bytes] = b"\r"
    reply_terminator: ClassVar[bytes] = b"\r"
    options: ClassVar[frozenset[str]] = frozenset({"pcount"})

    def __init__(self, name: str, options: Mapping[str, str]) -> None:
        super().__init__(name, options)
        pcount = int(options.get("pcount", "6"))
        if pcount not in _CHOICES["pcount"]:
            raise ValueError("sim://fw102c pcount must be 6 or 12")
        self.saved: dict[str, int] = {"pcount": pcount, "speed": 1, "trig": 0, "sensors": 0}
        """Settings stored with ``save`` (restored by :meth:`power_cycle`)."""
        self.settings_now = dict(self.saved)
        """Current ``pcount``, ``speed``, ``trig`` and ``sensors`` values."""
        self.position = 1
        self._powered_up = True

    def on_attach(self, link: Link) -> bytes:
        """The first handle after power-up sees the power-up prompt."""
        if self._powered_up:
            self._powered_up = False
            return b">"
        return b""

    def power_cycle(self) -> None:
        """Switch the controller off and on: saved settings, position 1, prompt."""
        with self.lock:
            self.settings_now = dict(self.saved)
            self.position = 1
            self.busy_until = time.monotonic()
        self.broadcast(b">")

    def move_from_keypad(self, position: int) -> None:
        """Turn the wheel with the front-panel buttons (nothing is sent to the host)."""
        with self.lock:
            self.set_busy_for(self._move_seconds(position))
            self.position = position

    def error_reply(self, command: str) -> Sequence[Reply]:
        """Echo, then the undefined-command error line, then the prompt."""
        return [Reply(f"{command}\r{NOT_DEFINED}\r>".encode())]

    def handle(self, command: str, now: float) -> Sequence[Reply]:
        """Echo the command, then its value or error line, then the prompt."""
        echo = Reply(f"{command}\r".encode())
        if command == "*idn?":
            return [echo, Reply(f"{IDENTITY}\r>".encode())]
        if command == "save":
            self.saved = dict(self.settings_now)
            return [echo, Reply(b">")]
        key, is_set, argument = command.partition("=")
        if not is_set:
            if key.endswith("?") and key[:-1] in ("pos", *_CHOICES):
                return [echo, Reply(f"{self._value(key[:-1])}\r>".encode())]
            return self.error_reply(command)
        if key != "pos" and key not in _CHOICES:
            return self.error_reply(command)
        try:
            value = int(argument)
        except ValueError:
            value = -1
        if key == "pos":
            if not 1 <= value <= self.settings_now["pcount"]:
                return [echo, Reply(f"{ARG_INVALID}\r>".encode())]
            duration = self.scaled(self._move_seconds(value))
            self.position = value
            return [echo, Reply(b">", duration)]
        if value not in _CHOICES[key]:
            return [echo, Reply(f"{ARG_INVALID}\r>".encode())]
        self.settings_now[key] = value
        if key == "pcount":
            self.position = min(self.position, value)
        return [echo, Reply(b">")]

    def _value(self, key: str) -> int:
        return self.position if key == "pos" else self.settings_now[key]

    def _move_seconds(self, target: int) -> float:
        count = self.settings_now["pcount"]
        distance = abs(target - self.position) % count
        steps = min(distance, count - distance)
        return steps * (STEP_FAST_S if self.settings_now["speed"] == 1 else STEP_SLOW_S)
