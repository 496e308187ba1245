"""Checks of a profile and of a sequence's study metadata against NBO v2.01's vocabularies.

Loading a profile checks it against the profile model only; these checks are a separate step
that whoever writes or validates NBO records runs (the recorder, the CLI, conformance), so
that loading a profile does not need the NBO XSD. :func:`check_nbo_profile` raises
:class:`~nbo_recorder.profile.errors.ProfileError` naming every profile value NBO cannot hold;
:func:`study_problems` lists the values of a sequence's ``metadata.nbo`` NBO does not allow.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbo_recorder.nbo.schema import value_problem, xsd_attribute
from nbo_recorder.profile import calibration
from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.load import load_profile, located
from nbo_recorder.profile.model import Detector, Laser, Profile
from nbo_recorder.render.nbo_elements import (
    BIT_DEPTHS,
    EXTRA_CHILDREN,
    EXTRA_KEY,
    STAND_ELEMENT,
    Scalar,
    filter_roles,
    nbo_element_name,
)
from nbo_recorder.render.nbo_image import stated
from nbo_recorder.render.nbo_instrument import kind_attributes, manufacturer_specs
from nbo_recorder.vocabulary import attribute_text


def _extra_problems(where: str, element: str,
                    extra: Mapping[str, Scalar | None] | None) -> list[str]:
    """Messages for ``extra`` values NBO does not allow at the attribute their key names."""
    problems = []
    for key, value in (extra or {}).items():
        if value is None:
            continue
        target: tuple[str, str] | None = None
        if xsd_attribute(element, key) is not None:
            target = (element, key)
        else:
            match = EXTRA_KEY.match(key)
            if match and match["child"] in EXTRA_CHILDREN.get(element, ()):
                target = (match["child"], match["attr"])
        if target is not None:
            problem = value_problem(*target, value)
            if problem is not None:
                problems.append(f"{where}.extra.{key}: {problem}")
    return problems


def check_nbo_profile(profile: Profile) -> None:
    """Raise :class:`ProfileError` for profile values NBO v2.01 cannot hold.

    Checks what the profile model itself cannot know is wrong for NBO: ``extra`` values (and
    the stand's) against the XSD type and allowed values of the NBO attribute their key names,
    a laser medium outside NBO's list, a detector bit depth NBO has no value for, and measured
    calibration values whose unit does not fit the NBO attribute they fill. Every message names
    the profile field; enumerations list the allowed values.
    """
    problems: list[str] = []
    roles = filter_roles(profile)
    mic = profile.microscope
    stand = STAND_ELEMENT.get(mic.type.value if mic.type else "", "InvertedMicroscopeStand")
    problems += _extra_problems("microscope", stand, mic.extra)
    for i, comp in enumerate(profile.components):
        element = nbo_element_name(comp, roles)
        problems += _extra_problems(f"components[{i}]", element, comp.extra)
        own = {**manufacturer_specs(comp), **kind_attributes(profile, comp, element)[0]}
        for key, value in (comp.extra or {}).items():
            mine = attribute_text(own.get(key))
            if own.get(key) is not None and value is not None and mine != attribute_text(value):
                problems.append(f"components[{i}].extra.{key}: {value!r} contradicts the "
                                f"profile's own {mine!r}; keep one of them")
        if isinstance(comp, Laser) and comp.laser_medium is not None:
            problem = value_problem("Laser", "LaserMedium", comp.laser_medium)
            if problem:
                problems.append(f"components[{i}].laser_medium: {problem}")
        if isinstance(comp, Detector) and comp.bit_depth is not None \
                and comp.bit_depth not in BIT_DEPTHS:
            problems.append(f"components[{i}].bit_depth: {comp.bit_depth} bit is not an NBO "
                            f"v2.01 {element}@MaxBitDepth; allowed: "
                            + ", ".join(str(b) for b in BIT_DEPTHS))
    problems += calibration.calibration_problems(profile.calibrations)
    if problems:
        raise ProfileError("profile values NBO v2.01 does not allow:\n  " + "\n  ".join(problems))


def study_problems(metadata: Mapping[str, Any] | None) -> list[str]:
    """Values in a sequence's ``metadata.nbo`` that NBO does not allow, one message each."""
    nbo = (metadata or {}).get("nbo")
    if nbo is None:
        return []
    if not isinstance(nbo, Mapping):
        return [f"metadata.nbo: expected a mapping of NBO elements, got {type(nbo).__name__}"]
    problems = []
    for element in ("Experiment", "Sample", "Experimenter"):
        for key, value in stated(nbo, element, element).items():
            problem = value_problem(element, key, value)
            if problem:
                problems.append(f"metadata.nbo.{element}.{key}: {problem}")
    fluorophores = nbo.get("Fluorophore")
    for channel in fluorophores if isinstance(fluorophores, Mapping) else {}:
        for key, value in stated(nbo, "Fluorophore", "Fluorophore", channel).items():
            problem = value_problem("Fluorophore", key, value)
            if problem:
                problems.append(f"metadata.nbo.Fluorophore.{channel}.{key}: {problem}")
    return problems


def load_checked_profile(path: str | Path) -> Profile:
    """Load the profile at ``path`` and run :func:`check_nbo_profile` on it.

    What every command that records, exports or tests a profile uses: the profile must be one
    the recorder can write an NBO record from. Each line of an NBO problem names the file, as
    loading problems do.
    """
    profile = load_profile(path)
    try:
        check_nbo_profile(profile)
    except ProfileError as exc:
        raise ProfileError("\n".join(located(Path(path), exc))) from None
    return profile
