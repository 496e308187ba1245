"""The sim:// pyserial handler: registration, shared instances, registry, port semantics."""

from __future__ import annotations

import time

import pytest
import serial
from serial.serialutil import PortNotOpenError, SerialException
from sim_helpers import OpenRaw

from nbo_recorder import sim as simulators
from nbo_recorder.sim import SimCSUW1, SimFW102C, SimObis


def test_register_is_idempotent() -> None:
    simulators.register()
    simulators.register()
    assert serial.protocol_handler_packages.count("nbo_recorder.sim") == 1


def test_opens_of_one_named_instance_share_its_state(open_raw: OpenRaw) -> None:
    first = open_raw("sim://fw102c?name=em2&pcount=12&time_scale=0.01")
    second = open_raw("sim://fw102c?name=em2")
    assert first.read(1) == b">"
    assert second.in_waiting == 0, "one power-up prompt, on the first handle"
    first.write(b"pos=9\r")
    first.read_until(b">")
    second.write(b"pos?\r")
    assert second.read_until(b">") == b"pos?\r9\r>"
    sim = simulators.get_instrument("em2", SimFW102C)
    assert sim is simulators.get_instrument("sim://fw102c?name=em2", SimFW102C)
    assert sim.position == 9
    assert sim.open_handles == 2


def test_unnamed_url_is_the_instance_named_after_its_kind(open_raw: OpenRaw) -> None:
    open_raw("sim://obis")
    assert simulators.get_instrument("obis", SimObis).name == "obis"


def test_conflicting_settings_for_one_instance_are_refused(open_raw: OpenRaw) -> None:
    open_raw("sim://obis?name=l1&wavelength=488")
    with pytest.raises(SerialException, match=r"already exists.*'wavelength': '561'"):
        open_raw("sim://obis?name=l1&wavelength=561")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sim://laser", "unknown simulated instrument 'laser'"),
        ("sim://obis?colour=blue", "does not understand \\['colour'\\]"),
        ("sim://obis?fault=melted", "unknown fault 'melted'"),
        ("sim://obis?fault=slow", "needs a number"),
        ("sim://fw102c?pcount=8", "pcount must be 6 or 12"),
        ("sim://coolled?model=pE-100", "model must be one of"),
    ],
)
def test_bad_urls_are_refused(open_raw: OpenRaw, url: str, message: str) -> None:
    with pytest.raises(SerialException, match=message):
        open_raw(url, baudrate=115200)


def test_registry_lookup_errors(open_raw: OpenRaw) -> None:
    open_raw("sim://obis?name=dup")
    open_raw("sim://fw102c?name=dup")
    with pytest.raises(KeyError, match="2 simulated instruments match 'dup'"):
        simulators.get_instrument("dup", SimObis)
    with pytest.raises(KeyError, match="0 simulated instruments"):
        simulators.get_instrument("sim://csuw1?name=none", SimCSUW1)
    with pytest.raises(TypeError, match="is a SimObis, not a SimCSUW1"):
        simulators.get_instrument("sim://obis?name=dup", SimCSUW1)


def test_fault_in_a_later_url_applies_to_the_shared_instance(open_raw: OpenRaw) -> None:
    open_raw("sim://csuw1?name=w1")
    open_raw("sim://csuw1?name=w1&fault=timeout")
    fault = simulators.get_instrument("w1", SimCSUW1).fault
    assert fault == simulators.Fault("timeout")


def test_wrong_baud_rate_gives_noise_and_the_instrument_hears_nothing(open_raw: OpenRaw) -> None:
    port = open_raw("sim://coolled", baudrate=115200, timeout=0.1)
    noise = port.read(100)
    assert noise and not noise.startswith(b"CoolLED")
    port.write(b"CAI50\r")
    assert port.read(100) == b""
    assert simulators.get_instrument("coolled", simulators.SimCoolLED).commands == []
    port.baudrate = 57600
    port.write(b"CSS?\r")
    assert port.read_until(b"\r\n").startswith(b"CSS")


def test_reset_input_buffer_keeps_replies_still_on_the_way(open_raw: OpenRaw) -> None:
    port = open_raw("sim://csuw1?fault=slow:0.3", timeout=0.5)
    port.write(b"MS_MAX, ?\r")
    assert port.in_waiting == 0
    port.reset_input_buffer()
    time.sleep(0.35)
    assert port.in_waiting == len(b"4000:A\r")
    port.reset_input_buffer()
    assert port.in_waiting == 0


def test_read_timeouts(open_raw: OpenRaw) -> None:
    port = open_raw("sim://csuw1?fault=timeout", timeout=0.1)
    port.write(b"MS, ?\r")
    started = time.monotonic()
    assert port.read(10) == b""
    assert 0.1 <= time.monotonic() - started < 0.5
    port.timeout = 0
    assert port.read(10) == b""


def test_disconnect_fault_raises_on_the_port(open_raw: OpenRaw) -> None:
    port = open_raw("sim://csuw1?fault=disconnect_after:1")
    port.write(b"MS, ?\r")
    assert port.read_until(b"\r") == b"4000:A\r"
    with pytest.raises(SerialException, match="device disconnected"):
        port.write(b"MS, ?\r")
    with pytest.raises(SerialException, match="device disconnected"):
        port.read(1)


def test_closed_port_refuses_io(open_raw: OpenRaw) -> None:
    port = open_raw("sim://csuw1?name=w1")
    port.close()
    assert simulators.get_instrument("w1", SimCSUW1).open_handles == 0
    with pytest.raises(PortNotOpenError):
        port.write(b"MS, ?\r")


def test_busy_unit_answers_n(open_raw: OpenRaw) -> None:
    port = open_raw("sim://csuw1?name=w1&time_scale=0.01")
    unit = simulators.get_instrument("w1", SimCSUW1)
    unit.set_busy_for(10)
    port.write(b"DC_SLCT, ?\r")
    assert port.read_until(b"\r") == b"N\r"
    time.sleep(0.11)
    port.write(b"DC_SLCT, ?\r")
    assert port.read_until(b"\r") == b"1:A\r"
