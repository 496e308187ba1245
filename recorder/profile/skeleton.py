"""``profile init``: a hardware-profile skeleton from a loaded Micro-Manager configuration.

The configuration is loaded through the real core (:func:`nbo_recorder.rig.load_core`), so every
adapter reports its properties and state labels. From them the skeleton gets:

* one component per physical part Micro-Manager can see, with a guessed kind: an objective per
  label of a turret/nosepiece, a filter per label of an excitation/emission wheel, a dichroic
  per label of a dichroic wheel, a filter set per label of a cube turret, an LED (with the
  wavelength per label) for a state device whose labels read like ``470nm``, a detector per
  camera, a stage per focus / XY stage, a light source behind each plain shutter;
* one binding per device that reveals a component or a setting: every state label (labels
  with generic names such as ``State-5`` or ``Objective-2`` are listed as comments, left
  unmapped so the recorder reports them as unknown), camera gain / offset / binning / bit
  depth, and ``active_when`` conditions on the core shutter where the configuration's presets
  make that inferable;
* only the facts a label states itself (read by :mod:`nbo_recorder.profile.labels`:
  ``"Nikon 20X Plan Fluor ELWD"`` -> manufacturer Nikon, magnification 20, correction
  PlanFluor; ``"Chroma-HQ535"`` -> manufacturer Chroma, centre 535 nm; ``"Q505LP"`` ->
  dichroic cut-on 505 nm). It never invents a spec: every static spec a human must supply is
  left out and listed under the top-level ``todo:`` (and as a YAML comment next to the
  component), so the skeleton loads as a valid profile.

The YAML is written by :mod:`nbo_recorder.profile.yaml_writer`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbo_recorder.profile.labels import (
    classify_state_device,
    is_closed_label,
    is_empty_label,
    is_generic_label,
    label_manufacturer,
    label_wavelength,
    names_filter_path,
    names_laser,
    names_objective,
    parse_dichroic_label,
    parse_filter_label,
    parse_objective_label,
    slug,
)
from nbo_recorder.profile.load import parse_profile
from nbo_recorder.profile.model import Profile
from nbo_recorder.profile.yaml_writer import render_profile_yaml

Data = dict[str, Any]


@dataclass
class InitResult:
    """A generated profile: data, its commented YAML, and how each device is represented."""

    data: Data
    text: str
    todo: list[str]
    #: every loaded device -> how the skeleton represents it (or why it does not)
    devices: dict[str, str]
    #: state device -> its labels with generic names, left unmapped (recorded as unknown)
    unmapped_labels: dict[str, list[str]]

    def profile(self) -> Profile:
        return parse_profile(self.data, "<profile init>")


@dataclass
class _Builder:
    core: Any
    components: list[Data] = field(default_factory=list)
    sections: dict[int, str] = field(default_factory=dict)
    comp_notes: dict[int, list[str]] = field(default_factory=dict)
    bindings: list[Data] = field(default_factory=list)
    bind_notes: dict[int, list[str]] = field(default_factory=dict)
    todo: list[str] = field(default_factory=list)
    devices: dict[str, str] = field(default_factory=dict)
    unmapped: dict[str, list[str]] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)

    def new_id(self, base: str) -> str:
        cid, n = base, 2
        while cid in self.ids:
            cid, n = f"{base}-{n}", n + 1
        self.ids.add(cid)
        return cid

    def add_component(self, comp: Data, missing: Sequence[tuple[str, str]],
                      section: str | None = None, note: Sequence[str] = ()) -> str:
        i = len(self.components)
        if section is not None:
            self.sections[i] = section
        self.components.append(comp)
        notes = list(note)
        missing = [(f, hint) for f, hint in missing
                   if f not in comp or (f == "kind" and comp[f] == "generic_light_source")]
        if missing:
            notes.append("TODO: " + ", ".join(f for f, _ in missing))
            self.todo.extend(f"components[{comp['id']}].{f}: {hint}" for f, hint in missing)
        if notes:
            self.comp_notes[i] = notes
        return str(comp["id"])

    def add_binding(self, binding: Data, notes: Sequence[str] = ()) -> None:
        if notes:
            self.bind_notes[len(self.bindings)] = list(notes)
        self.bindings.append(binding)


_MAKER_MODEL = (("manufacturer", "maker, as on the part or datasheet"),
                ("model", "model / part designation from the datasheet"),
                ("catalog_number", "catalogue number (NBO tier 1)"))
_MISSING: dict[str, tuple[tuple[str, str], ...]] = {
    "objective": (("nominal_magnification", "magnification engraved on the objective"),
                  ("lens_na", "numerical aperture engraved on the objective"),
                  ("immersion", "Air | Oil | Water | WaterDipping | Glycerol | Multi | Other"),
                  ("correction", "PlanApo | PlanFluor | Fluor | Apo | Achromat | ..."),
                  ("working_distance_um", "working distance in µm (datasheet)"),
                  *_MAKER_MODEL),
    "filter": (("filter_type", "BandPass | LongPass | ShortPass | MultiPass | ..."),
               ("transmittance_range", "cut_in_nm / cut_out_nm (datasheet)"),
               *_MAKER_MODEL),
    "dichroic": (("cut_on_nm", "edge wavelength in nm (datasheet)"), *_MAKER_MODEL),
    "filter_set": (("dichroic", "component id of the cube's dichroic"),
                   ("excitation_filters", "component ids of the cube's exciter(s)"),
                   ("emission_filters", "component ids of the cube's emitter(s)"),
                   *_MAKER_MODEL),
    "led": _MAKER_MODEL,
    "laser": (("wavelength_nm", "laser line in nm"), *_MAKER_MODEL),
    "generic_light_source": (
        ("kind", "the lamp behind this shutter: laser | led | arc | keep generic_light_source"),
        *_MAKER_MODEL),
    "detector": (("detector_type", "CCD | EMCCD | CMOS | ..."),
                 ("pixel_size_um", "sensor pixel size in µm (datasheet)"), *_MAKER_MODEL),
    "stage": (("manufacturer", "maker of the stage"), ("model", "stage model")),
}

_ROLE_PREFIX = {"objective": "obj", "excitation_filter": "ex", "emission_filter": "em",
                "dichroic": "dc", "filter_set": "fs", "light_source": "ls"}
_ROLE_KIND = {"objective": "objective", "excitation_filter": "filter",
              "emission_filter": "filter", "dichroic": "dichroic", "filter_set": "filter_set"}
_ROLE_TITLE = {"objective": "objectives", "excitation_filter": "excitation filters",
               "emission_filter": "emission filters", "dichroic": "dichroic mirrors",
               "filter_set": "filter sets (cubes)", "light_source": "light source"}

#: camera property name -> detector setting bound by default
_CAMERA_SETTINGS = {"Gain": "gain", "Offset": "offset", "Binning": "binning",
                    "BitDepth": "bit_depth"}


def _device_info(core: Any, dev: str) -> tuple[str, str, str]:
    try:
        return (str(core.getDeviceLibrary(dev)), str(core.getDeviceName(dev)),
                str(core.getDeviceDescription(dev)))
    except Exception:
        return ("", "", "")


def _type_name(core: Any, dev: str) -> str:
    t = core.getDeviceType(dev)
    return str(getattr(t, "name", t))


def _presets(core: Any) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    out = []
    for group in core.getAvailableConfigGroups():
        for preset in core.getAvailableConfigs(group):
            settings = [(str(d), str(p), str(v)) for d, p, v in core.getConfigData(group, preset)]
            out.append((str(group), str(preset), settings))
    return out


def _shutters_used_with(presets: Sequence[tuple[str, str, list[tuple[str, str, str]]]],
                        device: str) -> set[str]:
    """Core shutters the presets choose together with moving ``device``."""
    found: set[str] = set()
    for _, _, settings in presets:
        if any(d == device for d, _, _ in settings):
            found.update(v for d, p, v in settings if d == "Core" and p == "Shutter" and v)
    return found


def init_profile(core: Any, config_name: str) -> InitResult:
    """Build a profile skeleton for the devices loaded in ``core``.

    ``config_name`` only names the profile and appears in its header.
    """
    b = _Builder(core)
    presets = _presets(core)
    core_shutter_values = {v for _, _, s in presets for d, p, v in s
                           if d == "Core" and p == "Shutter"}
    loaded = [str(d) for d in core.getLoadedDevices()]
    types = {d: _type_name(core, d) for d in loaded}
    # shutters that merely open a state device (Utilities "State Device Shutter")
    state_shutters: dict[str, list[str]] = {}
    for dev in loaded:
        if types[dev] == "ShutterDevice" and core.hasProperty(dev, "State Device"):
            state_shutters.setdefault(str(core.getProperty(dev, "State Device")), []).append(dev)

    for dev in loaded:
        kind = types[dev]
        if dev == "Core" or kind == "CoreDevice":
            b.devices[dev] = "Micro-Manager core (not hardware)"
        elif kind == "StateDevice":
            _state_device(b, dev, presets, state_shutters)
        elif kind == "CameraDevice":
            _camera(b, dev)
        elif kind == "ShutterDevice":
            _shutter(b, dev, presets, core_shutter_values)
        elif kind in ("StageDevice", "XYStageDevice"):
            _stage(b, dev, "xy" if kind == "XYStageDevice" else "z")
        elif kind == "HubDevice":
            b.devices[dev] = "hub (no NBO component)"
        elif kind == "AutoFocusDevice":
            b.devices[dev] = "autofocus (no NBO component; not recorded)"
        else:
            b.devices[dev] = (f"{kind} (no NBO role guessed; bind it by hand if it carries a "
                              f"component or setting)")

    b.todo[:0] = [
        "microscope.type: Inverted | Upright | Dissection | Electrophysiology | Other",
        "microscope.manufacturer: maker of the stand",
        "microscope.model: stand model",
        "channel_defaults: illumination_type / contrast_method / acquisition_mode of the "
        "channels (e.g. Epifluorescence / Fluorescence / WideField)",
    ]
    channel_group = str(core.getChannelGroup() or "")
    channel_presets = [p for g, p, _ in presets if g == channel_group]
    if channel_presets:
        b.todo.append(f"channels: fluor / color per preset of group {channel_group!r}: "
                      + ", ".join(channel_presets))
    data: Data = {
        "schema_version": 1,
        "name": f"Micro-Manager rig ({config_name})",
        "microscope": {},
        "components": b.components,
        "bindings": b.bindings,
        "todo": b.todo,
    }
    header = [
        f"Hardware profile skeleton generated by 'nbo-recorder profile init' from {config_name}.",
        "",
        "Components carry only what Micro-Manager reports and what the device labels state",
        "themselves; every static spec a human must supply is listed under 'todo:' at the end",
        "(and as a TODO comment next to its component). Fill them in from the datasheets and",
        "delete each todo entry when done; 'nbo-recorder profile check' lists what is left.",
        "Labels with generic names (State-5, Objective-2) are commented out in their binding:",
        "until mapped to a component (or to null for an empty position) they are recorded as",
        "'unknown'.",
        "",
        "Devices of the configuration and how they appear here:",
        *[f"  {dev}: {how}" for dev, how in b.devices.items()],
    ]
    text = render_profile_yaml(
        data, header=header, component_notes=b.comp_notes, component_sections=b.sections,
        binding_notes=b.bind_notes,
        key_notes={"todo": ["What a human must still supply (machine-readable; delete entries "
                            "when done)."],
                   "microscope": ["TODO: type, manufacturer, model of the stand (see todo)."]},
    )
    return InitResult(data=data, text=text, todo=list(b.todo), devices=b.devices,
                      unmapped_labels=b.unmapped)


def _state_device(b: _Builder, dev: str, presets: Any,
                  state_shutters: Mapping[str, list[str]]) -> None:
    core = b.core
    labels = [str(lb) for lb in core.getStateLabels(dev)]
    _library, adapter, description = _device_info(core, dev)
    role = classify_state_device(dev, labels)
    if role is None and names_objective(f"{adapter} {description}"):
        role = "objective"
    if role is None:
        b.devices[dev] = ("state device with no NBO role guessed (labels: "
                          + ", ".join(labels) + "); bind it by hand if it moves a component")
        b.todo.append(f"device {dev}: state device with no guessed role; bind it if it moves "
                      f"an optical component, otherwise delete this entry")
        return
    if role == "light_source":
        _light_source_state_device(b, dev, labels, presets, state_shutters)
        return
    kind = _ROLE_KIND[role]
    mapping: dict[str, str | None] = {}
    generic: list[str] = []
    first = True
    for label in labels:
        if is_generic_label(label):
            generic.append(label)
            continue
        if is_empty_label(label):
            mapping[label] = None
            continue
        comp: Data = {"kind": kind, "id": b.new_id(f"{_ROLE_PREFIX[role]}-{slug(label)}"),
                      "name": label}
        if kind == "objective":
            comp.update(parse_objective_label(label))
        elif kind == "filter":
            comp.update(parse_filter_label(label))
            comp["filter_wheel"] = dev
        elif kind == "dichroic":
            comp.update(parse_dichroic_label(label))
        elif kind == "filter_set":
            maker = label_manufacturer(label)
            if maker:
                comp["manufacturer"] = maker
        section = f"{_ROLE_TITLE[role]} (state device {dev!r})" if first else None
        first = False
        b.add_component(comp, _MISSING[kind], section)
        mapping[label] = str(comp["id"])
    notes = [f"{lb}:   # TODO generic position name: map to a component id, or null if empty"
             for lb in generic]
    role_note = []
    if role in ("excitation_filter", "emission_filter") and not (
        names_filter_path(dev)
    ):
        role_note = [f"TODO: role guessed from the name {dev!r}; use excitation_filter if it "
                     f"sits in the excitation path"]
        b.todo.append(f"bindings[{dev}].role: guessed emission_filter for {dev!r}; check")
    b.add_binding({"device": dev, "role": role, "labels": mapping}, role_note + notes)
    if generic:
        b.unmapped[dev] = generic
        b.todo.append(f"bindings[{dev}].labels: positions with generic names "
                      f"({', '.join(generic)}): map each to a component id, or null if empty")
    b.devices[dev] = f"{role} binding, {len(mapping)} of {len(labels)} labels mapped"


def _light_source_state_device(b: _Builder, dev: str, labels: Sequence[str], presets: Any,
                               state_shutters: Mapping[str, list[str]]) -> None:
    kind = "laser" if names_laser(dev) else "led"
    comp: Data = {"kind": kind, "id": b.new_id(f"{kind}-{slug(dev)}"), "name": dev}
    maker = label_manufacturer(dev)
    if maker:
        comp["manufacturer"] = maker
    library, adapter, _description = _device_info(b.core, dev)
    comp["source"] = (f"Micro-Manager state device {dev!r} ({library} {adapter}); the line in "
                      f"use is read from its label")
    cid = b.add_component(comp, [m for m in _MISSING[kind] if m[0] != "wavelength_nm"],
                          f"light source (state device {dev!r})")
    mapping: dict[str, Any] = {}
    generic: list[str] = []
    for label in labels:
        wl = label_wavelength(label)
        if is_closed_label(label):
            mapping[label] = None
        elif is_generic_label(label):
            generic.append(label)
        elif wl is not None:
            mapping[label] = {"component": cid, "wavelength_nm": wl}
        else:
            mapping[label] = cid
            b.todo.append(f"bindings[{dev}].labels[{label!r}]: the label states no wavelength; "
                          f"add wavelength_nm if the line is known")
    binding: Data = {"device": dev, "role": "light_source"}
    shutters = set(state_shutters.get(dev, ())) | _shutters_used_with(presets, dev)
    notes = []
    how = "light_source binding (wavelength per label)"
    if shutters:
        binding["active_when"] = {"device": "Core", "property": "Shutter",
                                  "equals": sorted(shutters)}
        for sh in shutters:
            b.devices[sh] = f"shutter of {dev!r}: decides when {cid} is in the light path"
        how += f", in the path while the core shutter is {' or '.join(sorted(shutters))}"
    else:
        notes.append(f"TODO: when is {dev!r} in the light path? add active_when")
        b.todo.append(f"bindings[{dev}].active_when: say when this light source is in the path "
                      f"(e.g. core Shutter), or delete this entry if always")
    binding["labels"] = mapping
    notes += [f"{lb}:   # TODO generic position name: map to {{component: {cid}, "
              f"wavelength_nm: ...}} or null" for lb in generic]
    if generic:
        b.unmapped[dev] = generic
        b.todo.append(f"bindings[{dev}].labels: positions with generic names "
                      f"({', '.join(generic)}): map each, or null if unused")
    b.add_binding(binding, notes)
    b.devices[dev] = how


def _camera(b: _Builder, dev: str) -> None:
    core = b.core
    library, adapter, description = _device_info(core, dev)
    if library == "Utilities":
        b.devices[dev] = f"virtual camera ({adapter}); the physical cameras are bound themselves"
        return
    comp: Data = {"kind": "detector", "id": b.new_id(f"cam-{slug(dev)}"), "name": dev}
    stated = f"{dev} {description}"
    for token, dtype in (("EMCCD", "EMCCD"), ("sCMOS", "CMOS"), ("CMOS", "CMOS"),
                         ("ICCD", "IntensifiedCCD"), ("CCD", "CCD")):
        if re.search(rf"(?<![A-Za-z]){token}(?![A-Za-z])", stated, re.IGNORECASE):
            comp["detector_type"] = dtype
            break
    maker = label_manufacturer(dev)
    if maker:
        comp["manufacturer"] = maker
    comp["source"] = f"Micro-Manager camera {dev!r} ({library} {adapter}: {description})"
    cid = b.add_component(comp, _MISSING["detector"], f"detector (camera {dev!r})")
    props = set(core.getDevicePropertyNames(dev))
    settings = {name: {"property": prop} for prop, name in _CAMERA_SETTINGS.items()
                if prop in props}
    binding: Data = {"device": dev, "role": "detector", "component": cid}
    if settings:
        binding["settings"] = settings
    extra_props = [p for p in ("CCDTemperature", "Temperature", "ReadoutRate", "EMGain")
                   if p in props]
    notes = ([f"other properties you may bind: {', '.join(extra_props)} (with their unit)"]
             if extra_props else [])
    b.add_binding(binding, notes)
    b.devices[dev] = "detector binding (" + (", ".join(settings) or "no settings") + ")"


def _shutter(b: _Builder, dev: str, presets: Any, core_shutters: set[str]) -> None:
    core = b.core
    if dev in b.devices:  # already explained as the shutter of a state-device light source
        return
    library, adapter, _description = _device_info(core, dev)
    if core.hasProperty(dev, "State Device"):
        target = core.getProperty(dev, "State Device")
        b.devices[dev] = f"opens state device {target!r} (see that binding)"
        return
    if library == "Utilities":
        b.devices[dev] = f"virtual shutter ({adapter}); not a light source itself"
        return
    comp: Data = {"kind": "generic_light_source", "id": b.new_id(f"ls-{slug(dev)}"),
                  "name": f"light source behind {dev!r}",
                  "source": f"Micro-Manager shutter {dev!r} ({library} {adapter}); the "
                            f"configuration does not say which lamp it gates"}
    cid = b.add_component(comp, _MISSING["generic_light_source"], f"light source (shutter {dev!r})")
    if dev in core_shutters:
        b.add_binding({"device": dev, "role": "light_source", "component": cid,
                       "active_when": {"device": "Core", "property": "Shutter",
                                       "equals": [dev]}})
        b.devices[dev] = (f"light_source binding ({cid}), in the path while it is the core "
                          f"shutter (as the presets set it)")
    else:
        b.todo.append(f"device {dev}: no preset makes it the core shutter, so when its lamp "
                      f"({cid}) lights the sample is unknown: add a light_source binding with "
                      f"active_when, or delete {cid}")
        b.devices[dev] = f"shutter; component {cid} but no binding (see todo)"


def _stage(b: _Builder, dev: str, axes: str) -> None:
    library, adapter, _description = _device_info(b.core, dev)
    comp: Data = {"kind": "stage", "id": b.new_id(f"stage-{slug(dev)}"), "name": dev,
                  "axes": axes,
                  "source": f"Micro-Manager {'XY stage' if axes == 'xy' else 'focus stage'} "
                            f"{dev!r} ({library} {adapter})"}
    b.add_component(comp, _MISSING["stage"], f"stage {dev!r}",
                    note=["positions are read per frame from the acquisition engine"])
    b.devices[dev] = f"stage component {comp['id']} (positions recorded per frame)"
