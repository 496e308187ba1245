"""Serial line I/O shared by the instrument drivers, and their error types.

Every driver opens its port with ``serial.serial_for_url`` so a real port
(``/dev/ttyUSB0``, ``COM3``) and a simulator URL (``sim://obis?...``, served by the
``mocks`` package) behave the same. All failures surface as one exception hierarchy
whose messages name the device, the command and the bytes that came back.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Literal, TypeVar

import serial
from serial.serialutil import SerialException

ReplyKind = Literal["sentinel", "busy", "stale"]
"""How a reply read while resynchronising is classified (see SerialLine.resynchronise)."""

MAX_REPLY_BYTES = 4096
"""A reply longer than this without its terminator is treated as garbage."""

MAX_RESEND_AFTER_S = 30.0
"""Longest wait before a resynchronisation query that got no reply at all is sent again."""


class InstrumentError(Exception):
    """Talking to a serial instrument failed.

    Attributes name the instrument (``device``), the command being executed
    (``command``, ``None`` while connecting), the bytes received (``reply``) and what
    the failure means for the exchanges that follow (``consequence``, e.g. a late reply
    that forces a resynchronisation).
    """

    def __init__(
        self,
        device: str,
        problem: str,
        *,
        command: str | None = None,
        reply: bytes | None = None,
        consequence: str | None = None,
    ) -> None:
        self.device = device
        self.problem = problem
        self.command = command
        self.reply = reply
        self.consequence = consequence
        parts = [f"{device}: {problem}"]
        if command is not None:
            parts.append(f"command {command!r}")
        if reply is not None:
            parts.append(f"received {reply!r}")
        if consequence is not None:
            parts.append(consequence)
        super().__init__("; ".join(parts))


class InstrumentTimeout(InstrumentError):
    """The instrument did not answer (completely) within the allowed time."""


class InstrumentReplyError(InstrumentError):
    """The instrument answered with an error, garbage or an unexpected reply."""


class InstrumentReportedError(InstrumentReplyError):
    """The instrument answered, in its own error grammar, that the command failed."""


class WrongInstrument(InstrumentReplyError):
    """The port answers, but not like the instrument the driver was written for."""


class InstrumentOutOfStep(InstrumentTimeout):
    """A reply to an earlier command may still arrive and resynchronising failed.

    Raised instead of reading (possibly) someone else's answer: the value is unknown.
    """


class InstrumentBusy(InstrumentError):
    """The instrument stayed busy through every retry."""


class InstrumentConnectionError(InstrumentError):
    """The port could not be opened, or the instrument disappeared from it."""


@contextmanager
def identifying(device: str, expectation: str) -> Iterator[None]:
    """Turn a malformed answer during an identity check into :class:`WrongInstrument`.

    Silence stays an :class:`InstrumentTimeout` (nothing answered: switched off, wrong
    baud rate, wrong port) and an error in the instrument's own grammar stays an
    :class:`InstrumentReportedError`; a reply in the wrong format, or cut off before the
    expected terminator, means something else is listening on the port.
    """
    try:
        yield
    except (WrongInstrument, InstrumentReportedError):
        raise
    except (InstrumentReplyError, InstrumentTimeout) as error:
        if isinstance(error, InstrumentTimeout) and not error.reply:
            raise
        raise WrongInstrument(
            device, f"{expectation} ({error.problem})", command=error.command, reply=error.reply
        ) from error


class Deadline:
    """A point in time by which an exchange with the instrument must be complete."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self._end - time.monotonic())


def open_port(url: str, *, baudrate: int, timeout_s: float, device: str) -> serial.Serial:
    """Open a real port or a ``sim://`` simulator URL, 8N1, no flow control."""
    if url.lower().startswith("sim://"):
        importlib.import_module("nbo_recorder.sim").register()
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout_s)
    except (SerialException, ValueError) as error:
        raise InstrumentConnectionError(device, f"cannot open port {url!r}: {error}") from error


class SerialLine:
    """One instrument's serial port with line-oriented, thread-safe exchanges.

    The line also keeps the reply stream in step with the commands. An exchange that
    ends before its reply was read completely (a timeout, a reply cut off or garbled in
    the middle) leaves bytes on their way that belong to that command; a plain flush
    cannot remove bytes that have not arrived yet, so they would be read as the answer
    to the next command. Such an exchange marks the line *out of step*
    (:attr:`in_step` False, :attr:`step_losses` counts the events) and its error says
    so; the driver then resynchronises before its next command (see
    :meth:`resynchronise`).
    """

    def __init__(self, url: str, *, device: str, baudrate: int, timeout_s: float) -> None:
        self.url = url
        self.device = device
        """Human-readable name used in error messages; drivers refine it after connect."""
        self.timeout_s = timeout_s
        self._port = open_port(url, baudrate=baudrate, timeout_s=timeout_s, device=device)
        self._lock = threading.RLock()
        #: bytes received after the last complete reply (read in chunks, not byte by byte)
        self._received = bytearray()
        self.in_step = True
        """False from an incomplete exchange until a resynchronisation succeeded."""
        self.step_losses = 0
        """How often an exchange ended with a reply still (possibly) on its way."""
        self.stale_replies_discarded = 0
        """Reply lines dropped because they answered an earlier command."""
        self._sentinel_due = False
        """A resynchronisation query was sent and its answer has not been read yet."""
        self._sentinel_sent_at = 0.0
        self._heard_since_sentinel = False
        self._resend_after_s = timeout_s

    @contextmanager
    def exchange(self) -> Iterator[None]:
        """Hold the line for one command and its reply (other threads wait).

        A timeout or a malformed reply inside the exchange marks the line out of step
        and is re-raised (same type) with the event named; an error in the
        instrument's own grammar is a complete reply and leaves the line in step.
        """
        with self._lock:
            try:
                yield
            except (InstrumentReportedError, InstrumentOutOfStep):
                raise
            except (InstrumentTimeout, InstrumentReplyError) as error:
                self.in_step = False
                self.step_losses += 1
                raise type(error)(
                    error.device,
                    error.problem,
                    command=error.command,
                    reply=error.reply,
                    consequence=f"late reply #{self.step_losses}: out of step with the "
                    "instrument, the next command resynchronises first",
                ) from error

    def ensure_in_step(
        self,
        sentinel: str,
        terminator: bytes,
        next_reply: Callable[[Deadline], ReplyKind],
        *,
        before: str,
    ) -> bool:
        """When a late reply has put the line out of step, :meth:`resynchronise` it within
        the line's timeout before ``before`` is sent; True when the line is in step."""
        if self.in_step:
            return True
        return self.resynchronise(sentinel, terminator, next_reply, Deadline(self.timeout_s),
                                  before=before)

    def resynchronise(
        self,
        sentinel: str,
        terminator: bytes,
        next_reply: Callable[[Deadline], ReplyKind],
        deadline: Deadline,
        *,
        before: str,
    ) -> bool:
        """Bring the reply stream back in step by sending ``sentinel`` (a no-op query).

        ``next_reply(deadline)`` reads the next reply unit and classifies it:
        ``"sentinel"``, the sentinel's answer, which no ordinary command of the driver
        can produce; ``"busy"``, the instrument's busy answer (the sentinel may have
        been refused: try again later); ``"stale"``, anything else, a reply to an
        earlier command, which is dropped. The instrument answers in order, so once a
        sentinel's answer has been read every reply to an earlier ordinary command has
        arrived (or never will): the line is in step again. Answers to further
        sentinels are recognisable and the driver skips them wherever they turn up.

        A sentinel whose answer is still due is waited for, not sent again: an instrument
        that answers slowly works through its input in order, so every query sent during
        a slow spell would add its own delay to the backlog, and the line would come back
        in step long after the instrument does. Only a sentinel that got no reply at all
        (not even a stale one) for a while is presumed lost (a swallowed command) and sent
        anew, after the line's timeout, then after twice as long each time (at most
        :data:`MAX_RESEND_AFTER_S`).

        Returns True once in step, False on a busy answer; no sentinel answer within
        the deadline raises :class:`InstrumentOutOfStep` naming ``before``, the command
        that was to follow, and the line stays out of step.
        """
        now = time.monotonic()
        if not self._sentinel_due:
            self._write_sentinel(sentinel, terminator, now)
        elif (not self._heard_since_sentinel
              and now - self._sentinel_sent_at >= self._resend_after_s):
            self._resend_after_s = min(2 * self._resend_after_s, MAX_RESEND_AFTER_S)
            self._write_sentinel(sentinel, terminator, now)
        try:
            while (kind := next_reply(deadline)) == "stale":
                self.stale_replies_discarded += 1
                self._heard_since_sentinel = True
        except (InstrumentTimeout, InstrumentReplyError) as error:
            raise InstrumentOutOfStep(
                self.device,
                f"out of step since late reply #{self.step_losses}: no answer to the "
                f"resynchronisation query {sentinel!r} within {deadline.seconds:g} s",
                command=before,
                reply=error.reply,
            ) from error
        self._sentinel_due = False
        self._resend_after_s = self.timeout_s
        if kind == "busy":
            return False
        self.in_step = True
        return True

    def _write_sentinel(self, sentinel: str, terminator: bytes, now: float) -> None:
        """Send the resynchronisation query without discarding input: what has arrived
        are replies the resynchronisation reads and classifies (a discarded answer to an
        earlier sentinel would be waited for in vain)."""
        try:
            self._port.write(sentinel.encode("ascii") + terminator)
        except SerialException as error:
            raise self._lost(sentinel, error) from error
        self._sentinel_due = True
        self._sentinel_sent_at = now
        self._heard_since_sentinel = False

    def out_of_step_note(self) -> str:
        """``"; out of step since late reply #N"`` while out of step, else ``""``."""
        return "" if self.in_step else f"; out of step since late reply #{self.step_losses}"

    def note_stale_reply(self) -> None:
        """Count one reply line dropped because it answered an earlier (sentinel) command."""
        self.stale_replies_discarded += 1

    def close(self) -> None:
        """Close the port (idempotent)."""
        with self._lock:
            self._port.close()

    def discard_input(self) -> None:
        """Forget bytes that arrived unasked (greetings, late replies)."""
        self._received.clear()
        try:
            self._port.reset_input_buffer()
        except SerialException as error:
            raise self._lost(None, error) from error

    def send(self, command: str, terminator: bytes) -> None:
        """Discard stale input, then write ``command`` + ``terminator``."""
        self.discard_input()
        try:
            self._port.write(command.encode("ascii") + terminator)
        except SerialException as error:
            raise self._lost(command, error) from error

    def read_until(self, command: str | None, terminator: bytes, deadline: Deadline) -> bytes:
        """Read up to and including ``terminator``; return the bytes before it.

        What has arrived is read in one call (pyserial's ``read_until`` asks for one byte
        at a time); bytes after the terminator are kept for the next reply. A timeout or
        an overlong reply drops what was received, as the port would have.
        """
        received = self._received
        while (end := received.find(terminator)) < 0:
            remaining = deadline.remaining()
            if remaining <= 0:
                partial = bytes(received)
                received.clear()
                raise InstrumentTimeout(
                    self.device,
                    f"no reply ending in {terminator!r} within {deadline.seconds:g} s",
                    command=command,
                    reply=partial,
                )
            if len(received) > MAX_REPLY_BYTES:
                partial = bytes(received[:64])
                received.clear()
                raise InstrumentReplyError(
                    self.device,
                    f"reply longer than {MAX_REPLY_BYTES} bytes without {terminator!r}",
                    command=command,
                    reply=partial,
                )
            self._port.timeout = remaining
            try:
                received += self._port.read(max(1, self._port.in_waiting))
            except SerialException as error:
                raise self._lost(command, error) from error
        reply = bytes(received[:end])
        del received[: end + len(terminator)]
        return reply

    def read_text_line(self, command: str | None, terminator: bytes, deadline: Deadline) -> str:
        """Read one line and decode it as printable ASCII (anything else is garbage)."""
        raw = self.read_until(command, terminator, deadline)
        return self.decode(command, raw)

    def decode(self, command: str | None, raw: bytes) -> str:
        """Decode reply bytes as printable ASCII, or raise InstrumentReplyError."""
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if raw and (not text or not text.isprintable()):
            raise InstrumentReplyError(
                self.device, "reply is not printable ASCII", command=command, reply=raw
            )
        return text

    def _lost(self, command: str | None, error: SerialException) -> InstrumentConnectionError:
        return InstrumentConnectionError(
            self.device, f"serial port {self.url!r} failed: {error}", command=command
        )


_DriverT = TypeVar("_DriverT", bound="SerialDriver")


class SerialDriver:
    """What every driver shares: one :class:`SerialLine`, closed by ``close()`` or ``with``.

    Closing only releases the port; the instrument keeps its state.
    """

    _line: SerialLine

    @contextmanager
    def _closed_on_failure(self) -> Iterator[None]:
        """Release the port if connecting fails: a half-opened driver is never returned."""
        try:
            yield
        except BaseException:
            self._line.close()
            raise

    def close(self) -> None:
        """Close the serial port (the instrument keeps its state)."""
        self._line.close()

    @property
    def late_replies(self) -> int:
        """Exchanges that ended with a reply still on its way (each forced a resync)."""
        return self._line.step_losses

    @property
    def stale_replies_discarded(self) -> int:
        """Reply lines dropped because they answered an earlier command."""
        return self._line.stale_replies_discarded

    def __enter__(self: _DriverT) -> _DriverT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
