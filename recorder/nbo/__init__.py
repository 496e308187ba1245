"""Packaged 4DN-BINA-OME (NBO) v2.01 specification data.

Holds an unmodified copy of the NBO XSD (CC-BY 3.0, see ``ATTRIBUTION.md``) and the
rules table ``nbo_rules.json`` that ``tools/extract_nbo_rules.py`` derives from the
specification workbook. The paths are exposed so that the validator and the rules
loader find the files wherever the package is installed. ``NBO_NAMESPACE`` is defined with the
other names a file uses in :mod:`nbo_recorder.vocabulary`.
"""

from pathlib import Path
from typing import Final

from nbo_recorder.vocabulary import NBO_NAMESPACE

SPEC_DIR: Final[Path] = Path(__file__).resolve().parent
XSD_PATH: Final[Path] = SPEC_DIR / "NBO_MicroscopyMetadataSpecifications_ALL_v02-01.xsd"
RULES_PATH: Final[Path] = SPEC_DIR / "nbo_rules.json"

__all__ = ["NBO_NAMESPACE", "RULES_PATH", "SPEC_DIR", "XSD_PATH"]
