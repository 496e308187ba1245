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
* only the facts a label states itself (``"Nikon 20X Plan Fluor ELWD"`` -> manufacturer
  Nikon, magnification 20, correction PlanFluor; ``"Chroma-HQ535"`` -> manufacturer Chroma,
  centre 535 nm; ``"Q505LP"`` -> dichroic cut-on 505 nm). It never invents a spec: every
  static spec a human must supply is left out and listed under the top-level ``todo:`` (and
  as a YAML comment next to the component), so the skeleton loads as a valid profile.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from nbo_recorder.profile.model import Profile, parse_profile

Data = dict[str, Any]

# --- YAML with comments ----------------------------------------------------------------------


class _FlowDict(dict[str, Any]):
    """A mapping written in flow style (``{property: Gain}``)."""


class _FlowList(list[Any]):
    """A list written in flow style (``[LED Shutter]``)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_FlowDict, lambda d, v: d.represent_mapping(
    "tag:yaml.org,2002:map", v.items(), flow_style=True))
_Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence(
    "tag:yaml.org,2002:seq", v, flow_style=True))


def _scalar(v: Any) -> bool:
    return not isinstance(v, dict | list | tuple)


def _flow_leaves(value: Any) -> Any:
    """Nested mappings / lists holding only scalars -> flow style; the rest stays block."""
    if isinstance(value, dict):
        if value and all(_scalar(v) for v in value.values()):
            return _FlowDict(value)
        return {k: _flow_leaves(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if all(_scalar(v) for v in value):
            return _FlowList(value)
        return [_flow_leaves(v) for v in value]
    return value


def _dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096,
                     default_flow_style=False)


def _dump_item(item: Mapping[str, Any]) -> str:
    """One component / binding: block style at its own level, leaves in flow style."""
    out = {k: _flow_leaves(v) for k, v in item.items()}
    for key in ("labels", "extra"):  # one entry per line (room for comments)
        if isinstance(item.get(key), dict):
            out[key] = {k: _flow_leaves(v) for k, v in item[key].items()}
    return _dump([out])


def _indent(text: str, spaces: int) -> list[str]:
    pad = " " * spaces
    return [pad + line if line else line for line in text.rstrip("\n").split("\n")]


def _comment_lines(lines: Iterable[str], spaces: int) -> list[str]:
    pad = " " * spaces
    return [f"{pad}# {line}".rstrip() for line in lines]


def render_profile_yaml(
    data: Mapping[str, Any],
    *,
    header: Sequence[str] = (),
    component_notes: Mapping[int, Sequence[str]] | None = None,
    component_sections: Mapping[int, str] | None = None,
    binding_notes: Mapping[int, Sequence[str]] | None = None,
    key_notes: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Profile data as YAML a human can read: block style, with comments.

    ``component_notes[i]`` / ``binding_notes[i]`` are comment lines written at the end of the
    i-th component / binding (a binding's ``labels`` come last, so commented-out labels
    appear inside the label list); ``component_sections[i]`` is a heading before component i;
    ``key_notes[key]`` are comment lines before a top-level key.
    """
    component_notes = component_notes or {}
    component_sections = component_sections or {}
    binding_notes = binding_notes or {}
    key_notes = key_notes or {}
    out: list[str] = _comment_lines(header, 0)
    for key, value in data.items():
        out.extend(_comment_lines(key_notes.get(key, ()), 0))
        if key in ("components", "bindings") and isinstance(value, list) and value:
            out.append(f"{key}:")
            notes = component_notes if key == "components" else binding_notes
            for i, item in enumerate(value):
                if key == "components" and i in component_sections:
                    out.append(f"  # --- {component_sections[i]} ---")
                out.extend(_indent(_dump_item(item), 2))
                out.extend(_comment_lines(notes.get(i, ()), 6 if key == "bindings" else 4))
        else:
            out.extend(_dump({key: value}).rstrip("\n").split("\n"))
    return "\n".join(out) + "\n"


# --- what labels state ---------------------------------------------------------------------

#: Makers whose name may appear in a device label (as written there -> canonical spelling).
MANUFACTURERS: tuple[str, ...] = (
    "Nikon", "Olympus", "Evident", "Zeiss", "Leica", "Chroma", "Semrock", "Omega", "AHF",
    "Thorlabs", "Edmund", "Hamamatsu", "Andor", "Photometrics", "PCO", "Teledyne", "Lumencor",
    "CoolLED", "Excelitas", "Coherent", "Cobolt", "Oxxius", "Toptica", "Prior", "ASI", "Ludl",
    "Sutter", "Yokogawa", "Mitutoyo", "Lambda",
)
_MANUFACTURER_RE = re.compile(
    r"(?<![A-Za-z])(" + "|".join(m for m in MANUFACTURERS if m != "Lambda") + r")(?![A-Za-z])",
    re.IGNORECASE,
)

_GENERIC_LABEL_RE = re.compile(
    r"^\s*(state|pos|position|slot|filter|objective|label|undefined|unused|port|cube|"
    r"dichroic|emission|excitation|wheel|turret|nosepiece|led|channel)?[\s_-]*\d+\s*$",
    re.IGNORECASE,
)
_EMPTY_LABEL_RE = re.compile(r"^\s*(empty|none|open|blank|no filter|nothing|hole|clear)\s*$",
                             re.IGNORECASE)
_CLOSED_LABEL_RE = re.compile(r"^\s*(closed|off|dark|none|empty)\s*$", re.IGNORECASE)
_WAVELENGTH_LABEL_RE = re.compile(r"^\s*(?:[A-Za-z]+[\s_-]*)?(\d{3,4})\s*nm\s*$", re.IGNORECASE)


def is_generic_label(label: str) -> bool:
    """A position name that states nothing about what sits there (``State-5``, ``Pos 2``)."""
    return bool(_GENERIC_LABEL_RE.match(label))


def is_empty_label(label: str) -> bool:
    """A label that states the position holds nothing (``Empty``, ``Open``)."""
    return bool(_EMPTY_LABEL_RE.match(label))


def label_wavelength(label: str) -> int | None:
    """The wavelength a light-source label states (``"470nm"`` -> 470)."""
    m = _WAVELENGTH_LABEL_RE.match(label)
    if m and 200 <= int(m.group(1)) <= 2000:
        return int(m.group(1))
    return None


def label_manufacturer(label: str) -> str | None:
    m = _MANUFACTURER_RE.search(label)
    if m is None:
        return None
    found = m.group(1).lower()
    return next(name for name in MANUFACTURERS if name.lower() == found)


_CORRECTIONS: tuple[tuple[str, str], ...] = (
    (r"plan[\s-]*apo(chromat)?", "PlanApo"),
    (r"plan[\s-]*neo[\s-]*fluar", "PlanNeofluar"),
    (r"plan[\s-]*fluor", "PlanFluor"),
    (r"super[\s-]*fluor", "SuperFluor"),
    (r"\bneo[\s-]*fluar\b", "Neofluar"),
    (r"\bfluar\b", "Fluar"),
    (r"\bfluotar\b", "Fluotar"),
    (r"\bapo(chromat)?\b", "Apo"),
    (r"\bachromat\b", "Achromat"),
    (r"\bachro\b", "Achro"),
    (r"\bfluor\b", "Fluor"),
    (r"\buv\b", "UV"),
)
_IMMERSIONS: tuple[tuple[str, str], ...] = (
    (r"\boil\b", "Oil"),
    (r"\bglyc(erol|erin)?\b", "Glycerol"),
    (r"\bwater\b|\bW\b", "Water"),
    (r"\b(air|dry)\b", "Air"),
)


def _num(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def parse_objective_label(label: str) -> Data:
    """What an objective label states: manufacturer, magnification, NA, immersion, correction."""
    out: Data = {}
    maker = label_manufacturer(label)
    if maker:
        out["manufacturer"] = maker
    m = re.search(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)\s*[xX×](?![A-Za-z])", label)
    if m and 0 < float(m.group(1)) <= 250:
        out["nominal_magnification"] = _num(m.group(1))
    m = re.search(r"(?:\bNA\s*[=:]?\s*|[xX×]\s*/\s*)(\d?\.\d+|1\.\d+)", label)
    if m and 0 < float(m.group(1)) <= 1.7:
        out["lens_na"] = _num(m.group(1))
    for pattern, value in _IMMERSIONS:
        flags = 0 if pattern.endswith(r"\bW\b") else re.IGNORECASE
        if re.search(pattern, label, flags):
            out["immersion"] = value
            break
    for pattern, value in _CORRECTIONS:
        if re.search(pattern, label, re.IGNORECASE):
            out["correction"] = value
            break
    return out


def _wl(text: str) -> int | float | None:
    value = float(text)
    return _num(text) if 200 <= value <= 2000 else None


def parse_filter_label(label: str) -> Data:
    """What a filter label states: manufacturer, centre / band, long- or short-pass edge."""
    out: Data = {}
    maker = label_manufacturer(label)
    if maker:
        out["manufacturer"] = maker
    rest = _MANUFACTURER_RE.sub(" ", label)
    m = re.search(r"(?<!\d)(\d{3,4}(?:\.\d+)?)\s*/\s*(\d{1,3}(?:\.\d+)?)(?![\d.])", rest)
    if m and _wl(m.group(1)) is not None and 0 < float(m.group(2)) < float(m.group(1)):
        centre, width = float(m.group(1)), float(m.group(2))
        out["filter_type"] = "BandPass"
        out["center_wavelength_nm"] = _num(m.group(1))
        out["transmittance_range"] = {"cut_in_nm": _num(str(centre - width / 2)),
                                      "cut_out_nm": _num(str(centre + width / 2))}
        return out
    m = re.search(r"(?<!\d)(\d{3,4})\s*-\s*(\d{3,4})(?!\d)", rest)
    if m and _wl(m.group(1)) and _wl(m.group(2)) and float(m.group(1)) < float(m.group(2)):
        out["filter_type"] = "BandPass"
        out["transmittance_range"] = {"cut_in_nm": _num(m.group(1)),
                                      "cut_out_nm": _num(m.group(2))}
        return out
    m = (re.search(r"(?<!\d)(\d{3,4})\s*(?:nm)?\s*(?:DC|EF|A)?LP", rest, re.IGNORECASE)
         or re.search(r"\bLP\s*(\d{3,4})(?!\d)", rest, re.IGNORECASE))
    if m and _wl(m.group(1)):
        out["filter_type"] = "LongPass"
        out["transmittance_range"] = {"cut_in_nm": _num(m.group(1))}
        return out
    m = (re.search(r"(?<!\d)(\d{3,4})\s*(?:nm)?\s*(?:DC|EF)?SP", rest, re.IGNORECASE)
         or re.search(r"\bSP\s*(\d{3,4})(?!\d)", rest, re.IGNORECASE))
    if m and _wl(m.group(1)):
        out["filter_type"] = "ShortPass"
        out["transmittance_range"] = {"cut_out_nm": _num(m.group(1))}
        return out
    m = re.search(r"\bBP\s*(\d{3,4})(?!\d)", rest, re.IGNORECASE)
    if m and _wl(m.group(1)):
        out["filter_type"] = "BandPass"
        out["center_wavelength_nm"] = _num(m.group(1))
        return out
    # a catalogue series letter code followed by the centre wavelength: HQ535, D360, ET470
    m = re.fullmatch(r"\s*[-_\s]*(?:HQ|D|ET|E|Q|S|Z|ZET|HC|FF\d\d)[-\s]?(\d{3})\s*", rest,
                     re.IGNORECASE)
    if m and _wl(m.group(1)):
        out["center_wavelength_nm"] = _num(m.group(1))
    return out


def parse_dichroic_label(label: str) -> Data:
    """What a dichroic label states: manufacturer and a long-pass cut-on (``Q505LP``)."""
    out: Data = {}
    maker = label_manufacturer(label)
    if maker:
        out["manufacturer"] = maker
    rest = _MANUFACTURER_RE.sub(" ", label)
    m = re.search(r"(?<!\d)(\d{3,4})\s*(?:nm)?\s*(?:DC)?(?:LP|XR)", rest, re.IGNORECASE)
    if m and _wl(m.group(1)):
        out["cut_on_nm"] = _num(m.group(1))
    return out


# --- classifying devices -------------------------------------------------------------------

_OBJECTIVE_RE = re.compile(r"objective|nosepiece|revolver|turret", re.IGNORECASE)
_DICHROIC_RE = re.compile(r"dichroic|beam\s*splitter|\bbs\b|mirror|polychroic", re.IGNORECASE)
_CUBE_RE = re.compile(r"cube|filter\s*set|reflector", re.IGNORECASE)
_EXCITATION_RE = re.compile(r"excitation|exciter|\bex\b|^ex[\s_-]", re.IGNORECASE)
_EMISSION_RE = re.compile(r"emission|emitter|barrier|\bem\b|^em[\s_-]", re.IGNORECASE)
_FILTER_RE = re.compile(r"filter|wheel", re.IGNORECASE)
_LASER_RE = re.compile(r"laser", re.IGNORECASE)
_LED_RE = re.compile(r"\bled\b|led[\s_-]|lumencor|spectra|coolled|pe-?\d{3}", re.IGNORECASE)


def classify_state_device(name: str, labels: Sequence[str]) -> str | None:
    """Guess the role of a state device from its name and labels (None: no NBO role)."""
    if _DICHROIC_RE.search(name):
        return "dichroic"
    if _CUBE_RE.search(name):
        return "filter_set"
    if _EXCITATION_RE.search(name):
        return "excitation_filter"
    if _EMISSION_RE.search(name):
        return "emission_filter"
    if _OBJECTIVE_RE.search(name) and not _FILTER_RE.search(name):
        return "objective"
    informative = [lb for lb in labels
                   if not is_generic_label(lb) and not _CLOSED_LABEL_RE.match(lb)]
    if informative and sum(label_wavelength(lb) is not None for lb in informative) * 2 >= len(
        informative
    ):
        return "light_source"
    if _LED_RE.search(name) or _LASER_RE.search(name):
        return "light_source"
    if _FILTER_RE.search(name):
        return "emission_filter"
    return None


def slug(text: str) -> str:
    """A component id fragment: lower case, runs of other characters -> '-'."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "x"


# --- the skeleton ----------------------------------------------------------------------------


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
    if role is None and _OBJECTIVE_RE.search(f"{adapter} {description}"):
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
        _EXCITATION_RE.search(dev) or _EMISSION_RE.search(dev)
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
    kind = "laser" if _LASER_RE.search(dev) else "led"
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
        if _CLOSED_LABEL_RE.match(label):
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
