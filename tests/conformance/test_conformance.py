"""The rig conformance suite (nbo_recorder.conformance.suite), its CLI and its pytest plugin."""

from __future__ import annotations

import importlib.metadata
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nbo_recorder import sim
from nbo_recorder.capture import observed
from nbo_recorder.cli.acquisition import bundled_profile, bundled_rig_config
from nbo_recorder.cli.conformance import format_report
from nbo_recorder.cli.main import main
from nbo_recorder.conformance.readback import acquire, read_back
from nbo_recorder.conformance.results import ConformanceReport, tier_compliance
from nbo_recorder.conformance.suite import ConformanceSuite
from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.load import load_profile, parse_profile
from nbo_recorder.profile.model import Profile
from nbo_recorder.render.nbo_checks import load_checked_profile
from nbo_recorder.rig import load_core
from tests.helpers import DEMO_PROFILE, load, planes

pytestmark = pytest.mark.slow  # end-to-end suite: deselect with -m 'not slow'

pytest_plugins = ["pytester"]

SD_CONFIG = bundled_rig_config("sim_spinning_disk.cfg")
SD_PROFILE = bundled_profile("sim_spinning_disk.yaml")

#: The DemoCamera (DCam) switches to 16-bit when BitDepth > 8 is set while PixelType is 8bit,
#: which it is when the spinning-disk rig is loaded: a real "device does not hold the value
#: it was set to" the suite must report (the first BitDepth change is the config-group one).
SD_BITDEPTH_QUIRK = "Camera.BitDepth=10 [config]"


def _run(core: Any, profile: Profile, **kw: Any) -> ConformanceReport:
    suite = ConformanceSuite(core, profile, **kw)
    results = suite.run()
    return ConformanceReport("test rig", profile.name, suite.allow_unsafe, results,
                             tier_compliance(profile, suite.tier), suite.notes)


def _state(core: Any, profile: Profile) -> dict[tuple[str, str], str]:
    out = {}
    for b in profile.bindings:
        if b.labels is not None:
            out[(b.device, "Label")] = core.getStateLabel(b.device)
        for src in b.settings.values():
            out[(b.device, src.property)] = core.getProperty(b.device, src.property)
    return out


def _failed(report: ConformanceReport) -> set[str]:
    return {r.name for r in report.failures}


def _observe(core: Any, device: str, prop: str, values: tuple[str, ...], mode: str) -> str:
    """Independently of the suite: are changes of device.prop announced by propertyChanged?"""
    seen: list[tuple[str, str]] = []

    def listen(dev: str, name: str, _value: str) -> None:
        seen.append((dev, name))

    def put(value: str) -> None:
        if mode == "config":
            core.defineConfig("independent", "p", device, prop, value)
            core.setConfig("independent", "p")
            core.waitForConfig("independent", "p")
            core.deleteConfigGroup("independent")
        elif prop == "Label":
            core.setStateLabel(device, value)
        else:
            core.setProperty(device, prop, value)
        core.waitForDevice(device)

    names = ("State", "Label") if prop == "Label" else (prop,)
    announced = []
    initial = core.getStateLabel(device) if prop == "Label" else str(core.getProperty(device, prop))
    core.events.propertyChanged.connect(listen)
    try:
        for value, away in zip(values, values[1:] + values[:1], strict=True):
            put(away)
            mark = len(seen)
            put(value)
            time.sleep(0.05)
            announced.append(any(d == device and p in names for d, p in seen[mark:]))
    finally:
        core.events.propertyChanged.disconnect(listen)
        put(initial)
    return "announced" if all(announced) else "silent" if not any(announced) else "partial"


def _check_silent_list(report: ConformanceReport, mm_config: str) -> None:
    """The report's silent list matches what a fresh core's devices do, per mode."""
    core = load_core(mm_config)  # fresh: no pymmcore-plus de-duplication state from the suite
    try:
        observed = set()
        for row in report.summaries():
            values = tuple(v for v in row.values if not v.endswith("(as found)"))
            if len(values) < 2:
                continue
            for mode, verdict in (("config", row.events_config), ("direct", row.events_direct)):
                truth = _observe(core, row.device, row.prop, values[:2], mode)
                assert verdict == truth, (row.device, row.prop, mode, verdict, truth)
                if truth != "announced":
                    observed.add((row.device, row.prop, mode))
        assert set(report.silent()) == observed
    finally:
        core.unloadAllDevices()


@pytest.fixture
def sd_core() -> Iterator[Any]:
    """The simulated spinning-disk rig, its simulated instruments powered up fresh."""
    sim.reset_instruments()
    core = load_core(SD_CONFIG)
    yield core
    core.unloadAllDevices()
    sim.reset_instruments()


def test_demo_rig_conforms_and_is_restored(demo_core):
    profile = load_profile(DEMO_PROFILE)
    before = _state(demo_core, profile)
    report = _run(demo_core, profile)
    assert report.ok, format_report(report)
    assert _state(demo_core, profile) == before
    assert demo_core.getAutoShutter()
    by_name = {r.name: r for r in report.results}
    # every label the profile names, also the one mapped to null, in both modes
    for mode in ("direct", "config"):
        hq535 = by_name[f"Emission.Label=Chroma-HQ535 [{mode}]"]
        assert "emission_filters='em-chroma-hq535-50m'" in hq535.recorded
        assert "Channel.LightPath.EmissionFilterRef='Filter:em-chroma-hq535-50m'" in (
            hq535.recorded)
        assert "excitation_filters absent" in by_name[f"Excitation.Label=Empty [{mode}]"].recorded
    led = by_name["LED.Label=470nm [direct]"].recorded
    assert "light_source[led-demo].wavelength_nm='470 nm'" in led
    # numbers: three values inside the limits, written as the annotations document them
    assert {r.value for r in report.results if r.prop == "CCDTemperature"
            and r.mode == "direct"} == {"-100", "-45", "10"}
    assert "detector[cam-demo].temperature_c='-100 °C'" in (
        by_name["Camera.CCDTemperature=-100 [config]"].recorded)
    assert "Channel.DetectorSettings.Binning='4x4'" in by_name["Camera.Binning=4 [direct]"].recorded
    # no limits, no allowed values: the current value only, not moved
    assert by_name["Camera.Offset=0 [current]"].status == "pass"
    # stages without min_um/max_um in the profile are not moved
    z = next(r for r in report.results if r.device == "Z" and r.mode == "current")
    assert "not moved" in z.message and z.value == "0" and "Plane.PositionZ='0.0'" in z.recorded
    assert all(r.latency_ms is not None and r.latency_ms >= 0
               for r in report.results if r.mode == "read")
    assert ("Excitation", "Label", "config") in report.silent()
    _check_silent_list(report, "demo")
    text = format_report(report)
    assert "Changed silently" in text and "Excitation.Label (set through a config group)" in text


def test_spinning_disk_rig_in_safe_mode_never_emits(sd_core, monkeypatch):
    from nbo_recorder.drivers.coolled import CoolLEDDriver
    from nbo_recorder.drivers.obis import ObisLaserDriver

    calls: list[tuple[str, Any]] = []
    for cls, method in ((ObisLaserDriver, "set_emission"), (ObisLaserDriver, "set_power_mw"),
                        (CoolLEDDriver, "set_channel_on")):
        original = getattr(cls, method)

        def spy(self: Any, *args: Any, _original: Any = original, _name: str = method) -> Any:
            calls.append((_name, args[-1]))
            return _original(self, *args)

        monkeypatch.setattr(cls, method, spy)
    shipped = load_profile(SD_PROFILE)  # no power_cap_mw (0 mW); Laser488 gets 5 mW here
    profile = shipped.model_copy(update={"bindings": tuple(
        b.model_copy(update={"power_cap_mw": 5.0}) if b.device == "Laser488" else b
        for b in shipped.bindings)})
    before = _state(sd_core, profile)
    report = _run(sd_core, profile)
    assert _failed(report) == {SD_BITDEPTH_QUIRK}, format_report(report)
    quirk = next(r for r in report.failures)
    assert "the device reports '16' after being set to '10'" in quirk.message
    # safety: emission only ever switched off, power never above the cap
    assert ("set_power_mw", 5.0) in calls and ("set_power_mw", 0.0) in calls
    assert not [c for c in calls if c[1] is True or (c[0] == "set_power_mw" and c[1] > 5)]
    by_name = {r.name: r for r in report.results}
    assert "light_source[laser-488].power_mw='5 mW'" in (
        by_name["Laser488.PowerSetpoint=5 [direct]"].recorded)
    assert {r.value for r in report.results if r.device == "Laser561"
            and r.prop == "PowerSetpoint" and r.mode in ("direct", "config")
            and r.status == "pass"} == {"0"}
    skipped = {r.name for r in report.results if r.status == "skip"}
    assert {"Laser488.Emission=On [direct]", "Laser488.PowerSetpoint=50 [direct]",
            "LED.Emission-B=On [direct]"} <= skipped
    assert _state(sd_core, profile) == before
    assert "light_source[laser-488] absent" in by_name["Laser488.Emission=Off [config]"].recorded
    assert "pinholes='pinhole-25um'" in by_name["W1-Disk.Label=Disk 2 [direct]"].recorded
    assert "Channel.PinholeSize=50.0" in by_name["W1-Disk.Label=Disk 1 [direct]"].recorded.replace(
        "'", "")
    # Python devices: state devices announce their changes, plain properties are silent
    silent = set(report.silent())
    assert {("LED", "Intensity-B", "direct"), ("W1-Disk", "DiskSpeed", "config")} <= silent
    assert not any(dev == "W1-Disk" and prop == "Label" for dev, prop, _ in silent)
    _check_silent_list(report, SD_CONFIG)


def test_broken_profile_fails_only_the_matching_checks(sd_core):
    data = yaml.safe_load(SD_PROFILE.read_text(encoding="utf-8"))
    for b in data["bindings"]:
        if b["device"] == "W1-Emission":  # a label the wheel does not have
            b["labels"]["525/40"] = b["labels"].pop("525/50")
        if b["device"] == "Laser488":  # the laser reports mW: recorded 1000x too high
            b["settings"]["power"]["unit"] = "W"
    profile = parse_profile(data, "broken.yaml")
    before = _state(sd_core, profile)
    report = _run(sd_core, profile, allow_unsafe=True)
    expected = {SD_BITDEPTH_QUIRK, "W1-Emission.Label=525/40 [config]",
                "W1-Emission.Label=525/40 [direct]", "Laser488.PowerSetpoint [unit]"} | {
        f"Laser488.PowerSetpoint={v} [{m}]" for v in ("50", "100") for m in ("config", "direct")}
    assert _failed(report) == expected, format_report(report)
    by_name = {r.name: r for r in report.results}
    label = by_name["W1-Emission.Label=525/40 [direct]"].message
    assert "W1-Emission" in label and "no state label '525/40'" in label
    power = by_name["Laser488.PowerSetpoint=50 [direct]"].message
    assert "'light_source[laser-488].power_mw'" not in power  # recorded as the profile says ...
    assert "50000 mW is outside 0–3000 mW (rated 100 mW)" in power  # ... which cannot be right
    assert "0–100000 mW" in by_name["Laser488.PowerSetpoint [unit]"].message
    assert by_name["Laser488.PowerSetpoint=0 [direct]"].status == "pass"  # 0 W is 0 mW
    # with --allow-unsafe emission is tested on, and switched off again right after
    assert by_name["Laser488.Emission=On [direct]"].status == "pass"
    assert before[("Laser488", "Emission")] == "Off"
    assert _state(sd_core, profile) == before  # emission off again, power as it was


def test_bad_bindings_and_failing_devices_fail_only_their_checks(demo_core):
    from tests.pydevices import PyLaser

    laser = PyLaser()
    laser.fail_reads = True
    demo_core.loadPyDevice("PyLaser", laser)
    demo_core.initializeDevice("PyLaser")
    profile = parse_profile({
        "name": "bad bindings",
        "components": [
            {"kind": "objective", "id": "obj-10x"},
            {"kind": "laser", "id": "py-laser", "rated_power_mw": 100},
            {"kind": "detector", "id": "cam"},
            {"kind": "stage", "id": "z", "axes": "z", "min_um": [-10], "max_um": [10]},
        ],
        "bindings": [
            {"device": "Objective", "role": "objective",
             "labels": {"Nikon 10X S Fluor": "obj-10x"}},
            {"device": "PyLaser", "role": "light_source", "component": "py-laser",
             "power_cap_mw": 50, "settings": {"power": {"property": "PowerW", "unit": "W",
                                                        "test_values": [0.02, 0.08]}}},
            {"device": "Camera", "role": "detector", "component": "cam",
             "settings": {"gain": {"property": "NoSuchGain"}}},
            {"device": "Ghost", "role": "detector", "component": "cam"},
        ],
    }, "bad.yaml")
    moves: list[float] = []
    demo_core.events.stagePositionChanged.connect(lambda _dev, z: moves.append(z))
    report = _run(demo_core, profile)
    assert _failed(report) == {"PyLaser.PowerW [read]", "Camera.NoSuchGain [binding]",
                               "Ghost.(device) [binding]"} | {
        f"PyLaser.PowerW={v} [{m}]" for v in ("0.02", "0.05") for m in ("config", "direct")}
    by_name = {r.name: r for r in report.results}
    # limits need no read of the value: 0–0.1 W is 0–100 mW, as the laser is rated
    assert "0–100 mW: plausible" in by_name["PyLaser.PowerW [unit]"].message
    for name in ("PyLaser.PowerW [read]", "PyLaser.PowerW=0.02 [direct]"):
        assert "PyLaser.PowerW" in by_name[name].message
        assert "TimeoutError: laser did not answer" in by_name[name].message
    assert "has no property 'NoSuchGain'" in by_name["Camera.NoSuchGain [binding]"].message
    assert "'Ghost' is not loaded" in by_name["Ghost.(device) [binding]"].message
    # 0.08 W = 80 mW is above the profile's 50 mW cap: not tried, the cap (0.05 W) instead
    withheld = by_name["PyLaser.PowerW=0.08 [direct]"]
    assert withheld.status == "skip" and "the cap, 0.05, is tried instead" in withheld.message
    assert by_name["Objective.Label=Nikon 10X S Fluor [direct]"].status == "pass"
    # the stage moved only inside the profile's limits and each position was recorded
    zs = [r for r in report.results if r.prop == "Position" and r.mode == "direct"]
    assert [r.value for r in zs] == ["-10", "0", "10"] and all(r.ok for r in zs)
    assert moves and all(-10 <= z <= 10 for z in moves)


def _cli(*argv: str) -> int:
    return main(["conformance", *argv])


def _tiny_profile(tmp_path: Path) -> Path:
    """Two objectives bound to the turret, one under a label the turret does not have."""
    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "tiny",
        "components": [{"kind": "objective", "id": "obj-10x"},
                       {"kind": "objective", "id": "obj-20x"}],
        "bindings": [{"device": "Objective", "role": "objective",
                      "labels": {"Nikon 10X S Fluor": "obj-10x", "Nikon 20X": "obj-20x"}}],
    }), encoding="utf-8")
    return profile


def test_cli_report_junit_and_exit_codes(tmp_path, capsys):
    profile = _tiny_profile(tmp_path)
    junit = tmp_path / "out.xml"
    assert _cli("--mm-config", "demo", "--profile", str(profile), "--junit", str(junit)) == 1
    out = capsys.readouterr().out
    assert "Objective" in out and "Failed (2):" in out and "no state label 'Nikon 20X'" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "2"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["Label=Nikon 20X [direct]"].find("failure") is not None
    assert cases["Label=Nikon 10X S Fluor [config]"].find("failure") is None
    assert cases["Label=Nikon 10X S Fluor [config]"].get("classname") == (
        "nbo-conformance.Objective")

    assert _cli("--mm-config", str(tmp_path / "missing.cfg"), "--profile", str(profile)) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "missing.cfg" in err and "not found" in err
    assert _cli("--profile", str(profile)) == 2  # a usage error: --mm-config missing
    assert "Missing option '--mm-config'" in capsys.readouterr().err



def test_conformance_through_ome_zarr_holds_as_through_ome_tiff(tmp_path, capsys):
    """``--format ome-zarr``: every check records to a store and reads it back; the same
    label checks pass (the objective the turret was put on) and the same one fails."""
    pytest.importorskip("tensorstore")
    profile = _tiny_profile(tmp_path)
    verdicts = {}
    for fmt in ("ome-tiff", "ome-zarr"):
        junit = tmp_path / f"{fmt}.xml"
        assert _cli("--mm-config", "demo", "--profile", str(profile), "--junit", str(junit),
                    "--format", fmt) == 1
        capsys.readouterr()
        suite = ET.parse(junit).getroot().find("testsuite")
        assert suite is not None
        verdicts[fmt] = {c.get("name"): c.find("failure") is None for c in suite.iter("testcase")}
    assert verdicts["ome-zarr"] == verdicts["ome-tiff"]
    assert verdicts["ome-zarr"]["Label=Nikon 10X S Fluor [direct]"] is True
    assert verdicts["ome-zarr"]["Label=Nikon 20X [direct]"] is False
    assert _cli("--mm-config", "demo", "--profile", str(profile), "--format", "hdf5") == 2
    assert "ome-tiff" in capsys.readouterr().err

def test_read_back_matches_the_recorder_view(demo_core, tmp_path):
    demo_core.setStateLabel("Emission", "Chroma-HQ700")
    back = acquire(demo_core, load_profile(DEMO_PROFILE), tmp_path / "f.ome.tif", frames=2)
    assert len(back.frames) == 2
    _, ome = load(tmp_path / "f.ome.tif")
    for frame, view in zip(back.frames, sorted(planes(ome), key=lambda v: v.ifd), strict=True):
        assert {k: v for k, v in frame.settings.items() if k != "objective"} == {
            k: v for k, v in view.settings.items() if k not in ("objective", "pixel_size_um")}
    assert read_back(tmp_path / "f.ome.tif").frames[0].ome[
        "Channel.LightPath.EmissionFilterRef"] == "Filter:em-chroma-hq700-75m"


#: the demo camera's gain, bound alone, set to whole numbers the annotation writes as "1", "2"
GAIN_ONLY = {
    "name": "gain only",
    "components": [{"kind": "detector", "id": "cam"}],
    "bindings": [{"device": "Camera", "role": "detector", "component": "cam",
                  "settings": {"gain": {"property": "Gain", "test_values": [1, 2]}}}],
}


def test_a_recorder_formatting_mistake_fails_conformance(demo_core, monkeypatch):
    profile = parse_profile(GAIN_ONLY, "gain.yaml")
    assert _run(demo_core, profile).ok  # the recorder's own spelling is what conformance expects
    documented = observed.format_value

    def three_decimals(value: object, unit: str) -> str:
        """A formatting bug: numbers with three fixed decimals ("1.000") instead of %g."""
        if isinstance(value, float):
            return f"{value:.3f} {unit}".strip()
        return documented(value, unit)

    monkeypatch.setattr(observed, "format_value", three_decimals)
    report = _run(demo_core, profile)
    assert _failed(report) == {f"Camera.Gain={v} [{m}]" for v in ("1", "2")
                               for m in ("config", "direct")}, format_report(report)
    message = next(r.message for r in report.failures if r.value == "1")
    assert ("channel-settings annotation 'detector[cam].gain': expected '1', the file holds "
            "'1.000'") in message


def test_conformance_refuses_a_profile_nbo_cannot_hold(tmp_path, capsys):
    path = tmp_path / "bad-bits.yaml"
    data = yaml.safe_load(yaml.safe_dump(GAIN_ONLY))
    data["components"][0]["bit_depth"] = 13
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert load_profile(path).components[0].bit_depth == 13  # loading alone does not judge NBO
    with pytest.raises(ProfileError, match=r"bad-bits\.yaml: components\[0\]\.bit_depth: 13 bit"):
        load_checked_profile(path)
    assert _cli("--mm-config", "demo", "--profile", str(path)) == 2
    assert "13 bit is not an NBO v2.01" in capsys.readouterr().err


MANUFACTURER_TESTS = """
def test_my_filter_wheel(nbo_core, nbo_profile, nbo_acquire):
    nbo_core.setStateLabel("Emission", "Chroma-HQ535")
    back = nbo_acquire(2)
    assert len(back.frames) == 2
    assert back.frames[1].settings["emission_filters"] == "em-chroma-hq535-50m"
    assert nbo_profile.name.startswith("Micro-Manager demo")
"""


def _plugin_args() -> list[str]:
    """Load the plugin explicitly unless it is already registered through its entry point."""
    eps = importlib.metadata.entry_points(group="pytest11")
    registered = any(ep.value == "nbo_recorder.conformance.pytest_plugin" for ep in eps)
    return [] if registered else ["-p", "nbo_recorder.conformance.pytest_plugin"]


def test_pytest_plugin_runs_the_checks_and_manufacturer_tests(pytester):
    pytester.makepyfile(test_manufacturer=MANUFACTURER_TESTS)
    (pytester.path / "hardware_profiles").mkdir()
    (pytester.path / "hardware_profiles" / "mm_demo.yaml").write_bytes(DEMO_PROFILE.read_bytes())
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider", "--nbo-config", "demo",
                                "--nbo-profile", "hardware_profiles/mm_demo.yaml",
                                f"--junitxml={junit}")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["passed"] > 80, result.stdout.str()
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    classes = {c.get("classname") for c in cases}
    assert {"test_manufacturer", "nbo-conformance.Emission", "nbo-conformance.Camera"} <= classes
    names = {c.get("name") for c in cases}
    assert "Label=Chroma-HQ535[config]" in names and "test_my_filter_wheel" in names
    assert len(cases) == outcomes["passed"]


def test_pytest_plugin_is_inert_without_options(pytester):
    pytester.makepyfile(test_manufacturer=MANUFACTURER_TESTS)
    result = pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider", "--collect-only", "-q")
    assert "nbo-conformance" not in result.stdout.str()
    result = pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no rig to test: pass --nbo-config and --nbo-profile*"])
    result = pytester.runpytest(*_plugin_args(), "--nbo-config", "demo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--nbo-config and --nbo-profile are needed together*"])


def test_plugin_module_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, nbo_recorder.conformance.pytest_plugin; "
            "heavy = [m for m in ('pymmcore_plus', 'nbo_recorder.conformance.suite', "
            "'nbo_recorder.conformance.readback', 'nbo_recorder.capture.recorder', "
            "'useq', 'ome_types') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_profile_test_values_and_power_cap_are_optional(tmp_path):
    path = Path(tmp_path / "p.yaml")
    path.write_text(yaml.safe_dump({
        "name": "p", "components": [{"kind": "laser", "id": "l"}],
        "bindings": [{"device": "L", "role": "light_source", "component": "l",
                      "power_cap_mw": 5,
                      "settings": {"power": {"property": "P", "unit": "mW",
                                             "test_values": [1, 2.5, "4"]}}}],
    }), encoding="utf-8")
    b = load_profile(path).bindings[0]
    assert b.power_cap_mw == 5 and b.settings["power"].test_values == ("1", "2.5", "4")
    assert load_profile(DEMO_PROFILE).bindings[0].power_cap_mw is None
