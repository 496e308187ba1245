"""Profile data written as YAML a human can read and finish: block style, with comments.

``profile init`` and ``profile import-micrometa`` both write a profile a person completes by
hand, so the YAML keeps the profile's key order, writes small leaf mappings and lists in flow
style (``{property: Gain}``), and carries comments: a heading per group of components, notes
after a component or binding (commented-out labels land inside the label list), and notes
before a top-level key (the ``todo:`` list).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml


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
