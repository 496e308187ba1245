"""Materials & Methods text: every value it states is in the file; gaps are named."""

from __future__ import annotations

import re

import useq
import yaml

from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.cli.main import main
from nbo_recorder.profile.model import parse_profile
from tests.helpers import DEMO_PROFILE, load


def test_methods_for_the_demo_file_states_the_files_values(tmp_path, capsys):
    out = tmp_path / "demo.ome.tif"
    assert main(["demo", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["methods", str(out)]) == 0
    text = capsys.readouterr().out
    _, ome = load(out)
    inst, image = ome.instruments[0], ome.images[0]
    obj = next(o for o in inst.objectives if o.id == image.objective_settings.id)
    assert f"{obj.manufacturer} {obj.model}" in text
    assert f"NA {obj.lens_na:g}" in text and f"{obj.nominal_magnification:g}×" in text
    px = image.pixels
    assert f"pixel size in the sample plane was {px.physical_size_x:g} µm" in text
    assert f"{px.size_z} focal planes were acquired at {px.physical_size_z:g} µm steps" in text
    assert f"{px.size_t} time points were acquired every {px.time_increment:g} s" in text
    for ch in px.channels:
        exposure = next(p.exposure_time for p in px.planes if p.the_c == px.channels.index(ch))
        sentence = next(line for line in text.splitlines() if line.startswith(f"{ch.name}:"))
        assert f"exposure {exposure:g} ms" in sentence
        if ch.light_source_settings.wavelength:
            assert f"at {ch.light_source_settings.wavelength:g} nm" in sentence
        for ref in ch.light_path.emission_filters:
            model = next(f.model for f in inst.filters if f.id == ref.id)
            assert f"emission filter Chroma {model}" in sentence
    # every number in the text is a number the file holds
    xml, _ = load(out)
    for number in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", text):
        assert number in xml, f"{number} is stated but not in the file"


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
