"""Materials & Methods text: every value it states is in the file; gaps are named."""

from __future__ import annotations

import re

import useq
import yaml

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.cli.main import main
from nbo_recorder.judge.methods import methods_of
from nbo_recorder.profile.load import parse_profile
from tests.helpers import DEMO_PROFILE, load

#: a number as a whole token: not part of a longer number, word or dotted version
_NUMBER = r"(?<![\w.-])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?!\w|\.\d)"


def _states(text: str, phrase: str) -> bool:
    """``phrase`` is in ``text`` as a whole: no digit, letter or decimal point glued to it."""
    return re.search(rf"(?<![\w.]){re.escape(phrase)}(?!\w|\.\d)", text) is not None


def test_methods_for_the_demo_file_states_the_files_values(tmp_path, capsys):
    out = tmp_path / "demo.ome.tif"
    assert main(["demo", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["methods", str(out)]) == 0
    text = capsys.readouterr().out
    xml, ome = load(out)
    inst, image = ome.instruments[0], ome.images[0]
    obj = next(o for o in inst.objectives if o.id == image.objective_settings.id)
    assert _states(text, f"{obj.manufacturer} {obj.model}")
    assert _states(text, f"NA {obj.lens_na:g}") and _states(text, f"{obj.nominal_magnification:g}×")
    px = image.pixels
    assert _states(text, f"pixel size in the sample plane was {px.physical_size_x:g} µm")
    assert _states(text, f"{px.size_z} focal planes were acquired at {px.physical_size_z:g} µm "
                         "steps")
    assert _states(text, f"{px.size_t} time points were acquired every {px.time_increment:g} s")
    for ch in px.channels:
        exposure = next(p.exposure_time for p in px.planes if p.the_c == px.channels.index(ch))
        sentence = next(line for line in text.splitlines() if line.startswith(f"{ch.name}:"))
        assert _states(sentence, f"exposure {exposure:g} ms")
        if ch.light_source_settings.wavelength:
            assert _states(sentence, f"at {ch.light_source_settings.wavelength:g} nm")
        for ref in ch.light_path.emission_filters:
            model = next(f.model for f in inst.filters if f.id == ref.id)
            assert _states(sentence, f"emission filter Chroma {model}")
    # every number in the text is a number the file holds (as a value, not a substring)
    held = {float(n) for n in re.findall(_NUMBER, xml)}
    stated = re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", text)
    assert stated
    for number in stated:
        assert float(number) in held, f"{number} is stated but not in the file"


def test_methods_never_states_a_missing_value_and_says_what_is_missing(
    demo_core, tmp_path, capsys
):
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    for comp in data["components"]:
        comp.pop("lens_na", None)
    out = tmp_path / "no-na.ome.tif"
    sink = Recorder(demo_core, parse_profile(data, "no-na")).sink(out)
    demo_core.mda.run(useq.MDASequence(channels=["FITC"]), output=sink)
    assert main(["methods", str(out), "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert "NA " not in text.split("Not recorded")[0]
    assert "objective numerical aperture (LensNA)" in text
    assert text.startswith("## Microscopy")


def test_methods_of_a_split_run_describe_every_image(demo_core, tmp_path):
    """Binning 2 at position 1 only: the text gives each Image's own pixel size, frame size
    and z step (read from the rig as each frame was taken), and counts the positions."""
    seq = useq.MDASequence(
        channels=["DAPI"], z_plan={"range": 1, "step": 1},
        stage_positions=[(0, 0, 0), {"x": 20, "y": 0, "z": 0, "sequence": {
            "z_plan": {"range": 4, "step": 2}}}])
    truth: dict[int, set[tuple[int, int, float]]] = {}

    def bin_position_1(event: useq.MDAEvent) -> None:
        demo_core.setProperty("Camera", "Binning", "2" if event.index.get("p") == 1 else "1")

    def observe(img, event, _meta) -> None:
        truth.setdefault(event.index.get("p", 0), set()).add(
            (*img.shape, demo_core.getPixelSizeUm()))

    demo_core.mda.events.eventStarted.connect(bin_position_1)
    demo_core.mda.events.frameReady.connect(observe)
    out = tmp_path / "split.ome.tif"
    try:
        demo_core.mda.run(seq, output=Recorder(demo_core, DEMO_PROFILE).sink(out))
    finally:
        demo_core.mda.events.eventStarted.disconnect(bin_position_1)
        demo_core.mda.events.frameReady.disconnect(observe)
    assert main(["methods", str(out)]) == 0
    _, ome = load(out)
    text = methods_of(out).text()
    assert len(truth) == 2 and all(len(shapes) == 1 for shapes in truth.values())
    for p, z_step, planes in ((0, 1, 2), (1, 2, 3)):
        ((height, width, size_um),) = truth[p]
        image = ome.images[p]
        sentence = next(line for line in text.splitlines() if f"'{image.name}'" in line
                        and "pixel size" in line)
        assert _states(sentence, f"pixel size in the sample plane was {size_um:g} µm "
                                 f"({width} × {height} pixels)")
        assert _states(sentence, f"{planes} focal planes were acquired at {z_step:g} µm steps")
    assert "Images were taken at 2 stage positions." in text
