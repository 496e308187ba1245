"""User facts about a study: experiment, sample and its mounting, fluorophores, stated once.

What only the user can know (the experiment's purpose, the sample, its cover glass and
mounting or imaging medium, the label of each channel) comes from a sequence's
``metadata.nbo`` or from a reusable study file (``--study study.yaml``). Both have the one shape
the renderer reads (:func:`nbo_recorder.render.nbo_image.study_of`): NBO v2.01 element names
with NBO attribute names below them::

    Experiment:   {Name, Purpose, LabellingMethod, ...}
    Experimenter: {FirstName, LastName, Email, Institution, ...}
    Sample:       {Name, Organism, SampleType, BiologicalOrigin, LiveSample, MetrologySample,
                   MountingMedium: {...}, CoverGlass: {...}}
    Fluorophore:  {<channel name>: <fluorophore name> | {Name, Type, Manufacturer, ...}}

A live sample's imaging medium is its NBO ``MountingMedium`` (``Type: Growth medium``).

:func:`check_study` refuses unknown keys and values outside the NBO vocabularies (each line
names the file, the key and the allowed values); :func:`fluorophores` fills a channel's
Fluorophore from the shipped table ``fluorophores.yaml`` (peaks with their published source)
and names the channels whose fluorophore is neither in the table nor given its peaks;
:func:`study_for_run` is what the CLI calls before the first frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from nbo_recorder.nbo.schema import value_problem, xsd_element
from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.load import deep_merge
from nbo_recorder.profile.model import Profile

#: Study-file keys an acquisition does not record: the format's version, and the ``rembi:``
#: block that ``nbo-recorder deposit`` reads (and checks) from the same file.
NOT_RECORDED = frozenset({"schema_version", "rembi"})

#: The shipped fluorophore table (peaks in nm, each row with its published source).
TABLE_PATH = Path(__file__).with_name("fluorophores.yaml")

#: Study elements and the Sample children a study may state (in NBO XSD order).
ELEMENTS = ("Experiment", "Experimenter", "Sample", "Fluorophore")
SAMPLE_CHILDREN = ("MountingMedium", "CoverGlass")

Scalar = str | bool | int | float


class StudyError(ProfileError):
    """A study file or ``metadata.nbo`` the recorder cannot use (the CLI exits 2)."""


@dataclass(frozen=True, slots=True)
class FluorophoreSpec:
    """One row of the fluorophore table."""

    name: str
    excitation_nm: float
    emission_nm: float
    source: str
    aliases: tuple[str, ...] = ()
    type: str | None = None
    conditions: str | None = None

    def nbo_attributes(self) -> dict[str, Scalar]:
        """The NBO Fluorophore attributes this row fills."""
        attributes: dict[str, Scalar] = {
            "Name": self.name,
            "ExcitationWavelength": self.excitation_nm, "ExcitationWavelengthUnit": "nm",
            "EmissionWavelength": self.emission_nm, "EmissionWavelengthUnit": "nm"}
        if self.type is not None:
            attributes["Type"] = self.type
        return attributes


def _key(name: str) -> str:
    """Lookup key of a fluorophore name: case and spaces, hyphens, underscores ignored."""
    return "".join(ch for ch in name.casefold() if ch not in " -_")


def read_table(path: Path = TABLE_PATH) -> dict[str, FluorophoreSpec]:
    """The fluorophore table at ``path``, keyed by :func:`_key` of every name and alias.

    Raises :class:`StudyError` naming the row of a malformed table (a row without a source
    or with a Type outside the NBO vocabulary is malformed).
    """
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    rows = data.get("fluorophores") if isinstance(data, Mapping) else None
    if not isinstance(rows, list):
        raise StudyError(f"{path}: expected a 'fluorophores' list")
    table: dict[str, FluorophoreSpec] = {}
    for i, row in enumerate(rows):
        try:
            spec = FluorophoreSpec(
                name=str(row["name"]), excitation_nm=float(row["excitation_nm"]),
                emission_nm=float(row["emission_nm"]), source=str(row["source"]),
                aliases=tuple(str(a) for a in row.get("aliases", ())),
                type=row.get("type"), conditions=row.get("conditions"))
        except (KeyError, TypeError, ValueError) as exc:
            raise StudyError(f"{path}: fluorophores[{i}]: malformed row ({exc})") from None
        problem = value_problem("Fluorophore", "Type", spec.type) if spec.type else None
        if problem or not spec.source.strip():
            raise StudyError(f"{path}: fluorophores[{i}]: {problem or 'no source'}")
        for name in (spec.name, *spec.aliases):
            if table.get(_key(name), spec) is not spec:
                raise StudyError(f"{path}: fluorophores[{i}]: {name!r} is listed twice")
            table[_key(name)] = spec
    return table


@cache
def shipped_table() -> dict[str, FluorophoreSpec]:
    """The packaged table, read once per process."""
    return read_table()


def lookup_fluorophore(name: str) -> FluorophoreSpec | None:
    """The table row for ``name`` (or an alias of it), None when the table lacks it."""
    return shipped_table().get(_key(name))


# --- checking a study ------------------------------------------------------------------------


def attribute_names(element: str) -> tuple[str, ...]:
    """The NBO XSD attributes of ``element`` a study may state (its ``ID`` is the recorder's)."""
    declaration = xsd_element(element)
    return tuple(sorted(a for a in declaration.type.attributes if a != "ID"))


def _attribute_problems(where: str, element: str, node: object,
                        children: Iterable[str] = ()) -> list[str]:
    """Unknown keys and disallowed values of one element's mapping, one message each."""
    if not isinstance(node, Mapping):
        return [f"{where}: expected a mapping of NBO {element} attributes, "
                f"got {type(node).__name__}"]
    allowed = attribute_names(element)
    nested = tuple(children)
    problems = []
    for key, value in node.items():
        path = f"{where}.{key}"
        if key in nested:
            problems += _attribute_problems(path, str(key), value)
        elif key not in allowed:
            problems.append(f"{path}: unknown key; NBO {element} allows: "
                            + ", ".join((*allowed, *nested)))
        elif not isinstance(value, str | bool | int | float):
            problems.append(f"{path}: expected a single value, got {type(value).__name__}")
        else:
            problem = value_problem(element, str(key), value)
            if problem:
                problems.append(f"{path}: {problem}")
    return problems


def study_problems(study: object, source: str) -> list[str]:
    """Every key and value of ``study`` that is not NBO v2.01, as ``source: key: problem``."""
    if study is None:
        return []
    if not isinstance(study, Mapping):
        return [f"{source}: expected a mapping of NBO elements ({', '.join(ELEMENTS)}), "
                f"got {type(study).__name__}"]
    problems: list[str] = []
    for key, node in study.items():
        if key in NOT_RECORDED:
            continue
        if key not in ELEMENTS:
            problems.append(f"{key}: unknown key; allowed: {', '.join(ELEMENTS)}")
        elif key == "Fluorophore":
            if not isinstance(node, Mapping):
                problems.append("Fluorophore: expected channel name -> fluorophore name or "
                                f"mapping, got {type(node).__name__}")
                continue
            for channel, given in node.items():
                if not isinstance(given, str):
                    problems += _attribute_problems(f"Fluorophore.{channel}", "Fluorophore",
                                                    given)
        else:
            problems += _attribute_problems(
                str(key), str(key), node, SAMPLE_CHILDREN if key == "Sample" else ())
    return [f"{source}: {p}" for p in problems]


def check_study(study: object, source: str) -> None:
    """Raise :class:`StudyError` listing :func:`study_problems` when there are any."""
    problems = study_problems(study, source)
    if problems:
        raise StudyError("study values NBO v2.01 does not allow:\n  " + "\n  ".join(problems))


def read_study_file(path: str | Path) -> Any:
    """The YAML of a study file as it is (``{}`` when empty), unchecked; :class:`StudyError`
    naming the file when it cannot be read or is no YAML text."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudyError(f"{file}: cannot read study file: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise StudyError(f"{file}: not a valid YAML text file: {exc}") from None
    return {} if data is None else data


def load_study(path: str | Path) -> dict[str, Any]:
    """Read and check a study YAML file; its mapping has the shape of ``metadata.nbo``."""
    data = read_study_file(path)
    check_study(data, str(path))
    return {k: v for k, v in data.items() if k not in NOT_RECORDED}


# --- fluorophores ----------------------------------------------------------------------------


def fluorophores(study: Mapping[str, Any], profile: Profile,
                 channels: Iterable[str] | None = None,
                 ) -> tuple[dict[str, dict[str, Scalar]], list[str]]:
    """Each channel's NBO Fluorophore attributes, and the channels whose peaks nobody gives.

    The fluorophore of a channel is what the study names (a name, or a mapping with ``Name``)
    or else the profile's ``channels.<name>.fluor``. A name found in the table gives Name,
    peaks and (for proteins and DNA stains) Type; what the study states wins over the table.
    ``channels`` (default: the profile's) and the study's channels are the ones filled; a
    channel with a named fluorophore that is not in the table and has no stated
    ExcitationWavelength and EmissionWavelength is named in the second list (unless its Type
    is NBO's ``None``: a channel without a fluorophore, e.g. brightfield).
    """
    node = study.get("Fluorophore")
    stated: Mapping[str, Any] = node if isinstance(node, Mapping) else {}
    wanted: Iterable[str] = profile.channels if channels is None else channels
    names = dict.fromkeys((*wanted, *stated))
    result: dict[str, dict[str, Scalar]] = {}
    gaps: list[str] = []
    for channel in names:
        given = stated.get(channel)
        own: dict[str, Scalar] = ({"Name": given} if isinstance(given, str)
                                  else dict(given) if isinstance(given, Mapping) else {})
        info = profile.channels.get(channel)
        name = own.get("Name", info.fluor if info is not None else None)
        if name is None:
            if own:
                result[channel] = own
            continue
        spec = lookup_fluorophore(str(name))
        result[channel] = {**(spec.nbo_attributes() if spec else {"Name": name}), **own}
        peaks = {"ExcitationWavelength", "EmissionWavelength"} <= own.keys()
        if spec is None and not peaks and own.get("Type") != "None":
            gaps.append(f"channel {channel!r}: fluorophore {name!r} is not in the fluorophore "
                        f"table ({TABLE_PATH.name}) and the study gives no ExcitationWavelength "
                        "and EmissionWavelength for it")
    return result, gaps


def study_for_run(study_path: str | Path | None, profile: Profile,
                  metadata: Mapping[str, Any] | None,
                  channels: Iterable[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The sequence metadata with ``nbo`` completed, and the fluorophore gaps to report.

    The study file (if any) and the sequence's own ``metadata.nbo`` are checked (a
    :class:`StudyError` names file or ``metadata.nbo``, key and allowed values); the sequence's
    values win over the file's. Each channel's Fluorophore is then filled from the table
    (:func:`fluorophores`). Call it before the first frame: raise on the error, print the gaps.
    """
    own = (metadata or {}).get("nbo")
    check_study(own, "metadata.nbo")
    study = load_study(study_path) if study_path is not None else {}
    if isinstance(own, Mapping):
        study = deep_merge(study, own)
    filled, gaps = fluorophores(study, profile, channels)
    if filled:
        study["Fluorophore"] = filled
    out = dict(metadata or {})
    if study:
        out["nbo"] = study
    return out, gaps
