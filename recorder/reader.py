"""Reading back what the recorder wrote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tifffile
from ome_types import OME, from_xml


class NotOmeTiffError(ValueError):
    """The file is not a readable OME-TIFF; the message says why."""


@dataclass(frozen=True)
class RecordedFile:
    """The OME model of a file and how many pages it holds."""

    path: Path
    ome: OME
    pages: int


def read_ome_xml(path: str | Path) -> str:
    """The OME-XML in the first page's ImageDescription."""
    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tf:
            description = str(tf.pages.first.description)
    except (OSError, tifffile.TiffFileError, ValueError, IndexError) as exc:
        raise NotOmeTiffError(f"{path}: not a readable TIFF ({exc})") from exc
    if "<OME" not in description:
        raise NotOmeTiffError(f"{path}: TIFF without OME-XML in its first ImageDescription")
    return description


def read(path: str | Path) -> RecordedFile:
    """Return the OME model of an OME-TIFF written by the recorder (or any OME-TIFF)."""
    path = Path(path)
    xml = read_ome_xml(path)
    with tifffile.TiffFile(path) as tf:
        pages = len(tf.pages)
    try:
        ome = from_xml(xml)
    except Exception as exc:
        raise NotOmeTiffError(f"{path}: OME-XML does not parse: {exc}") from exc
    return RecordedFile(path=path, ome=ome, pages=pages)
