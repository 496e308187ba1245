"""Typed access to the NBO v2.01 rules table (tier, MUST/SHOULD, M&M flag per item).

``recorder/nbo/nbo_rules.json`` is generated from the specification workbook by
``tools/extract_nbo_rules.py`` (see its docstring for how the sheet encodes tiers,
requirements and nesting). This module loads it into frozen dataclasses and answers
the questions the recorder and the validator ask: which rules describe an element,
which MUST attributes apply at a tier for a set of extensions, what tier an
(element, attribute) pair has and which values it allows.

The same element name can occur in several contexts (``WavelengthRange`` under a
light guide is tier 3, under a detector tier 2), so lookups accept the element's
ancestry; the rows whose path shares the longest suffix with it win. Rows that an
extension sheet merely repeats from Core/Basic (``reference``) lose ties, and among
equally good rows the lowest tier and MUST win, so that an ambiguous lookup is strict
rather than lenient.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from functools import cache
from operator import itemgetter
from pathlib import Path
from typing import Literal, cast

from nbo_recorder.columns import exact_types, from_columns, of_types
from nbo_recorder.nbo import RULES_PATH

Extension = Literal["core", "basic", "advconf", "calib"]
Kind = Literal["element", "attribute"]
Requirement = Literal["MUST", "SHOULD"]

EXTENSIONS: tuple[Extension, ...] = ("core", "basic", "advconf", "calib")
TIERS: tuple[int, ...] = (1, 2, 3)


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the rules table: an element or attribute in one XML context."""

    extension: Extension
    path: str
    parent: str | None
    name: str
    kind: Kind
    tier: int
    requirement: Requirement
    mm: bool
    data_type: str
    allowed_values: tuple[str, ...]
    description: str
    cardinality: str
    group: str | None
    group_mode: str | None
    inherited_from: str | None
    reference: bool
    tier_inferred: bool
    xsd: bool
    label: str
    sheet: str
    row: int

    @property
    def is_must(self) -> bool:
        """True when the specification marks the item as required (``R`` / min >= 1)."""
        return self.requirement == "MUST"

    @property
    def context(self) -> tuple[str, ...]:
        """Element names from the root down to and including ``parent``."""
        return tuple(self.path.split("/")[:-1])

    @classmethod
    def from_record(cls, record: dict[str, object]) -> Rule:
        """Build a rule from one JSON record, checking the enumerated fields."""
        extension = str(record["extension"])
        kind = str(record["kind"])
        requirement = str(record["requirement"])
        tier = int(cast(int, record["tier"]))
        if extension not in EXTENSIONS or kind not in ("element", "attribute"):
            raise ValueError(f"bad extension/kind in rules record {record.get('path')}")
        if requirement not in ("MUST", "SHOULD") or tier not in TIERS:
            raise ValueError(f"bad requirement/tier in rules record {record.get('path')}")
        parent = record["parent"]
        group = record["group"]
        group_mode = record["group_mode"]
        inherited_from = record["inherited_from"]
        return cls(
            extension=extension,
            path=str(record["path"]),
            parent=None if parent is None else str(parent),
            name=str(record["name"]),
            kind=cast(Kind, kind),
            tier=tier,
            requirement=cast(Requirement, requirement),
            mm=bool(record["mm"]),
            data_type=str(record["data_type"]),
            allowed_values=tuple(str(v) for v in cast(list[object], record["allowed_values"])),
            description=str(record["description"]),
            cardinality=str(record["cardinality"]),
            group=None if group is None else str(group),
            group_mode=None if group_mode is None else str(group_mode),
            inherited_from=None if inherited_from is None else str(inherited_from),
            reference=bool(record["reference"]),
            tier_inferred=bool(record["tier_inferred"]),
            xsd=bool(record["xsd"]),
            label=str(record["label"]),
            sheet=str(record["sheet"]),
            row=int(cast(int, record["row"])),
        )


_RULE_FIELDS = tuple(f.name for f in fields(Rule))
#: the JSON value types each field takes as they are (what from_record would make of them);
#: ``allowed_values``, a JSON list, is made a tuple
_RULE_TYPES = exact_types(Rule, {"Extension": (str,), "Kind": (str,), "Requirement": (str,),
                                 "tuple[str, ...]": (list,)})
#: the enumerated fields' allowed values, as from_record checks them
_ENUMERATED: dict[str, frozenset[object]] = {
    "extension": frozenset(EXTENSIONS), "kind": frozenset(("element", "attribute")),
    "requirement": frozenset(("MUST", "SHOULD")), "tier": frozenset(TIERS)}


def _rules_at_once(records: object) -> list[Rule] | None:
    """The rules of the JSON ``records``, made a column at a time; None unless each record
    has exactly Rule's fields, every value is of its field's own type (``allowed_values`` a
    list of strings) and every enumerated field holds an allowed value, which is when each
    rule equals :meth:`Rule.from_record` of its record."""
    if (not isinstance(records, list) or not records or set(map(type, records)) != {dict}
            or set(map(len, records)) != {len(_RULE_FIELDS)}):
        return None
    try:  # with as many keys as Rule has fields, all of them: exactly its fields
        rows = list(map(itemgetter(*_RULE_FIELDS), records))
    except KeyError:
        return None
    columns = dict(zip(_RULE_FIELDS, map(list, zip(*rows, strict=True)), strict=True))
    if not of_types(list(columns.values()), _RULE_TYPES):
        return None
    if not all(set(columns[name]) <= allowed for name, allowed in _ENUMERATED.items()):
        return None
    values = columns["allowed_values"]
    if not all(type(value) is str for listed in values for value in listed):
        return None
    columns["allowed_values"] = list(map(tuple, values))
    return from_columns(Rule, list(columns.values()))


def _suffix_score(context: Sequence[str], ancestors: Sequence[str]) -> int:
    """Number of trailing names ``context`` and ``ancestors`` have in common."""
    score = 0
    for left, right in zip(reversed(context), reversed(ancestors), strict=False):
        if left != right:
            break
        score += 1
    return score


def _preference(rule: Rule) -> tuple[bool, int, bool]:
    """Sort key among equally well placed rules: own rows, then strictest."""
    return (rule.reference, rule.tier, not rule.is_must)


class RuleTable:
    """The rules table with indexes for the lookups used by recorder and validator."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._by_parent: dict[str, list[Rule]] = defaultdict(list)
        self._by_item: dict[tuple[str, str, Kind], list[Rule]] = defaultdict(list)
        for rule in self.rules:
            if rule.parent is not None:
                self._by_parent[rule.parent].append(rule)
                self._by_item[(rule.parent, rule.name, rule.kind)].append(rule)
        # for_element answers per (element, ancestry): a file repeats the same few contexts
        # (100,000 Planes share one), so each is resolved once
        self._for_element: dict[tuple[object, ...], tuple[Rule, ...]] = {}

    @classmethod
    def load(cls, path: Path = RULES_PATH) -> RuleTable:
        """Read a rules table written by ``tools/extract_nbo_rules.py``.

        Every ``validate`` reads its 3,600 rows: they are made a column at a time
        (:func:`_rules_at_once`), and one by one (:meth:`Rule.from_record`, which converts
        and checks each value) only when a row has anything unusual in it.
        """
        records = json.loads(path.read_text(encoding="utf-8"))
        return cls(_rules_at_once(records) or [Rule.from_record(record) for record in records])

    def candidates(self, element: str, name: str, kind: Kind = "attribute") -> list[Rule]:
        """Every row for ``name`` (an attribute or child element) of ``element``."""
        return list(self._by_item.get((element, name, kind), ()))

    def resolve(
        self,
        element: str,
        name: str,
        kind: Kind = "attribute",
        ancestors: Sequence[str] = (),
    ) -> Rule | None:
        """The single row that governs ``name`` of ``element`` at ``ancestors``.

        ``ancestors`` are the element names from the document root down to and
        including ``element`` (e.g. ``("OME", "Instrument", "Objective")``); an empty
        sequence means "any context", which yields the strictest row.
        """
        found = self.candidates(element, name, kind)
        if not found:
            return None
        best = max(_suffix_score(rule.context, ancestors) for rule in found)
        placed = [rule for rule in found if _suffix_score(rule.context, ancestors) == best]
        return min(placed, key=_preference)

    def for_element(
        self,
        element: str,
        ancestors: Sequence[str] = (),
        *,
        kind: Kind | None = None,
        extensions: Iterable[Extension] = EXTENSIONS,
    ) -> list[Rule]:
        """The governing row of each attribute/child of ``element``, sorted by kind and name."""
        if isinstance(ancestors, tuple) and isinstance(extensions, tuple):
            # the callers' usual arguments: looked up as given, without building a key
            hit = self._for_element.get((element, ancestors, kind, extensions))
            if hit is not None:
                return list(hit)
        allowed = frozenset(extensions)
        key = (element, tuple(ancestors), kind, allowed)
        known = self._for_element.get(key)
        if known is None:
            names = sorted({(r.kind, r.name) for r in self._by_parent.get(element, ())
                            if kind in (None, r.kind)})
            rules = [self.resolve(element, name, item_kind, ancestors)
                     for item_kind, name in names]
            known = self._for_element[key] = tuple(
                rule for rule in rules if rule is not None and rule.extension in allowed)
        if isinstance(ancestors, tuple) and isinstance(extensions, tuple):
            self._for_element[(element, ancestors, kind, extensions)] = known
        return list(known)

    def must_attributes(
        self, tier: int, extensions: Iterable[Extension] = EXTENSIONS
    ) -> list[Rule]:
        """MUST attribute rows applicable at ``tier`` (tier <= ``tier``) in ``extensions``.

        Repeats of Core/Basic rows in the Advanced/Calibration sheets are left out.
        """
        check_tier(tier)
        allowed = set(extensions)
        return [
            rule
            for rule in self.rules
            if rule.kind == "attribute"
            and rule.is_must
            and rule.tier <= tier
            and rule.extension in allowed
            and not rule.reference
        ]

    def tier_of(self, element: str, attribute: str, ancestors: Sequence[str] = ()) -> int | None:
        """Tier of ``attribute`` of ``element`` (None when the table has no row for it)."""
        rule = self.resolve(element, attribute, "attribute", ancestors)
        return None if rule is None else rule.tier

    def allowed_values(
        self, element: str, attribute: str, ancestors: Sequence[str] = ()
    ) -> tuple[str, ...]:
        """Values the specification sheet lists for an enumerated attribute (may be empty)."""
        rule = self.resolve(element, attribute, "attribute", ancestors)
        return () if rule is None else rule.allowed_values


def check_tier(tier: int) -> None:
    """Reject tiers other than 1, 2 and 3."""
    if tier not in TIERS:
        raise ValueError(f"tier must be 1, 2 or 3, not {tier!r}")


@cache
def load_rules() -> RuleTable:
    """The packaged rules table, loaded once per process."""
    return RuleTable.load()
