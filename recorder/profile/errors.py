"""The one error a profile step raises, in a module of its own.

Loading, checking against a core and checking against the NBO vocabularies all raise
:class:`ProfileError`; code that only catches it (the CLI, the pytest plugin) imports it from
here without importing pydantic, ome-types or YAML.
"""

from __future__ import annotations


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the field and the problem."""
