"""The NBO v2.01 record embedded in recorded files: content, validity, round trips, bad input.

Two rigs are recorded on the real demo adapters:

* the widefield demo rig (``hardware_profiles/mm_demo.yaml``), as shipped and completed with
  the facts NBO tier 1 asks for that the shipped profile does not state (:data:`DEMO_FACTS`;
  the rig is simulated, so these are test fixtures, not specifications of real parts);
* a spinning-disk confocal rig: the demo config plus two Python devices defined here, a laser
  whose power setpoint is in W and a disk unit with "Disk 1"/"Disk 2" bound to 50 µm and 25 µm
  pinhole components; a config group per channel changes laser power, camera gain and disk.

The experiment, sample and fluorophores are stated in the sequence metadata (:data:`STUDY`);
without that the recorder writes ``unknown`` placeholders and the record cannot reach tier 1.
nbo-recorder wrote the metadata and is the record's ``Creator``; the acquisition software is
MMCore/pymmcore/pymmcore-plus, whose developer and website their package metadata states.
"""

from __future__ import annotations

import dataclasses
import datetime
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import ome_types
import pytest
import tifffile
import useq
import yaml
from ome_types.model import Objective_Correction as Correction
from ome_types.model import Objective_Immersion as Immersion
from pymmcore_plus.experimental.unicore import GenericDevice, StateDevice, pymm_property

from nbo_recorder.capture.documents import FrameRecord, Run, RunStart, StateSnapshot
from nbo_recorder.capture.recorder import Recorder
from nbo_recorder.capture.versions import software_versions
from nbo_recorder.judge.reader import nbo_record, nbo_text, read, read_ome_xml
from nbo_recorder.nbo import NBO_NAMESPACE
from nbo_recorder.nbo.schema import allowed_values, validate_nbo
from nbo_recorder.profile.calibration import (
    check_calibration_files,
    stale_calibrations,
    summary,
)
from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.load import parse_profile
from nbo_recorder.profile.model import Profile
from nbo_recorder.render import nbo_elements
from nbo_recorder.render.nbo import build_nbo_xml
from nbo_recorder.render.nbo_checks import check_nbo_profile, study_problems
from nbo_recorder.rig import load_core
from nbo_recorder.vocabulary import NBO_ANNOTATION_ID, NS_NBO_COMPLIANCE, UNKNOWN_TEXT
from tests.helpers import DEMO_FACTS, DEMO_PROFILE, DEMO_STAND, STUDY, demo_profile

NS = {"n": NBO_NAMESPACE}
TODAY = datetime.date.today()


def by_id(root: ET.Element) -> dict[str, ET.Element]:
    """Every defining element of an NBO record by ID (references and settings left out)."""
    return {e.get("ID", ""): e for e in root.iter()
            if e.get("ID") and not _is_reference(e)}


_SETTINGS = {"LightSourceSettings", "CameraSettings", "GenericDetectorSettings",
             "PointDetectorSettings", "ObjectiveSettings", "MicroscopeStandSettings",
             "PinholeSettings"}


def _is_reference(element: ET.Element) -> bool:
    """References, settings and a LightPath's FilterSet (it names a FilterCube) point by ID."""
    name = element.tag.rsplit("}", 1)[-1]
    return name.endswith("Ref") or name in _SETTINGS or name == "FilterSet"


def unresolved_references(root: ET.Element) -> list[str]:
    """``Tag -> ID`` of every reference or settings element whose ID nothing defines."""
    defined = set(by_id(root))
    return [f"{e.tag.rsplit('}', 1)[-1]} -> {e.get('ID')}" for e in root.iter()
            if _is_reference(e) and e.get("ID") not in defined]


def compliance(path: Path) -> dict[str, str]:
    ome = read(path).ome
    sa = ome.structured_annotations
    assert sa is not None
    (ann,) = [a for a in sa.map_annotations if a.namespace == NS_NBO_COMPLIANCE]
    return {m.k: m.value for m in ann.value.ms if m.k is not None}


def channel(root: ET.Element, name: str) -> ET.Element:
    found = root.find(f".//n:Channel[@Name='{name}']", NS)
    assert found is not None, name
    return found


# --- the widefield demo rig ---------------------------------------------------------------


def test_demo_record_is_tier1_valid_and_complete(demo_core, tmp_path, ome_schema):
    out = tmp_path / "demo.ome.tif"
    seq = useq.MDASequence(channels=["DAPI", "FITC"], z_plan={"range": 1, "step": 1},
                           metadata=STUDY)
    demo_core.mda.run(seq, output=Recorder(demo_core, demo_profile()).sink(out))

    ome_schema.validate(read_ome_xml(out))
    recorded = read(out)
    root = recorded.nbo
    assert root is not None and root.tag == f"{{{NBO_NAMESPACE}}}OME"
    result = validate_nbo(root, 1)
    assert result.ok, result.errors
    assert all(item.tier > 1 for item in result.deferred)
    assert unresolved_references(root) == []
    for image in recorded.ome.images:
        assert NBO_ANNOTATION_ID in {ref.id for ref in image.annotation_refs}
    assert compliance(out)["tier reached"] == "1"

    instrument = root.find("n:Instrument", NS)
    assert instrument is not None
    assert instrument.find("n:InvertedMicroscopeStand", NS) is not None
    software = {s.get("ID"): s for s in instrument.iterfind("n:AcquisitionSoftware", NS)}
    versions = software_versions(demo_core)
    for name in ("MMCore", "pymmcore", "pymmcore-plus"):
        assert software[f"Software:{name}"].get("Version") == versions[name]
    # nbo-recorder wrote the metadata (issue #15): the Creator, not acquisition software
    assert "Software:nbo-recorder" not in software
    assert root.get("Creator") == f"nbo-recorder {versions['nbo-recorder']}"
    assert versions["MMCore"] in str(demo_core.getVersionInfo())
    assert software["Software:pymmcore-plus"].get("Developer")
    kinds = {e.tag.rsplit("}", 1)[-1] for e in instrument}
    assert {"Objective", "ExcitationFilter", "EmissionFilter", "StandardDichroic", "FilterCube",
            "LightEmittingDiode", "GenericExcitationSource", "GenericDetector", "Z-Drive",
            "MechanicalStage"} <= kinds
    led = instrument.find("n:LightEmittingDiode", NS)
    assert led is not None
    assert [m.get("PeakWavelength") for m in led.iterfind("n:LEDModule", NS)] == [
        "385.0", "470.0", "550.0", "635.0"]
    hq480 = by_id(root)["Filter:ex-chroma-hq480-40x"]
    assert hq480.tag.endswith("ExcitationFilter")
    band = hq480.find("n:TransmittanceRange", NS)
    assert band is not None and band.attrib == {
        "Wavelength": "480.0", "WavelengthUnit": "nm", "FWHMBandwidth": "40.0"}

    dapi_path = channel(root, "DAPI").find("n:LightPath", NS)
    assert dapi_path is not None
    refs = [(e.tag.rsplit("}", 1)[-1], e.get("ID")) for e in dapi_path]
    assert ("ExcitationFilterRef", "Filter:ex-chroma-d360-40x") in refs
    assert ("EmissionFilterRef", "Filter:em-chroma-hq620") in refs
    assert ("StandardDichroicRef", "Dichroic:dc-chroma-400dclp") in refs
    assert channel(root, "DAPI").get("IlluminationType") == "Wide-field_Fluorescence"
    planes = root.findall(".//n:Plane", NS)
    assert len(planes) == 4
    assert all(p.get("TimestampUnit") == "s" and p.get("ExposureTimeUnit") == "ms"
               for p in planes)


def test_demo_profile_as_shipped_gives_gaps_never_wrong_values(demo_core, tmp_path):
    """Without the NBO facts, the record misses what nobody stated — and nothing else."""
    out = tmp_path / "shipped.ome.tif"
    demo_core.mda.run(useq.MDASequence(channels=["DAPI"]),
                      output=Recorder(demo_core, DEMO_PROFILE).sink(out))
    root = read(out).nbo
    assert root is not None
    errors = validate_nbo(root, 1).errors
    assert errors
    for error in errors:
        missing = error.message.startswith("missing required attribute") or (
            "is not complete" in error.message or "MicroscopeStandGroup" in error.message)
        assert missing, error
    assert unresolved_references(root) == []
    assert {e.get("Organism") for e in root.iterfind(".//n:Sample", NS)} == {UNKNOWN_TEXT}
    summary_ = compliance(out)
    assert summary_["tier reached"] == "none"
    assert "Experiment[1]@Purpose" in summary_["tier 1 missing or invalid"]


def test_record_without_contact_lacks_nothing_at_tier_1(demo_core, tmp_path):
    """nbo-recorder's own contact is not needed: it is the Creator, not AcquisitionSoftware."""
    out = tmp_path / "contact.ome.tif"
    seq = useq.MDASequence(channels=["DAPI"], metadata=STUDY)
    demo_core.mda.run(seq, output=Recorder(demo_core, demo_profile()).sink(out))
    root = read(out).nbo
    assert root is not None
    assert validate_nbo(root, 1).errors == ()


# --- the spinning-disk confocal rig --------------------------------------------------------


class ObisLikeLaser(GenericDevice):
    """A laser whose power setpoint is in W, as Coherent OBIS lasers report it."""

    def __init__(self) -> None:
        super().__init__()
        self._power_w = 0.01

    @pymm_property(limits=(0.0, 0.1), name="PowerW")
    def power_w(self) -> float:
        return self._power_w

    @power_w.setter
    def _set_power_w(self, value: float) -> None:
        self._power_w = float(value)


class DiskUnit(StateDevice):
    """A spinning-disk unit with two pinhole disks, spinning at a fixed speed."""

    def __init__(self) -> None:
        super().__init__({0: "Disk 1", 1: "Disk 2"})
        self._state = 0

    def get_state(self) -> int:
        return self._state

    def set_state(self, position: int) -> None:
        self._state = int(position)

    @pymm_property(name="SpeedRPM")
    def speed_rpm(self) -> float:
        return 4000.0


#: channel preset -> (laser power in W, camera gain, disk label)
CONFOCAL_CHANNELS = {"GFP-50": ("0.02", "2", "Disk 1"), "GFP-25": ("0.05", "4", "Disk 2")}


def confocal_profile(base_dir: Path, max_age_days: float = 365) -> Profile:
    """The demo objectives, emission filters, dichroics and camera plus laser, disks, CSU."""
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    keep_kinds = {"objective", "dichroic", "detector", "stage"}
    data["components"] = [
        {**c, "extra": DEMO_FACTS.get(c["id"])} for c in data["components"]
        if c["kind"] in keep_kinds or c["id"].startswith("em-chroma-hq")]
    data["bindings"] = [b for b in data["bindings"]
                        if b["device"] in ("Objective", "Emission", "Dichroic", "Camera")]
    data["bindings"][1]["labels"] = {k: v for k, v in data["bindings"][1]["labels"].items()
                                     if v is None or v.startswith("em-chroma-hq")}
    camera = next(c for c in data["components"] if c["id"] == "cam-demo")
    camera.update(detector_type="CMOS", pixel_size_um=6.5, bit_depth=16, extra={
        "CatalogNumber": "DCam", "CameraSettings.AmplificationGain": 1,
        "CameraSettings.SensorExposureMode": "Rolling shutter",
        "CameraSettings.PixelReadOutRate": 200, "CameraSettings.PixelReadOutRateUnit": "MHz"})
    pinhole = {"kind": "pinhole", "manufacturer": "Yokogawa", "model": "CSU-W1 disk"}
    data["components"] += [
        {"kind": "laser", "id": "laser-488", "manufacturer": "Coherent", "model": "OBIS 488 LX",
         "catalog_number": "1178769", "wavelength_nm": 488, "rated_power_mw": 100,
         "laser_type": "Semiconductor",
         "extra": {"Tuneable": False, "Pulse": False, "ModulationMechanism": "Direct"}},
        {**pinhole, "id": "ph-50", "catalog_number": "CSU-W1-50", "diameter_um": 50,
         "pitch_um": 500},
        {**pinhole, "id": "ph-25", "catalog_number": "CSU-W1-25", "diameter_um": 25,
         "pitch_um": 250},
        {"kind": "spinning_disk", "id": "csu-w1", "manufacturer": "Yokogawa", "model": "CSU-W1",
         "pinholes": ["ph-50", "ph-25"], "extra": {"SingleDisk": False}},
    ]
    data["bindings"] += [
        {"device": "Laser488", "role": "light_source", "component": "laser-488",
         "settings": {"power": {"property": "PowerW", "unit": "W"}}},
        {"device": "Disk", "role": "pinhole", "labels": {"Disk 1": "ph-50", "Disk 2": "ph-25"}},
        {"device": "Disk", "role": "spinning_disk", "component": "csu-w1",
         "settings": {"speed": {"property": "SpeedRPM", "unit": "rpm"}}},
    ]
    data["microscope"].update(DEMO_STAND)
    data["channel_defaults"] = {"illumination_type": "Epifluorescence",
                                "contrast_method": "Fluorescence",
                                "acquisition_mode": "SpinningDiskConfocal"}
    data["channels"] = {name: {"fluor": "EGFP", "color": "00FF00"} for name in CONFOCAL_CHANNELS}
    data["environment"] = {"temperature_c": 37, "co2_percent": 5, "humidity_percent": 90}
    (base_dir / "flatfield_488.tif").write_bytes(b"")
    data["calibration_max_age_days"] = max_age_days
    data["calibrations"] = [
        {"id": "power-488", "kind": "light_power", "component": "laser-488",
         "date": "2020-01-15", "tool": "Thorlabs PM100D with S170C",
         "measured": {"power_at_sample": {"value": 12.5, "unit": "mW"},
                      "setpoint": {"value": 50, "unit": "%"},
                      "wavelength": {"value": 488.5, "unit": "nm"}}},
        {"id": "psf-10x", "kind": "psf", "component": "obj-nikon-10x-sfluor",
         "date": (TODAY - datetime.timedelta(days=10)).isoformat(),
         "measured": {"median_fwhm_xy": {"value": 0.62, "unit": "µm"},
                      "sample_size": {"value": 40, "unit": ""}}},
        {"id": "chroma-488-561", "kind": "chromatic_registration",
         "date": (TODAY - datetime.timedelta(days=3)).isoformat(),
         "measured": {"reference_wavelength": {"value": 488, "unit": "nm"},
                      "test_wavelength": {"value": 561, "unit": "nm"},
                      "x_shift": {"value": 0.035, "unit": "µm"}}},
        {"id": "flat-488", "kind": "field_uniformity", "file": "flatfield_488.tif",
         "date": (TODAY - datetime.timedelta(days=3)).isoformat(),
         "measured": {"mean_max_to_corner_ratio": {"value": 1.3, "unit": ""}}},
    ]
    return parse_profile(data, "confocal test profile")


@pytest.fixture(scope="module")
def confocal_core() -> Iterator[Any]:
    core = load_core("demo")
    core.loadPyDevice("Laser488", ObisLikeLaser())
    core.loadPyDevice("Disk", DiskUnit())
    core.initializeDevice("Laser488")
    core.initializeDevice("Disk")
    for preset, (power, gain, disk) in CONFOCAL_CHANNELS.items():
        core.defineConfig("Confocal", preset, "Laser488", "PowerW", power)
        core.defineConfig("Confocal", preset, "Camera", "Gain", gain)
        core.defineConfig("Confocal", preset, "Disk", "Label", disk)
    yield core
    core.unloadAllDevices()


@pytest.fixture(scope="module")
def confocal_file(confocal_core, tmp_path_factory) -> Path:
    """One confocal recording (2 channels x 2 z), shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("confocal")
    profile = confocal_profile(folder)
    check_calibration_files(profile, folder)
    check_nbo_profile(profile)
    out = folder / "confocal.ome.tif"
    seq = useq.MDASequence(
        channels=[{"config": name, "group": "Confocal"} for name in CONFOCAL_CHANNELS],
        z_plan={"range": 1, "step": 1}, metadata=STUDY)
    sink = Recorder(confocal_core, profile).sink(out)
    confocal_core.mda.run(seq, output=sink)
    sink.raise_if_failed()
    return out


def test_confocal_channels_carry_their_laser_power_gain_and_pinhole(confocal_file):
    root = read(confocal_file).nbo
    assert root is not None
    ids = by_id(root)
    for name, (power_w, gain, disk) in CONFOCAL_CHANNELS.items():
        ch = channel(root, name)
        assert ch.get("IlluminationType") == "Confocal_Fluorescence_spinning disk"
        path = ch.find("n:LightPath", NS)
        assert path is not None
        source = path.find("n:LightSourceSettings", NS)
        assert source is not None and source.get("ID") == "LightSource:laser-488"
        assert float(source.get("IlluminationPowerSettings", "")) == pytest.approx(
            float(power_w) * 1000)
        assert source.get("lluminationPowerSettingsUnit") == "mW"  # the XSD's spelling
        camera = path.find("n:CameraSettings", NS)
        assert camera is not None and float(camera.get("AnalogGain", "")) == float(gain)
        assert camera.get("SensorExposureMode") == "Rolling shutter"
        assert camera.get("EffectiveBitDepth") == "16bit"
        (aperture,) = path.iterfind("n:ApertureRef", NS)
        pinhole = ids[aperture.get("ID", "")]
        expected = {"Disk 1": "50.0", "Disk 2": "25.0"}[disk]
        assert (pinhole.get("MaxDiameter"), pinhole.get("MaxDiameterUnit")) == (expected, "µm")
        fluorophore = ch.find("n:Fluorophore", NS)
        assert fluorophore is not None and fluorophore.get("Name") == "EGFP"
        assert fluorophore.get("CatalogNumber") == "D3571"


def test_confocal_record_validates_and_lists_what_higher_tiers_defer(confocal_file, ome_schema):
    ome_schema.validate(read_ome_xml(confocal_file))
    root = read(confocal_file).nbo
    assert root is not None
    assert unresolved_references(root) == []
    tier1 = validate_nbo(root, 1)
    assert tier1.ok, tier1.errors
    deferred = {(d.element, d.attribute or d.child) for d in tier1.deferred}
    assert ("SpinningDisk", "NrOfScanPoints") in deferred
    (dimension,) = root.iterfind(".//n:Pixels/n:AdditionalDimensionMap", NS)
    assert dimension.get("Size") == "1"  # the XSD requires one map; this image has no extra
    assert not validate_nbo(root, 2).ok
    summary_ = compliance(confocal_file)
    assert summary_["tier reached"] == "1"
    assert summary_["tier reached with unknown placeholders"] == "1"
    assert summary_["stale calibrations"] == "power-488 (2020-01-15)"
    for extension in ("core", "basic"):
        assert "tier 1:" in summary_[f"{extension} MUST attributes"]
    disk = root.find(".//n:SpinningDisk", NS)
    assert disk is not None and disk.get("SingleDisk") == "false"


def test_calibrations_become_nbo_elements_and_are_flagged_stale(confocal_file):
    root = read(confocal_file).nbo
    assert root is not None
    maps = [{m.get("K"): m.text for m in a.iterfind("n:Value/n:M", NS)} | {"ID": a.get("ID")}
            for a in root.iterfind("n:StructuredAnnotations/n:MapAnnotation", NS)]
    by_calibration = {m["id"]: m for m in maps if "kind" in m}
    image_refs = {r.get("ID") for r in root.iterfind("n:Image/n:AnnotationRef", NS)}
    assert {m["ID"] for m in by_calibration.values()} <= image_refs
    assert by_calibration["power-488"]["stale"].startswith("yes: ")
    assert by_calibration["flat-488"]["stale"].startswith("no: ")
    assert by_calibration["flat-488"]["file"] == "flatfield_488.tif"
    for name in CONFOCAL_CHANNELS:
        (power,) = channel(root, name).iterfind("n:ExcitationCalibration", NS)
        assert power.get("ID", "").startswith("ExcitationCalibration:power-488:")
        assert power.get("ObseredIlluminationPowerAtSample") == "12.5"
        assert power.get("ObseredIlluminationPowerAtSampleUnit") == "mW"
        assert power.get("PercentageNominalPowerSettings") == "50.0"
        assert power.get("Date") == "2020-01-15"
        assert "Thorlabs PM100D" in power.get("Method", "")
    optical = {o.get("ID", "").split(":")[1]: o
               for o in root.iterfind(".//n:Image/n:OpticalCalibration", NS)}
    assert set(optical) == {"psf-10x", "chroma-488-561", "flat-488"}
    assert optical["psf-10x"].get("MedianXYSpotSize_FWHM") == "620.0"
    assert optical["psf-10x"].get("MedianXYSpotSize_FWHMUnit") == "nm"
    shift = optical["chroma-488-561"].find("n:ChromaticRegistrationEvaluation", NS)
    assert shift is not None and shift.get("XChromaticShift_RT") == "35.0"
    assert optical["flat-488"].find("n:FieldUniformityEvaluation", NS) is not None


def test_write_read_write_round_trip_is_lossless(confocal_file, tmp_path):
    original = read(confocal_file)
    assert original.nbo is not None
    canonical = ET.canonicalize(nbo_text(original.nbo), strip_text=True)
    with tifffile.TiffFile(confocal_file) as tf:
        pixels = np.stack([page.asarray() for page in tf.pages])
    rewritten = tmp_path / "rewritten.ome.tif"
    tifffile.imwrite(rewritten, pixels, photometric="minisblack", metadata=None,
                     description=ome_types.to_xml(original.ome).encode())
    again = read(rewritten)
    assert again.nbo is not None
    assert ET.canonicalize(nbo_text(again.nbo), strip_text=True) == canonical
    assert again.ome == original.ome
    assert again.pages == original.pages


def test_bioformats_keeps_the_nbo_record(confocal_file):
    from tests.helpers import bioformats_ome_xml

    kept = nbo_record(bioformats_ome_xml(confocal_file))
    original = read(confocal_file).nbo
    assert kept is not None and original is not None
    assert (ET.canonicalize(nbo_text(kept), strip_text=True)
            == ET.canonicalize(nbo_text(original), strip_text=True))


# --- scale ---------------------------------------------------------------------------------


def test_100k_planes_each_get_their_nbo_plane(demo_core, tmp_path):
    """Scale: every plane is written (the time it takes is measured by benchmarks/)."""
    sink = Recorder(demo_core, demo_profile()).sink(tmp_path / "seed.ome.tif")
    demo_core.mda.run(useq.MDASequence(channels=["DAPI", "FITC"]), output=sink)
    run = sink.run
    assert run is not None
    frames = [dataclasses.replace(run.frames[i % 2], index=i, c=i % 2, z=(i // 2) % 50,
                                  t=i // 100, elapsed_ms=i * 2.0)
              for i in range(100_000)]
    big = Run(start=run.start, snapshots=run.snapshots, frames=frames, stop=run.stop)
    text = build_nbo_xml(big, demo_profile())
    assert text.count("<Plane ") == 100_000
    assert 'ID="Plane:0:99999"' in text


# --- bad input -----------------------------------------------------------------------------


def _with(data_edit: dict[str, Any], index: int | None = None) -> Profile:
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    if index is None:
        data.update(data_edit)
    else:
        data["components"][index].update(data_edit)
    return parse_profile(data, "bad.yaml")


def test_enum_outside_nbo_values_names_field_and_allowed_values():
    with pytest.raises(ProfileError) as info:
        check_nbo_profile(_with({"extra": {"CoatingMethod": "Hard"}}, index=3))
    message = str(info.value)
    assert "components[3].extra.CoatingMethod" in message
    assert "'HardCoated', 'SoftCoated', 'Other'" in message


def test_extra_contradicting_a_profile_field_is_named():
    with pytest.raises(ProfileError, match=r"components\[0\]\.extra\.LensNA: 0\.9 contradicts "
                                           r"the profile's own '0\.5'"):
        check_nbo_profile(_with({"extra": {"LensNA": 0.9}}, index=0))


def test_stand_laser_medium_bit_depth_and_booleans_are_checked():
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    data["microscope"]["extra"] = {"Type": "Inverted"}
    data["components"].append({"kind": "laser", "id": "bad-laser", "laser_medium": "Argon",
                               "extra": {"Tuneable": "maybe"}})
    camera = next(c for c in data["components"] if c["id"] == "cam-demo")
    camera["bit_depth"] = 10
    with pytest.raises(ProfileError) as info:
        check_nbo_profile(parse_profile(data, "bad.yaml"))
    message = str(info.value)
    assert "microscope.extra.Type: 'Inverted' is not an NBO v2.01" in message
    assert "'Compound'" in message
    assert "laser_medium: 'Argon'" in message and "'Ar'" in message
    assert "extra.Tuneable: 'maybe' is not a valid boolean" in message
    assert "bit_depth: 10 bit" in message and "8, 12, 14, 16, 32, 64" in message


def test_profile_enums_outside_ome_vocabulary_name_the_allowed_values():
    with pytest.raises(ProfileError) as info:
        _with({"correction": "SuperPlan"}, index=0)
    assert "components[0].correction" in str(info.value)
    assert "'PlanApo'" in str(info.value)


def test_wrong_unit_and_type_name_the_field():
    with pytest.raises(ProfileError, match=r"components\[0\]\.lens_na"):
        _with({"lens_na": "high"}, index=0)
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    data["bindings"][-1]["settings"]["gain"]["unit"] = "nm"
    with pytest.raises(ProfileError, match=r"bindings\[\d+\]\.settings\.gain\.unit"):
        parse_profile(data, "bad.yaml")
    data = yaml.safe_load(DEMO_PROFILE.read_text())
    data["calibrations"] = [{"id": "p", "kind": "light_power", "date": "2024-01-01",
                             "measured": {"power_at_sample": {"value": 3, "unit": "nm"}}}]
    with pytest.raises(ProfileError, match=r"calibrations\[0\]\.measured\.power_at_sample\.unit: "
                                           r"'nm' measures wavelength"):
        check_nbo_profile(parse_profile(data, "bad.yaml"))


def test_missing_calibration_file_is_named(tmp_path):
    profile = confocal_profile(tmp_path)
    check_calibration_files(profile, tmp_path)
    (tmp_path / "flatfield_488.tif").unlink()
    with pytest.raises(ProfileError) as info:
        check_calibration_files(profile, tmp_path)
    assert "calibrations[3].file" in str(info.value)
    assert str(tmp_path / "flatfield_488.tif") in str(info.value)


def test_study_metadata_outside_nbo_values_is_named():
    problems = study_problems({"nbo": {"Sample": {"SampleType": "Cells", "LiveSample": "no"}}})
    assert any(p.startswith("metadata.nbo.Sample.SampleType: 'Cells'") and "'Cell'" in p
               for p in problems)
    assert any("metadata.nbo.Sample.LiveSample" in p for p in problems)
    assert study_problems(STUDY) == []


# --- calibration ages and vocabularies -------------------------------------------------------


def test_stale_calibrations_use_the_run_date(tmp_path):
    profile = confocal_profile(tmp_path)
    stale = stale_calibrations(profile, TODAY)
    assert [(s.calibration.id, s.max_age_days) for s in stale] == [("power-488", 365)]
    assert stale_calibrations(profile, datetime.date(2020, 6, 1)) == []
    unlimited = profile.model_copy(update={"calibration_max_age_days": None})
    assert stale_calibrations(unlimited, TODAY) == []
    assert summary(profile.calibrations[0], TODAY, None)["stale"].startswith("not checked")


def test_ome_vocabularies_map_onto_nbo_values():
    assert set(nbo_elements.CORRECTION.values()) <= set(allowed_values("Objective", "Correction"))
    assert {c.value for c in Correction} == set(nbo_elements.CORRECTION)
    assert set(nbo_elements.IMMERSION_TYPE.values()) <= set(allowed_values("Objective",
                                                                           "ImmersionType"))
    assert {i.value for i in Immersion} - set(nbo_elements.IMMERSION_TYPE) == {"Oil"}
    assert set(nbo_elements.IMMERSION_LIQUID.values()) <= set(
        allowed_values("ImmersionLiquid", "Type"))
    for mapping, element, attribute in (
        (nbo_elements.FILTER_TYPE, "EmissionFilter", "Type"),
        (nbo_elements.LASER_TYPE, "Laser", "Type"),
        (nbo_elements.ARC_TYPE, "Arc", "Type"),
        (nbo_elements.STAND_TYPE, "InvertedMicroscopeStand", "Type"),
        (nbo_elements.CONTRAST_METHOD, "Channel", "ContrastMethod"),
        (nbo_elements.IMAGING_METHOD_BY_MODE, "Channel", "IlluminationType"),
        (nbo_elements.TRANSMITTED_METHOD, "Channel", "IlluminationType"),
    ):
        assert set(mapping.values()) <= set(allowed_values(element, attribute)), attribute
    for element, fixed in nbo_elements.DETECTOR_ELEMENT.values():
        for attribute, value in fixed.items():
            assert value in allowed_values(element, attribute)


def test_unknown_markers_only_fill_required_free_text():
    start = RunStart(started_at="2026-01-02T03:04:05.000+00:00", profile={}, sequence={},
                     width=8, height=8, dtype="uint16", camera="Camera",
                     versions={"nbo-recorder": "0.1.0"})
    run = Run(start=start, snapshots={0: StateSnapshot(uid=0, values={}, elapsed_s=0.0,
                                                       trigger="test")})
    run.frames.append(FrameRecord(0, 0, 0, 0, 0, None, 0.0, 1.0, None, None, None, 1.0, 0))
    root = ET.fromstring(build_nbo_xml(run, demo_profile()))
    marked = {(e.tag.rsplit("}", 1)[-1], k) for e in root.iter() for k, v in e.attrib.items()
              if v == UNKNOWN_TEXT}
    assert marked == {("Experiment", "LabellingMethod"), ("Sample", "Name"),
                      ("Sample", "Organism"), ("Fluorophore", "Manufacturer"),
                      ("Fluorophore", "Model"), ("Fluorophore", "CatalogNumber")}

