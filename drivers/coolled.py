"""Driver for CoolLED pE-300 / pE-4000 LED light engines (ASCII over serial, 57600 baud).

Commands end in ``\\r``; replies end in ``\\r\\n``. The unit greets each new connection
with a line starting ``CoolLED``, which the driver skips wherever it turns up. Every
channel-setting command is expected to answer with the ``CSS`` status line (channel
letter, ``S``/``X`` selected, ``N``/``F`` on, intensity ``000``-``100`` %); the driver
checks that the status it gets back shows the requested change. Error replies are not
documented, so any line that is not the expected one is reported as an error.

The unit does not echo commands, so a reply arriving after its command timed out could
be read as the next command's. After such a late reply the driver sends
:data:`SYNC_COMMAND` (``XVER``) and drops every line before its answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nbo_recorder.drivers._serial import (
    Deadline,
    InstrumentReplyError,
    ReplyKind,
    SerialDriver,
    SerialLine,
    WrongInstrument,
    identifying,
)

BAUD_RATE = 57600
COMMAND_TERMINATOR = b"\r"
REPLY_TERMINATOR = b"\r\n"
GREETING_START = "CoolLED"
SYNC_COMMAND = "XVER"
"""Resynchronisation query. The driver asks for the version only while connecting, so
after a late reply a line starting :data:`SYNC_REPLY_START` can only answer this query."""
SYNC_REPLY_START = "XVER:"

PE4000_LED_CHOICES_NM: dict[str, tuple[int, ...]] = {
    "A": (365, 385, 405, 435),
    "B": (460, 470, 490, 500),
    "C": (525, 550, 580, 595),
    "D": (635, 660, 740, 770),
}
"""LEDs a pE-4000 channel can switch to with ``LOAD:<nm>`` (from the protocol notes)."""

_STATUS = re.compile(r"CSS((?:[A-H][SX][NF]\d{3})+)")
_BLOCK = re.compile(r"([A-H])([SX])([NF])(\d{3})")
_LAMP = re.compile(r"LAM:([A-H]):(.*)")


@dataclass(frozen=True)
class ChannelStatus:
    """State of one LED channel as reported in the ``CSS`` status line."""

    selected: bool
    on: bool
    intensity_pct: int


def parse_status(text: str) -> dict[str, ChannelStatus] | None:
    """Parse ``CSSASN050BXF000...`` into channel letter -> status (None if malformed)."""
    match = _STATUS.fullmatch(text)
    if match is None:
        return None
    status = {
        block[1]: ChannelStatus(block[2] == "S", block[3] == "N", int(block[4]))
        for block in _BLOCK.finditer(match[1])
    }
    if any(ch.intensity_pct > 100 for ch in status.values()):
        return None
    return status


class CoolLEDDriver(SerialDriver):
    """One CoolLED light engine on a serial port (or a ``sim://coolled`` URL)."""

    def __init__(self, port: str, *, timeout_s: float = 1.0) -> None:
        self._line = SerialLine(
            port, device=f"CoolLED on {port}", baudrate=BAUD_RATE, timeout_s=timeout_s
        )
        with self._closed_on_failure():
            self._connect()

    def _connect(self) -> None:
        with identifying(self.device, "not a CoolLED light engine: no model line"):
            reply = self._request("XMODEL")[0]
        model = re.search(r"pE-\S+", reply)
        if model is None:
            raise WrongInstrument(
                self.device,
                "model line does not name a pE light engine",
                command="XMODEL",
                reply=reply.encode(),
            )
        self.model = model[0]
        """Model as reported by ``XMODEL``, e.g. ``pE-4000``."""
        self.firmware_version = self._request("XVER")[0].removeprefix("XVER:")
        """Version text as reported by ``XVER``."""
        self._line.device = f"CoolLED {self.model} on {self._line.url}"
        self.channels = tuple(self.status())
        """Channel letters the unit reports, e.g. ``('A', 'B', 'C')``."""
        self.installed_leds_nm = self.read_installed_leds()
        """Installed LED per channel in nm (None where ``LAMS`` gives no number)."""

    @property
    def device(self) -> str:
        """Human-readable name of this light engine, as used in error messages."""
        return self._line.device

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, ChannelStatus]:
        """Selection, on/off and intensity of every channel."""
        return self._status_reply("CSS?", self._request("CSS?")[0])

    def intensity_pct(self, channel: str) -> int:
        """Intensity setting of one channel in % (0-100)."""
        return self.status()[self._channel(channel)].intensity_pct

    def set_intensity_pct(self, channel: str, percent: float) -> None:
        """Set one channel's intensity, 0-100 % in whole percent."""
        channel = self._channel(channel)
        if isinstance(percent, bool) or not (float(percent).is_integer() and 0 <= percent <= 100):
            raise ValueError(
                f"{self.device}: intensity {percent!r} of channel {channel} must be a "
                "whole number of percent in 0-100"
            )
        command = f"C{channel}I{int(percent)}"
        status = self._set(command)
        self._expect(command, status[channel].intensity_pct == int(percent), status)

    def set_selected(self, channel: str, selected: bool) -> None:
        """Select or unselect one channel (an unselected channel is always off)."""
        channel = self._channel(channel)
        command = f"C{channel}{'S' if selected else 'X'}"
        status = self._set(command)
        self._expect(command, status[channel].selected == selected, status)

    def set_channel_on(self, channel: str, on: bool) -> None:
        """Switch one channel on (selecting it) or off, keeping its intensity."""
        channel = self._channel(channel)
        now = self.status()[channel]
        selected = "S" if on or now.selected else "X"
        command = f"CSS{channel}{selected}{'N' if on else 'F'}{now.intensity_pct:03d}"
        status = self._set(command)
        self._expect(command, status[channel].on == on, status)

    def set_selected_channels_on(self, on: bool) -> None:
        """Switch all selected channels on (``CSN``) or off (``CSF``)."""
        command = "CSN" if on else "CSF"
        status = self._set(command)
        self._expect(command, all(ch.on == on for ch in status.values() if ch.selected), status)

    # ------------------------------------------------------------------ LEDs

    def read_installed_leds(self) -> dict[str, int | None]:
        """Ask ``LAMS`` which LED each channel holds, in nm."""
        lines = self._request("LAMS", len(self.channels))
        installed: dict[str, int | None] = {}
        for line in lines:
            match = _LAMP.fullmatch(line)
            if match is None or match[1] not in self.channels:
                raise InstrumentReplyError(
                    self.device,
                    "expected 'LAM:<channel>:<nm>'",
                    command="LAMS",
                    reply=line.encode(),
                )
            installed[match[1]] = int(match[2]) if match[2].isdigit() else None
        if set(installed) != set(self.channels):
            raise InstrumentReplyError(
                self.device,
                "LAMS did not list every channel once",
                command="LAMS",
                reply="\r\n".join(lines).encode(),
            )
        return installed

    def load_led(self, wavelength_nm: int) -> str:
        """Switch the pE-4000 channel offering ``wavelength_nm`` to it; return the channel."""
        if "pE-4000" not in self.model:
            raise ValueError(f"{self.device}: only a pE-4000 can switch LEDs (LOAD)")
        channels = [ch for ch, nms in PE4000_LED_CHOICES_NM.items() if wavelength_nm in nms]
        if not channels:
            choices = sorted(nm for nms in PE4000_LED_CHOICES_NM.values() for nm in nms)
            raise ValueError(
                f"{self.device}: no pE-4000 channel offers {wavelength_nm} nm; choices: {choices}"
            )
        command = f"LOAD:{wavelength_nm}"
        reply = self._request(command)[0]
        if reply != f"LAM:{channels[0]}:{wavelength_nm}":
            raise InstrumentReplyError(
                self.device,
                f"expected 'LAM:{channels[0]}:{wavelength_nm}'",
                command=command,
                reply=reply.encode(),
            )
        self.installed_leds_nm[channels[0]] = wavelength_nm
        return channels[0]

    # ------------------------------------------------------------------ lifecycle


    # ------------------------------------------------------------------ protocol

    def _channel(self, channel: str) -> str:
        if channel not in self.channels:
            raise ValueError(
                f"{self.device}: no channel {channel!r}; channels: {', '.join(self.channels)}"
            )
        return channel

    def _request(self, command: str, lines: int = 1) -> list[str]:
        """Send a command and read ``lines`` reply lines, skipping the greeting.

        After a late reply the line is first resynchronised with :data:`SYNC_COMMAND`;
        late answers to it are skipped too.
        """
        with self._line.exchange():
            self._line.ensure_in_step(SYNC_COMMAND, COMMAND_TERMINATOR, self._classify_sync_reply,
                                       before=command)
            deadline = Deadline(self._line.timeout_s)
            self._line.send(command, COMMAND_TERMINATOR)
            replies: list[str] = []
            while len(replies) < lines:
                line = self._line.read_text_line(command, REPLY_TERMINATOR, deadline)
                if command != SYNC_COMMAND and line.startswith(SYNC_REPLY_START):
                    self._line.note_stale_reply()
                elif not line.startswith(GREETING_START):
                    replies.append(line)
            return replies

    def _classify_sync_reply(self, deadline: Deadline) -> ReplyKind:
        """Read one line while resynchronising; the version line ends the stale part."""
        raw = self._line.read_until(SYNC_COMMAND, REPLY_TERMINATOR, deadline)
        text = raw.decode("ascii", "replace")
        return "sentinel" if text.startswith(SYNC_REPLY_START) else "stale"

    def _set(self, command: str) -> dict[str, ChannelStatus]:
        return self._status_reply(command, self._request(command)[0])

    def _status_reply(self, command: str, reply: str) -> dict[str, ChannelStatus]:
        status = parse_status(reply)
        if status is None:
            raise InstrumentReplyError(
                self.device, "expected a CSS status line", command=command, reply=reply.encode()
            )
        return status

    def _expect(self, command: str, done: bool, status: dict[str, ChannelStatus]) -> None:
        if not done:
            raise InstrumentReplyError(
                self.device,
                "status after the command does not show the change",
                command=command,
                reply=_format_status(status).encode(),
            )


def _format_status(status: dict[str, ChannelStatus]) -> str:
    return "CSS" + "".join(
        f"{ch}{'S' if s.selected else 'X'}{'N' if s.on else 'F'}{s.intensity_pct:03d}"
        for ch, s in status.items()
    )
