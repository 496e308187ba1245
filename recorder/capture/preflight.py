"""Checking a useq-schema sequence against the loaded core before anything is acquired or written.

A sequence naming a channel preset the core does not have used to reach the engine, which
failed on its first ``setConfig`` after the output file had been created: the run crashed,
left an 8-byte ``.ome.tif`` that blocked a rerun, and the process could abort at exit
("exception not rethrown") because an MDA had failed with devices loaded. So everything a
sequence asks of the hardware is checked here first, against the core itself:

* every channel's config group and preset exists, and every device a preset names is loaded
  and has the property it sets (with a value among the property's allowed values, if it has
  such a list); a ``Core`` setting such as ``Core-Shutter`` must name a loaded device;
* every channel camera, position property and autofocus device is loaded;
* every z position the plans ask for lies inside the focus stage's ``Position`` limits, when
  the core knows them (a device without limits is not guessed at);
* the same for every position's own sub-sequence (its channels, z plan, nested positions),
  which useq runs instead of, or inside, the outer plans.

:func:`sequence_problems` lists every problem, one line each, naming the sequence field
(``channels[0]``, ``stage_positions[1].sequence.channels[0]``), the group, preset, device or
position; :func:`check_sequence` raises :class:`SequenceError` with all of them. The CLI
checks before it applies ``--set`` values or creates the sink (the MDA never starts), and
:class:`~nbo_recorder.capture.sink.RecordingSink` checks at sequence start, before it creates
the journal or the TIFF: it raises the :class:`SequenceError` there (pymmcore-plus stops the
run before its first event and re-raises it, wrapped by psygnal) and keeps it for
``raise_if_failed``, so a script using ``core.mda.run(seq, output=rec.sink(path))`` gets the
same error and no file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from useq import AnyZPlan, MDASequence, Position

#: ``Core`` properties whose value is the label of another device (empty: none selected)
_CORE_DEVICE_ROLES = frozenset({
    "Camera", "Shutter", "Focus", "XYStage", "AutoFocus", "SLM", "Galvo",
})
#: the property a focus stage's position limits are read from (Micro-Manager's convention)
_POSITION_PROPERTY = "Position"
#: how far (µm) a z target may lie outside the limits before it is refused (float noise)
_Z_TOLERANCE_UM = 1e-6


class SequenceError(ValueError):
    """The sequence asks for something the loaded core cannot do; one problem per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("sequence refused before the first frame: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class _CoreFacts:
    """What the checks need to know of the core, read once."""

    loaded: frozenset[str]
    groups: frozenset[str]
    focus: str
    z_limits: tuple[float, float] | None


def check_sequence(core: CMMCorePlus, sequence: MDASequence) -> None:
    """Raise :class:`SequenceError` if ``sequence`` asks for anything ``core`` cannot do."""
    problems = sequence_problems(core, sequence)
    if problems:
        raise SequenceError(problems)


def sequence_problems(core: CMMCorePlus, sequence: MDASequence) -> list[str]:
    """Every problem of ``sequence`` against ``core``, one line each (empty: it can run)."""
    facts = _read_core(core)
    problems: list[str] = []
    af = sequence.autofocus_plan
    if af is not None and af.autofocus_device_name not in facts.loaded:
        problems.append(f"autofocus_plan.autofocus_device_name: device "
                        f"{af.autofocus_device_name!r} is not loaded")
    problems += _scope_problems(core, facts, sequence, "", None, None)
    return problems


def _read_core(core: CMMCorePlus) -> _CoreFacts:
    focus = core.getFocusDevice()
    limits = None
    if (focus and core.hasProperty(focus, _POSITION_PROPERTY)
            and core.hasPropertyLimits(focus, _POSITION_PROPERTY)):
        limits = (core.getPropertyLowerLimit(focus, _POSITION_PROPERTY),
                  core.getPropertyUpperLimit(focus, _POSITION_PROPERTY))
    return _CoreFacts(loaded=frozenset(core.getLoadedDevices()),
                      groups=frozenset(core.getAvailableConfigGroups()),
                      focus=focus, z_limits=limits)


def _scope_problems(
    core: CMMCorePlus, facts: _CoreFacts, seq: MDASequence, field: str,
    outer: MDASequence | None, z_base: float | None,
) -> list[str]:
    """Problems of one (sub-)sequence: ``field`` is its path in the sequence file ('' for the
    outer one), ``outer`` the sequence whose plans it inherits, ``z_base`` the z (µm) of the
    position it runs at (None: not given)."""
    problems: list[str] = []
    for i, channel in enumerate(seq.channels):
        where = f"{field}channels[{i}]"
        problems += _preset_problems(core, facts, channel.group, channel.config, where)
        if channel.camera is not None and channel.camera not in facts.loaded:
            problems.append(f"{where}.camera: device {channel.camera!r} is not loaded")
    channels = seq.channels or (outer.channels if outer is not None else ())
    z_offsets = sorted({c.z_offset for c in channels} or {0.0})
    positions = seq.stage_positions or (None,)
    for p, pos in enumerate(positions):
        inner = pos.sequence if pos is not None else None
        base = pos.z if pos is not None and pos.z is not None else z_base
        if pos is None:
            where = f"{field}z_plan"
        else:
            where = f"{field}stage_positions[{p}]"
            problems += _position_property_problems(facts, pos, where)
            where += f" ({pos.name!r})" if pos.name else ""
        if inner is not None:  # its own scope: channels, z plan, nested positions
            problems += _scope_problems(core, facts, inner, f"{where}.sequence.", seq, base)
            continue
        z_plan = seq.z_plan or (outer.z_plan if outer is not None else None)
        problems += _z_problems(facts, _z_targets(z_plan, base, z_offsets), where)
    return problems


def _preset_problems(
    core: CMMCorePlus, facts: _CoreFacts, group: str, preset: str, where: str,
) -> list[str]:
    named = f"{where} (group {group!r}, preset {preset!r})"
    if group not in facts.groups:
        return [f"{named}: the core has no config group {group!r} "
                f"(groups: {', '.join(sorted(facts.groups)) or 'none'})"]
    presets = list(core.getAvailableConfigs(group))
    if preset not in presets:
        return [f"{named}: group {group!r} has no preset {preset!r} "
                f"(presets: {', '.join(presets) or 'none'})"]
    problems: list[str] = []
    for device, prop, value in core.getConfigData(group, preset):
        setting = f"{named}: sets {device}.{prop}={value}"
        if device not in facts.loaded:
            problems.append(f"{setting}, but device {device!r} is not loaded")
        elif not core.hasProperty(device, prop):
            problems.append(f"{setting}, but device {device!r} has no property {prop!r}")
        elif device == "Core" and prop in _CORE_DEVICE_ROLES:
            if value and value not in facts.loaded:
                problems.append(f"{setting}, but device {value!r} is not loaded")
        else:
            allowed = core.getAllowedPropertyValues(device, prop)
            if allowed and value not in allowed:
                problems.append(f"{setting}, but {device}.{prop} allows only "
                                f"{', '.join(allowed)}")
    return problems


def _position_property_problems(facts: _CoreFacts, pos: Position, field: str) -> list[str]:
    label = f" ({pos.name!r})" if pos.name else ""
    return [f"{field}{label}.properties: device {prop.device_name!r} is not loaded"
            for prop in pos.properties or () if prop.device_name not in facts.loaded]


def _z_targets(
    z_plan: AnyZPlan | None, base: float | None, z_offsets: list[float],
) -> Iterator[float]:
    """The focus positions (µm) the engine will be sent to at one position (as useq computes
    them: a relative plan around the position's z, or 0 when it has none)."""
    if z_plan is not None:
        shift = (base or 0.0) if z_plan.is_relative else 0.0
        planes = [shift + float(z) for z in z_plan]
    else:
        planes = [base] if base is not None else []
    for z in planes:
        for offset in z_offsets:
            yield z + offset


def _z_problems(facts: _CoreFacts, targets: Iterator[float], where: str) -> list[str]:
    if facts.z_limits is None:
        return []
    low, high = facts.z_limits
    outside = sorted({z for z in targets
                      if z < low - _Z_TOLERANCE_UM or z > high + _Z_TOLERANCE_UM})
    if not outside:
        return []
    shown = ", ".join(f"{z:g}" for z in outside[:5]) + (", ..." if len(outside) > 5 else "")
    return [f"{where}: z {shown} µm outside the limits of focus stage {facts.focus!r} "
            f"({low:g} to {high:g} µm)"]
