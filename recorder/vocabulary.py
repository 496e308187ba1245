"""Make arbitrary device and profile strings safe for XML 1.0.

XML 1.0 cannot carry most C0 control characters (even escaped), lone surrogates, or U+FFFE/
U+FFFF. Device property values and profile text can contain any of them; they are dropped
with a warning so the written OME-XML stays well-formed. Escaping of ``<``, ``&`` and quotes
is left to the XML serialiser.
"""

from __future__ import annotations

import re
import warnings
from typing import overload

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@overload
def clean_text(text: str) -> str: ...
@overload
def clean_text(text: None) -> None: ...
def clean_text(text: str | None) -> str | None:
    """Return ``text`` without characters XML 1.0 cannot represent (warns when it drops any)."""
    if text is None:
        return None
    cleaned, n = _ILLEGAL.subn("", text)
    if n:
        warnings.warn(
            f"dropped {n} character(s) that XML 1.0 cannot hold from {text[:60]!r}",
            stacklevel=2,
        )
    return cleaned
