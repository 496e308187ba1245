"""Table-driven conformance of the simulators to /work/shared/protocols/README.md.

Each row sends raw bytes over ``serial.serial_for_url`` (no driver involved) and states
the reply the protocol document prescribes, written from the document and not from the
simulator code: exact bytes where the document fixes them, a regular expression where
it only fixes the shape. A driver bug therefore cannot hide behind a matching simulator
bug. Every row starts from a freshly powered-up instrument; ``setup`` commands run first
and their replies are consumed.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pytest
import serial
from sim_helpers import OpenRaw, drain


@dataclass(frozen=True)
class Row:
    """One command of the protocol and the reply the document prescribes."""

    id: str
    url: str
    send: bytes
    expect: bytes | re.Pattern[bytes]
    setup: tuple[bytes, ...] = ()
    number: float | None = None
    """If set, group 1 of ``expect`` must parse to this number."""


def rx(pattern: bytes) -> re.Pattern[bytes]:
    return re.compile(pattern, re.DOTALL)


OBIS = "sim://obis?wavelength=561&max_mw=100&min_mw=1&cdrh=0"
W1 = "sim://csuw1?time_scale=0.01"
PE4000 = "sim://coolled?model=pE-4000"
PE300 = "sim://coolled?model=pE-300"
FW6 = "sim://fw102c?pcount=6&time_scale=0.01"
FW12 = "sim://fw102c?pcount=12&time_scale=0.01"

HAND_ON = b"SYST1:COMM:HAND On\r"
BAD_VALUE = rx(rb"(?:30007|30141):N\r")
"""The document lists two codes for a bad argument value."""
NUMBER_OK = rb"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\r\nOK\r\n"
TEXT_OK = rb"[^\r\n]+\r\nOK\r\n"
ERR_LINE = rx(rb"ERR[^\r\n]*\r\n")

OBIS_ROWS = [
    Row("handshake on", OBIS, HAND_ON, b"OK\r\n"),
    Row("idn", OBIS, b"*IDN?\r", rx(rb"Coherent[^\r\n]*\r\nOK\r\n"), (HAND_ON,)),
    Row("idn crlf", OBIS, b"*IDN?\r\n", rx(rb"Coherent[^\r\n]*\r\nOK\r\n"), (HAND_ON,)),
    Row("model", OBIS, b"SYST:INF:MOD?\r", rx(TEXT_OK), (HAND_ON,)),
    Row("serial number", OBIS, b"SYST:INF:SNUM?\r", rx(TEXT_OK), (HAND_ON,)),
    Row("firmware", OBIS, b"SYST:INF:FVER?\r", rx(TEXT_OK), (HAND_ON,)),
    Row("wavelength nm", OBIS, b"SYST:INF:WAV?\r", rx(NUMBER_OK), (HAND_ON,), 561),
    Row("rated power W", OBIS, b"SYST:INF:POW?\r", rx(NUMBER_OK), (HAND_ON,), 0.1),
    Row("max power W", OBIS, b"SOUR:POW:LIM:HIGH?\r", rx(NUMBER_OK), (HAND_ON,), 0.1),
    Row("min power W", OBIS, b"SOUR:POW:LIM:LOW?\r", rx(NUMBER_OK), (HAND_ON,), 0.001),
    Row("set power W", OBIS, b"SOUR:POW:LEV:IMM:AMPL 0.05\r", b"OK\r\n", (HAND_ON,)),
    Row(
        "get power setpoint W",
        OBIS,
        b"SOUR:POW:LEV:IMM:AMPL?\r",
        rx(NUMBER_OK),
        (HAND_ON, b"SOUR:POW:LEV:IMM:AMPL 0.05\r"),
        0.05,
    ),
    Row("set power above max", OBIS, b"SOUR:POW:LEV:IMM:AMPL 0.2\r", ERR_LINE, (HAND_ON,)),
    Row("measured power, off", OBIS, b"SOUR:POW:LEV?\r", rx(NUMBER_OK), (HAND_ON,), 0.0),
    Row(
        "measured power, on",
        OBIS,
        b"SOUR:POW:LEV?\r",
        rx(NUMBER_OK),
        (HAND_ON, b"SOUR:POW:LEV:IMM:AMPL 0.05\r", b"SOUR:AM:STAT ON\r"),
        0.05,
    ),
    Row("emission on", OBIS, b"SOUR:AM:STAT ON\r", b"OK\r\n", (HAND_ON,)),
    Row("emission off", OBIS, b"SOUR:AM:STAT OFF\r", b"OK\r\n", (HAND_ON,)),
    Row("emission query off", OBIS, b"SOUR:AM:STAT?\r", b"OFF\r\nOK\r\n", (HAND_ON,)),
    Row(
        "emission query on",
        OBIS,
        b"SOUR:AM:STAT?\r",
        b"ON\r\nOK\r\n",
        (HAND_ON, b"SOUR:AM:STAT ON\r"),
    ),
    Row("mode CWP", OBIS, b"SOUR:AM:INT CWP\r", b"OK\r\n", (HAND_ON,)),
    Row("mode CWC", OBIS, b"SOUR:AM:INT CWC\r", b"OK\r\n", (HAND_ON,)),
    Row("mode digital", OBIS, b"SOUR:AM:EXT DIG\r", b"OK\r\n", (HAND_ON,)),
    Row("mode analog", OBIS, b"SOUR:AM:EXT ANAL\r", b"OK\r\n", (HAND_ON,)),
    Row("mode mixed", OBIS, b"SOUR:AM:EXT MIX\r", b"OK\r\n", (HAND_ON,)),
    Row(
        "mode query CWC",
        OBIS,
        b"SOUR:AM:SOUR?\r",
        b"CWC\r\nOK\r\n",
        (HAND_ON, b"SOUR:AM:INT CWC\r"),
    ),
    Row(
        "mode query digital",
        OBIS,
        b"SOUR:AM:SOUR?\r",
        b"DIGITAL\r\nOK\r\n",
        (HAND_ON, b"SOUR:AM:EXT DIG\r"),
    ),
    Row(
        "mode query analog",
        OBIS,
        b"SOUR:AM:SOUR?\r",
        b"ANALOG\r\nOK\r\n",
        (HAND_ON, b"SOUR:AM:EXT ANAL\r"),
    ),
    Row(
        "mode query mixed",
        OBIS,
        b"SOUR:AM:SOUR?\r",
        b"MIXED\r\nOK\r\n",
        (HAND_ON, b"SOUR:AM:EXT MIX\r"),
    ),
    Row("status word", OBIS, b"SYST:STAT?\r", rx(rb"[0-9A-Fa-f]{8}\r\nOK\r\n"), (HAND_ON,)),
    Row("fault word", OBIS, b"SYST:FAUL?\r", rx(rb"[0-9A-Fa-f]{8}\r\nOK\r\n"), (HAND_ON,)),
    Row("diode hours", OBIS, b"SYST:DIOD:HOUR?\r", rx(NUMBER_OK), (HAND_ON,)),
    Row(
        "base temperature",
        OBIS,
        b"SOUR:TEMP:BAS?\r",
        rx(rb"[-+]?\d+(?:\.\d*)?C?\r\nOK\r\n"),
        (HAND_ON,),
    ),
    Row("diode temperature", OBIS, b"SOUR:TEMP:DIOD?\r", rx(NUMBER_OK), (HAND_ON,)),
    Row("error count, empty", OBIS, b"SYST:ERR:COUN?\r", rx(NUMBER_OK), (HAND_ON,), 0),
    Row(
        "error count after a bad command",
        OBIS,
        b"SYST:ERR:COUN?\r",
        rx(NUMBER_OK),
        (HAND_ON, b"NO:SUCH:COMMAND\r"),
        1,
    ),
    Row(
        "next error",
        OBIS,
        b"SYST:ERR:NEX?\r",
        rx(TEXT_OK),
        (HAND_ON, b"NO:SUCH:COMMAND\r"),
    ),
    Row("clear errors", OBIS, b"SYST1:ERR:CLE\r", b"OK\r\n", (HAND_ON,)),
    Row("prompt off", OBIS, b"SYST1:COMM:PROM Off\r", b"OK\r\n", (HAND_ON,)),
    Row("unknown command", OBIS, b"NO:SUCH:COMMAND?\r", ERR_LINE, (HAND_ON,)),
]

W1_ROWS = [
    Row("disk query", W1, b"DC_SLCT, ?\r", b"1:A\r"),
    Row("disk select 2", W1, b"DC_SLCT,2\r", b":A\r"),
    Row("disk query after select", W1, b"DC_SLCT, ?\r", b"2:A\r", (b"DC_SLCT,2\r",)),
    Row("disk query in bypass", W1, b"DC_SLCT, ?\r", b"-1:A\r", (b"BF_ON\r",)),
    Row("disk select 3 rejected", W1, b"DC_SLCT,3\r", BAD_VALUE),
    Row("disk select without argument", W1, b"DC_SLCT\r", b"30006:N\r"),
    Row("speed query", W1, b"MS, ?\r", rx(rb"(\d{4}):A\r")),
    Row("speed set", W1, b"MS,2000\r", b":A\r"),
    Row("speed query after set", W1, b"MS, ?\r", b"2000:A\r", (b"MS,2000\r",)),
    Row("speed above range", W1, b"MS,4001\r", BAD_VALUE),
    Row("speed below range", W1, b"MS,1499\r", BAD_VALUE),
    Row("max speed", W1, b"MS_MAX, ?\r", b"4000:A\r"),
    Row("max speed configured", "sim://csuw1?max_rpm=3000", b"MS_MAX, ?\r", b"3000:A\r"),
    Row("disk run", W1, b"MS_RUN\r", b":A\r"),
    Row("disk stop", W1, b"MS_STOP\r", b":A\r"),
    Row("speed sync to exposure", W1, b"MS_ADJUST,100\r", b":A\r", (b"MS_RUN\r",)),
    Row("speed sync, disk stopped", W1, b"MS_ADJUST,100\r", b"30204:N\r", (b"MS_STOP\r",)),
    Row("dichroic query", W1, b"DMM_POS,1, ?\r", b"1:A\r"),
    Row("dichroic set", W1, b"DMM_POS,1,3\r", b":A\r"),
    Row("dichroic query after set", W1, b"DMM_POS,1, ?\r", b"3:A\r", (b"DMM_POS,1,3\r",)),
    Row("dichroic 4 rejected", W1, b"DMM_POS,1,4\r", BAD_VALUE),
    Row("filter query", W1, b"FW_POS, 1, ?\r", b"1:A\r"),
    Row("filter set wheel 2", W1, b"FW_POS,2,7\r", b":A\r"),
    Row("filter query wheel 2", W1, b"FW_POS, 2, ?\r", b"7:A\r", (b"FW_POS,2,7\r",)),
    Row("filter wheel 1 untouched", W1, b"FW_POS, 1, ?\r", b"1:A\r", (b"FW_POS,2,7\r",)),
    Row("filter position 11 rejected", W1, b"FW_POS,1,11\r", BAD_VALUE),
    Row("filter wheel 3 rejected", W1, b"FW_POS,3,1\r", BAD_VALUE),
    Row("bypass in", W1, b"BF_ON\r", b":A\r"),
    Row("bypass out", W1, b"BF_OFF\r", b":A\r", (b"BF_ON\r",)),
    Row("bypass query, confocal", W1, b"BF_POS, ?\r", rx(rb"[^\r]*OFF[^\r]*:A\r")),
    Row(
        "bypass query, bypass in",
        W1,
        b"BF_POS, ?\r",
        rx(rb"(?![^\r]*OFF)[^\r]*ON[^\r]*:A\r"),
        (b"BF_ON\r",),
    ),
    Row("shutter open", W1, b"SHO\r", b":A\r"),
    Row("shutter close", W1, b"SHC\r", b":A\r"),
    Row("shutter query open", W1, b"SH, ?\r", rx(rb"[^\r]*OPEN[^\r]*:A\r"), (b"SHO\r",)),
    Row("shutter query closed", W1, b"SH, ?\r", rx(rb"[^\r]*CLOSE[^\r]*:A\r")),
    Row("unknown command", W1, b"NO_SUCH\r", b"30005:N\r"),
]

CSS4 = rb"CSS(?:[A-D][SX][NF]\d{3}){4}\r\n"
COOLLED_ROWS = [
    Row("status pE-4000", PE4000, b"CSS?\r", rx(CSS4)),
    Row(
        "status pE-300", PE300, b"CSS?\r", rx(rb"CSSA[SX][NF]\d{3}B[SX][NF]\d{3}C[SX][NF]\d{3}\r\n")
    ),
    Row("status, newline terminator", PE4000, b"CSS?\n", rx(CSS4)),
    Row("set intensity", PE4000, b"CAI50\r", rx(rb"CSS[^\r\n]*\r\n")),
    Row(
        "intensity in status", PE4000, b"CSS?\r", rx(rb"CSSA[SX][NF]050[^\r\n]*\r\n"), (b"CAI50\r",)
    ),
    Row("select", PE4000, b"CBS\r", rx(rb"CSS[^\r\n]*\r\n")),
    Row("selected in status", PE4000, b"CSS?\r", rx(rb"CSS.{6}BS[^\r\n]*\r\n"), (b"CBS\r",)),
    Row("unselect", PE4000, b"CBX\r", rx(rb"CSS[^\r\n]*\r\n"), (b"CBS\r",)),
    Row(
        "set all channels",
        PE4000,
        b"CSSASN050BXF000CSF020DXF000\r",
        b"CSSASN050BXF000CSF020DXF000\r\n",
    ),
    Row(
        "unselected channel cannot be on",
        PE4000,
        b"CSS?\r",
        b"CSSAXF050BXF000CSF020DXF000\r\n",
        (b"CSSAXN050BXF000CSF020DXF000\r",),
    ),
    Row("selected channels on", PE4000, b"CSN\r", rx(rb"CSS[^\r\n]*\r\n"), (b"CAS\r",)),
    Row(
        "on applies to selected only",
        PE4000,
        b"CSS?\r",
        rx(rb"CSSASN\d{3}BXF\d{3}CXF\d{3}DXF\d{3}\r\n"),
        (b"CAS\r", b"CSN\r"),
    ),
    Row(
        "selected channels off",
        PE4000,
        b"CSS?\r",
        rx(rb"CSSASF\d{3}[^\r\n]*\r\n"),
        (b"CAS\r", b"CSN\r", b"CSF\r"),
    ),
    Row(
        "installed LEDs pE-4000",
        PE4000,
        b"LAMS\r",
        rx(rb"LAM:A:\d+\r\nLAM:B:\d+\r\nLAM:C:\d+\r\nLAM:D:\d+\r\n"),
    ),
    Row("installed LEDs pE-300", PE300, b"LAMS\r", rx(rb"LAM:A:\d+\r\nLAM:B:\d+\r\nLAM:C:\d+\r\n")),
    Row("switch LED", PE4000, b"LOAD:490\r", rx(rb"[^\r\n]+\r\n")),
    Row("switched LED listed", PE4000, b"LAMS\r", rx(rb".*LAM:B:490\r\n.*"), (b"LOAD:490\r",)),
    Row("model pE-4000", PE4000, b"XMODEL\r", rx(rb"[^\r\n]*pE-4000[^\r\n]*\r\n")),
    Row("model pE-300", PE300, b"XMODEL\r", rx(rb"[^\r\n]*pE-300[^\r\n]*\r\n")),
    Row("versions", PE4000, b"XVER\r", rx(rb"[^\r\n]+\r\n")),
]

FW_ROWS = [
    Row("identity", FW6, b"*idn?\r", rx(rb"\*idn\?\r[^\r]*FW102C[^\r]* \S+\r>")),
    Row("position query", FW6, b"pos?\r", b"pos?\r1\r>"),
    Row("move", FW6, b"pos=4\r", b"pos=4\r>"),
    Row("position after move", FW6, b"pos?\r", b"pos?\r4\r>", (b"pos=4\r",)),
    Row("move beyond pcount", FW6, b"pos=7\r", rx(rb"pos=7\r[^\r>\d][^\r>]*\r>")),
    Row("move to 12 on a 12-wheel", FW12, b"pos=12\r", b"pos=12\r>"),
    Row("position count 6", FW6, b"pcount?\r", b"pcount?\r6\r>"),
    Row("position count 12", FW12, b"pcount?\r", b"pcount?\r12\r>"),
    Row("set position count", FW6, b"pcount=12\r", b"pcount=12\r>"),
    Row("speed query", FW6, b"speed?\r", rx(rb"speed\?\r[01]\r>")),
    Row("speed set", FW6, b"speed=0\r", b"speed=0\r>"),
    Row("speed after set", FW6, b"speed?\r", b"speed?\r0\r>", (b"speed=0\r",)),
    Row("trigger query", FW6, b"trig?\r", rx(rb"trig\?\r[01]\r>")),
    Row("trigger set", FW6, b"trig=1\r", b"trig=1\r>"),
    Row("trigger after set", FW6, b"trig?\r", b"trig?\r1\r>", (b"trig=1\r",)),
    Row("sensors query", FW6, b"sensors?\r", rx(rb"sensors\?\r[01]\r>")),
    Row("sensors set", FW6, b"sensors=1\r", b"sensors=1\r>"),
    Row("sensors after set", FW6, b"sensors?\r", b"sensors?\r1\r>", (b"sensors=1\r",)),
    Row("save", FW6, b"save\r", b"save\r>"),
    Row("unknown command", FW6, b"bogus?\r", rx(rb"bogus\?\r[^\r>\d][^\r>]*\r>")),
]

REPLY_END = {"obis": None, "csuw1": b"\r", "coolled": b"\r\n", "fw102c": b">"}
"""Where a reply ends, for consuming the replies to setup commands."""


def _kind(url: str) -> str:
    return url.split("://", 1)[1].split("?", 1)[0]


def _open_fresh(open_raw: OpenRaw, url: str) -> serial.Serial:
    """Open the port and consume what a fresh instrument sends by itself."""
    port = open_raw(url, timeout=1.0)
    kind = _kind(url)
    if kind == "coolled":
        port.read_until(b"\r\n")
    elif kind == "fw102c":
        port.read(1)
    return port


def _consume_setup_reply(port: serial.Serial, kind: str, command: bytes) -> None:
    if kind == "obis":
        port.read_until(b"\r\n")
        if b"?" in command:
            port.read_until(b"\r\n")
    elif kind == "coolled" and command == b"LAMS\r":
        drain(port)
    else:
        end = REPLY_END[kind]
        assert end is not None
        port.read_until(end)


@pytest.mark.parametrize(
    "row", OBIS_ROWS + W1_ROWS + COOLLED_ROWS + FW_ROWS, ids=lambda r: f"{_kind(r.url)}: {r.id}"
)
def test_reply_matches_protocol(row: Row, open_raw: OpenRaw) -> None:
    port = _open_fresh(open_raw, row.url)
    kind = _kind(row.url)
    for command in row.setup:
        port.write(command)
        _consume_setup_reply(port, kind, command)
    port.write(row.send)
    if isinstance(row.expect, bytes):
        reply = port.read(len(row.expect))
        assert reply == row.expect
        assert drain(port, 0.02) == b"", "extra bytes after the reply"
    else:
        reply = drain(port, 0.02)
        match = row.expect.fullmatch(reply)
        assert match is not None, f"{reply!r} does not match {row.expect.pattern!r}"
        if row.number is not None:
            assert float(match[1]) == pytest.approx(row.number)


def test_obis_without_handshake_sends_values_only(open_raw: OpenRaw) -> None:
    """Handshake off: a query answers its value line only, a setting answers nothing."""
    port = open_raw(OBIS)
    port.write(b"SYST1:COMM:HAND Off\r")
    drain(port)
    port.write(b"SYST:INF:WAV?\r")
    assert drain(port) == b"561\r\n"
    port.write(b"SOUR:AM:STAT ON\r")
    assert drain(port) == b""


def test_obis_cdrh_delays_emission_by_5_scaled_seconds(open_raw: OpenRaw) -> None:
    port = open_raw("sim://obis?max_mw=100&time_scale=0.05")
    for command in (HAND_ON, b"SOUR:POW:LEV:IMM:AMPL 0.05\r", b"SOUR:AM:STAT ON\r"):
        port.write(command)
        port.read_until(b"OK\r\n")
    port.write(b"SOUR:POW:LEV?\r")
    assert float(port.read_until(b"\r\n")) == 0.0
    time.sleep(5 * 0.05)
    drain(port)
    port.write(b"SOUR:POW:LEV?\r")
    assert float(port.read_until(b"\r\n")) == pytest.approx(0.05)


def test_coolled_greets_every_new_connection(open_raw: OpenRaw) -> None:
    for _ in range(2):
        port = open_raw(PE300)
        assert re.fullmatch(rb"CoolLED[^\r\n]*\r\n", port.read_until(b"\r\n"))


def test_fw102c_prompts_at_power_up(open_raw: OpenRaw) -> None:
    port = open_raw(FW6)
    assert port.read(1) == b">"


def test_fw102c_prompt_follows_the_end_of_the_move(open_raw: OpenRaw) -> None:
    """Three positions at high speed: 3 x 0.5 s real, x 0.1 time scale."""
    port = open_raw("sim://fw102c?pcount=6&time_scale=0.1", timeout=2)
    port.read(1)
    started = time.monotonic()
    port.write(b"pos=4\r")
    assert port.read_until(b"\r") == b"pos=4\r"
    assert port.read(1) == b">"
    assert 0.15 <= time.monotonic() - started < 0.6


def test_csuw1_disk_change_answers_when_finished(open_raw: OpenRaw) -> None:
    """A disk change (3 s real, x 0.1) is answered once done; meanwhile the unit is busy."""
    port = open_raw("sim://csuw1?name=w1&time_scale=0.1", timeout=2)
    inspection = open_raw("sim://csuw1?name=w1", timeout=2)
    started = time.monotonic()
    port.write(b"DC_SLCT,2\r")
    inspection.write(b"DC_SLCT, ?\r")
    assert inspection.read_until(b"\r") == b"N\r"
    assert port.read_until(b"\r") == b":A\r"
    assert 0.3 <= time.monotonic() - started < 0.8
    inspection.write(b"DC_SLCT, ?\r")
    assert inspection.read_until(b"\r") == b"2:A\r"
