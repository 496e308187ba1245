"""What produced a recording and when: the software stack's versions and the clock.

Kept apart from the sink and the recorder so both (and the tests that compare a file's
provenance) take them from one place.
"""

from __future__ import annotations

import functools
import importlib.metadata
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus


@functools.cache
def _distribution_versions() -> tuple[tuple[str, str], ...]:
    versions = []
    for dist in ("nbo-recorder", "pymmcore-plus", "pymmcore", "tifffile", "ome-types",
                 "useq-schema"):
        try:
            versions.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((dist, "not installed as a distribution"))
    return tuple(versions)


def software_versions(core: CMMCorePlus) -> dict[str, str]:
    """Versions of the software stack that produced a file, as reported by itself."""
    versions = dict(_distribution_versions())
    versions["MMCore"] = str(core.getVersionInfo()).removeprefix("MMCore version ").strip()
    versions["MMDevice API"] = str(core.getAPIVersionInfo())
    return versions


def metadata_writer() -> str:
    """How a file names the software that wrote its metadata: ``nbo-recorder <version>``."""
    return f"nbo-recorder {dict(_distribution_versions())['nbo-recorder']}"


def now_iso() -> str:
    """The current UTC time, to the millisecond, as written into a run's documents."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
