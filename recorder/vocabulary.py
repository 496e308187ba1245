"""The words a written file uses, defined once: namespaces, IDs, the unknown marker, value text.

Every part of nbo-recorder that writes or reads a file spells these the same way because they
come from here: the builders of the OME and NBO parts (:mod:`nbo_recorder.render`), the
interpretation of observed state (:mod:`nbo_recorder.capture.observed`) and the readers. The
module imports only the standard library, so the profile model can use it too.

* **Namespaces** of the OME 2016-06 document, the NBO record and nbo-recorder's own
  MapAnnotations (``urn:nbo-recorder:...``).
* **IDs**: every profile component is ``Kind:id`` in both parts (``Objective:obj-10x``,
  ``LightSource:laser-488``), see :func:`ome_id` and :func:`component_id`.
* **Unknown**: a value that could not be observed is :class:`Unknown` and written as
  ``unknown (reason)``; :data:`UNKNOWN_TEXT` fills required NBO free-text attributes nobody
  stated.
* **Maps** from Micro-Manager words to OME words (binning, pixel type).
* **Text**: :func:`clean_text` (what XML 1.0 can hold), :func:`format_value` (an observed value
  with its unit, as annotations hold it), :func:`xml_number` and :func:`attribute_text` (the
  one spelling of numbers and other values in XML attributes; a non-finite number is never
  written).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, overload

# --- namespaces ------------------------------------------------------------------------------

#: The OME 2016-06 schema namespace of the OME-XML part.
OME_NAMESPACE: Final = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
#: The namespace of the 4DN-BINA-OME (NBO) v2.01 record (as the NBO XSD declares it).
NBO_NAMESPACE: Final = "http://www.NamespaceTest.org/Schemas/NBO/2020-11"
#: MapAnnotation of a plane whose settings differ from its channel's.
NS_PLANE: Final = "urn:nbo-recorder:plane-settings"
#: MapAnnotation with every setting observed for a channel.
NS_CHANNEL: Final = "urn:nbo-recorder:channel-settings"
#: MapAnnotation summarising the acquisition (software, status, frame counts).
NS_RUN: Final = "urn:nbo-recorder:acquisition"
#: MapAnnotation saying which NBO tier the record reaches.
NS_NBO_COMPLIANCE: Final = "urn:nbo-recorder:nbo-compliance"
#: MapAnnotation in the NBO record with profile facts NBO has no attribute for.
NS_COMPONENT: Final = "urn:nbo-recorder:component"
#: MapAnnotation in the NBO record summarising a calibration and whether it is stale.
NS_CALIBRATION: Final = "urn:nbo-recorder:calibration"

# --- IDs -------------------------------------------------------------------------------------

#: ID of the XMLAnnotation (in the OME part) holding the NBO record.
NBO_ANNOTATION_ID: Final = "Annotation:nbo"

#: Profile component kind -> the ``Kind`` of its ID (all light sources share ``LightSource``).
ID_KIND: Final[Mapping[str, str]] = {
    "objective": "Objective", "filter": "Filter", "dichroic": "Dichroic",
    "filter_set": "FilterSet", "laser": "LightSource", "led": "LightSource",
    "arc": "LightSource", "generic_light_source": "LightSource", "detector": "Detector",
    "pinhole": "Pinhole", "spinning_disk": "SpinningDisk", "stage": "Stage",
}


def ome_id(kind: str, local_id: str) -> str:
    """The LSID-style ID ``Kind:local_id`` (``Objective:obj-10x``) used in both parts."""
    return f"{kind}:{local_id}"


def component_id(component_kind: str, local_id: str) -> str:
    """The ID of a profile component of ``component_kind`` (``laser`` -> ``LightSource:...``)."""
    return ome_id(ID_KIND[component_kind], local_id)


# --- unknown values --------------------------------------------------------------------------


def unknown_text(reason: str) -> str:
    """How a file spells a value that is not known: ``unknown (reason)``."""
    return f"unknown ({reason})"


def unknown_reason(text: str) -> str | None:
    """The reason of an ``unknown (reason)`` text, or None when ``text`` is not one."""
    if not (text.startswith("unknown (") and text.endswith(")")):
        return None
    return text[len("unknown ("):-1]


@dataclass(frozen=True, slots=True)
class Unknown:
    """A value the recorder could not observe, with the reason. Never replaced by a guess."""

    reason: str

    def __str__(self) -> str:
        return unknown_text(self.reason)


#: Written for free-text attributes of elements the NBO XSD requires but nobody stated.
UNKNOWN_TEXT: Final = unknown_text("not stated to nbo-recorder")

# --- Micro-Manager words -> OME words ---------------------------------------------------------

#: Micro-Manager camera binning -> OME Binning (a value missing here is OME "Other").
BINNING: Final[Mapping[str, str]] = {
    "1": "1x1", "2": "2x2", "4": "4x4", "8": "8x8",
    "1x1": "1x1", "2x2": "2x2", "4x4": "4x4", "8x8": "8x8",
}

#: numpy dtype name -> OME PixelType.
PIXEL_TYPES: Final[Mapping[str, str]] = {
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "int8": "int8",
    "int16": "int16", "int32": "int32", "float32": "float", "float64": "double",
}


def ome_binning(binning: str) -> str:
    """The OME Binning for a camera's binning property value (``"2"`` -> ``"2x2"``)."""
    return BINNING.get(binning, "Other")


# --- text ------------------------------------------------------------------------------------

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@overload
def clean_text(text: str) -> str: ...
@overload
def clean_text(text: None) -> None: ...
def clean_text(text: str | None) -> str | None:
    """Return ``text`` without characters XML 1.0 cannot represent (warns when it drops any).

    XML 1.0 cannot carry most C0 control characters (even escaped), lone surrogates, or
    U+FFFE/U+FFFF; device property values and profile text can contain any of them. Escaping
    of ``<``, ``&`` and quotes is left to the XML serialiser.
    """
    if text is None:
        return None
    cleaned, n = _ILLEGAL.subn("", text)
    if n:
        warnings.warn(
            f"dropped {n} character(s) that XML 1.0 cannot hold from {text[:60]!r}",
            stacklevel=2,
        )
    return cleaned


def format_value(value: object, unit: str) -> str:
    """An observed value as the channel and plane annotations write it (``"0.5 mW"``).

    Numbers are written with ``%g`` (six significant digits) and the unit after a space; an
    :class:`Unknown` is written as ``unknown (reason)`` without the unit.
    """
    if isinstance(value, Unknown):
        return str(value)
    if isinstance(value, float):
        value = f"{value:g}"
    return f"{value} {unit}".strip()


def finite(value: object) -> float | None:
    """``value`` when it is a finite float (an observed number), else None (leave it out)."""
    return value if isinstance(value, float) and math.isfinite(value) else None


def xml_number(value: float) -> str | None:
    """The xs:float/xs:double literal of ``value``; None for NaN and infinities.

    A non-finite number is never written as an attribute: OME 2016-06 rejects ``nan``, and a
    value that is not a number is not known; the attribute is left out instead. A negative zero
    (a stage at ``-0.0`` after a centred z-stack) is written ``0.0``: it is the same position.
    """
    if not math.isfinite(value):
        return None
    return repr(float(value) + 0.0)


def attribute_text(value: object) -> str | None:
    """XML attribute text for a profile or observed value (None: leave the attribute out).

    Booleans are ``true``/``false``, integers decimal, floats as :func:`xml_number`, anything
    else its text without characters XML 1.0 cannot hold.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return xml_number(value)
    return clean_text(str(value))
