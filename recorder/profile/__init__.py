"""Stage 1, what the rig is: hardware profiles, from YAML file to checked model.

* :mod:`~nbo_recorder.profile.model` — the pydantic model of a profile (components,
  bindings, channels, calibrations), with OME enumerations from ome-types;
* :mod:`~nbo_recorder.profile.load` — reading a YAML file and its ``include:`` files;
  :mod:`~nbo_recorder.profile.errors` — the :class:`ProfileError` every step raises;
* :mod:`~nbo_recorder.profile.core_check` — the bindings against a loaded Micro-Manager core;
* :mod:`~nbo_recorder.profile.calibration` — calibration records: age, files, NBO attributes;
* :mod:`~nbo_recorder.profile.check` — ``profile check``: every problem of a profile file;
* :mod:`~nbo_recorder.profile.skeleton` — ``profile init``, with
  :mod:`~nbo_recorder.profile.labels` (what a device label states) and
  :mod:`~nbo_recorder.profile.yaml_writer` (commented YAML);
* :mod:`~nbo_recorder.profile.micrometa` (the file format),
  :mod:`~nbo_recorder.profile.micrometa_fields`, :mod:`~nbo_recorder.profile.micrometa_import`
  and :mod:`~nbo_recorder.profile.micrometa_export` — Micro-Meta App microscope files.

Checking values against the NBO vocabularies is not here: it needs the NBO schema, which
loading a profile deliberately does not import.
"""
