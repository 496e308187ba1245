"""``profile check``: everything wrong with or missing from a hardware profile, one per line.

Three kinds of problem, all reported (not just the first):

* schema errors (:func:`nbo_recorder.profile.load.load_profile`, includes merged), then values
  the NBO vocabularies do not allow and calibration result files that do not exist;
* bindings that do not match a Micro-Manager configuration's devices, properties and labels
  (:func:`nbo_recorder.profile.core_check.check_against_core`), with state labels the profile leaves
  undescribed as warnings (frames taken there record the component as unknown);
* remaining ``todo:`` entries, and with a tier the NBO attributes that are MUST at that tier
  or below (from :mod:`nbo_recorder.nbo.rules`, the NBO v2.01 rules table) and that the profile
  leaves empty: :func:`missing_for_tier`; or, ``--for micrometa``, what Micro-Meta App requires
  at that tier of each exported component and the profile does not state:
  :func:`missing_for_micrometa`.

Profile fields map to NBO element attributes as in :data:`ATTRIBUTE_FIELDS`; a component's
NBO element is its Micro-Meta App schema (an imported ``extra.Schema_ID``, otherwise the kind:
objective -> Objective, filter -> ExcitationFilter / EmissionFilter by role, dichroic ->
StandardDichroic, filter_set -> FilterCube, led -> LightEmittingDiode, detector -> CCD / CMOS
/ ... by detector_type, ...). An NBO attribute with no profile field counts as present when
the component's ``extra`` has it (as an import from Micro-Meta App leaves it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nbo_recorder.profile.calibration import check_calibration_files
from nbo_recorder.profile.core_check import check_against_core
from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.load import load_profile, located
from nbo_recorder.profile.micrometa_app import APP_SCHEMAS, missing_fields
from nbo_recorder.profile.micrometa_export import component_roles, export_micrometa, schema_for
from nbo_recorder.profile.model import LED, Profile
from nbo_recorder.render.nbo_checks import check_nbo_profile

#: profile field for an NBO attribute, for every element
COMMON_FIELDS: dict[str, str] = {
    "ID": "id", "Name": "name", "Manufacturer": "manufacturer", "Model": "model",
    "CatalogNumber": "catalog_number", "SerialNumber": "serial_number",
    "LotNumber": "lot_number",
}
_FILTER = {"Type": "filter_type", "FilterWheel": "filter_wheel"}
_CAMERA = {"PixelWidth": "pixel_size_um", "PixelHeight": "pixel_size_um",
           "MaxBitDepth": "bit_depth", "ArrayWidth": "sensor_width_px",
           "ArrayHeight": "sensor_height_px"}
_STAGE = {"MovementAxes": "axes"}
#: NBO element -> attribute -> profile field (in addition to :data:`COMMON_FIELDS`)
ATTRIBUTE_FIELDS: dict[str, dict[str, str]] = {
    "Objective": {"Magnification": "nominal_magnification",
                  "CalibratedMagnification": "calibrated_magnification",
                  "LensNA": "lens_na", "Correction": "correction",
                  "ImmersionType": "immersion", "WorkingDistance": "working_distance_um",
                  "Iris": "iris"},
    "ExcitationFilter": _FILTER, "EmissionFilter": _FILTER, "NeutralDensityFilter": _FILTER,
    "GenericFilter": _FILTER,
    "Laser": {"Wavelength": "wavelength_nm", "Type": "laser_type",
              "LaserMedium": "laser_medium"},
    "Arc": {"Type": "arc_type"},
    "CCD": _CAMERA, "CMOS": _CAMERA, "IntensifiedCamera": _CAMERA, "GenericDetector": {},
    "PiezoElectricStage": _STAGE, "MechanicalStage": _STAGE, "Z-Drive": _STAGE,
    "Pinhole": {"MaxDiameter": "diameter_um"},
}
#: MUST child elements the profile can fill: element -> child -> profile fields (any)
CHILD_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    **{e: {"TransmittanceRange": ("transmittance_range", "center_wavelength_nm")}
       for e in ("ExcitationFilter", "EmissionFilter", "NeutralDensityFilter", "GenericFilter")},
    "StandardDichroic": {"TransmittanceRange": ("cut_on_nm",)},
    "LightEmittingDiode": {"LEDModule": ("wavelength_nm",)},
    "FilterCube": {"StandardDichroicRef": ("dichroic",)},
    "FilterSet": {"StandardDichroicRef": ("dichroic",)},
}
#: Instrument-level MUST groups -> profile component kinds that fill them
GROUP_KINDS: dict[str, tuple[str, ...]] = {
    "Objective": ("objective",),
    "DetectorGroup": ("detector",),
    "LightSourceGroup": ("laser", "led", "arc", "generic_light_source"),
    "FilterGroup": ("filter",),
    "MirroringDeviceGroup": ("dichroic",),
    "SamplePositioningGroup": ("stage",),
}
_STAND_FIELDS = {"Manufacturer": "manufacturer", "Model": "model",
                 "SerialNumber": "serial_number", "LotNumber": "lot_number"}


def nbo_element(schema: str) -> str:
    """The NBO rules-table element of a Micro-Meta App Schema_ID."""
    name = schema.removesuffix(".json")
    for prefix in ("Fluorescence_LightSource_", "Transmitted_LightSource_"):
        name = name.removeprefix(prefix)
    return {"EMCCD": "CCD", "IntensifiedCCD": "IntensifiedCamera",
            "GenericExcitationSource": "LightSourceGroup"}.get(name, name)


def _filled(value: Any) -> bool:
    return value is not None and value != () and value != [] and value != ""


def _has_extra(comp: Any, attr: str) -> bool:
    extra = comp.extra or {}
    return any((k == attr or k.startswith(attr + "[") or k.startswith(attr + "."))
               and (v is not None or k.endswith(("[]", "{}"))) for k, v in extra.items())


def missing_for_tier(profile: Profile, tier: int) -> list[str]:
    """MUST attributes of NBO tier <= ``tier`` that the profile leaves empty, one per line."""
    from nbo_recorder.nbo.rules import check_tier, load_rules

    check_tier(tier)
    rules = load_rules()
    out: list[str] = []
    roles = component_roles(profile)
    label_wavelengths = {
        t.component for b in profile.bindings for t in (b.labels or {}).values()
        if t is not None and t.wavelength_nm is not None
    }

    def musts(element: str, kind: str) -> list[Any]:
        found = [r for r in rules.for_element(element, kind=kind)  # type: ignore[arg-type]
                 if r.is_must and r.tier <= tier]
        return sorted(found, key=lambda r: (r.tier, r.name))

    for group in musts("Instrument", "element"):
        kinds = GROUP_KINDS.get(group.name)
        if kinds and not any(c.kind in kinds for c in profile.components):
            out.append(f"components: no {' / '.join(kinds)} component (NBO Instrument "
                       f"{group.name} is MUST at tier {group.tier})")

    mic = profile.microscope
    if mic.type is None:
        out.append("microscope.type: not set (NBO needs an Inverted or Upright "
                   "MicroscopeStand, MUST at tier 1)")
    else:
        stand = "InvertedMicroscopeStand" if mic.type.value == "Inverted" else (
            "UprightMicroscopeStand")
        stand_extra = getattr(mic, "extra", None) or {}
        for rule in musts(stand, "attribute"):
            fname = _STAND_FIELDS.get(rule.name)
            if rule.name == "ID" or stand_extra.get(rule.name) is not None:
                continue
            if fname is not None and not _filled(getattr(mic, fname)):
                out.append(f"microscope.{fname}: {stand}.{rule.name} is MUST at tier "
                           f"{rule.tier}")
            elif fname is None:
                where = ("record it as microscope.extra." + rule.name
                         if "extra" in type(mic).model_fields
                         else "the profile model has no place for it yet")
                out.append(f"microscope: {stand}.{rule.name} is MUST at tier {rule.tier}; "
                           f"{where}")

    for i, comp in enumerate(profile.components):
        schema = schema_for(comp, roles)
        if schema is None:
            continue
        element = nbo_element(schema)
        where = f"components[{i}] {comp.id!r} ({element})"
        if comp.kind == "detector" and comp.detector_type is None:
            out.append(f"{where}: detector_type not set (it decides the NBO element: CCD, "
                       f"CMOS, ...)")
        known = bool(rules.for_element(element, kind="attribute"))
        attrs = musts(element if known else "ManufacturerSpec", "attribute")
        fields = {**COMMON_FIELDS, **ATTRIBUTE_FIELDS.get(element, {})}
        for rule in attrs:
            fname = fields.get(rule.name)
            if fname is not None and _filled(getattr(comp, fname, None)):
                continue
            if _has_extra(comp, rule.name):
                continue
            hint = f"set {fname}" if fname else f"no profile field: record it as extra.{rule.name}"
            out.append(f"{where}: {rule.name} is MUST at tier {rule.tier}; {hint}")
        for rule in musts(element, "element"):
            wanted = CHILD_FIELDS.get(element, {}).get(rule.name)
            if wanted is None:
                continue
            if any(_filled(getattr(comp, f, None)) for f in wanted) or _has_extra(
                comp, rule.name.removesuffix("Ref")
            ):
                continue
            if isinstance(comp, LED) and comp.id in label_wavelengths:
                continue
            out.append(f"{where}: {rule.name} is MUST at tier {rule.tier}; set "
                       f"{' or '.join(wanted)}")
    return out


#: Micro-Meta App key -> the profile field that fills it (any other: the component's extra)
MICROMETA_FIELDS: dict[str, str] = {
    "Manufacturer": "manufacturer", "Model": "model", "CatalogNumber": "catalog_number",
    "Magnification": "nominal_magnification", "LensNA": "lens_na", "Correction": "correction",
    "ImmersionType": "immersion", "WorkingDistance": "working_distance_um",
    "PixelWidth": "pixel_size_um", "PixelHeight": "pixel_size_um", "MaxBitDepth": "bit_depth",
    "IlluminationWavelengthRange.IlluminationPower": "rated_power_mw",
    "IlluminationWavelengthRange.PeakWavelength": "wavelength_nm",
    "LEDModule.PeakWavelength": "wavelength_nm (or label wavelengths)",
    "LEDModule.IlluminationPower": "rated_power_mw",
}
#: per kind, a Micro-Meta App key a typed field fills there
_KIND_FIELDS: dict[tuple[str, str], str] = {
    ("filter", "Type"): "filter_type", ("laser", "Type"): "laser_type",
    ("filter", "TransmittanceRange"): "transmittance_range",
    ("dichroic", "TransmittanceRange"): "cut_on_nm",
    ("dichroic", "Type"): "cut_on_nm (long-pass) or extra.Type",
    ("led", "LEDModule"): "rated_power_mw or wavelength_nm, or state "
                          "extra.LEDModule[0].IlluminationPower",
}


def _hint(kind: str, key: str) -> str:
    if re.search(r"\[[1-9]\d*\]", key):  # typed fields fill the first child only
        return f"state extra.{key}"
    plain = re.sub(r"\[\d+\]", "", key)
    field_name = _KIND_FIELDS.get((kind, plain)) or MICROMETA_FIELDS.get(plain)
    return f"set {field_name}" if field_name else f"state extra.{key}"


def missing_for_micrometa(profile: Profile, tier: int) -> tuple[list[str], list[str]]:
    """What Micro-Meta App requires at ``tier`` and the profile's export lacks, per component.

    Also returns the components the app has no schema for (not exported: no fact fixes that).
    """
    doc, warnings = export_micrometa(profile, tier=tier)
    out = [w for w in warnings if w.startswith("microscope.type")]
    unexported = [w for w in warnings if "has no schema" in w]
    stand = doc.get("MicroscopeStand")
    if isinstance(stand, dict):
        schema = str(stand["Schema_ID"])
        for key in missing_fields(stand, schema, tier):
            where = ("set microscope." + _STAND_FIELDS[key] if key in _STAND_FIELDS
                     else f"state microscope.extra.{key}")
            out.append(f"microscope ({schema[:-5]}): {key} is required by Micro-Meta App at "
                       f"tier {tier}; {where}")
    kinds = {c.id: c.kind for c in profile.components}
    index = {c.id: i for i, c in enumerate(profile.components)}
    for rec in doc["components"]:
        schema = str(rec["Schema_ID"])
        cid = str(rec["ID"])
        if schema not in APP_SCHEMAS or cid not in kinds:
            continue
        for key in missing_fields(rec, schema, tier):
            out.append(f"components[{index[cid]}] {cid!r} ({schema[:-5]}): {key} is required "
                       f"by Micro-Meta App at tier {tier}; {_hint(kinds[cid], key)}")
    return out, unexported


@dataclass
class CheckResult:
    """What ``profile check`` found: problems decide the exit code, warnings do not."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unreadable: bool = False

    @property
    def exit_code(self) -> int:
        return 2 if self.unreadable else (1 if self.problems else 0)


_TODO_FIELD_RE = re.compile(r"^components\[(?P<id>[^\]]+)\]\.(?P<field>\w+):")
_TODO_MIC_RE = re.compile(r"^microscope\.(?P<field>\w+):")


def _stale_todo(profile: Profile, entry: str) -> bool:
    """A todo entry whose field has been filled in since (the entry was not deleted)."""
    m = _TODO_FIELD_RE.match(entry)
    if m:
        try:
            comp = profile.component(m.group("id"))
        except KeyError:
            return False
        return m.group("field") != "kind" and _filled(getattr(comp, m.group("field"), None))
    m = _TODO_MIC_RE.match(entry)
    return m is not None and _filled(getattr(profile.microscope, m.group("field"), None))


def check_profile(path: str | Path, mm_config: str | None = None,
                  tier: int | None = None, target: str = "nbo") -> CheckResult:
    """Check a profile file; ``mm_config`` ('demo' or a .cfg) adds the binding checks.

    ``target`` decides what the tier check asks for: ``"nbo"`` the NBO MUST attributes,
    ``"micrometa"`` what Micro-Meta App requires of the exported file.
    """
    if target not in ("nbo", "micrometa"):
        raise ValueError(f"--for {target!r}: expected 'nbo' or 'micrometa'")
    path = Path(path)
    result = CheckResult()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        result.unreadable = True
        result.problems.append(f"{path}: cannot read profile: {exc.strerror or exc}")
        return result
    except yaml.YAMLError as exc:
        result.unreadable = True
        result.problems.append(f"{path}: not valid YAML: {exc}")
        return result
    if not isinstance(raw, dict):
        result.unreadable = True
        result.problems.append(f"{path}: a profile is a mapping at the top level, got "
                               f"{type(raw).__name__}")
        return result
    try:
        profile = load_profile(path, check_files=False)
    except ProfileError as exc:
        result.problems.extend(line for line in str(exc).splitlines() if line.strip())
        return result
    # what the model alone cannot judge, reported together: NBO values, calibration files
    value_problems: list[str] = []
    for check, args in ((check_nbo_profile, ()), (check_calibration_files, (path.parent,))):
        try:
            check(profile, *args)
        except ProfileError as exc:
            value_problems += located(path, exc)
    if value_problems:
        result.problems.extend(value_problems)
        return result
    if mm_config is not None:
        _check_bindings(profile, path, mm_config, result)
    for entry in profile.todo:
        if _stale_todo(profile, entry):
            result.warnings.append(f"{path}: todo: {entry.split(':', 1)[0]} is filled in now; "
                                   f"delete this todo entry")
        else:
            result.problems.append(f"{path}: todo: {entry}")
    if tier is not None:
        if target == "micrometa":
            missing, unexported = missing_for_micrometa(profile, tier)
            result.warnings.extend(f"{path}: {line}" for line in unexported)
        else:
            missing = missing_for_tier(profile, tier)
        result.problems.extend(f"{path}: tier {tier}: {line}" for line in missing)
    return result


def _check_bindings(profile: Profile, path: Path, mm_config: str, result: CheckResult) -> None:
    from nbo_recorder.rig import RigError, load_core, release_core

    try:
        core = load_core(mm_config)
    except RigError as exc:
        result.unreadable = True
        result.problems.append(str(exc))
        return
    try:
        try:
            check_against_core(profile, core)
        except ProfileError as exc:
            lines = str(exc).splitlines()[1:]  # first line is the heading
            result.problems.extend(f"{path}: {line.strip()}" for line in lines if line.strip())
        result.warnings.extend(f"{path}: {w}" for w in undescribed_labels(profile, core))
    finally:
        release_core(core)


def undescribed_labels(profile: Profile, core: Any) -> list[str]:
    """Labels of bound state devices the profile neither maps nor marks empty."""
    out: list[str] = []
    loaded = set(core.getLoadedDevices())
    for i, b in enumerate(profile.bindings):
        if b.labels is None or b.device not in loaded:
            continue
        try:
            labels = [str(lb) for lb in core.getStateLabels(b.device)]
        except Exception:
            continue
        missing = [lb for lb in labels if lb not in b.labels]
        if missing:
            out.append(f"bindings[{i}] ({b.device}): labels {', '.join(missing)} are not "
                       f"described; frames taken there record the {b.role} as unknown")
    return out


def format_result(result: CheckResult, tier: int | None = None) -> tuple[list[str], str]:
    """Lines for stdout and a summary line for stderr."""
    lines = [*result.problems, *(f"warning: {w}" for w in result.warnings)]
    scope = f" (tier {tier})" if tier is not None else ""
    if result.unreadable:
        summary = "unreadable input"
    elif result.problems:
        summary = f"{len(result.problems)} problem(s){scope}"
    else:
        summary = f"profile OK{scope}"
    if result.warnings:
        summary += f", {len(result.warnings)} warning(s)"
    return lines, summary


def summarize_missing(lines: Sequence[str]) -> Mapping[str, int]:
    """Count of missing-attribute lines per NBO attribute name (for summaries and tests)."""
    counts: dict[str, int] = {}
    for line in lines:
        m = re.search(r"\): (\w+) is MUST", line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts
