"""An exact, filterable FAISS vector store behind LlamaIndex's vector-store interface.

:class:`FaissNodeStore` replaces ``llama-index-vector-stores-faiss``, whose stores use FAISS
positions as ids (text and image stores collide; a delete makes the next add reuse a live id),
share one ``id_map.json`` between stores and support no metadata filters. Here:

- every vector's FAISS id is a stable 64-bit hash of its node id, never a counter or a position
  (:mod:`~index.vector_store.records`, which also keeps the nodes and their look-up tables);
- ``add`` is an upsert, ``delete``/``delete_nodes``/``clear`` work on every index type;
- filtered queries compute the allowed ids from an inverted metadata index and let FAISS search
  only those (``IDSelectorBatch``), so a filtered top-k on the ``flat`` type is the true top-k;
- the store keeps whole nodes (``stores_text = True``) and persists to its own directory
  (``faiss.index`` + ``metadata.sqlite``, see :mod:`~index.vector_store.persistence`), never to
  files shared with other stores; persisting again to the directory it was loaded from or last
  persisted to rewrites only the node rows that changed since (a build's checkpoints);
- loading reads the node ids and the FAISS file; metadata is indexed per key when a filter
  first uses it, and nodes are built only for the hits (:mod:`~index.vector_store.node_table`);
- loaded from a directory, it returns nodes whose relative ``image_path`` (``crops/r-….jpg``)
  is resolved against that directory, so an ``ImageNode`` opens from anywhere, while the
  metadata file keeps it relative and the directory movable; a path leading out of the
  directory is dropped (the node comes back without an image path) and logged once per node,
  when the node is first returned.

Similarity is inner product on L2-normalised vectors (cosine similarity).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from index.vector_store.config import VectorIndexConfig
from index.vector_store.faiss_backend import FaissBackend, as_matrix
from index.vector_store.node_table import NodeTable
from index.vector_store.persistence import (
    LEGACY_METADATA_FILE,
    METADATA_FILE,
    load_store,
    resolve_store_dir,
    write_store,
)
from index.vector_store.records import NodeRecord, latest_by_id

__all__ = ["FaissNodeStore"]

logger = logging.getLogger(__name__)


def _check_local_fs(fs: fsspec.AbstractFileSystem | None) -> None:
    if fs is None:
        return
    from fsspec.implementations.local import LocalFileSystem

    if not isinstance(fs, LocalFileSystem):
        raise NotImplementedError("FaissNodeStore persists to the local file system only")


class FaissNodeStore(BasePydanticVectorStore):
    """Exact (or HNSW/IVF) FAISS vector store with stable ids, upserts and metadata filters.

    Usable directly (:meth:`add`, :meth:`search`, :meth:`query`) or as the ``vector_store`` of a
    LlamaIndex ``StorageContext``/``VectorStoreIndex``; ``query`` returns whole nodes.
    """

    stores_text: bool = True
    is_embedding_query: bool = True
    config: VectorIndexConfig = Field(
        default_factory=VectorIndexConfig, description="Index type, parameters and directory."
    )

    _backend: FaissBackend | None = PrivateAttr(default=None)
    _table: NodeTable = PrivateAttr(default_factory=NodeTable)
    _lock: Any = PrivateAttr(default_factory=threading.RLock)

    def __init__(self, config: VectorIndexConfig | None = None, **kwargs: Any) -> None:
        """Create an empty store; the FAISS index is created by the first :meth:`add`."""
        super().__init__(config=config or VectorIndexConfig(), **kwargs)

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex component name."""
        return "FaissNodeStore"

    # ------------------------------------------------------------------ properties
    @property
    def client(self) -> Any:
        """The underlying FAISS index (``None`` until the first vectors are added)."""
        return None if self._backend is None else self._backend.index

    @property
    def dim(self) -> int | None:
        """Vector dimension, fixed by the first add (``None`` while empty)."""
        return None if self._backend is None else self._backend.dim

    @property
    def index_kind(self) -> str | None:
        """'flat', 'hnsw', 'ivf' or 'ivf_pending' (ivf configured, exact until trained)."""
        return None if self._backend is None else self._backend.kind

    @property
    def is_exact(self) -> bool:
        """Whether searches are currently exact brute force."""
        return self._backend is None or self._backend.is_exact

    # ------------------------------------------------------------------ writing
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert nodes with embeddings; returns their node ids (one per input node).

        Re-adding an existing node id replaces its vector and metadata. Validation (embedding
        present, dimension, id collisions, node class) happens before anything changes.
        """
        if not nodes:
            return []
        batch = latest_by_id(nodes)
        embeddings = []
        for node in batch:
            if node.embedding is None:
                raise ValueError(f"node {node.node_id!r} has no embedding; embed it before adding")
            embeddings.append(node.embedding)
        with self._lock:
            vectors = as_matrix(embeddings, self.dim, self.config.normalize)
            fids = self._table.faiss_ids(batch)
            records = [NodeRecord.from_node(node) for node in batch]
            self._warn_outside(self._table.anchor(records))
            rows = self._table.prepare(fids, records)
            if self._backend is None:
                self._backend = FaissBackend(self.config, vectors.shape[1])
            replaced = [fid for fid in fids if fid in self._table]
            if replaced:
                self._remove_fids(replaced)
            self._backend.add(vectors, np.asarray(fids, dtype=np.int64))
            self._table.extend(rows, records)
            logger.debug("added %d nodes (%d replaced)", len(batch), len(replaced))
        return [node.node_id for node in nodes]

    def _warn_outside(self, outside: list[str]) -> None:
        """Warn once about nodes whose image path leads out of the store's directory (they come
        back without an image path)."""
        if outside:
            logger.warning("%d node(s) of the vector store in %s have an image path outside that "
                           "directory and are returned without one (first: node %s)", len(outside),
                           self._table.root, outside[0])

    def _nodes(self, fids: list[int]) -> list[BaseNode]:
        nodes, outside = self._table.nodes(fids)
        self._warn_outside(outside)
        return nodes

    def _remove_fids(self, fids: Iterable[int]) -> int:
        present = [fid for fid in fids if fid in self._table]
        if not present:
            return 0
        assert self._backend is not None
        self._backend.remove(np.asarray(present, dtype=np.int64))
        self._table.remove(present)
        return len(present)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node whose source document (``ref_doc_id``) is ``ref_doc_id``."""
        with self._lock:
            n = self._remove_fids(self._table.of_ref_doc(ref_doc_id))
        logger.debug("deleted %d nodes of ref doc %r", n, ref_doc_id)

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the given nodes, and/or the nodes matching ``filters`` (both: intersection).

        Unknown node ids are ignored. Calling with neither is an error (use :meth:`clear`).
        """
        if node_ids is None and filters is None:
            raise ValueError("delete_nodes needs node_ids and/or filters; use clear() to empty")
        with self._lock:
            allowed = self._table.allowed(filters, node_ids, None)
            fids = self._table.fids() if allowed is None else list(allowed)
            n = self._remove_fids(fids)
        logger.debug("deleted %d nodes", n)

    def clear(self) -> None:
        """Remove everything; the next add may use a new dimension."""
        with self._lock:
            self._backend = None
            self._table.clear()

    # ------------------------------------------------------------------ reading
    def count(self) -> int:
        """Number of vectors (nodes) in the store."""
        return len(self._table)

    def node_ids(self) -> list[str]:
        """All node ids in the store."""
        with self._lock:
            return self._table.node_ids()

    def get_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        """Nodes by id (in the order given, unknown ids skipped) and/or matching ``filters``.

        With neither argument, all nodes. Nodes come back without embeddings.
        """
        with self._lock:
            if node_ids is not None:
                fids = [fid for fid in map(self._table.fid_of, node_ids) if fid is not None]
                if filters is not None:
                    allowed = self._table.matching(filters)
                    fids = [fid for fid in fids if fid in allowed]
            elif filters is not None:
                allowed = self._table.matching(filters)
                fids = [fid for fid in self._table.fids() if fid in allowed]
            else:
                fids = self._table.fids()
            return self._nodes(fids)

    def get_vector(self, node_id: str) -> np.ndarray:
        """The stored (normalised) vector of a node; ``KeyError`` if absent."""
        with self._lock:
            fid = self._table.fid_of(node_id)
            if fid is None or self._backend is None:
                raise KeyError(f"node {node_id!r} is not in the vector store")
            return self._backend.reconstruct(np.asarray([fid], dtype=np.int64))[0]

    def counts_by(self, key: str) -> dict[Any, int]:
        """Number of nodes per value of metadata ``key`` (list values count per element)."""
        with self._lock:
            return self._table.value_counts(key)

    # ------------------------------------------------------------------ searching
    def _search_fids(
        self, vector: Any, k: int, allowed: set[int] | None
    ) -> list[tuple[int, float]]:
        if self._backend is None or k <= 0 or (allowed is not None and not allowed):
            return []
        query = as_matrix(vector, self._backend.dim, self.config.normalize)
        if query.shape[0] != 1:
            raise ValueError(f"expected one query vector, got {query.shape[0]}")
        allowed_arr = None
        if allowed is not None and len(allowed) < len(self._table):
            allowed_arr = np.fromiter(allowed, dtype=np.int64, count=len(allowed))
        scores, labels = self._backend.search(query, k, allowed_arr)
        return [(int(fid), float(s)) for fid, s in zip(labels, scores, strict=True)]

    def search(
        self,
        vector: np.ndarray,
        k: int,
        filters: MetadataFilters | None = None,
        node_ids: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """Top-``k`` (node id, cosine similarity) for one vector, best first.

        ``filters`` (and ``node_ids``, if given) restrict the candidates exactly: on ``flat``
        the result is the true top-k among the allowed nodes; nothing allowed gives ``[]``.
        """
        with self._lock:
            allowed = self._table.allowed(filters, node_ids, None)
            hits = self._search_fids(vector, k, allowed)
            return [(self._table.node_id_of(fid), score) for fid, score in hits]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """LlamaIndex query: top ``similarity_top_k`` nodes for ``query_embedding``.

        Honours ``filters`` (exact, any nesting) and ``doc_ids``. Returns whole nodes (without
        embeddings), their similarities and node ids, best first.

        ``query.node_ids`` is ignored unless ``honor_node_ids=True`` is passed:
        ``VectorStoreIndex.as_retriever`` always fills it from its index struct, which, for a
        store that keeps text, lists only the image/index nodes, so honouring it would silently
        drop every text node (and an empty list would drop everything).
        """
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise ValueError(
                f"FaissNodeStore supports only the default query mode, not {query.mode!r}"
            )
        if query.query_embedding is None:
            raise ValueError("FaissNodeStore.query needs query.query_embedding")
        node_ids = query.node_ids if kwargs.get("honor_node_ids") else None
        with self._lock:
            allowed = self._table.allowed(query.filters, node_ids, query.doc_ids)
            hits = self._search_fids(query.query_embedding, query.similarity_top_k, allowed)
            nodes = self._nodes([fid for fid, _ in hits])
        return VectorStoreQueryResult(
            nodes=nodes,
            similarities=[score for _, score in hits],
            ids=[node.node_id for node in nodes],
        )

    # ------------------------------------------------------------------ persistence
    def persist(
        self,
        persist_path: str | os.PathLike[str] | None = None,
        fs: fsspec.AbstractFileSystem | None = None,
    ) -> None:
        """Write ``faiss.index`` and ``metadata.sqlite`` to a directory (the metadata last).

        ``persist_path`` is the directory (default ``config.dir``); a LlamaIndex file path such
        as ``storage/default__vector_store.json`` (what ``StorageContext.persist`` passes)
        means the directory ``storage/default__vector_store/``.

        Persisting again to the directory this store was loaded from or last persisted to (and
        that nobody else wrote since) rewrites only the node rows added or removed in between, in
        one transaction, and ``faiss.index`` only if a vector changed; anywhere else, both files
        are written whole and each replaces its old version atomically.
        """
        _check_local_fs(fs)
        directory = resolve_store_dir(persist_path if persist_path is not None else self.config.dir)
        with self._lock:
            header = {
                "config": self.config.model_dump(mode="json"),
                "dim": self.dim,
                "index_kind": self.index_kind,
            }
            write_store(directory, self.client, header, self._table)

    @classmethod
    def from_persist_dir(
        cls,
        persist_dir: str | os.PathLike[str] | None = None,
        fs: fsspec.AbstractFileSystem | None = None,
        config: VectorIndexConfig | None = None,
    ) -> FaissNodeStore:
        """Load a store written by :meth:`persist` (default directory: ``config.dir``).

        The nodes it returns carry image paths resolved against that directory (see the module
        doc); the records it persists keep them as stored.

        ``config`` may override search-time settings (``hnsw_ef_search``, ``ivf_nprobe``...);
        its ``type`` must match the persisted one. Missing or corrupt files raise an error that
        names the file.
        """
        _check_local_fs(fs)
        if persist_dir is None:
            persist_dir = (config or VectorIndexConfig()).dir
        directory = resolve_store_dir(persist_dir)
        stored_config, backend, table = load_store(directory, config)
        table.set_root(directory)
        store = cls(config=stored_config)
        store._backend = backend
        store._table = table
        kind = backend.kind if backend is not None else "empty"
        logger.info("loaded %d vectors (%s) from %s", len(table), kind, directory)
        return store

    @classmethod
    def from_persist_path(
        cls, persist_path: str | os.PathLike[str], fs: fsspec.AbstractFileSystem | None = None
    ) -> FaissNodeStore:
        """Load from a LlamaIndex-style path (see :meth:`persist`)."""
        return cls.from_persist_dir(persist_path, fs=fs)

    @classmethod
    def load_or_create(cls, config: VectorIndexConfig | None = None) -> FaissNodeStore:
        """Load the store persisted in ``config.dir`` if there is one, else a new empty store
        (a directory of format version 1 is refused, see :meth:`from_persist_dir`)."""
        config = config or VectorIndexConfig()
        if any((Path(config.dir) / name).is_file() for name in (METADATA_FILE, LEGACY_METADATA_FILE)):
            return cls.from_persist_dir(config.dir, config=config)
        return cls(config=config)
