"""On-disk format of :class:`~index.vector_store.FaissNodeStore`.

A store directory holds exactly two files, each replaced atomically (temp file in the same
directory, then ``os.replace``):

- ``faiss.index`` -- ``faiss.write_index`` of the index; its ids are the store's 64-bit ids.
- ``metadata.json`` -- format tag, config, dimension and ``nodes``: ``{faiss id (string): node
  record}``. It is written last and is the commit point; on load the ids of both files must
  agree, which catches a crash between the two replaces.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from index.errors import DamageRagError, json_kind
from index.files import atomic_write, write_json_atomic
from index.vector_store.config import VectorIndexConfig
from index.vector_store.faiss_backend import FaissBackend
from index.vector_store.records import NodeRecord, node_id_to_faiss_id

logger = logging.getLogger(__name__)

INDEX_FILE = "faiss.index"
METADATA_FILE = "metadata.json"
FORMAT = "damage_rag.faiss_node_store"
FORMAT_VERSION = 1


REBUILD_HINT = "rebuild the index with `python -m index build`"


class VectorStoreFileError(DamageRagError, ValueError):
    """A persisted store file is missing, unreadable or inconsistent (the message names it).

    ``code`` says which: ``store_corrupt`` (a file that cannot be read or has the wrong
    shape), ``store_missing``, ``ids_mismatch`` (the two files disagree on the vectors),
    ``dim_mismatch`` or ``type_mismatch`` (the caller's config asks for another index type).
    """

    def __init__(self, message: str, code: str = "store_corrupt") -> None:
        """``message`` names the file; ``code`` classifies the fault (see the class doc)."""
        super().__init__(message)
        self.code = code


class VectorStoreFileMissingError(VectorStoreFileError, FileNotFoundError):
    """One of the store's two files does not exist (also a ``FileNotFoundError``)."""

    def __init__(self, message: str) -> None:
        """``message`` names the missing file."""
        super().__init__(message, "store_missing")


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (FAISS and pydantic messages span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _corrupt(path: Path, what: str) -> VectorStoreFileError:
    return VectorStoreFileError(
        f"corrupt vector store metadata file {path}: {what}; {REBUILD_HINT}."
    )


def resolve_store_dir(path: str | os.PathLike[str]) -> Path:
    """The directory a store persists to, given a directory or a LlamaIndex file path.

    ``StorageContext.persist`` hands each vector store a *file* path such as
    ``storage/default__vector_store.json``; this store needs two files, so it uses the sibling
    directory named after the file's stem (``storage/default__vector_store/``). Anything that is
    an existing directory or has no ``.json`` suffix is taken as the directory itself.
    """
    p = Path(path)
    if p.is_dir() or p.suffix.lower() != ".json":
        return p
    return p.with_suffix("")


def write_store(
    directory: Path,
    index: Any,
    header: dict[str, Any],
    records: dict[int, NodeRecord],
) -> None:
    """Write ``faiss.index`` (if ``index`` is not None) then ``metadata.json`` atomically."""
    import faiss

    directory.mkdir(parents=True, exist_ok=True)
    if index is not None:
        atomic_write(directory / INDEX_FILE, lambda tmp: faiss.write_index(index, str(tmp)))
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        **header,
        "count": len(records),
        "nodes": {str(fid): rec.to_json() for fid, rec in records.items()},
    }
    write_json_atomic(directory / METADATA_FILE, payload, indent=None)
    logger.info("persisted %d vectors to %s", len(records), directory)


def read_metadata(directory: Path) -> tuple[dict[str, Any], dict[int, NodeRecord]]:
    """Read and validate ``metadata.json``: (header, {faiss id: record}).

    Raises:
        VectorStoreFileMissingError: If the file does not exist.
        VectorStoreFileError: If it is not JSON or not shaped as :func:`write_store` writes it
            (the message names the file and what is wrong).
    """
    path = directory / METADATA_FILE
    if not path.is_file():
        raise VectorStoreFileMissingError(
            f"vector store metadata file not found: {path}; {REBUILD_HINT}."
        )
    try:
        with open(path, encoding="utf-8") as fh:
            payload = json.load(fh)
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _corrupt(path, _one_line(exc)) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise _corrupt(path, f"not a {FORMAT} file")
    if payload.get("version") != FORMAT_VERSION:
        raise _corrupt(path, f"unsupported format version {payload.get('version')!r}")
    _check_header(path, payload)
    records = _parse_nodes(path, payload.get("nodes"))
    count = payload.get("count")
    if count is not None and count != len(records):
        raise _corrupt(path, f"'count' is {count!r} but {len(records)} nodes are listed")
    header = {k: v for k, v in payload.items() if k != "nodes"}
    return header, records


def _check_header(path: Path, payload: dict[str, Any]) -> None:
    """The header fields :func:`load_store` relies on have their written types."""
    if not isinstance(payload.get("config"), dict):
        raise _corrupt(path, "'config' is missing or not an object")
    dim = payload.get("dim")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
        raise _corrupt(path, f"'dim' is {dim!r}, not a positive integer")
    count = payload.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise _corrupt(path, f"'count' is {count!r}, not an integer")


def _parse_nodes(path: Path, nodes: Any) -> dict[int, NodeRecord]:
    """``{faiss id: record}`` from the ``nodes`` object; each key must be its node id's hash."""
    if not isinstance(nodes, dict):
        found = "missing" if nodes is None else json_kind(nodes)
        raise _corrupt(path, f"'nodes' is {found}, not an object of node records by FAISS id")
    records: dict[int, NodeRecord] = {}
    for key, obj in nodes.items():
        try:
            fid = int(key)
        except ValueError:
            raise _corrupt(path, f"node key {key!r} is not an integer FAISS id") from None
        try:
            record = NodeRecord.from_json(obj)
        except ValueError as exc:
            raise _corrupt(path, f"node record {key}: {exc}") from None
        expected = node_id_to_faiss_id(record.node_id)
        if fid != expected:
            raise _corrupt(
                path, f"node {record.node_id!r} is filed under FAISS id {key}, its id is {expected}"
            )
        records[fid] = record
    return records


def read_index(directory: Path) -> Any:
    """Read ``faiss.index`` with a clear error naming the file."""
    import faiss

    path = directory / INDEX_FILE
    if not path.is_file():
        raise VectorStoreFileMissingError(
            f"vector store index file not found: {path}; {REBUILD_HINT}."
        )
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise VectorStoreFileError(
            f"corrupt FAISS index file {path}: {_one_line(exc)}; {REBUILD_HINT}."
        ) from exc


def load_store(
    directory: Path, config: VectorIndexConfig | None = None
) -> tuple[VectorIndexConfig, FaissBackend | None, dict[int, NodeRecord]]:
    """Read and cross-check both files: (effective config, backend or None if empty, records).

    ``config`` may override search-time settings; its ``type`` must match the stored one.

    Raises:
        VectorStoreFileMissingError: If a file is missing.
        VectorStoreFileError: If a file is unreadable or wrongly shaped, the files disagree
            (ids, dimension) or ``config`` asks for another index type; ``code`` says which.
    """
    header, records = read_metadata(directory)
    meta_path = directory / METADATA_FILE
    index_path = directory / INDEX_FILE
    try:
        stored = VectorIndexConfig.model_validate(header["config"])
    except ValidationError as exc:
        raise _corrupt(meta_path, f"bad 'config' ({_validation_summary(exc)})") from exc
    if config is not None and config.type != stored.type:
        raise VectorStoreFileError(
            f"{directory} holds a {stored.type!r} index but the config asks for {config.type!r}",
            "type_mismatch",
        )
    effective = (config or stored).model_copy(update={"dir": str(directory)})
    dim = header.get("dim")
    if dim is None:
        if records:
            raise _corrupt(meta_path, "it lists nodes but no dimension")
        return effective, None, {}
    index = read_index(directory)
    if int(index.d) != dim:
        raise VectorStoreFileError(
            f"{index_path} has dimension {index.d}, {meta_path} says {dim}; {REBUILD_HINT}.",
            "dim_mismatch",
        )
    try:
        backend = FaissBackend(effective, dim, index)
    except ValueError as exc:
        raise VectorStoreFileError(f"{index_path}: {exc}; {REBUILD_HINT}.") from exc
    index_ids = set(backend.ids().tolist())
    if index_ids != set(records):
        raise VectorStoreFileError(
            f"{index_path} ({len(index_ids)} vectors) and {meta_path} ({len(records)} nodes) "
            f"disagree; the directory was not written by one persist(): {REBUILD_HINT}.",
            "ids_mismatch",
        )
    return effective, backend, records


def _validation_summary(exc: ValidationError) -> str:
    """A pydantic error on one line: ``field: message`` per error."""
    return "; ".join(
        f"{'.'.join(map(str, err['loc'])) or 'config'}: {err['msg']}" for err in exc.errors()
    )
