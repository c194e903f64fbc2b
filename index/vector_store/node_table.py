""":class:`NodeTable`: the nodes of one :class:`~index.vector_store.FaissNodeStore`, apart from the
vectors, kept as rows of an in-memory SQLite database (:mod:`~index.vector_store.node_db`).

What the table holds in Python is small: node id and source document per FAISS id. Everything
else stays raw in the database until asked for:

- a filter (or :meth:`NodeTable.value_counts`) on a metadata key indexes that key, and only
  that key, the first time it is used (SQLite reads the values out of the rows' JSON), into a
  :class:`~index.vector_store.filters.MetadataIndex` that adds and removes keep up to date;
- nodes are parsed and built (pydantic) only for the ones returned, and their relative
  ``image_path`` is resolved against the store's directory then (once per node).

The table also remembers which rows changed since it was last written (:attr:`changed`) and
where to (:attr:`synced`), so that a checkpoint rewrites only those rows. Not thread-safe on its
own: the store calls it under its lock.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from index.errors import json_kind
from index.vector_store import node_db
from index.vector_store import records as _records
from index.vector_store.filters import MetadataIndex, canon
from index.vector_store.records import FaissIdCollisionError, NodeRecord
from index.vector_store.store_errors import VectorStoreFileError, corrupt_metadata, one_line

_NO_PATH = object()  # cached "this node's image path needs no override"
Row = tuple[int, int, str, Any, str, str, str]  # node_db.NODE_COLUMNS


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise ValueError(f"{what} holds NaN or an infinity, which JSON cannot store") from None


def filter_keys(filters: MetadataFilters) -> list[str]:
    """The metadata keys a (nested) filter reads, each once."""
    keys: dict[str, None] = {}
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            keys.update(dict.fromkeys(filter_keys(item)))
        elif isinstance(item, MetadataFilter):
            keys[item.key] = None
    return list(keys)


class _KeyedMetadataIndex(MetadataIndex):
    """A :class:`MetadataIndex` that can also take one key's values for many vectors at once."""

    def add_groups(self, key: str, groups: Iterable[tuple[Any, list[int]]]) -> None:
        """Index ``key`` for ``(value, ids having it)`` pairs, as :meth:`add` of each id would."""
        for value, ids in groups:
            if value is None:
                continue
            self._present.setdefault(key, set()).update(ids)
            if isinstance(value, (str, list, dict)) and not value:
                self._empty.setdefault(key, set()).update(ids)
            c = canon(value)
            if c is not None:
                self._values.setdefault(key, {}).setdefault(c, set()).update(ids)
            if isinstance(value, list):
                for element in value:
                    ce = canon(element)
                    if ce is not None:
                        self._elements.setdefault(key, {}).setdefault(ce, set()).update(ids)


class NodeTable:
    """The node records of one store by FAISS id, indexed by source document and metadata."""

    def __init__(self, db: sqlite3.Connection | None = None) -> None:
        """An empty table, or one over ``db`` (call :meth:`load_rows` then)."""
        self.db = db if db is not None else node_db.new_memory_db()
        self._ids: dict[int, str] = {}  # fid -> node id, in insertion order
        self._ref_docs: dict[int, str] = {}  # fid -> source document, for those that have one
        self._by_ref_doc: dict[str, set[int]] = {}
        self._meta = _KeyedMetadataIndex()
        self._indexed: set[str] = set()
        self._seq = 0
        #: FAISS ids whose rows were added, replaced or removed since the last write
        self.changed: set[int] = set()
        #: (resolved directory, generation) of the file this table was last read from or written to
        self.synced: tuple[str, str] | None = None
        #: the resolved directory relative image paths are anchored to (None: left as stored)
        self.root: str | None = None
        self._parents: dict[str, str] = {}
        self._paths: dict[int, Any] = {}  # fid -> anchored image path (or _NO_PATH)
        #: the file the rows were read from (named by the errors of rows found damaged later)
        self.source: Path | None = None

    def load_rows(self, rows: Iterable[tuple[int, int, str, str | None]]) -> None:
        """Register the ``(seq, fid, node id, ref doc id)`` rows already in :attr:`db`."""
        for seq, fid, node_id, ref_doc_id in rows:
            self._ids[fid] = node_id
            if ref_doc_id is not None:
                self._ref_docs[fid] = ref_doc_id
                self._by_ref_doc.setdefault(ref_doc_id, set()).add(fid)
            self._seq = max(self._seq, seq)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, fid: object) -> bool:
        return fid in self._ids

    # ------------------------------------------------------------------ ids
    def fids(self) -> list[int]:
        """Every FAISS id, in insertion order."""
        return list(self._ids)

    def node_ids(self) -> list[str]:
        """Every node id, in insertion order."""
        return list(self._ids.values())

    def node_id_of(self, fid: int) -> str:
        """The node id of a FAISS id in the table."""
        return self._ids[fid]

    def faiss_ids(self, nodes: Sequence[BaseNode]) -> list[int]:
        """The FAISS ids of ``nodes`` (distinct node ids); raises on any id collision.

        A collision is two node ids of the batch, or one of the batch and one already in the
        table, hashing to the same FAISS id.
        """
        fids = [_records.node_id_to_faiss_id(node.node_id) for node in nodes]
        seen: dict[int, str] = {}
        for node, fid in zip(nodes, fids, strict=True):
            other = seen.get(fid) or self._ids.get(fid)
            if other is not None and other != node.node_id:
                raise FaissIdCollisionError(
                    f"node ids {node.node_id!r} and {other!r} map to the same FAISS id {fid}; "
                    "rename one of them"
                )
            seen[fid] = node.node_id
        return fids

    def fid_of(self, node_id: str) -> int | None:
        """The FAISS id of a node in the table (``None`` if it is not there)."""
        fid = _records.node_id_to_faiss_id(node_id)
        return fid if self._ids.get(fid) == node_id else None

    # ------------------------------------------------------------------ writing
    def prepare(self, fids: Sequence[int], records: Sequence[NodeRecord]) -> list[Row]:
        """The rows of new records (JSON-encoded), for :meth:`extend`; nothing changes yet.

        Raises:
            ValueError: If a record holds a value JSON cannot store (NaN, infinity).
        """
        rows = []
        for fid, record in zip(fids, records, strict=True):
            rest = {k: v for k, v in record.data.items() if k != "metadata"}
            what = f"node {record.node_id!r}"
            rows.append((fid, 0, record.node_id, record.ref_doc_id, record.node_type,
                         _dumps(record.metadata, f"{what}: its metadata"), _dumps(rest, what)))
        return rows

    def extend(self, rows: Sequence[Row], records: Sequence[NodeRecord]) -> None:
        """Register :meth:`prepare`'s rows of ``records`` (their FAISS ids must not be in the table)."""
        numbered = []
        for row, record in zip(rows, records, strict=True):
            self._seq += 1
            fid = row[0]
            numbered.append((fid, self._seq, *row[2:]))
            self._ids[fid] = record.node_id
            if record.ref_doc_id is not None:
                self._ref_docs[fid] = record.ref_doc_id
                self._by_ref_doc.setdefault(record.ref_doc_id, set()).add(fid)
            if self._indexed:
                metadata = record.metadata
                self._meta.add(fid, {k: metadata[k] for k in self._indexed if k in metadata})
            if "image_path" in record.overrides:
                self._paths[fid] = record.overrides["image_path"]
            self.changed.add(fid)
        node_db.insert_rows(self.db, numbered)

    def add(self, fid: int, record: NodeRecord) -> None:
        """Register one record under its FAISS id (the id must not be in the table)."""
        self.extend(self.prepare([fid], [record]), [record])

    def remove(self, fids: Iterable[int]) -> None:
        """Forget the records of ``fids`` (every one must be in the table)."""
        fids = list(fids)
        if self._indexed:
            keys = list(self._indexed)
            for fid, (text,) in node_db.fetch(self.db, "metadata", fids).items():
                metadata = self._parse(fid, text, "metadata")
                self._meta.remove(fid, {k: metadata[k] for k in keys if k in metadata})
        for fid in fids:
            del self._ids[fid]
            self._paths.pop(fid, None)
            self.changed.add(fid)
            ref_doc_id = self._ref_docs.pop(fid, None)
            if ref_doc_id is not None:
                ids = self._by_ref_doc[ref_doc_id]
                ids.discard(fid)
                if not ids:
                    del self._by_ref_doc[ref_doc_id]
        node_db.delete_rows(self.db, fids)

    def clear(self) -> None:
        """Forget every record."""
        self.changed.update(self._ids)
        self.db.execute("DELETE FROM nodes")
        self.db.execute("DELETE FROM bodies")
        self._ids.clear()
        self._ref_docs.clear()
        self._by_ref_doc.clear()
        self._meta.clear()
        self._indexed.clear()
        self._paths.clear()

    # ------------------------------------------------------------------ reading
    def _index_keys(self, keys: Iterable[str]) -> None:
        """Index the metadata keys not indexed yet (one pass over the rows for all of them)."""
        missing = [key for key in dict.fromkeys(keys) if key not in self._indexed]
        if missing:
            try:
                columns = node_db.metadata_groups(self.db, missing)
            except (sqlite3.Error, ValueError) as exc:  # a row's metadata is not JSON
                raise corrupt_metadata(self.source, f"a node's metadata is not JSON ({one_line(exc)}; reading {missing})") from None
            for key, groups in columns.items():
                self._meta.add_groups(key, groups)
            self._indexed.update(missing)

    def matching(self, filters: MetadataFilters) -> set[int]:
        """The ids whose metadata ``filters`` allow (a new set)."""
        self._index_keys(filter_keys(filters))
        return self._meta.evaluate(filters, self._ids.keys())

    def of_ref_doc(self, ref_doc_id: str) -> list[int]:
        """The ids of the nodes whose source document is ``ref_doc_id``."""
        return list(self._by_ref_doc.get(ref_doc_id, ()))

    def allowed(
        self,
        filters: MetadataFilters | None,
        node_ids: Sequence[str] | None,
        doc_ids: Sequence[str] | None,
    ) -> set[int] | None:
        """Ids allowed by filters/node_ids/doc_ids; ``None`` means no restriction."""
        allowed: set[int] | None = None
        if filters is not None and filters.filters:
            allowed = self.matching(filters)
        if node_ids is not None:
            by_node = {fid for fid in map(self.fid_of, node_ids) if fid is not None}
            allowed = by_node if allowed is None else allowed & by_node
        if doc_ids is not None:
            by_doc: set[int] = set()
            for doc_id in doc_ids:
                by_doc |= self._by_ref_doc.get(doc_id, set())
            allowed = by_doc if allowed is None else allowed & by_doc
        return allowed

    def value_counts(self, key: str) -> dict[Any, int]:
        """Number of nodes per value of metadata ``key`` (list values count per element)."""
        self._index_keys([key])
        return self._meta.value_counts(key)

    def records(self, fids: Sequence[int]) -> list[NodeRecord]:
        """The records of ``fids`` (all in the table), parsed from their rows, in that order."""
        rows = node_db.fetch(self.db, "node_type, ref_doc_id, metadata, node", list(fids))
        out = []
        for fid in fids:
            node_type, ref_doc_id, metadata, node = rows[fid]
            data = self._parse(fid, node, "node")
            if data.get("id_") != self._ids[fid]:
                raise self._damaged(fid, f"its 'node' has id {data.get('id_')!r}")
            data["metadata"] = self._parse(fid, metadata, "metadata")
            out.append(NodeRecord(self._ids[fid], ref_doc_id, node_type, data))
        return out

    def _parse(self, fid: int, text: str, column: str) -> dict[str, Any]:
        """One JSON column of a row, which must be an object."""
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise self._damaged(fid, f"its {column} is not JSON ({one_line(exc)})") from None
        if not isinstance(value, dict):
            raise self._damaged(fid, f"{column!r} is {json_kind(value)}, not an object")
        return value

    def _damaged(self, fid: int, what: str) -> VectorStoreFileError:
        return corrupt_metadata(self.source, f"node record {fid} ({self._ids[fid]!r}): {what}")

    def nodes(self, fids: Sequence[int]) -> tuple[list[BaseNode], list[str]]:
        """Fresh node objects for ``fids``, image paths anchored to :attr:`root`; and the ids of
        the nodes found, this time, to have an image path leading out of it (returned without
        one; see :meth:`NodeRecord.anchor`)."""
        records = self.records(fids)
        outside: list[str] = []
        if self.root is not None:
            for fid, record in zip(fids, records, strict=True):
                path = self._paths.get(fid)
                if path is None and fid not in self._paths:
                    if not record.anchor(self.root, self._parents):
                        outside.append(record.node_id)
                    path = self._paths[fid] = record.overrides.get("image_path", _NO_PATH)
                if path is not _NO_PATH:
                    record.overrides["image_path"] = path
        return [record.to_node() for record in records], outside

    def anchor(self, records: Iterable[NodeRecord]) -> list[str]:
        """Anchor new records to :attr:`root` (see :meth:`NodeRecord.anchor`) before they are
        added; returns the ids of those whose image path leads out of it."""
        if self.root is None:
            return []
        return [record.node_id for record in records if not record.anchor(self.root, self._parents)]

    def set_root(self, directory: str | os.PathLike[str]) -> None:
        """Anchor the image paths of the nodes returned from now on to ``directory``."""
        self.root = os.path.realpath(directory)
        self._parents.clear()
        self._paths.clear()

    def stored_image_paths(self) -> dict[str, Any]:
        """``{node id: image_path as stored}`` (relative, or whatever the file holds)."""
        return dict(node_db.node_field(self.db, "image_path"))
