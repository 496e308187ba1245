"""Reading a hardware profile: YAML, ``include:`` files, and errors that name file and field.

:func:`load_profile` reads a YAML file, merges the files it includes, validates the result
against :mod:`nbo_recorder.profile.model` and checks the calibration result files it cites;
:func:`parse_profile` validates data already parsed. Every error is a
:class:`~nbo_recorder.profile.errors.ProfileError` whose lines read
``file: path.to.field: message`` (an included component also says which file it came from).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nbo_recorder.profile.calibration import check_calibration_files
from nbo_recorder.profile.errors import ProfileError
from nbo_recorder.profile.model import COMPONENT_KINDS, Profile


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
                p for p in err["loc"] if not (isinstance(p, str) and p in COMPONENT_KINDS)
            )
            msg = err["msg"]
            if err["type"] == "union_tag_invalid":
                msg = f"unknown component kind; known kinds: {sorted(COMPONENT_KINDS)}"
            lines.append(f"{source}: {_format_loc(loc)}: {msg}")
        raise ProfileError("\n".join(lines)) from None


def load_profile(path: str | Path, *, check_files: bool = True) -> Profile:
    """Read and validate a profile YAML file, merging the files it includes.

    With ``check_files`` (the default) every result file a calibration record cites must
    exist too. Values the NBO vocabularies do not allow are not checked here: that is
    :func:`nbo_recorder.render.nbo_checks.check_nbo_profile`, run by whoever writes or
    checks NBO (the recorder, ``profile check``, the conformance suite).

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
    if check_files:
        try:
            check_calibration_files(profile, path.parent)
        except ProfileError as exc:
            raise ProfileError("\n".join(located(path, exc))) from None
    return profile


def located(path: Path, error: ProfileError) -> list[str]:
    """The lines of a check's ``error``, each prefixed with the profile file they are about."""
    return [f"{path}: {line.strip()}" for line in str(error).splitlines()]


#: keys an included file may have (anything else would be silently lost in the merge)
_INCLUDE_KEYS = frozenset({"components", "bindings", "include", "description"})


def _read_yaml(path: Path, context: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{context}cannot read profile: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{context}not a UTF-8 text file (byte 0x{exc.object[exc.start]:02x} "
                           f"at offset {exc.start}); save the profile as UTF-8") from None
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
            components[k] = deep_merge(base, comp)
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


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, mapping by mapping (an included profile under
    the including one; a study file under a sequence's ``metadata.nbo``)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _annotate_origins(message: str, origins: dict[int, str]) -> str:
    """Say which file a ``components[i]`` of the merged list in a validation error is from."""
    def repl(m: re.Match[str]) -> str:
        k = int(m.group(1))
        return f"{m.group(0)} ({origins[k]})" if k in origins else m.group(0)

    return re.sub(r"components\[(\d+)\]", repl, message)
