"""Hardware profiles: the rig in NBO terms, and how Micro-Manager devices bind to it.

A profile (``hardware_profiles/*.yaml``) says two things Micro-Manager cannot know:

* **components** — the static specs of the physical parts (objective NA, filter cut-in,
  laser line, sensor type), each with an ``id`` and a ``kind``;
* **bindings** — how Micro-Manager devices reveal which component is in use and with which
  settings: a state device's labels name components (turret label -> Objective), and device
  properties carry settings with their unit (camera ``Gain`` -> detector gain, a laser's
  power property in W -> light-source power in mW).

Loading validates types, units, enums (OME 2016-06 vocabularies) and every cross-reference,
and reports errors as ``file: path.to.field: message``. :func:`check_against_core` then checks
the bindings against a loaded Micro-Manager core before an acquisition starts.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nbo_recorder.units import KNOWN_UNITS, UnitError, quantity_of


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the field and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- OME 2016-06 vocabularies (the values Bio-Formats and OMERO understand) -----------------


class MicroscopeType(str, Enum):
    UPRIGHT = "Upright"
    INVERTED = "Inverted"
    DISSECTION = "Dissection"
    ELECTROPHYSIOLOGY = "Electrophysiology"
    OTHER = "Other"


class Immersion(str, Enum):
    OIL = "Oil"
    WATER = "Water"
    WATER_DIPPING = "WaterDipping"
    AIR = "Air"
    MULTI = "Multi"
    GLYCEROL = "Glycerol"
    OTHER = "Other"


class Correction(str, Enum):
    UV = "UV"
    PLAN_APO = "PlanApo"
    PLAN_FLUOR = "PlanFluor"
    SUPER_FLUOR = "SuperFluor"
    VIOLET_CORRECTED = "VioletCorrected"
    ACHRO = "Achro"
    ACHROMAT = "Achromat"
    FLUOR = "Fluor"
    FL = "Fl"
    FLUAR = "Fluar"
    NEOFLUAR = "Neofluar"
    FLUOTAR = "Fluotar"
    APO = "Apo"
    PLAN_NEOFLUAR = "PlanNeofluar"
    OTHER = "Other"


class FilterType(str, Enum):
    DICHROIC = "Dichroic"
    LONG_PASS = "LongPass"
    SHORT_PASS = "ShortPass"
    BAND_PASS = "BandPass"
    MULTI_PASS = "MultiPass"
    NEUTRAL_DENSITY = "NeutralDensity"
    TUNEABLE = "Tuneable"
    OTHER = "Other"


class DetectorType(str, Enum):
    CCD = "CCD"
    INTENSIFIED_CCD = "IntensifiedCCD"
    ANALOG_VIDEO = "AnalogVideo"
    PMT = "PMT"
    PHOTODIODE = "Photodiode"
    SPECTROSCOPY = "Spectroscopy"
    LIFETIME_IMAGING = "LifetimeImaging"
    CORRELATION_SPECTROSCOPY = "CorrelationSpectroscopy"
    FTIR = "FTIR"
    EMCCD = "EMCCD"
    APD = "APD"
    CMOS = "CMOS"
    EBCCD = "EBCCD"
    OTHER = "Other"


class IlluminationType(str, Enum):
    TRANSMITTED = "Transmitted"
    EPIFLUORESCENCE = "Epifluorescence"
    OBLIQUE = "Oblique"
    NON_LINEAR = "NonLinear"
    OTHER = "Other"


class ContrastMethod(str, Enum):
    BRIGHTFIELD = "Brightfield"
    PHASE = "Phase"
    DIC = "DIC"
    HOFFMAN_MODULATION = "HoffmanModulation"
    OBLIQUE_ILLUMINATION = "ObliqueIllumination"
    POLARIZED_LIGHT = "PolarizedLight"
    DARKFIELD = "Darkfield"
    FLUORESCENCE = "Fluorescence"
    OTHER = "Other"


class AcquisitionMode(str, Enum):
    WIDE_FIELD = "WideField"
    LASER_SCANNING_CONFOCAL = "LaserScanningConfocalMicroscopy"
    SPINNING_DISK_CONFOCAL = "SpinningDiskConfocal"
    SLIT_SCAN_CONFOCAL = "SlitScanConfocal"
    MULTI_PHOTON = "MultiPhotonMicroscopy"
    STRUCTURED_ILLUMINATION = "StructuredIllumination"
    SINGLE_MOLECULE_IMAGING = "SingleMoleculeImaging"
    TIRF = "TotalInternalReflection"
    FLUORESCENCE_LIFETIME = "FluorescenceLifetime"
    SPECTRAL_IMAGING = "SpectralImaging"
    FCS = "FluorescenceCorrelationSpectroscopy"
    NEAR_FIELD = "NearFieldScanningOpticalMicroscopy"
    SECOND_HARMONIC = "SecondHarmonicGenerationImaging"
    PALM = "PALM"
    STORM = "STORM"
    STED = "STED"
    TIRF_ALT = "TIRF"
    FSM = "FSM"
    LCM = "LCM"
    OTHER = "Other"
    BRIGHT_FIELD = "BrightField"
    SWEPT_FIELD_CONFOCAL = "SweptFieldConfocal"
    SPIM = "SPIM"


class LaserType(str, Enum):
    EXCIMER = "Excimer"
    GAS = "Gas"
    METAL_VAPOR = "MetalVapor"
    SOLID_STATE = "SolidState"
    DYE = "Dye"
    SEMICONDUCTOR = "Semiconductor"
    FREE_ELECTRON = "FreeElectron"
    OTHER = "Other"


class ArcType(str, Enum):
    HG = "Hg"
    XE = "Xe"
    HGXE = "HgXe"
    OTHER = "Other"


# --- components --------------------------------------------------------------------------

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Wavelength = Annotated[float, Field(gt=0, lt=100_000, allow_inf_nan=False)]


class ComponentBase(_Strict):
    """What every physical part has: an identity and where its specs come from."""

    id: Annotated[str, Field(min_length=1, pattern=r"^\S+$")]
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    catalog_number: str | None = None
    serial_number: str | None = None
    lot_number: str | None = None
    source: str | None = Field(
        default=None, description="Where the specs come from (datasheet, catalogue page)."
    )
    extra: dict[str, str | bool | int | float | None] | None = Field(
        default=None,
        description="Fields from an imported record (e.g. a Micro-Meta App component) that the "
        "profile model has no place for, kept for round trips; nested values are flattened to "
        "keys like 'TransmittanceRange[0].Wavelength'.",
    )


class Objective(ComponentBase):
    kind: Literal["objective"]
    nominal_magnification: PositiveFloat | None = None
    calibrated_magnification: PositiveFloat | None = None
    lens_na: Annotated[float, Field(gt=0, le=1.7)] | None = None
    immersion: Immersion | None = None
    correction: Correction | None = None
    working_distance_um: PositiveFloat | None = None
    immersion_refractive_index: Annotated[float, Field(ge=1.0, le=2.0)] | None = None
    iris: bool | None = None


class TransmittanceRange(_Strict):
    cut_in_nm: Wavelength | None = None
    cut_out_nm: Wavelength | None = None
    cut_in_tolerance_nm: PositiveFloat | None = None
    cut_out_tolerance_nm: PositiveFloat | None = None
    transmittance: Annotated[float, Field(ge=0, le=1)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TransmittanceRange:
        if self.cut_in_nm is not None and self.cut_out_nm is not None:
            if self.cut_out_nm <= self.cut_in_nm:
                raise ValueError(
                    f"cut_out_nm ({self.cut_out_nm}) must be above cut_in_nm ({self.cut_in_nm})"
                )
        return self


class Filter(ComponentBase):
    kind: Literal["filter"]
    filter_type: FilterType | None = None
    center_wavelength_nm: Wavelength | None = None
    transmittance_range: TransmittanceRange | None = None
    filter_wheel: str | None = None


class Dichroic(ComponentBase):
    kind: Literal["dichroic"]
    cut_on_nm: Wavelength | None = None


class FilterSet(ComponentBase):
    kind: Literal["filter_set"]
    excitation_filters: tuple[str, ...] = ()
    dichroic: str | None = None
    emission_filters: tuple[str, ...] = ()


class _LightSourceBase(ComponentBase):
    rated_power_mw: PositiveFloat | None = None


class Laser(_LightSourceBase):
    kind: Literal["laser"]
    wavelength_nm: Wavelength | None = None
    laser_type: LaserType | None = None
    laser_medium: str | None = None


class LED(_LightSourceBase):
    kind: Literal["led"]
    wavelength_nm: Wavelength | None = None


class Arc(_LightSourceBase):
    kind: Literal["arc"]
    arc_type: ArcType | None = None


class GenericLightSource(_LightSourceBase):
    """A light source whose kind the profile does not state (OME GenericExcitationSource)."""

    kind: Literal["generic_light_source"]


class Detector(ComponentBase):
    kind: Literal["detector"]
    detector_type: DetectorType | None = None
    pixel_size_um: PositiveFloat | None = None
    sensor_width_px: Annotated[int, Field(gt=0)] | None = None
    sensor_height_px: Annotated[int, Field(gt=0)] | None = None
    bit_depth: Annotated[int, Field(gt=0, le=64)] | None = None


class Pinhole(ComponentBase):
    """One pinhole pattern, e.g. one disk of a spinning-disk unit."""

    kind: Literal["pinhole"]
    diameter_um: PositiveFloat | None = None
    pitch_um: PositiveFloat | None = None


class SpinningDisk(ComponentBase):
    kind: Literal["spinning_disk"]
    pinholes: tuple[str, ...] = ()


class Stage(ComponentBase):
    kind: Literal["stage"]
    axes: Literal["z", "xy", "xyz"]
    min_um: tuple[float, ...] | None = None
    max_um: tuple[float, ...] | None = None


Component = Annotated[
    Objective | Filter | Dichroic | FilterSet | Laser | LED | Arc | GenericLightSource | Detector
    | Pinhole | SpinningDisk | Stage,
    Field(discriminator="kind"),
]

LIGHT_SOURCE_KINDS = frozenset({"laser", "led", "arc", "generic_light_source"})

# --- bindings ----------------------------------------------------------------------------

#: setting name -> (quantity it measures, component kinds it applies to)
SETTINGS: dict[str, tuple[str, frozenset[str]]] = {
    "gain": ("dimensionless", frozenset({"detector"})),
    "offset": ("dimensionless", frozenset({"detector"})),
    "binning": ("dimensionless", frozenset({"detector"})),
    "readout_rate": ("frequency", frozenset({"detector"})),
    "bit_depth": ("dimensionless", frozenset({"detector"})),
    "temperature": ("temperature", frozenset({"detector"})),
    "em_gain": ("dimensionless", frozenset({"detector"})),
    "power": ("power", LIGHT_SOURCE_KINDS),
    "intensity": ("percent", LIGHT_SOURCE_KINDS),
    "attenuation": ("fraction", LIGHT_SOURCE_KINDS),
    "wavelength": ("wavelength", LIGHT_SOURCE_KINDS),
    "enabled": ("dimensionless", LIGHT_SOURCE_KINDS),
    "speed": ("rotation", frozenset({"spinning_disk"})),
}


class PropertySource(_Strict):
    """A device property that carries one setting, and the unit the device reports it in."""

    property: Annotated[str, Field(min_length=1)]
    unit: str | None = None
    true_values: tuple[str, ...] = ("On", "ON", "on", "1", "True", "true", "Yes")
    test_values: tuple[str, ...] = Field(
        default=(),
        description="Values (in the device's unit) the conformance suite sets; when empty it "
        "tries the allowed values, or lowest, middle and highest within the property limits.",
    )

    @field_validator("test_values", mode="before")
    @classmethod
    def _values_as_text(cls, values: Any) -> Any:
        # YAML numbers become text; YAML booleans (On/Off unquoted) stay and are refused,
        # since the device's spelling of them cannot be recovered
        if isinstance(values, list | tuple):
            return tuple(str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                         for v in values)
        return values

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str | None) -> str | None:
        if unit is not None and unit not in KNOWN_UNITS:
            raise ValueError(f"unknown unit {unit!r}; known units: {sorted(KNOWN_UNITS)}")
        return unit


class LabelTarget(_Strict):
    """What one state-device label selects: a component, optionally with a fixed setting."""

    component: str
    wavelength_nm: Wavelength | None = None


class ActiveWhen(_Strict):
    """A light source counts as in the light path only while this property has these values."""

    device: str
    property: str
    equals: tuple[str, ...]


Role = Literal[
    "objective",
    "excitation_filter",
    "emission_filter",
    "dichroic",
    "filter_set",
    "light_source",
    "pinhole",
    "detector",
    "spinning_disk",
]


class Binding(_Strict):
    """How one Micro-Manager device reveals components and settings.

    ``labels`` (state devices): label -> component id, ``{component, wavelength_nm}``, or
    ``null`` for a position that is known to hold nothing worth recording. ``component`` +
    ``settings``: property-borne settings of one component.
    """

    device: Annotated[str, Field(min_length=1)]
    role: Role
    labels: dict[str, LabelTarget | None] | None = None
    component: str | None = None
    settings: dict[str, PropertySource] = Field(default_factory=dict)
    active_when: ActiveWhen | None = None
    power_cap_mw: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        default=None,
        description="Highest light-source power (mW) the conformance suite may set without "
        "--allow-unsafe; absent means 0 mW. Without --allow-unsafe emission is never switched "
        "on, whatever the cap.",
    )

    @field_validator("labels", mode="before")
    @classmethod
    def _shorthand(cls, labels: Any) -> Any:
        if isinstance(labels, dict):
            return {k: ({"component": v} if isinstance(v, str) else v) for k, v in labels.items()}
        return labels

    @model_validator(mode="after")
    def _shape(self) -> Binding:
        if self.labels is None and self.component is None:
            raise ValueError("a binding needs 'labels' (state device) or 'component'")
        if self.labels is not None and self.component is not None:
            raise ValueError("a binding has either 'labels' or 'component', not both")
        return self


class ChannelInfo(_Strict):
    """What the profile knows about a channel preset (keyed by the preset name)."""

    fluor: str | None = None
    color: Annotated[str, Field(pattern=r"^#?[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?$")] | None = None
    illumination_type: IlluminationType | None = None
    contrast_method: ContrastMethod | None = None
    acquisition_mode: AcquisitionMode | None = None


CalibrationKind = Literal[
    "light_power", "psf", "chromatic_registration", "field_uniformity", "pixel_size", "other"
]


class CalibrationRecord(_Strict):
    """A calibration or performance measurement the rig's metadata should cite.

    ``measured`` holds the values as ``name: {value, unit}`` or plain text; ``file`` is a
    result file (e.g. a field-uniformity map), resolved relative to the profile.
    """

    id: Annotated[str, Field(min_length=1, pattern=r"^\S+$")]
    kind: CalibrationKind
    date: datetime.date
    tool: str | None = None
    component: str | None = None
    measured: dict[str, MeasuredValue | str] = Field(default_factory=dict)
    file: str | None = None
    notes: str | None = None


class MeasuredValue(_Strict):
    value: Annotated[float, Field(allow_inf_nan=False)]
    unit: str

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str) -> str:
        if unit not in KNOWN_UNITS:
            raise ValueError(f"unknown unit {unit!r}; known units: {sorted(KNOWN_UNITS)}")
        return unit


class ImagingEnvironment(_Strict):
    """Environment control settings stated by the profile (OME ImagingEnvironment)."""

    temperature_c: Annotated[float, Field(ge=-100, le=200)] | None = None
    co2_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    humidity_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    air_pressure_hpa: Annotated[float, Field(gt=0, le=2000)] | None = None


class Microscope(_Strict):
    """The stand."""

    type: MicroscopeType | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    lot_number: str | None = None
    source: str | None = None
    extra: dict[str, str | bool | int | float | None] | None = Field(
        default=None,
        description="Stand facts the profile model has no field for, keyed like a component's "
        "'extra' (e.g. the NBO stand 'Type', 'CatalogNumber', 'Origin').",
    )


class Profile(_Strict):
    """A whole rig description."""

    schema_version: Literal[1] = 1
    name: str
    description: str | None = None
    microscope: Microscope = Field(default_factory=Microscope)
    components: tuple[Component, ...] = ()
    bindings: tuple[Binding, ...] = ()
    channel_defaults: ChannelInfo = Field(default_factory=ChannelInfo)
    channels: dict[str, ChannelInfo] = Field(default_factory=dict)
    todo: tuple[str, ...] = Field(
        default=(),
        description="Static specs or bindings a human still has to supply (written by "
        "'profile init' / 'profile import-micrometa'; listed by 'profile check').",
    )
    environment: ImagingEnvironment | None = None
    calibrations: tuple[CalibrationRecord, ...] = ()
    calibration_max_age_days: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="Calibrations older than this are flagged stale."
    )

    @model_validator(mode="after")
    def _references(self) -> Profile:
        problems: list[str] = []
        seen: dict[str, int] = {}
        for i, comp in enumerate(self.components):
            if comp.id in seen:
                problems.append(
                    f"components[{i}].id: duplicate id {comp.id!r} "
                    f"(also components[{seen[comp.id]}])"
                )
            seen.setdefault(comp.id, i)
        kinds = {c.id: c.kind for c in self.components}

        def need(path: str, ref: str | None, allowed: Iterable[str]) -> None:
            allowed = tuple(allowed)
            if ref is None:
                return
            if ref not in kinds:
                problems.append(f"{path}: unknown component id {ref!r}")
            elif kinds[ref] not in allowed:
                problems.append(
                    f"{path}: {ref!r} is a {kinds[ref]}, expected one of {sorted(allowed)}"
                )

        for i, comp in enumerate(self.components):
            if isinstance(comp, FilterSet):
                for j, ref in enumerate(comp.excitation_filters):
                    need(f"components[{i}].excitation_filters[{j}]", ref, ["filter"])
                for j, ref in enumerate(comp.emission_filters):
                    need(f"components[{i}].emission_filters[{j}]", ref, ["filter"])
                need(f"components[{i}].dichroic", comp.dichroic, ["dichroic"])
            if isinstance(comp, SpinningDisk):
                for j, ref in enumerate(comp.pinholes):
                    need(f"components[{i}].pinholes[{j}]", ref, ["pinhole"])
        for i, cal in enumerate(self.calibrations):
            need(f"calibrations[{i}].component", cal.component, _COMPONENT_TAGS)
        for i, b in enumerate(self.bindings):
            allowed = _ROLE_KINDS[b.role]
            for label, target in (b.labels or {}).items():
                if target is not None:
                    need(f"bindings[{i}].labels[{label!r}].component", target.component, allowed)
            need(f"bindings[{i}].component", b.component, allowed)
            target_kinds = (
                {kinds.get(b.component, "")}
                if b.component
                else {kinds.get(t.component, "") for t in (b.labels or {}).values() if t}
            )
            for name, src in b.settings.items():
                if name not in SETTINGS:
                    problems.append(
                        f"bindings[{i}].settings.{name}: unknown setting; known: {sorted(SETTINGS)}"
                    )
                    continue
                quantity, applies = SETTINGS[name]
                if target_kinds and not target_kinds <= applies:
                    problems.append(
                        f"bindings[{i}].settings.{name}: does not apply to {sorted(target_kinds)}"
                    )
                if src.unit is not None:
                    try:
                        got = quantity_of(src.unit)
                    except UnitError as e:
                        problems.append(f"bindings[{i}].settings.{name}.unit: {e}")
                        continue
                    if got != quantity:
                        problems.append(
                            f"bindings[{i}].settings.{name}.unit: {src.unit!r} measures {got}, "
                            f"but {name} is a {quantity}"
                        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def component(self, component_id: str) -> Component:
        """Return the component with this id (KeyError if absent)."""
        for comp in self.components:
            if comp.id == component_id:
                return comp
        raise KeyError(component_id)

    def watched_properties(self) -> list[tuple[str, str]]:
        """Every (device, property) whose value the recorder must observe, in binding order."""
        keys: list[tuple[str, str]] = []
        for b in self.bindings:
            if b.labels is not None:
                keys.append((b.device, "Label"))
            keys.extend((b.device, src.property) for src in b.settings.values())
            if b.active_when is not None:
                keys.append((b.active_when.device, b.active_when.property))
        return list(dict.fromkeys(keys))


_ROLE_KINDS: dict[str, tuple[str, ...]] = {
    "objective": ("objective",),
    "excitation_filter": ("filter",),
    "emission_filter": ("filter",),
    "dichroic": ("dichroic",),
    "filter_set": ("filter_set",),
    "light_source": tuple(LIGHT_SOURCE_KINDS),
    "pinhole": ("pinhole",),
    "detector": ("detector",),
    "spinning_disk": ("spinning_disk",),
}


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def parse_profile(data: Any, source: str = "<profile>") -> Profile:
    """Validate already-parsed profile data; errors name ``source`` and the field path."""
    if not isinstance(data, dict):
        raise ProfileError(
            f"{source}: a profile is a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(
                p for p in err["loc"] if not (isinstance(p, str) and p in _COMPONENT_TAGS)
            )
            msg = err["msg"]
            if err["type"] == "union_tag_invalid":
                msg = f"unknown component kind; known kinds: {sorted(_COMPONENT_TAGS)}"
            lines.append(f"{source}: {_format_loc(loc)}: {msg}")
        raise ProfileError("\n".join(lines)) from None


_COMPONENT_TAGS = frozenset(
    {"objective", "filter", "dichroic", "filter_set", "laser", "led", "arc",
     "generic_light_source", "detector", "pinhole", "spinning_disk", "stage"}
)


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile YAML file, merging the files it includes.

    A profile may say ``include: [relative/path.yaml, ...]``: shared component files (e.g. a
    facility's objective inventory) holding ``components:`` and optionally ``bindings:`` (and
    their own ``include:``). Paths are relative to the including file. Included components
    are added; a component of the including file with the same ``id`` overrides fields of the
    included one (deep merge of that component's mapping), and a binding of the including
    file for the same ``device`` and ``role`` replaces the included binding. Include cycles,
    unreadable include files and ids defined by two included files are errors naming both
    files.
    """
    path = Path(path)
    data, origins = _read_with_includes(path, ())
    try:
        profile = parse_profile(data, str(path))
    except ProfileError as exc:
        if not origins:
            raise
        raise ProfileError(_annotate_origins(str(exc), origins)) from None
    # what the profile model alone cannot judge: NBO vocabularies and calibration files
    from nbo_recorder.profile.calibration import check_calibration_files
    from nbo_recorder.render.nbo import check_nbo_profile

    problems: list[str] = []
    for check, args in ((check_nbo_profile, ()), (check_calibration_files, (path.parent,))):
        try:
            check(profile, *args)
        except ProfileError as exc:
            problems += [f"{path}: {line.strip()}" for line in str(exc).splitlines()]
    if problems:
        raise ProfileError("\n".join(problems))
    return profile


#: keys an included file may have (anything else would be silently lost in the merge)
_INCLUDE_KEYS = frozenset({"components", "bindings", "include", "description"})


def _read_yaml(path: Path, context: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{context}cannot read profile: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{context}not valid YAML: {exc}") from None


def _read_with_includes(
    path: Path, stack: tuple[Path, ...], included_by: str | None = None
) -> tuple[Any, dict[int, str]]:
    """The file's data with its includes merged, and per merged component where it came from."""
    context = f"{included_by}{path}: " if included_by else f"{path}: "
    data = _read_yaml(path, context)
    if not isinstance(data, dict) or "include" not in data:
        return data, {}
    data = dict(data)
    raw = data.pop("include")
    includes = [raw] if isinstance(raw, str) else raw
    if includes is None:
        includes = []
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ProfileError(f"{path}: include: expected a list of file paths, got {raw!r}")
    me = path.resolve()
    components: list[Any] = []
    origin: list[str] = []
    defined_in: dict[str, Path] = {}
    bindings: list[Any] = []
    for i, rel in enumerate(includes):
        inc = path.parent / rel
        chain = [*stack, me]
        if inc.resolve() in chain:
            cycle = " -> ".join(str(p) for p in [*chain[chain.index(inc.resolve()):], inc])
            raise ProfileError(
                f"{path}: include[{i}]: {inc} is already being included (include cycle: {cycle})"
            )
        if not inc.is_file():
            raise ProfileError(f"{path}: include[{i}]: included file {inc} not found")
        inc_data, _ = _read_with_includes(inc, (*stack, me), f"{path}: include[{i}]: ")
        if not isinstance(inc_data, dict):
            raise ProfileError(f"{path}: include[{i}]: {inc}: an included file is a mapping with "
                               f"'components:' and/or 'bindings:', got {type(inc_data).__name__}")
        unknown = sorted(set(inc_data) - _INCLUDE_KEYS)
        if unknown:
            raise ProfileError(f"{path}: include[{i}]: {inc}: an included file may only have "
                               f"{sorted(_INCLUDE_KEYS)}; found {unknown}")
        inc_components = inc_data.get("components") or []
        inc_bindings = inc_data.get("bindings") or []
        if not isinstance(inc_components, list) or not isinstance(inc_bindings, list):
            raise ProfileError(f"{path}: include[{i}]: {inc}: 'components' and 'bindings' "
                               f"must be lists")
        for j, comp in enumerate(inc_components):
            cid = comp.get("id") if isinstance(comp, dict) else None
            if isinstance(cid, str):
                if cid in defined_in:
                    raise ProfileError(
                        f"{path}: include[{i}]: component id {cid!r} is defined both in "
                        f"{defined_in[cid]} and in {inc}"
                    )
                defined_in[cid] = inc
            components.append(comp)
            origin.append(f"from {inc} components[{j}]")
        bindings.extend(inc_bindings)
    own_components = data.get("components") or []
    own_bindings = data.get("bindings") or []
    if not isinstance(own_components, list) or not isinstance(own_bindings, list):
        return data, {}  # let validation report the wrong type
    index = {c.get("id"): k for k, c in enumerate(components) if isinstance(c, dict)}
    for j, comp in enumerate(own_components):
        cid = comp.get("id") if isinstance(comp, dict) else None
        if isinstance(comp, dict) and isinstance(cid, str) and cid in index:
            k = index[cid]
            base = components[k]
            if "kind" in comp and comp["kind"] != base.get("kind"):
                raise ProfileError(
                    f"{path}: components[{j}]: id {cid!r} overrides a {base.get('kind')!r} "
                    f"from {defined_in[cid]} with kind {comp['kind']!r}"
                )
            components[k] = _deep_merge(base, comp)
            origin[k] += f", overridden by {path} components[{j}]"
        else:
            components.append(comp)
            origin.append(f"{path} components[{j}]")
    own_keys = {
        (b.get("device"), b.get("role")) for b in own_bindings if isinstance(b, dict)
    }
    merged_bindings = [
        b for b in bindings
        if not (isinstance(b, dict) and (b.get("device"), b.get("role")) in own_keys)
    ]
    data["components"] = components
    data["bindings"] = [*merged_bindings, *own_bindings]
    return data, dict(enumerate(origin))


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _annotate_origins(message: str, origins: dict[int, str]) -> str:
    """Say which file a ``components[i]`` of the merged list in a validation error is from."""
    def repl(m: re.Match[str]) -> str:
        k = int(m.group(1))
        return f"{m.group(0)} ({origins[k]})" if k in origins else m.group(0)

    return re.sub(r"components\[(\d+)\]", repl, message)


def check_against_core(profile: Profile, core: Any) -> None:
    """Raise :class:`ProfileError` if a binding names a device, property or label the core lacks.

    Run before the first frame: a binding to a device that is not loaded would otherwise
    only show up as a silent gap in the metadata.
    """
    loaded = set(core.getLoadedDevices())
    problems: list[str] = []
    for i, b in enumerate(profile.bindings):
        devices = [(b.device, f"bindings[{i}].device")]
        if b.active_when is not None:
            devices.append((b.active_when.device, f"bindings[{i}].active_when.device"))
        missing = False
        for dev, path in devices:
            if dev not in loaded:
                problems.append(f"{path}: device {dev!r} is not loaded (loaded: {sorted(loaded)})")
                missing = True
        if missing:
            continue
        props = set(core.getDevicePropertyNames(b.device))
        for name, src in b.settings.items():
            if src.property not in props:
                problems.append(
                    f"bindings[{i}].settings.{name}.property: device {b.device!r} has no "
                    f"property {src.property!r}"
                )
        if b.active_when is not None:
            aw = b.active_when
            if aw.property not in set(core.getDevicePropertyNames(aw.device)):
                problems.append(
                    f"bindings[{i}].active_when.property: device {aw.device!r} has no "
                    f"property {aw.property!r}"
                )
        if b.labels is not None:
            try:
                labels = set(core.getStateLabels(b.device))
            except Exception as exc:  # a non-state device raises from MMCore
                problems.append(f"bindings[{i}].labels: {b.device!r} is not a state device ({exc})")
                continue
            for label in b.labels:
                if label not in labels:
                    problems.append(
                        f"bindings[{i}].labels[{label!r}]: device {b.device!r} has no such label "
                        f"(has: {sorted(labels)})"
                    )
    if problems:
        raise ProfileError("profile does not match the loaded Micro-Manager configuration:\n  "
                           + "\n  ".join(problems))
