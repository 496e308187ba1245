"""Hardware profiles: the rig in NBO terms, and how Micro-Manager devices bind to it.

A profile (``hardware_profiles/*.yaml``) says two things Micro-Manager cannot know:

* **components** — the static specs of the physical parts (objective NA, filter cut-in,
  laser line, sensor type), each with an ``id`` and a ``kind``;
* **bindings** — how Micro-Manager devices reveal which component is in use and with which
  settings: a state device's labels name components (turret label -> Objective), and device
  properties carry settings with their unit (camera ``Gain`` -> detector gain, a laser's
  power property in W -> light-source power in mW).

This module is the model alone: types, units, enumerations (the OME 2016-06 vocabularies,
taken from :mod:`ome_types.model`) and every cross-reference inside one profile. Reading a
file, merging its includes and naming the file in errors is
:mod:`nbo_recorder.profile.load`; checking the bindings against a loaded Micro-Manager core is
:mod:`nbo_recorder.profile.core_check`; checking values against the NBO vocabularies is a
separate step of the renderer. So the model imports only pydantic, ome-types' enumerations and
:mod:`nbo_recorder.units`, and loading a profile never pulls in an XML builder or schema.
It stays one module (a little over 500 lines) because :class:`Profile`'s validator
cross-checks every component and binding type defined here; split, the cross-reference
rules would live apart from the types they check.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from ome_types.model import (
    Arc_Type,
    Channel_AcquisitionMode,
    Channel_ContrastMethod,
    Channel_IlluminationType,
    Detector_Type,
    Filter_Type,
    Laser_Type,
    Microscope_Type,
    Objective_Correction,
    Objective_Immersion,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nbo_recorder.units import KNOWN_UNITS, UnitError, quantity_of


class _Strict(BaseModel):
    """Unknown keys are errors (a typo must not vanish), and a loaded profile is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
    immersion: Objective_Immersion | None = None
    correction: Objective_Correction | None = None
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
    filter_type: Filter_Type | None = None
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
    laser_type: Laser_Type | None = None
    laser_medium: str | None = None


class LED(_LightSourceBase):
    kind: Literal["led"]
    wavelength_nm: Wavelength | None = None


class Arc(_LightSourceBase):
    kind: Literal["arc"]
    arc_type: Arc_Type | None = None


class GenericLightSource(_LightSourceBase):
    """A light source whose kind the profile does not state (OME GenericExcitationSource)."""

    kind: Literal["generic_light_source"]


class Detector(ComponentBase):
    kind: Literal["detector"]
    detector_type: Detector_Type | None = None
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

#: every component ``kind`` (the tags of :data:`Component`)
COMPONENT_KINDS = frozenset(
    {"objective", "filter", "dichroic", "filter_set", "laser", "led", "arc",
     "generic_light_source", "detector", "pinhole", "spinning_disk", "stage"}
)
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
    "power_emitted": ("power", LIGHT_SOURCE_KINDS),
    "emission_state": ("dimensionless", LIGHT_SOURCE_KINDS),
    "speed": ("rotation", frozenset({"spinning_disk"})),
}
"""``power`` is the power *set* at the source (its setpoint: what a device's power property
holds); ``power_emitted`` is what the source reports it emits (a laser's photodiode reading);
``emission_state`` is the running state the source reports (its ``true_values`` are the states
in which it emits), so a laser in its start-up delay is not taken to emit its setpoint.
``speed`` is the disk speed *set* at a spinning-disk unit: a CSU-W1 reports its setting, not
whether the disk turns, so the record names it a setpoint (``speed_setpoint_rpm``)."""

#: Settings that are readings of the instrument (a photodiode's power, a sensor's
#: temperature): sampled by every read, never a state that changed at some moment.
MEASURED_SETTINGS = frozenset({"power_emitted", "temperature"})

#: Pseudo-property of a shutter binding: read with ``getShutterOpen`` ("1" open, "0" closed);
#: pymmcore-plus announces ``setShutterOpen`` as a ``propertyChanged`` of this name.
SHUTTER_STATE = "State"


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
    shutter: Annotated[str, Field(min_length=1)] | None = Field(
        default=None,
        description="Shutter device that gates this light source: it reaches the sample only "
        "while that shutter is open, or while auto-shutter is on with it as the core shutter "
        "(it then opens for each exposure). An unreadable shutter state makes the light path "
        "unknown.",
    )
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
        if self.shutter is not None and self.role != "light_source":
            raise ValueError("'shutter' applies to a light_source binding only")
        return self


class ChannelInfo(_Strict):
    """What the profile knows about a channel preset (keyed by the preset name)."""

    fluor: str | None = None
    color: Annotated[str, Field(pattern=r"^#?[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?$")] | None = None
    illumination_type: Channel_IlluminationType | None = None
    contrast_method: Channel_ContrastMethod | None = None
    acquisition_mode: Channel_AcquisitionMode | None = None


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

    type: Microscope_Type | None = None
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
            need(f"calibrations[{i}].component", cal.component, COMPONENT_KINDS)
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

    def measured_properties(self) -> list[tuple[str, str]]:
        """The watched properties that are readings (each read a new sample), not states."""
        return list(dict.fromkeys((b.device, src.property) for b in self.bindings
                                  for name, src in b.settings.items()
                                  if name in MEASURED_SETTINGS))

    def watched_properties(self) -> list[tuple[str, str]]:
        """Every (device, property) whose value the recorder must observe, in binding order."""
        keys: list[tuple[str, str]] = []
        for b in self.bindings:
            if b.labels is not None:
                keys.append((b.device, "Label"))
            keys.extend((b.device, src.property) for src in b.settings.values())
            if b.active_when is not None:
                keys.append((b.active_when.device, b.active_when.property))
            if b.shutter is not None:
                keys += [(b.shutter, SHUTTER_STATE), ("Core", "AutoShutter"), ("Core", "Shutter")]
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
