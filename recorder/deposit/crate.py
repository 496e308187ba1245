"""A deposition package: an RO-Crate 1.1 of recorded files, their NBO records and REMBI.

:func:`deposit` copies the files into a folder and writes its ``ro-crate-metadata.json`` with
the ``rocrate`` library:

* the root ``Dataset`` (name, description, licence, authors from the study file's ``rembi:``
  block; the date it was written) with every file as a ``File`` (``contentSize`` in bytes,
  ``sha256``, ``encodingFormat``); an OME-Zarr store is a ``Dataset`` whose files are each
  listed the same way;
* per file, its NBO record as linked data (:mod:`nbo_recorder.deposit.linked`; a file
  without one: its OME part, whose names NBO keeps), the acquisition as a ``CreateAction``
  whose ``instrument`` is the NBO Instrument and the acquisition software, each
  ``AcquisitionSoftware`` also a schema.org ``SoftwareApplication``;
* the REMBI sections (:mod:`nbo_recorder.deposit.rembi`) as ``rembi:<Section>`` nodes: the
  Study for the crate, a Study Component per file with its Biosample, Specimen and Image
  Acquisition. Every mandatory REMBI field nothing fills is listed (``rembi:missing`` on its
  section, and in :attr:`Deposit.missing`), never invented.

The ``@context`` is RO-Crate 1.1's followed by the project's ``context.jsonld`` (inline, so
the crate needs nothing but the RO-Crate context to be read).
"""

from __future__ import annotations

import datetime
import hashlib
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbo_recorder.deposit import linked, rembi
from nbo_recorder.judge.reader import NotOmeTiffError, read_xml
from nbo_recorder.profile.study import NOT_RECORDED, check_study, read_study_file
from nbo_recorder.store.formats import is_zarr_path
from nbo_recorder.vocabulary import OME_NAMESPACE

#: The RO-Crate version the package conforms to.
RO_CRATE_VERSION = "1.1"
#: The metadata file of an RO-Crate.
METADATA_NAME = "ro-crate-metadata.json"


@dataclass(frozen=True)
class DepositStudy:
    """A study file for ``deposit``: the acquisition study's NBO keys and the REMBI block."""

    nbo: dict[str, Any]
    rembi: dict[str, Any]


@dataclass
class Deposit:
    """What :func:`deposit` wrote: the crate folder and the mandatory REMBI fields missing."""

    folder: Path
    files: list[str]
    missing: list[rembi.Missing] = field(default_factory=list)


def load_deposit_study(path: str | Path | None) -> DepositStudy:
    """Read a study file: the format ``--study`` takes for acquisitions, plus ``rembi:``.

    The NBO keys are checked as for an acquisition (one reading of the file:
    :func:`~nbo_recorder.profile.study.read_study_file`) and the ``rembi:`` block against
    :data:`~nbo_recorder.deposit.rembi.STUDY_KEYS`; a problem raises ValueError (a
    :class:`~nbo_recorder.profile.study.StudyError` for the NBO keys) naming the file and
    the key.
    """
    if path is None:
        return DepositStudy({}, {})
    data = read_study_file(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
    block = rembi.check_study_block(data.get("rembi"), str(path))
    check_study(data, str(path))
    return DepositStudy({k: v for k, v in data.items() if k not in NOT_RECORDED}, block)


@dataclass(frozen=True)
class _Source:
    """A file to deposit: where it is, its name in the crate and its record."""

    path: Path
    name: str
    record: ET.Element
    has_nbo: bool
    acquired: str | None


def _sources(paths: Sequence[Path]) -> list[_Source]:
    """Every input read and checked before anything is written (ValueError: exit 2)."""
    out: list[_Source] = []
    names: dict[str, Path] = {}
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            recorded = read_xml(path)
        except NotOmeTiffError as exc:
            raise ValueError(f"{exc}: no OME metadata to deposit") from None
        name = path.name
        if name in names:
            raise ValueError(f"{path}: a file named {name} is already deposited "
                             f"(from {names[name]}); rename one of them")
        names[name] = path
        date = recorded.tree.find(f".//{{{OME_NAMESPACE}}}AcquisitionDate")
        record = recorded.nbo if recorded.nbo is not None else recorded.tree
        out.append(_Source(path, name, record, recorded.nbo is not None,
                           date.text if date is not None else None))
    return out


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_properties(path: Path) -> dict[str, Any]:
    return {"contentSize": str(path.stat().st_size), "sha256": sha256(path)}


def deposit(files: Iterable[str | Path], study: DepositStudy, out: str | Path) -> Deposit:
    """Write the RO-Crate of ``files`` into the folder ``out`` (created; must be empty).

    Raises ValueError (FileNotFoundError) naming the file when an input is missing or has no
    OME metadata, before anything is written.
    """
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    sources = _sources([Path(f) for f in files])
    folder = Path(out)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder}: the crate folder exists and is not empty")
    if not folder.parent.is_dir():  # a mistyped path makes no folders
        raise FileNotFoundError(f"--out {folder}: folder {folder.parent} does not exist")
    crate = ROCrate(version=RO_CRATE_VERSION)
    crate.metadata.extra_terms = dict(linked.shipped_context())
    block = study.rembi
    crate.name = block.get("title") or f"{len(sources)} file(s) recorded by nbo-recorder"
    crate.description = block.get("description") or (
        "Images with their 4DN-BINA-OME (NBO) records, deposited by nbo-recorder")
    crate.datePublished = datetime.date.today().isoformat()
    if block.get("license"):
        crate.license = str(block["license"])
    if block.get("keywords"):
        keywords = block["keywords"]
        crate.keywords = _single([str(k) for k in keywords]) if isinstance(keywords, list) \
            else str(keywords)
    authors = [crate.add(ContextEntity(crate, _person_id(a, n), _person(a)))
               for n, a in enumerate(block.get("authors") or [])]
    if authors:
        crate.creator = _single(authors)
    recorder = crate.add(ContextEntity(crate, "#software/nbo-recorder", {
        "@type": "SoftwareApplication", "name": "nbo-recorder",
        "description": "records a Micro-Manager rig's live state as NBO/OME metadata"}))
    sections, missing = rembi.study_sections(block, [s.record for s in sources])
    study_node = _section_entity(crate, "#rembi/Study", sections[0], missing)
    for extra in sections[1:]:
        study_node["rembi:imageCorrelation"] = _section_entity(
            crate, f"#rembi/{_slug(extra.name)}", extra, [])
    crate.root_dataset["rembi:study"] = study_node
    names = []
    for source in sources:
        missing += _add_source(crate, source, block, study_node, recorder)
        names.append(source.name)
    folder.mkdir(exist_ok=True)
    with warnings.catch_warnings():
        # the files inside an OME-Zarr store are listed without a source of their own: they
        # are copied with the store, which rocrate would otherwise warn about, file by file
        warnings.filterwarnings("ignore", message="No source for ")
        crate.write(folder)
    return Deposit(folder, names, missing)


def _add_source(crate: Any, source: _Source, block: Mapping[str, Any], study_node: Any,
                recorder: Any) -> list[rembi.Missing]:
    """Add one file (or store), its linked record, acquisition and REMBI sections."""
    from rocrate.model.contextentity import ContextEntity

    file_id = linked.file_node_id(source.name)
    zarr = is_zarr_path(source.path) or source.path.is_dir()
    subject: dict[str, Any] = {"@id": file_id, "@type": ["Dataset" if zarr else "File"]}
    nodes = linked.record_nodes(source.record, subject, file_id)
    props = {k: v for k, v in subject.items() if k != "@id"}
    props["name"] = source.name
    if not source.has_nbo:
        props["description"] = "has no NBO record: its OME part is given under nbo: terms"
    if zarr:
        props["encodingFormat"] = "OME-Zarr (bioformats2raw layout)"
        entity = crate.add_dataset(source.path, source.name, properties=props)
        for inner in sorted(p for p in source.path.rglob("*") if p.is_file()):
            rel = f"{source.name}/{inner.relative_to(source.path).as_posix()}"
            part = crate.add_file(None, rel, properties={"name": rel,
                                                         **_file_properties(inner)})
            entity.append_to("hasPart", part)
    else:
        props.update({"encodingFormat": "image/tiff", **_file_properties(source.path)})
        entity = crate.add_file(source.path, source.name, properties=props)
    instruments: list[Any] = []
    for node in nodes:
        kind = node["@type"]
        if kind == "nbo:AcquisitionSoftware":
            node["@type"] = [kind, "SoftwareApplication"]
            node["name"] = node.get("nbo:Name", node["@id"])
            if "nbo:Version" in node:
                node["softwareVersion"] = node["nbo:Version"]
            if "nbo:WebsiteURL" in node:
                node["url"] = node["nbo:WebsiteURL"]
        node_id = node.pop("@id")
        added = crate.add(ContextEntity(crate, node_id, node))
        if kind in ("nbo:Instrument", "nbo:AcquisitionSoftware"):
            instruments.append(added)
    action: dict[str, Any] = {"@type": "CreateAction", "name": f"acquisition of {source.name}",
                              "result": entity, "instrument": [*instruments, recorder]}
    if source.acquired:
        action["startTime"] = source.acquired
    crate.add(ContextEntity(crate, f"{file_id}/acquisition", action))
    sections, missing = rembi.file_sections(source.record, block, source.name)
    component = _section_entity(crate, f"{file_id}/rembi/Study-Component", sections[0],
                                missing, about=entity, where=source.name)
    study_node.append_to("rembi:studyComponent", component)
    for section in sections[1:]:
        node = _section_entity(crate, f"{file_id}/rembi/{_slug(section.name)}", section,
                               missing, about=entity, where=source.name)
        component[f"rembi:{_term(section.name)}"] = node
    return missing


def _single(values: Sequence[Any]) -> Any:
    """One value as itself, several as a list (RO-Crate asks for no singleton arrays)."""
    return values[0] if len(values) == 1 else list(values)


def _slug(name: str) -> str:
    return name.replace(" ", "-")


def _term(name: str) -> str:
    """A REMBI section name as a property term (``Image Acquisition`` -> ``imageAcquisition``)."""
    words = name.split()
    return words[0].lower() + "".join(w.capitalize() for w in words[1:])


def _section_entity(crate: Any, node_id: str, section: rembi.Section,
                    missing: Sequence[rembi.Missing], about: Any = None, where: str = "") -> Any:
    """A REMBI section as a ``rembi:<Section>`` node with a ``rembi:<field>`` list per field."""
    from rocrate.model.contextentity import ContextEntity

    props: dict[str, Any] = {"@type": f"rembi:{section.name.replace(' ', '')}",
                             "name": f"REMBI {section.name}"}
    for term, values in section.fields.values():
        props[term] = _single(values)
    lacking = [m.field for m in missing if m.section == section.name and m.where == where]
    if lacking:
        props["rembi:missing"] = _single(lacking)
    if about is not None:
        props["about"] = {"@id": about.id}
    return crate.add(ContextEntity(crate, node_id, props))


def _person_id(author: object, n: int) -> str:
    if isinstance(author, Mapping) and author.get("orcid"):
        return str(author["orcid"])
    return f"#author-{n + 1}"


def _person(author: object) -> dict[str, Any]:
    """A study author as a schema.org ``Person``."""
    if not isinstance(author, Mapping):
        return {"@type": "Person", "name": str(author)}
    props: dict[str, Any] = {"@type": "Person", "name": str(author.get("name", ""))}
    for key in ("affiliation", "email"):
        if author.get(key):
            props[key] = str(author[key])
    return props

