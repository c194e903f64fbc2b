"""The node store on Qdrant: :class:`FaissNodeStore`'s interface and semantics, vectors in Qdrant.

- Point ids are the FAISS store's stable 63-bit ids (``records.node_id_to_faiss_id``); ``add`` upserts.
- Each point's payload is the node record (``node``, ``node_id``, ``node_type``,
  ``ref_doc_id``) and the derived filter fields of :mod:`~index.vector_store.qdrant_filters`,
  through which every metadata filter means exactly what it means in the FAISS store.
- Search is cosine (inner product when ``normalize`` is off); ``type: flat`` is exact
  (``SearchParams(exact=True)``, and no HNSW graph is built), ``hnsw`` uses Qdrant's graph with
  ``hnsw_m``, ``hnsw_ef_construction`` and ``hnsw_ef_search``. Local mode is always exact.
- ``persist`` writes ``qdrant.json`` (:mod:`~index.vector_store.qdrant_generations`), naming the
  collection; the vectors are already in Qdrant. A store opened from a published index
  directory for writing copies that collection into a new generation on its first write.
- ``get_nodes()`` and ``node_ids()`` list nodes in id order (FAISS: insertion order).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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

import index.vector_store.qdrant_generations as generations
import index.vector_store.qdrant_points as points
import index.vector_store.records as records
from index.vector_store.config import QdrantConfig, VectorIndexConfig
from index.vector_store.faiss_backend import as_matrix
from index.vector_store.qdrant_connect import (
    connect,
    location,
    require_qdrant,
    server_call,
    server_url,
)
from index.vector_store.qdrant_filters import FIELDS
from index.vector_store.records import NodeRecord, latest_by_id

__all__ = ["QdrantNodeStore"]

logger = logging.getLogger(__name__)
_MEMORY = VectorIndexConfig(backend="qdrant", qdrant=QdrantConfig(path=":memory:"))


class QdrantNodeStore(BasePydanticVectorStore):
    """A Qdrant collection behind the same interface and filter semantics as FaissNodeStore."""

    stores_text: bool = True
    is_embedding_query: bool = True
    config: VectorIndexConfig = Field(description="Index settings; config.qdrant says where.")
    collection_name: str = Field(description="The Qdrant collection holding the vectors.")
    previous: str | None = Field(default=None, description="The generation this one replaces.")

    _client: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.RLock)
    _root: Path | None = PrivateAttr(default=None)
    _dim: int | None = PrivateAttr(default=None)
    _read_only: bool = PrivateAttr(default=False)
    _fork: bool = PrivateAttr(default=False)  # first write copies into a new generation
    _retire: str | None = PrivateAttr(default=None)  # dropped once the new generation exists
    _indexed: set[str] = PrivateAttr(default_factory=set)

    def __init__(self, config: VectorIndexConfig | None = None, collection_name: str | None = None,
                 **kwargs: Any) -> None:
        """A store on ``collection_name`` (default ``config.qdrant.collection``); no ``config``
        means an in-memory local-mode store. The collection is created by the first add."""
        require_qdrant()
        config = config or _MEMORY
        super().__init__(config=config, collection_name=collection_name or config.qdrant.collection, **kwargs)
        self._client = connect(config.qdrant)
        if self._exists():
            self._dim = self._call("read a collection", "get_collection", self.collection_name).config.params.vectors.size

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex component name."""
        return "QdrantNodeStore"

    @property
    def client(self) -> Any:
        """The ``QdrantClient``."""
        return self._client

    @property
    def dim(self) -> int | None:
        """Vector dimension (``None`` while the collection does not exist)."""
        return self._dim

    @property
    def is_local(self) -> bool:
        """Whether this is qdrant-client's local mode (always exact)."""
        return server_url(self.config.qdrant) is None

    @property
    def is_exact(self) -> bool:
        """Whether searches are exact brute force."""
        return self.config.type == "flat" or self.is_local

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return server_call(self.config.qdrant, what, getattr(self._client, method), *args, **kwargs)

    def _exists(self) -> bool:
        return bool(self._call("look up a collection", "collection_exists", self.collection_name))

    # ------------------------------------------------------------------ writing
    def retire_on_write(self, collection: str | None) -> None:
        """Drop ``collection`` (an old generation) once this store first writes."""
        self._retire = collection

    def _before_write(self, copy: bool = True) -> None:
        """Refuse writes to a store opened for reading; fork a published collection first."""
        if self._read_only:
            raise PermissionError(f"the Qdrant collection {self.collection_name} was opened for reading "
                                  "(open_store(..., writable=True) writes a new generation)")
        if not self._fork:
            return
        source, self._fork = self.collection_name, False
        self.collection_name, self.previous = generations.new_generation(self.config.qdrant.collection), source
        self._indexed = set()
        if copy and self._dim is not None:
            self._create(self._dim)
            for page in self._scroll(None, payload=True, vectors=True, collection=source):
                for point in page:
                    self._index_field(*(f"{FIELDS}.{key}.{sub}" for key in point.payload.get(FIELDS, {})
                                        for sub in ("c", "e")))
                self._upsert(page)
        else:
            self._dim = None
        logger.info("Qdrant collection %s: writing generation %s", source, self.collection_name)
        generations.drop(self._client, self._retire)
        self._retire = None

    def _create(self, dim: int) -> None:
        self._call("create a collection", "create_collection", self.collection_name,
                   **points.collection_params(self.config, dim))
        self._dim = dim
        self._index_field("node_id", "ref_doc_id")

    def _index_field(self, *keys: str) -> None:
        """Keyword payload indexes (servers only: facets need one, filters go faster)."""
        from qdrant_client import models

        for key in keys:
            if not self.is_local and key not in self._indexed:
                self._call("index a payload field", "create_payload_index", self.collection_name, key,
                           field_schema=models.PayloadSchemaType.KEYWORD)
                self._indexed.add(key)

    def _upsert(self, batch: list[Any]) -> None:
        self._call("write points", "upsert", self.collection_name, points=batch, wait=True)

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert nodes with embeddings; returns their node ids (one per input node).

        Validation (embedding present, dimension, id collisions, node class) happens before
        anything is written.
        """
        from qdrant_client import models

        if not nodes:
            return []
        batch = latest_by_id(nodes)
        for node in batch:
            if node.embedding is None:
                raise ValueError(f"node {node.node_id!r} has no embedding; embed it before adding")
        with self._lock:
            vectors = as_matrix([node.embedding for node in batch], self._dim, self.config.normalize)
            fids = points.check_ids(batch, self._owners)
            snapshots = [NodeRecord.from_node(node) for node in batch]
            if self._root is not None:
                points.anchor_records(snapshots, self._root)
            self._before_write()
            if self._dim is None:
                self._create(vectors.shape[1])
            found = []
            for fid, record, vector in zip(fids, snapshots, vectors, strict=True):
                payload = points.point_payload(record)
                self._index_field(*(f"{FIELDS}.{key}.{sub}" for key in payload[FIELDS] for sub in ("c", "e")))
                found.append(models.PointStruct(id=fid, vector=vector.tolist(), payload=payload))
            for start in range(0, len(found), points.PAGE):
                self._upsert(found[start:start + points.PAGE])
            logger.debug("upserted %d nodes into %s", len(found), self.collection_name)
        return [node.node_id for node in nodes]

    def _owners(self, fids: list[int]) -> dict[int, str]:
        if self._dim is None:
            return {}
        found = self._call("read found", "retrieve", self.collection_name, ids=fids, with_payload=["node_id"])
        return {int(point.id): point.payload["node_id"] for point in found}

    def _delete_where(self, qfilter: Any) -> None:
        from qdrant_client import models

        if self._dim is None and not self._fork:
            return
        self._before_write()
        if self._dim is not None:
            self._call("delete points", "delete", self.collection_name,
                       points_selector=models.FilterSelector(filter=qfilter), wait=True)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node whose source document (``ref_doc_id``) is ``ref_doc_id``."""
        with self._lock:
            self._delete_where(self._filter(None, None, [ref_doc_id]))

    def delete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                     **delete_kwargs: Any) -> None:
        """Delete the given nodes, and/or the nodes matching ``filters`` (both: intersection).

        Unknown node ids are ignored. Calling with neither is an error (use :meth:`clear`).
        """
        from qdrant_client import models

        if node_ids is None and filters is None:
            raise ValueError("delete_nodes needs node_ids and/or filters; use clear() to empty")
        if node_ids is not None and not node_ids:
            return
        with self._lock:
            self._delete_where(self._filter(filters, node_ids, None) or models.Filter())

    def clear(self) -> None:
        """Remove everything; the next add may use a new dimension."""
        with self._lock:
            if self._fork:
                self._before_write(copy=False)  # a new, empty generation; the published one stays
                return
            self._before_write()
            if self._exists():
                self._call("delete a collection", "delete_collection", self.collection_name)
            self._dim, self._indexed = None, set()

    # ------------------------------------------------------------------ reading
    def _filter(self, filters: MetadataFilters | None, node_ids: Sequence[str] | None,
                doc_ids: Sequence[str] | None) -> Any:
        return points.request_filter(filters, node_ids, doc_ids, self._facet)

    def _facet(self, key: str) -> list[str]:
        """The distinct values of payload field ``key`` (exact)."""
        if self._dim is None:
            return []
        response = self._call("count values", "facet", self.collection_name, key,
                              limit=max(1, self.count()) + 1, exact=True)
        return [str(hit.value) for hit in response.hits]

    def _scroll(self, qfilter: Any, payload: Any, vectors: bool = False,
                collection: str | None = None) -> Iterator[list[Any]]:
        if self._dim is None:
            return iter(())
        return points.pages(self._call, collection or self.collection_name, qfilter, payload, vectors)

    def _record(self, payload: dict[str, Any]) -> NodeRecord:
        record = points.record_of(payload)
        if self._root is not None:
            points.anchor_records([record], self._root)
        return record

    def iter_records(self) -> Iterator[NodeRecord]:
        """Every node record as stored (image paths not anchored), in id order."""
        from qdrant_client import models

        for page in self._scroll(None, models.PayloadSelectorExclude(exclude=[FIELDS])):
            for point in page:
                yield points.record_of(point.payload)

    def count(self) -> int:
        """Number of vectors (nodes) in the store."""
        found = None if self._dim is None else self._call("count points", "count", self.collection_name, exact=True)
        return 0 if found is None else int(found.count)

    def node_ids(self) -> list[str]:
        """All node ids in the store (in id order)."""
        return [p.payload["node_id"] for page in self._scroll(None, ["node_id"]) for p in page]

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """Nodes by id (in the order given, unknown ids skipped) and/or matching ``filters``.

        With neither argument, all nodes (in id order). Nodes come back without embeddings.
        """
        from qdrant_client import models

        if node_ids is not None and not node_ids:
            return []
        found = {}
        for page in self._scroll(self._filter(filters, node_ids, None), models.PayloadSelectorExclude(exclude=[FIELDS])):
            for point in page:
                found[point.payload["node_id"]] = point.payload
        order = node_ids if node_ids is not None else list(found)
        return [self._record(found[i]).to_node() for i in order if i in found]

    def get_vector(self, node_id: str) -> np.ndarray:
        """The stored (normalised) vector of a node; ``KeyError`` if absent."""
        fid = records.node_id_to_faiss_id(node_id)
        found = [] if self._dim is None else self._call(
            "read a vector", "retrieve", self.collection_name, ids=[fid], with_payload=["node_id"], with_vectors=True)
        if not found or found[0].payload.get("node_id") != node_id:
            raise KeyError(f"node {node_id!r} is not in the vector store")
        return np.asarray(found[0].vector, dtype=np.float32)

    def counts_by(self, key: str) -> dict[Any, int]:
        """Number of nodes per value of metadata ``key`` (list values count per element)."""
        if self._dim is None:
            return {}
        return points.value_counts(
            self._call("count values", "facet", self.collection_name, field, limit=self.count() + 1, exact=True).hits
            for field in points.count_fields(key))

    # ------------------------------------------------------------------ searching
    def _hits(self, vector: Any, k: int, qfilter: Any, payload: Any) -> list[Any]:
        if self._dim is None or k <= 0:
            return []
        query = as_matrix(vector, self._dim, self.config.normalize)
        if query.shape[0] != 1:
            raise ValueError(f"expected one query vector, got {query.shape[0]}")
        params = None if self.is_local else points.search_params(self.config, k)  # local mode: always exact
        response = self._call("search", "query_points", self.collection_name, query=query[0].tolist(), limit=k,
                              query_filter=qfilter, search_params=params, with_payload=payload)
        return response.points

    def search(self, vector: np.ndarray, k: int, filters: MetadataFilters | None = None,
               node_ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """Top-``k`` (node id, cosine similarity) for one vector, best first (exact on ``flat``)."""
        hits = self._hits(vector, k, self._filter(filters, node_ids, None), ["node_id"])
        return [(p.payload["node_id"], float(p.score)) for p in hits]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """LlamaIndex query: top ``similarity_top_k`` whole nodes for ``query_embedding``.

        Honours ``filters`` and ``doc_ids``; ``query.node_ids`` only with ``honor_node_ids=True``
        (as :meth:`FaissNodeStore.query`, whose docstring says why).
        """
        from qdrant_client import models

        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise ValueError(f"QdrantNodeStore supports only the default query mode, not {query.mode!r}")
        if query.query_embedding is None:
            raise ValueError("QdrantNodeStore.query needs query.query_embedding")
        node_ids = query.node_ids if kwargs.get("honor_node_ids") else None
        qfilter = self._filter(query.filters, node_ids, query.doc_ids)
        hits = self._hits(query.query_embedding, query.similarity_top_k, qfilter,
                          models.PayloadSelectorExclude(exclude=[FIELDS]))
        nodes = [self._record(p.payload).to_node() for p in hits]
        return VectorStoreQueryResult(nodes=nodes, similarities=[float(p.score) for p in hits],
                                      ids=[n.node_id for n in nodes])

    # ------------------------------------------------------------------ persistence
    def persist(self, persist_path: str | os.PathLike[str] | None = None, fs: Any = None) -> None:
        """Write ``qdrant.json`` naming this store's collection into a directory (default
        ``config.dir``; a LlamaIndex file path means its sibling directory, as in FaissNodeStore)."""
        from index.vector_store import resolve_store_dir

        directory = resolve_store_dir(persist_path if persist_path is not None else self.config.dir)
        generations.write_pointer(directory, {
            "backend": "qdrant", "collection": self.collection_name, "previous": self.previous,
            "alias": self.config.qdrant.collection, "location": location(self.config.qdrant), "dim": self._dim,
            "count": self.count(), "type": self.config.type, "normalize": self.config.normalize})

    @classmethod
    def from_persist_dir(cls, persist_dir: str | os.PathLike[str] | None = None, fs: Any = None,
                         config: VectorIndexConfig | None = None, *, writable: bool = False,
                         fork: bool = False) -> QdrantNodeStore:
        """Open the collection that ``persist_dir``'s ``qdrant.json`` names, at ``config``'s location.

        ``writable`` allows writes; ``fork`` makes the first write copy the collection into a new
        generation and drop the named collection's predecessor (a build from a published index).

        Raises:
            VectorStoreFileError: If ``qdrant.json`` is missing or unreadable, or the collection
                it names is not at ``config``'s location (the message says to rebuild).
        """
        from index.vector_store import VectorStoreFileError, resolve_store_dir

        config = config or _MEMORY
        directory = resolve_store_dir(persist_dir if persist_dir is not None else config.dir)
        info = generations.read_pointer(directory)
        store = cls(config=config, collection_name=info["collection"], previous=info.get("previous"))
        if info.get("dim") is not None and store.dim is None:
            raise VectorStoreFileError(
                f"{directory / generations.POINTER} names the Qdrant collection {info['collection']}, which is not at "
                f"{location(config.qdrant)}; rebuild the index", "store_missing")
        store._root, store._read_only = directory, not writable
        store._fork, store._retire = fork, (info.get("previous") if fork else None)
        logger.info("opened Qdrant collection %s (%d vectors) for %s", store.collection_name, store.count(), directory)
        return store
