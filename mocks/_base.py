"""Machinery shared by the simulated serial instruments.

A simulated instrument is a state machine that receives command bytes from one or more
open pyserial handles ("links") and schedules reply bytes on the link that sent the
command. Replies become readable at a simulated time: the instrument works through one
command at a time, so a command that arrives while it is still busy (a filter wheel
turning, a disk changing) is answered only after the running operation has finished,
exactly as a single-threaded instrument firmware would. Real-world durations are
multiplied by ``time_scale`` so tests run fast while keeping the instrument's timing
shape. A command changes the simulated state when the instrument takes it up, so a test
reading the instance directly sees a move's target at once, while every handle learns of
it only after the move has been answered.

Faults can be switched on from the URL (``fault=...``) or at run time with
:meth:`SimulatedInstrument.set_fault`:

``timeout``
    the instrument swallows every command and never answers;
``garbage``
    commands are carried out, but every answer arrives as non-ASCII bytes followed by
    the reply terminator (noise on the return line);
``error``
    every command is refused (state unchanged) with the instrument's own error reply;
``disconnect_after:N``
    the instrument answers N more commands, then the cable is "pulled": every later
    read or write on any handle raises :class:`serial.SerialException`;
``slow:SECONDS``
    every answer is delayed by SECONDS (wall-clock seconds, not scaled).
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from serial import SerialException

DEFAULT_TIME_SCALE = 0.1
"""Default factor applied to real-world durations (0.1: a 0.5 s wheel step takes 50 ms)."""

COMMON_OPTIONS = frozenset({"name", "time_scale", "fault"})
"""URL query parameters understood by every simulated instrument."""

RUNTIME_OPTIONS = frozenset({"fault"})
"""URL query parameters that may differ between handles on the same instrument."""

GARBAGE = b"\x8f\xfe\x00\xb3\xe1"
"""Bytes a ``garbage`` fault sends instead of an answer (not ASCII, so never valid)."""

FAULT_KINDS = ("timeout", "garbage", "error", "disconnect_after", "slow")


@dataclass(frozen=True)
class Fault:
    """One injected fault: its kind and, for ``disconnect_after``/``slow``, a value."""

    kind: str
    value: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Parse ``timeout``, ``garbage``, ``error``, ``disconnect_after:N``, ``slow:S``."""
        kind, _, argument = spec.strip().partition(":")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {spec!r}; known faults: {FAULT_KINDS}")
        if kind in ("disconnect_after", "slow"):
            try:
                value = float(argument)
            except ValueError:
                raise ValueError(f"fault {kind!r} needs a number, e.g. {kind}:2") from None
            if value < 0 or (kind == "disconnect_after" and not value.is_integer()):
                raise ValueError(f"invalid value in fault {spec!r}")
            return cls(kind, value)
        if argument:
            raise ValueError(f"fault {kind!r} takes no value (got {spec!r})")
        return cls(kind)


@dataclass(frozen=True)
class Reply:
    """Bytes the instrument sends, ``after_s`` simulated seconds into handling a command."""

    data: bytes
    after_s: float = 0.0


class Link:
    """The far end of one open pyserial handle: its baud rate and pending bytes."""

    def __init__(self, baudrate: int) -> None:
        self.baudrate = baudrate
        self.pending_command = bytearray()
        self.outbox: list[tuple[float, int, bytes]] = []
        """Scheduled reply chunks ``(ready_at, sequence, data)``, sorted."""


class SimulatedInstrument(ABC):
    """Base class of the simulated instruments; subclasses implement :meth:`handle`."""

    kind: ClassVar[str]
    """URL host that selects this instrument, e.g. ``obis`` in ``sim://obis``."""
    baudrate: ClassVar[int]
    """Baud rate of the real instrument; a handle opened at another rate gets noise."""
    command_terminators: ClassVar[bytes]
    """Each of these bytes ends a command sent by the host."""
    reply_terminator: ClassVar[bytes]
    """Terminator the instrument puts after a reply line (used for garbage replies)."""
    options: ClassVar[frozenset[str]] = frozenset()
    """Instrument-specific URL query parameters (in addition to COMMON_OPTIONS)."""
    reply_latency_s: ClassVar[float] = 0.005
    """Real-world time between the end of a command and the first reply byte."""

    def __init__(self, name: str, options: Mapping[str, str]) -> None:
        unknown = set(options) - COMMON_OPTIONS - self.options
        if unknown:
            raise ValueError(
                f"sim://{self.kind} does not understand {sorted(unknown)}; "
                f"known: {sorted(COMMON_OPTIONS | self.options)}"
            )
        self.name = name
        self.settings = {k: v for k, v in options.items() if k not in RUNTIME_OPTIONS}
        """Configuration the instance was created with (compared on later opens)."""
        self.time_scale = float(options.get("time_scale", DEFAULT_TIME_SCALE))
        if self.time_scale < 0:
            raise ValueError("time_scale must not be negative")
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._links: list[Link] = []
        self._sequence = itertools.count()
        self.busy_until = 0.0
        """Monotonic time at which the instrument finishes its current operation."""
        self.disconnected = False
        self.fault: Fault | None = None
        self._commands_before_disconnect: int | None = None
        self.commands: list[str] = []
        """Every command received, in order, decoded as ASCII (for test inspection)."""
        if "fault" in options:
            self.set_fault(options["fault"])

    # ------------------------------------------------------------------ subclass API

    @abstractmethod
    def handle(self, command: str, now: float) -> Sequence[Reply]:
        """Apply one command (terminator removed) and return the replies to send."""

    @abstractmethod
    def error_reply(self, command: str) -> Sequence[Reply]:
        """Replies of the instrument to a command it rejects (used by the ``error`` fault)."""

    def busy_reply(self, command: str, now: float) -> Sequence[Reply] | None:
        """Replies to a command arriving while busy; ``None`` queues it until idle."""
        return None

    def on_attach(self, link: Link) -> bytes:
        """Bytes a newly opened handle receives unprompted (e.g. a greeting)."""
        return b""

    def scaled(self, real_seconds: float) -> float:
        """Convert a real-world duration into simulated seconds."""
        return real_seconds * self.time_scale

    # ------------------------------------------------------------------ test hooks

    def set_fault(self, spec: str | None) -> None:
        """Switch a fault on (see module docstring) or off with ``None``."""
        with self.lock:
            self.fault = Fault.parse(spec) if spec else None
            self._commands_before_disconnect = (
                int(self.fault.value)
                if self.fault and self.fault.kind == "disconnect_after"
                else None
            )

    def reconnect(self) -> None:
        """Plug the cable back in after a ``disconnect_after`` fault fired."""
        with self.lock:
            self.disconnected = False
            self.set_fault(None)

    def set_busy_for(self, real_seconds: float) -> None:
        """Make the instrument busy, as if a keypad operation had just started."""
        with self.lock:
            self.busy_until = max(self.busy_until, time.monotonic()) + self.scaled(real_seconds)

    def broadcast(self, data: bytes) -> None:
        """Send unprompted bytes to every open handle now."""
        with self._changed:
            now = time.monotonic()
            for link in self._links:
                self._schedule(link, now, data)
            self._changed.notify_all()

    @property
    def open_handles(self) -> int:
        """Number of pyserial handles currently open on this instrument."""
        with self.lock:
            return len(self._links)

    # ------------------------------------------------------------------ port side

    def attach(self, baudrate: int) -> Link:
        """Register a newly opened pyserial handle."""
        with self._changed:
            self._raise_if_disconnected()
            link = Link(baudrate)
            self._links.append(link)
            greeting = self.on_attach(link)
            if greeting:
                self._schedule(link, time.monotonic(), self._on_wire(link, greeting))
            return link

    def detach(self, link: Link) -> None:
        """Forget a closed pyserial handle."""
        with self._changed:
            if link in self._links:
                self._links.remove(link)
            self._changed.notify_all()

    def receive(self, link: Link, data: bytes) -> None:
        """Take bytes written by the host; complete commands are handled at once."""
        with self._changed:
            self._raise_if_disconnected()
            link.pending_command += data
            while True:
                ends = [
                    i
                    for i in (link.pending_command.find(t) for t in self.command_terminators)
                    if i >= 0
                ]
                if not ends:
                    break
                end = min(ends)
                raw = bytes(link.pending_command[:end])
                del link.pending_command[: end + 1]
                if raw:
                    self._dispatch(link, raw)
            self._changed.notify_all()

    def read(self, link: Link, size: int, timeout: float | None) -> bytes:
        """Read up to ``size`` ready bytes, waiting at most ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out = bytearray()
        with self._changed:
            while len(out) < size:
                self._raise_if_disconnected()
                now = time.monotonic()
                while link.outbox and link.outbox[0][0] <= now and len(out) < size:
                    ready_at, seq, chunk = link.outbox.pop(0)
                    wanted = size - len(out)
                    out += chunk[:wanted]
                    if len(chunk) > wanted:
                        link.outbox.insert(0, (ready_at, seq, chunk[wanted:]))
                if len(out) >= size or timeout == 0:
                    break
                waits = [link.outbox[0][0] - now] if link.outbox else []
                if deadline is not None:
                    if now >= deadline:
                        break
                    waits.append(deadline - now)
                self._changed.wait(min(waits) if waits else None)
        return bytes(out)

    def bytes_waiting(self, link: Link) -> int:
        """Number of reply bytes that have already arrived on this handle."""
        with self.lock:
            self._raise_if_disconnected()
            now = time.monotonic()
            return sum(len(chunk) for t, _, chunk in link.outbox if t <= now)

    def discard_arrived(self, link: Link) -> None:
        """Drop bytes already arrived (replies still 'on the way' arrive later)."""
        with self.lock:
            now = time.monotonic()
            link.outbox = [item for item in link.outbox if item[0] > now]

    # ------------------------------------------------------------------ internals

    def _raise_if_disconnected(self) -> None:
        if self.disconnected:
            raise SerialException(f"sim://{self.kind} {self.name!r}: device disconnected")

    def _dispatch(self, link: Link, raw: bytes) -> None:
        if link.baudrate != self.baudrate:
            return  # at the wrong baud rate the instrument only sees framing noise
        if self._commands_before_disconnect is not None:
            if self._commands_before_disconnect == 0:
                self.disconnected = True
                self._changed.notify_all()
                self._raise_if_disconnected()
            self._commands_before_disconnect -= 1
        command = raw.decode("ascii", errors="replace")
        self.commands.append(command)
        fault = self.fault
        if fault is not None and fault.kind == "timeout":
            return
        now = time.monotonic()
        replies = self.busy_reply(command, now) if now < self.busy_until else None
        if replies is not None:
            start = now
        elif fault is not None and fault.kind == "error":
            start, replies = now, self.error_reply(command)
        else:
            start = max(now, self.busy_until)
            replies = self.handle(command, start)
        if fault is not None and fault.kind == "garbage":
            replies = [Reply(GARBAGE + self.reply_terminator)]
        start += self.scaled(self.reply_latency_s)
        if fault is not None and fault.kind == "slow":
            start += fault.value
        finish = start
        for reply in replies:
            ready_at = start + reply.after_s
            self._schedule(link, ready_at, self._on_wire(link, reply.data))
            finish = max(finish, ready_at)
        self.busy_until = max(self.busy_until, finish)

    def _on_wire(self, link: Link, data: bytes) -> bytes:
        """What the host receives: the bytes, or noise if its baud rate is wrong."""
        if link.baudrate == self.baudrate:
            return data
        return bytes((b ^ 0x5A) | 0x80 for b in data)

    def _schedule(self, link: Link, ready_at: float, data: bytes) -> None:
        if data:
            bisect.insort(link.outbox, (ready_at, next(self._sequence), data))
