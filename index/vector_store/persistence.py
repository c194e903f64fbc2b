"""On-disk format of :class:`~index.vector_store.FaissNodeStore` (format version 2).

A store directory holds two files:

- ``faiss.index`` -- ``faiss.write_index`` of the index; its ids are the store's 64-bit ids.
  Replaced atomically (temp file in the same directory, then ``os.replace``) at every persist
  that changed a vector.
- ``metadata.sqlite`` -- an SQLite database: the header (format tag, version, config, dimension,
  index kind, count, generation) and one row per vector (FAISS id, node id, source document,
  node class, metadata JSON, node JSON); see :mod:`~index.vector_store.node_db`. Persisting to
  the directory a store was loaded from or last persisted to rewrites only the rows that changed
  since, in one transaction; persisting anywhere else writes a whole new file that replaces the
  old one.

The metadata file is written last and is the commit point: on load the ids of both files must
agree, which catches a crash between the two writes. Loading reads the node ids only (the rest
stays raw in an in-memory copy of the database until a filter or a hit needs it) and checks
every row's shape with SQLite's JSON functions.

Format version 1 kept everything in one ``metadata.json``; a directory holding one is refused
with a one-line "rebuild" message (code ``store_old_format``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from index.errors import json_kind
from index.files import atomic_write
from index.vector_store import node_db
from index.vector_store.config import VectorIndexConfig
from index.vector_store.faiss_backend import FaissBackend
from index.vector_store.file_names import INDEX_FILE, LEGACY_METADATA_FILE, METADATA_FILE
from index.vector_store.node_table import NodeTable
from index.vector_store.records import NODE_CLASSES, node_id_to_faiss_id
from index.vector_store.store_errors import (
    REBUILD_HINT,
    VectorStoreFileError,
    VectorStoreFileMissingError,
    corrupt_metadata,
    one_line,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "INDEX_FILE", "LEGACY_METADATA_FILE", "METADATA_FILE",
           "VectorStoreFileError", "VectorStoreFileMissingError", "load_store", "read_index",
           "read_metadata", "resolve_store_dir", "write_store"]

logger = logging.getLogger(__name__)

FORMAT = "damage_rag.faiss_node_store"
FORMAT_VERSION = 2



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


def write_store(directory: Path, index: Any, header: dict[str, Any], table: NodeTable) -> None:
    """Write ``faiss.index`` (if ``index`` is not None and a vector changed) then
    ``metadata.sqlite``: only the changed rows if ``table`` was last synced with this directory.

    Raises:
        ResourceError: If the disk or the folder refuses a write (the previous files stay).
    """
    import faiss

    directory.mkdir(parents=True, exist_ok=True)
    here = os.path.realpath(directory)
    synced = table.synced[1] if table.synced is not None and table.synced[0] == here else None
    if index is not None and (synced is None or table.changed or not (directory / INDEX_FILE).is_file()):
        atomic_write(directory / INDEX_FILE, lambda tmp: faiss.write_index(index, str(tmp)))
    payload = {"format": FORMAT, "version": FORMAT_VERSION, **header, "count": len(table)}
    changed = len(table.changed)
    generation = node_db.save(table.db, directory / METADATA_FILE, payload, table.changed, synced)
    table.changed.clear()
    table.synced = (here, generation)
    logger.info("persisted %d vectors to %s (%s)", len(table), directory,
                f"{changed} changed rows" if synced is not None else "whole")


def read_metadata(directory: Path) -> tuple[dict[str, Any], NodeTable]:
    """Read and check ``metadata.sqlite``: (header, table of its nodes).

    Raises:
        VectorStoreFileMissingError: If the file does not exist.
        VectorStoreFileError: If it is not a node database, is not shaped as
            :func:`write_store` writes it, or is the ``metadata.json`` of format version 1 (the
            message names the file and what is wrong).
    """
    path = directory / METADATA_FILE
    if not path.is_file():
        legacy = directory / LEGACY_METADATA_FILE
        if legacy.is_file():
            raise VectorStoreFileError(
                f"{legacy} is a vector store of format version 1; this program reads version "
                f"{FORMAT_VERSION} ({METADATA_FILE}): {REBUILD_HINT}.", "store_old_format")
        raise VectorStoreFileMissingError(
            f"vector store metadata file not found: {path}; {REBUILD_HINT}."
        )
    try:
        db = node_db.open_copy(path)
    except node_db.NodeFileError as exc:
        raise corrupt_metadata(path, str(exc)) from None
    try:
        header = node_db.read_header(db)
        if header.get("format") != FORMAT:
            raise corrupt_metadata(path, f"not a {FORMAT} file")
        if header.get("version") != FORMAT_VERSION:
            raise corrupt_metadata(path, f"unsupported format version {header.get('version')!r}")
        _check_header(path, header)
        rows = db.execute("SELECT seq, fid, node_id, ref_doc_id, node_type FROM nodes ORDER BY seq").fetchall()
        _check_rows(path, rows)
        bad = node_db.first_bad_row(db)
        if bad is not None:
            raise corrupt_metadata(path, f"node record {bad[0]} ({bad[1]!r}): {bad[2]}")  # the rest: on first use
    except node_db.NodeFileError as exc:
        db.close()
        raise corrupt_metadata(path, str(exc)) from None
    except (VectorStoreFileError, sqlite3.Error) as exc:
        db.close()
        if isinstance(exc, sqlite3.Error):
            raise corrupt_metadata(path, one_line(exc)) from None
        raise
    count = header.get("count")
    if count is not None and count != len(rows):
        db.close()
        raise corrupt_metadata(path, f"'count' is {count!r} but {len(rows)} nodes are listed")
    table = NodeTable(db)
    table.source = path
    table.load_rows((seq, fid, node_id, ref) for seq, fid, node_id, ref, _ in rows)
    generation = header.get("generation")
    table.synced = (os.path.realpath(directory), generation) if isinstance(generation, str) else None
    return header, table


def _check_header(path: Path, payload: dict[str, Any]) -> None:
    """The header fields :func:`load_store` relies on have their written types."""
    if not isinstance(payload.get("config"), dict):
        raise corrupt_metadata(path, "'config' is missing or not an object")
    dim = payload.get("dim")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
        raise corrupt_metadata(path, f"'dim' is {dim!r}, not a positive integer")
    count = payload.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise corrupt_metadata(path, f"'count' is {count!r}, not an integer")


def _check_rows(path: Path, rows: list[tuple[Any, ...]]) -> None:
    """Each row's plain columns have their written types, and its FAISS id is its node id's hash."""
    for seq, fid, node_id, ref_doc_id, node_type in rows:
        if not isinstance(node_id, str) or not node_id:
            raise corrupt_metadata(path, f"node record {fid} has no string 'node_id' (got {json_kind(node_id)})")
        if not isinstance(node_type, str) or node_type not in NODE_CLASSES:
            raise corrupt_metadata(path, f"node {node_id!r}: unknown node type {node_type!r}")
        if ref_doc_id is not None and not isinstance(ref_doc_id, str):
            raise corrupt_metadata(path, f"node {node_id!r}: 'ref_doc_id' is {json_kind(ref_doc_id)}, not a string")
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise corrupt_metadata(path, f"node {node_id!r}: 'seq' is {json_kind(seq)}, not an integer")
        expected = node_id_to_faiss_id(node_id)
        if fid != expected:
            raise corrupt_metadata(path, f"node {node_id!r} is filed under FAISS id {fid}, its id is {expected}")


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
            f"corrupt FAISS index file {path}: {one_line(exc)}; {REBUILD_HINT}."
        ) from exc


def load_store(
    directory: Path, config: VectorIndexConfig | None = None
) -> tuple[VectorIndexConfig, FaissBackend | None, NodeTable]:
    """Read and cross-check both files: (effective config, backend or None if empty, table).

    ``config`` may override search-time settings; its ``type`` must match the stored one.

    Raises:
        VectorStoreFileMissingError: If a file is missing.
        VectorStoreFileError: If a file is unreadable or wrongly shaped, the files disagree
            (ids, dimension) or ``config`` asks for another index type; ``code`` says which.
    """
    header, table = read_metadata(directory)
    try:
        return _open_backend(directory, config, header, table)
    except BaseException:
        table.db.close()
        raise


def _open_backend(directory: Path, config: VectorIndexConfig | None, header: dict[str, Any],
                  table: NodeTable) -> tuple[VectorIndexConfig, FaissBackend | None, NodeTable]:
    """:func:`load_store` once the metadata is read: the config, the FAISS file, the id check."""
    meta_path = directory / METADATA_FILE
    index_path = directory / INDEX_FILE
    try:
        stored = VectorIndexConfig.model_validate(header["config"])
    except ValidationError as exc:
        raise corrupt_metadata(meta_path, f"bad 'config' ({_validation_summary(exc)})") from exc
    if config is not None and config.type != stored.type:
        raise VectorStoreFileError(
            f"{directory} holds a {stored.type!r} index but the config asks for {config.type!r}",
            "type_mismatch",
        )
    effective = (config or stored).model_copy(update={"dir": str(directory)})
    dim = header.get("dim")
    if dim is None:
        if len(table):
            raise corrupt_metadata(meta_path, "it lists nodes but no dimension")
        return effective, None, table
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
    if len(index_ids) != len(table) or any(fid not in index_ids for fid in table.fids()):
        raise VectorStoreFileError(
            f"{index_path} ({len(index_ids)} vectors) and {meta_path} ({len(table)} nodes) "
            f"disagree; the directory was not written by one persist(): {REBUILD_HINT}.",
            "ids_mismatch",
        )
    return effective, backend, table


def _validation_summary(exc: ValidationError) -> str:
    """A pydantic error on one line: ``field: message`` per error."""
    return "; ".join(
        f"{'.'.join(map(str, err['loc'])) or 'config'}: {err['msg']}" for err in exc.errors()
    )
