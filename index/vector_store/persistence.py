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

from index.errors import DamageRagError
from index.files import atomic_write, write_json_atomic
from index.vector_store.config import VectorIndexConfig
from index.vector_store.faiss_backend import FaissBackend
from index.vector_store.records import NodeRecord

logger = logging.getLogger(__name__)

INDEX_FILE = "faiss.index"
METADATA_FILE = "metadata.json"
FORMAT = "damage_rag.faiss_node_store"
FORMAT_VERSION = 1


class VectorStoreFileError(DamageRagError, ValueError):
    """A persisted store file is missing, unreadable or inconsistent (the message names it)."""


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
    """Read and validate ``metadata.json``: (header, {faiss id: record})."""
    path = directory / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"vector store metadata file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            payload = json.load(fh)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        if payload.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported format version {payload.get('version')!r}")
        records = {int(fid): NodeRecord.from_json(obj) for fid, obj in payload["nodes"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VectorStoreFileError(f"corrupt vector store metadata file {path}: {exc}") from exc
    header = {k: v for k, v in payload.items() if k != "nodes"}
    return header, records


def read_index(directory: Path) -> Any:
    """Read ``faiss.index`` with a clear error naming the file."""
    import faiss

    path = directory / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"vector store index file not found: {path}")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise VectorStoreFileError(f"corrupt FAISS index file {path}: {exc}") from exc


def load_store(
    directory: Path, config: VectorIndexConfig | None = None
) -> tuple[VectorIndexConfig, FaissBackend | None, dict[int, NodeRecord]]:
    """Read and cross-check both files: (effective config, backend or None if empty, records).

    ``config`` may override search-time settings; its ``type`` must match the stored one.
    """
    header, records = read_metadata(directory)
    meta_path = directory / METADATA_FILE
    index_path = directory / INDEX_FILE
    try:
        stored = VectorIndexConfig.model_validate(header["config"])
    except Exception as exc:
        raise VectorStoreFileError(
            f"corrupt vector store metadata file {meta_path}: {exc}"
        ) from exc
    if config is not None and config.type != stored.type:
        raise ValueError(
            f"{directory} holds a {stored.type!r} index but the config asks for {config.type!r}"
        )
    effective = (config or stored).model_copy(update={"dir": str(directory)})
    dim = header.get("dim")
    if dim is None:
        if records:
            raise VectorStoreFileError(f"{meta_path} lists nodes but no dimension")
        return effective, None, {}
    index = read_index(directory)
    if int(index.d) != int(dim):
        raise VectorStoreFileError(f"{index_path} has dimension {index.d}, {meta_path} says {dim}")
    try:
        backend = FaissBackend(effective, int(dim), index)
    except ValueError as exc:
        raise VectorStoreFileError(f"{index_path}: {exc}") from exc
    index_ids = set(backend.ids().tolist())
    if index_ids != set(records):
        raise VectorStoreFileError(
            f"{index_path} ({len(index_ids)} vectors) and {meta_path} ({len(records)} nodes) "
            "disagree; the directory was not written by one persist()"
        )
    return effective, backend, records
