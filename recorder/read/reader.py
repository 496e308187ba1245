"""Reading back what the recorder wrote: the OME model and the embedded NBO record."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import tifffile
from ome_types import OME, from_xml

from nbo_recorder.nbo import NBO_NAMESPACE

_OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


class NotOmeTiffError(ValueError):
    """The file is not a readable OME-TIFF; the message says why."""


@dataclass(frozen=True)
class RecordedFile:
    """The OME model of a file, how many pages it holds, and its NBO record.

    ``nbo`` is the root ``OME`` element (NBO namespace) of the 4DN-BINA-OME record the
    recorder embeds as an XMLAnnotation, or None for files without one. Serialise it with
    :func:`nbo_text`; validate it with :func:`nbo_recorder.nbo.schema.validate_nbo`.
    """

    path: Path
    ome: OME
    pages: int
    nbo: ET.Element | None = None


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


def nbo_record(ome_xml: str | ET.Element) -> ET.Element | None:
    """The NBO record inside OME-XML: the value of the XMLAnnotation in the NBO namespace.

    Works on what the recorder wrote and on any re-serialisation of it (ome-types, Bio-Formats),
    whatever namespace prefixes and indentation those use.
    """
    root = ET.fromstring(ome_xml) if isinstance(ome_xml, str) else ome_xml
    for annotation in root.iter(f"{{{_OME_NS}}}XMLAnnotation"):
        if annotation.get("Namespace") != NBO_NAMESPACE:
            continue
        value = annotation.find(f"{{{_OME_NS}}}Value")
        record = None if value is None else value.find(f"{{{NBO_NAMESPACE}}}OME")
        if record is not None:
            return record
    return None


def nbo_text(record: ET.Element) -> str:
    """The NBO record as a standalone XML document, with NBO as the default namespace."""
    plain = copy.deepcopy(record)
    prefix = f"{{{NBO_NAMESPACE}}}"
    for element in plain.iter():
        if isinstance(element.tag, str) and element.tag.startswith(prefix):
            element.tag = element.tag[len(prefix):]
    plain.set("xmlns", NBO_NAMESPACE)
    return ET.tostring(plain, encoding="unicode")


def read(path: str | Path) -> RecordedFile:
    """Return the OME model and NBO record of an OME-TIFF written by the recorder.

    Any OME-TIFF can be read; ``nbo`` is then None when it carries no NBO record.
    """
    path = Path(path)
    xml = read_ome_xml(path)
    with tifffile.TiffFile(path) as tf:
        pages = len(tf.pages)
    try:
        ome = from_xml(xml)
        nbo = nbo_record(xml)
    except Exception as exc:
        raise NotOmeTiffError(f"{path}: OME-XML does not parse: {exc}") from exc
    return RecordedFile(path=path, ome=ome, pages=pages, nbo=nbo)
