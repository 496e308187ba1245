"""Issue 13, case 10: a sequence the core cannot run is refused before the first frame.

From the command line: exit code 2, one ``error:`` line naming the preset, group or device, no
``.ome.tif`` and no journal, and no MMCore abort at exit (checked over several runs, because the
abort was random). From Python: ``core.mda.run`` stops before its first event, no file, and the
sink says what was wrong. What the rig did is observed independently of the recorder (the
core's own ``configSet`` and the runner's ``eventStarted``).
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import useq
import yaml
from pymmcore_plus.experimental.unicore import StageDevice, pymm_property

from nbo_recorder.capture.preflight import SequenceError, check_sequence, sequence_problems
from nbo_recorder.capture.recorder import Recorder, RecordingError
from nbo_recorder.cli.acquisition import DEMO_RIGS, bundled_rig_config
from nbo_recorder.rig import demo_adapter_path, load_core
from nbo_recorder.store.journal import journal_path
from tests.helpers import DEMO_PROFILE

#: a preset whose only setting names a device the configuration never loads
GHOST_PRESET = "ConfigGroup,Channel,Ghost,NoSuchDevice,Label,Chroma-HQ535\n"
RUNS = 3


def _ghost_config(tmp_path: Path) -> Path:
    """MMConfig_demo.cfg plus the Ghost preset (Micro-Manager loads it without complaint)."""
    cfg = tmp_path / "ghost.cfg"
    cfg.write_text((demo_adapter_path() / "MMConfig_demo.cfg").read_text() + GHOST_PRESET)
    return cfg


@pytest.mark.parametrize(("channel", "config", "named"), [
    ({"config": "NOPE", "group": "Channel"}, "demo",
     "channels[0] (group 'Channel', preset 'NOPE'): group 'Channel' has no preset 'NOPE'"),
    ({"config": "DAPI", "group": "NoSuchGroup"}, "demo",
     "channels[0] (group 'NoSuchGroup', preset 'DAPI'): the core has no config group "
     "'NoSuchGroup'"),
    ({"config": "Ghost", "group": "Channel"}, "ghost",
     "channels[0] (group 'Channel', preset 'Ghost'): sets NoSuchDevice.Label=Chroma-HQ535, "
     "but device 'NoSuchDevice' is not loaded"),
])
def test_acquire_refuses_a_sequence_the_core_cannot_run(tmp_path, channel, config, named):
    mm_config = str(_ghost_config(tmp_path)) if config == "ghost" else config
    seq = tmp_path / "seq.yaml"
    seq.write_text(yaml.safe_dump({"channels": [channel], "z_plan": {"range": 2, "step": 1}}))
    out = tmp_path / "refused.ome.tif"
    command = [sys.executable, "-m", "nbo_recorder.cli.main", "acquire", "--mm-config",
               mm_config, "--profile", str(DEMO_PROFILE), "--sequence", str(seq),
               "--out", str(out)]
    # the MMCore abort at exit ("exception not rethrown") was random: several runs, two at
    # a time (the machine's two cores)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=tmp_path), range(RUNS)))
    for result in results:
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("nbo-recorder: error: sequence refused before the "
                                        f"first frame: {named}"), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "FATAL" not in result.stderr and "Traceback" not in result.stderr
        assert not out.exists() and not journal_path(out).exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["seq.yaml"] + (["ghost.cfg"] if config == "ghost" else []))


def test_python_run_with_an_unknown_preset_stops_before_the_first_event(demo_core, tmp_path):
    configs_set: list[tuple[str, str]] = []
    events_started: list[useq.MDAEvent] = []
    demo_core.events.configSet.connect(lambda group, preset: configs_set.append((group, preset)))
    demo_core.mda.events.eventStarted.connect(events_started.append)
    recorder = Recorder(demo_core, DEMO_PROFILE)
    out = tmp_path / "api.ome.tif"
    sink = recorder.sink(out)
    bad = useq.MDASequence(channels=["DAPI", {"config": "NOPE", "group": "Channel"}])

    with pytest.raises(Exception) as raised:  # psygnal wraps it; the cause is ours
        demo_core.mda.run(bad, output=sink)

    assert isinstance(raised.value.__cause__, SequenceError)
    assert "channels[1] (group 'Channel', preset 'NOPE')" in str(raised.value)
    assert (events_started, configs_set) == ([], [])
    assert not out.exists() and not journal_path(out).exists()
    assert sink.finished.is_set()
    with pytest.raises(RecordingError, match=r"preset 'NOPE'.*nothing acquired or written"):
        sink.raise_if_failed()

    # the refused sink let go of the core: the next run records normally, and only itself
    good_out = tmp_path / "good.ome.tif"
    good = recorder.sink(good_out)
    demo_core.mda.run(useq.MDASequence(channels=["Cy5"]), output=good)
    good.raise_if_failed()
    assert configs_set == [("Channel", "Cy5")]
    assert good_out.exists() and not out.exists()


def test_python_run_with_metadata_nbo_cannot_hold_is_refused_the_same_way(demo_core, tmp_path):
    recorder = Recorder(demo_core, DEMO_PROFILE)
    out = tmp_path / "metadata.ome.tif"
    sink = recorder.sink(out)
    bad = useq.MDASequence(channels=["DAPI"],
                           metadata={"nbo": {"Sample": {"SampleType": "Cells"}}})

    with pytest.raises(Exception) as raised:  # psygnal wraps it; the cause is ours
        demo_core.mda.run(bad, output=sink)

    assert isinstance(raised.value.__cause__, ValueError)
    assert "metadata.nbo.Sample.SampleType" in str(raised.value)
    assert not out.exists() and not journal_path(out).exists()
    assert sink.finished.is_set()
    with pytest.raises(RecordingError, match=r"SampleType.*nothing acquired or written"):
        sink.raise_if_failed()
    # the refused sink let go of the core: the next run records only into its own file
    good_out = tmp_path / "good.ome.tif"
    demo_core.mda.run(useq.MDASequence(channels=["Cy5"]), output=recorder.sink(good_out))
    assert good_out.exists() and not out.exists()


def test_every_problem_is_named_with_its_field_and_position(demo_core):
    demo_core.defineConfig("Channel", "BadLabel", "Emission", "Label", "No-Such-Filter")
    demo_core.defineConfig("Channel", "BadShutter", "Core", "Shutter", "No Shutter")
    demo_core.defineConfig("Channel", "BadProp", "Emission", "NoProp", "1")
    seq = useq.MDASequence(
        channels=["DAPI", "BadLabel", "BadShutter", "BadProp"],
        stage_positions=[
            {"x": 0, "y": 0, "name": "A1",
             "sequence": {"channels": [{"config": "NOPE", "group": "Channel"}]}},
            {"x": 1, "y": 1, "properties": [("NoDevice", "Power", "1")]},
        ],
        autofocus_plan={"autofocus_device_name": "NoAF", "autofocus_motor_offset": 0,
                        "axes": ("p",)},
    )
    assert sequence_problems(demo_core, seq) == [
        "autofocus_plan.autofocus_device_name: device 'NoAF' is not loaded",
        "channels[1] (group 'Channel', preset 'BadLabel'): sets Emission.Label=No-Such-Filter, "
        "but Emission.Label allows only 89402m, Chroma-D460, Chroma-HQ535, Chroma-HQ620, "
        "Chroma-HQ700, State-5, State-6, State-7, State-8, State-9",
        "channels[2] (group 'Channel', preset 'BadShutter'): sets Core.Shutter=No Shutter, "
        "but device 'No Shutter' is not loaded",
        "channels[3] (group 'Channel', preset 'BadProp'): sets Emission.NoProp=1, "
        "but device 'Emission' has no property 'NoProp'",
        "stage_positions[0] ('A1').sequence.channels[0] (group 'Channel', preset 'NOPE'): "
        "group 'Channel' has no preset 'NOPE' (presets: BadLabel, BadProp, BadShutter, Cy5, "
        "DAPI, FITC, Rhodamine)",
        "stage_positions[1].properties: device 'NoDevice' is not loaded",
    ]
    with pytest.raises(SequenceError, match="refused before the first frame: autofocus_plan"):
        check_sequence(demo_core, seq)


class LimitedFocus(StageDevice):
    """A Python focus stage whose Position property has limits (0–50 µm), as real ones do."""

    def __init__(self) -> None:
        super().__init__()
        self._z = 0.0

    @pymm_property(limits=(0.0, 50.0), name="Position")
    def position(self) -> float:
        return self._z

    @position.setter
    def _set_position(self, value: float) -> None:
        self._z = float(value)

    def set_position_um(self, val: float) -> None:
        self._z = float(val)

    def get_position_um(self) -> float:
        return self._z

    def home(self) -> None:
        self._z = 0.0

    def stop(self) -> None:
        """Moves are instantaneous: nothing to stop."""

    def set_origin(self) -> None:
        self._z = 0.0


def test_z_positions_outside_the_focus_limits_are_refused(demo_core):
    demo_core.loadPyDevice("PyZ", LimitedFocus())
    demo_core.initializeDevice("PyZ")
    demo_core.setFocusDevice("PyZ")
    seq = useq.MDASequence(
        z_plan={"range": 4, "step": 1},
        stage_positions=[
            {"x": 0, "y": 0, "z": 10},
            {"x": 0, "y": 0, "z": 49},
            {"x": 0, "y": 0, "z": 10, "name": "deep",
             "sequence": {"z_plan": {"top": 60, "bottom": 50, "step": 5}}},
        ],
    )
    # what useq will send the focus stage, independently of the check
    assert sorted({e.z_pos for e in seq if e.z_pos is not None and not 0 <= e.z_pos <= 50}) \
        == [51.0, 55.0, 60.0]
    assert sequence_problems(demo_core, seq) == [
        "stage_positions[1]: z 51 µm outside the limits of focus stage 'PyZ' (0 to 50 µm)",
        "stage_positions[2] ('deep').sequence.z_plan: z 55, 60 µm outside the limits of "
        "focus stage 'PyZ' (0 to 50 µm)",
    ]
    # a relative plan with no position z is sent as given (around 0), so -2 and -1 are out
    assert sequence_problems(demo_core, useq.MDASequence(z_plan={"range": 4, "step": 1})) == [
        "z_plan: z -2, -1 µm outside the limits of focus stage 'PyZ' (0 to 50 µm)"]
    assert sequence_problems(demo_core, useq.MDASequence(
        z_plan={"top": 50, "bottom": 0, "step": 10})) == []


def test_a_focus_stage_without_limits_is_not_guessed_at(demo_core):
    assert not demo_core.hasPropertyLimits(demo_core.getFocusDevice(), "Position")
    far = useq.MDASequence(channels=["DAPI"], z_plan={"top": 1e6, "bottom": -1e6, "step": 1e6})
    assert sequence_problems(demo_core, far) == []


@pytest.mark.parametrize("rig", sorted(DEMO_RIGS))
def test_the_demo_sequences_pass(rig):
    core = load_core(bundled_rig_config(DEMO_RIGS[rig][0]))
    try:
        assert sequence_problems(core, useq.MDASequence(**DEMO_RIGS[rig][2])) == []
    finally:
        core.unloadAllDevices()
