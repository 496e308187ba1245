"""How far an NBO record gets: the tier it reaches and its MUST/SHOULD coverage.

:func:`nbo_compliance` validates a record at each tier (attributes set to the unknown marker
count as missing) and counts, per extension, the rules-table attributes it has; the OME part
carries the result as a MapAnnotation (``urn:nbo-recorder:nbo-compliance``).
:func:`compliance_of_view` remembers the result for a run's small view, so the recorder can
work it out in the background while acquiring instead of at finalisation.
"""

from __future__ import annotations

import copy
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from nbo_recorder.nbo.rules import EXTENSIONS, TIERS
from nbo_recorder.nbo.schema import ValidationResult, attribute_compliance, validate_nbo
from nbo_recorder.profile.model import CalibrationRecord
from nbo_recorder.vocabulary import UNKNOWN_TEXT


def _without_unknown_markers(root: ET.Element) -> ET.Element:
    """A copy of ``root`` without the attributes set to :data:`UNKNOWN_TEXT`."""
    work = copy.deepcopy(root)
    for element in work.iter():
        for key in [k for k, v in element.attrib.items() if v == UNKNOWN_TEXT]:
            del element.attrib[key]
    return work


def _describe(result: ValidationResult, limit: int = 25) -> str:
    items = [f"{e.path}" + (f"@{e.attribute}" if e.attribute else f": {e.message}")
             for e in result.errors[:limit]]
    more = len(result.errors) - limit
    return "; ".join(items) + (f"; and {more} more" if more > 0 else "")


def _tier_reached(root: ET.Element) -> tuple[int, list[ValidationResult]]:
    """Highest tier ``root`` validates at (0: none), and the results up to the first failure."""
    results = []
    for tier in TIERS:
        result = validate_nbo(root, tier)
        results.append(result)
        if not result.ok:
            return tier - 1, results
    return max(TIERS), results


#: compliance results by view text with the plane counts removed (see compliance_of_view)
_COMPLIANCE_CACHE: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}


_COMPLIANCE_LOCK = threading.Lock()


_SIZES = re.compile(r' Size[XYZCT]="\d+"')


def compliance_of_view(view: str, stale: Sequence[CalibrationRecord] = ()) -> dict[str, str]:
    """:func:`nbo_compliance` of a ``planes="first_per_channel"`` view, remembered.

    Validating against the NBO XSD takes about 0.1 s (1.3 s the first time, to load it),
    too long to add to every file's finalisation. The view of a run does not change once
    every position and channel has its first frame, except for the Pixels sizes, which
    compliance does not look at; so the recorder computes it on a background thread while
    acquiring, and finalisation finds it here.
    """
    key = (_SIZES.sub("", view), tuple(c.id for c in stale))
    with _COMPLIANCE_LOCK:
        cached = _COMPLIANCE_CACHE.get(key)
    if cached is None:
        cached = nbo_compliance(view, stale)
        with _COMPLIANCE_LOCK:
            if len(_COMPLIANCE_CACHE) >= 16:
                _COMPLIANCE_CACHE.clear()
            _COMPLIANCE_CACHE[key] = cached
    return dict(cached)


def nbo_compliance(document: str | ET.Element,
                   stale: Sequence[CalibrationRecord] = ()) -> dict[str, str]:
    """How far an NBO document gets: the tier reached and MUST/SHOULD coverage per extension.

    ``tier reached`` is the highest tier at which :func:`validate_nbo` accepts the document
    when attributes set to :data:`UNKNOWN_TEXT` count as missing (``none`` if not even tier 1);
    the errors of the first tier it fails are listed. ``tier reached with unknown
    placeholders`` accepts those placeholders (it shows what the rig description alone
    achieves when the experiment, sample and fluorophores were not stated). Coverage counts
    distinct element/attribute pairs of the rules table (present when every element of that
    kind in the document has it; placeholders count as missing), per extension and
    requirement, for the items introduced at each tier. ``stale`` calibrations are named.
    """
    root = ET.fromstring(document) if isinstance(document, str) else document
    work = _without_unknown_markers(root)
    out = {"specification": "4DN-BINA-OME (NBO) v2.01"}
    reached, results = _tier_reached(work)
    for result in results:
        if result.ok:
            out[f"tier {result.tier} deferred to higher tiers"] = str(len(result.deferred))
        else:
            out[f"tier {result.tier} errors"] = str(len(result.errors))
            out[f"tier {result.tier} missing or invalid"] = _describe(result)
    out["tier reached"] = str(reached) if reached else "none"
    lenient = _tier_reached(root)[0]
    out["tier reached with unknown placeholders"] = str(lenient) if lenient else "none"
    present: dict[tuple[str, str, int, str, str], bool] = {}
    for entry in attribute_compliance(work, max(TIERS)):
        kind = re.sub(r"\[\d+\]", "", entry.path)
        for status in entry.attributes:
            key = (status.extension, status.requirement, status.tier, kind, status.name)
            present[key] = present.get(key, True) and status.present
    for extension in EXTENSIONS:
        for requirement in ("MUST", "SHOULD"):
            parts = []
            for tier in TIERS:
                found = [v for (e, r, t, _, _), v in present.items()
                         if (e, r, t) == (extension, requirement, tier)]
                if found:
                    parts.append(f"tier {tier}: {sum(found)} present, "
                                 f"{len(found) - sum(found)} missing")
            if parts:
                out[f"{extension} {requirement} attributes"] = "; ".join(parts)
    if stale:
        out["stale calibrations"] = ", ".join(f"{c.id} ({c.date.isoformat()})" for c in stale)
    return out

