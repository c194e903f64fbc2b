"""The node store on Qdrant: :class:`FaissNodeStore`'s interface and semantics, vectors in Qdrant.

- Point ids are the FAISS store's stable 63-bit ids (:func:`~index.vector_store.records.
  node_id_to_faiss_id`, which Qdrant takes as unsigned integers); ``add`` is an upsert.
- Each point's payload is the node record (``node``, ``node_id``, ``node_type``,
  ``ref_doc_id``) and the derived filter fields of :mod:`~index.vector_store.qdrant_filters`,
  through which every metadata filter means exactly what it means in the FAISS store.
- Search is cosine (inner product when ``normalize`` is off); ``type: flat`` is exact
  (``SearchParams(exact=True)``, and no HNSW graph is built), ``hnsw`` uses Qdrant's graph with
  ``hnsw_m``, ``hnsw_ef_construction`` and ``hnsw_ef_search``. Local mode is always exact.
- ``persist`` writes ``qdrant.json`` (:mod:`~index.vector_store.qdrant_generations`), naming the
  collection; the vectors are already in Qdrant. A store opened from a published index
  directory for writing copies that collection into a new generation on its first write.
- Nodes come back in id order where the FAISS store keeps insertion order (``get_nodes``
  without ids, ``node_ids``); searches and ``get_nodes(ids)`` keep their orders.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
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

import index.vector_store.records as records
from index.vector_store.config import QdrantConfig, VectorIndexConfig
from index.vector_store.faiss_backend import as_matrix
from index.vector_store.qdrant_connect import connect, location, require_qdrant, server_call
from index.vector_store.qdrant_filters import (
    FIELDS,
    NOTHING,
    decode,
    filter_fields,
    to_qdrant_filter,
)
from index.vector_store.qdrant_generations import (
    POINTER,
    drop,
    new_generation,
    read_pointer,
    write_pointer,
)
from index.vector_store.records import FaissIdCollisionError, NodeRecord

__all__ = ["QdrantNodeStore"]

logger = logging.getLogger(__name__)
_PAGE = 512
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
            self._dim = self._client.get_collection(self.collection_name).config.params.vectors.size

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
        return self.config.qdrant.url is None and not self.config.qdrant.url_env

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
        self.collection_name, self.previous = new_generation(self.config.qdrant.collection), source
        self._indexed = set()
        if copy and self._dim is not None:
            self._create(self._dim)
            for page in self._scroll(None, payload=True, vectors=True, collection=source):
                for point in page:
                    self._index_fields(point.payload.get(FIELDS, {}))
                self._upsert(page)
        else:
            self._dim = None
        logger.info("Qdrant collection %s: writing generation %s", source, self.collection_name)
        drop(self._client, self._retire)
        self._retire = None

    def _create(self, dim: int) -> None:
        from qdrant_client import models

        distance = models.Distance.COSINE if self.config.normalize else models.Distance.DOT
        hnsw = (models.HnswConfigDiff(m=self.config.hnsw_m, ef_construct=self.config.hnsw_ef_construction)
                if self.config.type == "hnsw" else models.HnswConfigDiff(m=0))  # flat: no graph
        self._call("create a collection", "create_collection", self.collection_name,
                   vectors_config=models.VectorParams(size=dim, distance=distance), hnsw_config=hnsw)
        self._dim = dim
        for key in ("node_id", "ref_doc_id"):
            self._index_field(key)

    def _index_field(self, key: str) -> None:
        """A keyword payload index (servers only: facets need one, filters go faster)."""
        if self.is_local or key in self._indexed:
            return
        from qdrant_client import models

        self._call("index a payload field", "create_payload_index", self.collection_name, key,
                   field_schema=models.PayloadSchemaType.KEYWORD)
        self._indexed.add(key)

    def _index_fields(self, fields: dict[str, Any]) -> None:
        for key in fields:
            for sub in ("c", "e"):
                self._index_field(f"{FIELDS}.{key}.{sub}")

    def _upsert(self, points: list[Any]) -> None:
        self._call("write points", "upsert", self.collection_name, points=points, wait=True)

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert nodes with embeddings; returns their node ids (one per input node).

        Validation (embedding present, dimension, id collisions, node class) happens before
        anything is written.
        """
        from qdrant_client import models

        if not nodes:
            return []
        latest: dict[str, BaseNode] = {}
        for node in nodes:
            latest.pop(node.node_id, None)  # the last occurrence wins, in its position
            latest[node.node_id] = node
        batch = list(latest.values())
        for node in batch:
            if node.embedding is None:
                raise ValueError(f"node {node.node_id!r} has no embedding; embed it before adding")
        with self._lock:
            vectors = as_matrix([node.embedding for node in batch], self._dim, self.config.normalize)
            fids = self._checked_ids(batch)
            snapshots = [NodeRecord.from_node(node) for node in batch]
            if self._root is not None:
                self._anchor(snapshots, self._root)
            self._before_write()
            if self._dim is None:
                self._create(vectors.shape[1])
            points = []
            for fid, record, vector in zip(fids, snapshots, vectors, strict=True):
                fields = filter_fields(record.metadata)
                self._index_fields(fields)
                payload = {"node_id": record.node_id, "node_type": record.node_type, "node": record.data,
                           FIELDS: fields}
                if record.ref_doc_id is not None:
                    payload["ref_doc_id"] = record.ref_doc_id
                points.append(models.PointStruct(id=fid, vector=vector.tolist(), payload=payload))
            for start in range(0, len(points), _PAGE):
                self._upsert(points[start:start + _PAGE])
            logger.debug("upserted %d nodes into %s", len(points), self.collection_name)
        return [node.node_id for node in nodes]

    def _checked_ids(self, batch: Sequence[BaseNode]) -> list[int]:
        """The point ids of ``batch``; two node ids sharing one (in the batch or with a stored
        point) raise :class:`FaissIdCollisionError`."""
        fids = [records.node_id_to_faiss_id(node.node_id) for node in batch]
        owners: dict[int, str] = {}
        if self._dim is not None:
            for point in self._call("read points", "retrieve", self.collection_name, ids=sorted(set(fids)),
                                    with_payload=["node_id"]):
                owners[int(point.id)] = point.payload["node_id"]
        seen: dict[int, str] = {}
        for node, fid in zip(batch, fids, strict=True):
            other = seen.get(fid) or owners.get(fid)
            if other is not None and other != node.node_id:
                raise FaissIdCollisionError(
                    f"node ids {node.node_id!r} and {other!r} map to the same FAISS id {fid}; rename one of them")
            seen[fid] = node.node_id
        return fids

    @staticmethod
    def _anchor(snapshots: Iterable[NodeRecord], root: Path) -> None:
        base, parents = os.path.realpath(root), {}
        outside = [r.node_id for r in snapshots if not r.anchor(base, parents)]
        if outside:
            logger.warning("%d node(s) of the vector store in %s have an image path outside that directory "
                           "and are returned without one (first: node %s)", len(outside), root, outside[0])

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
        """The Qdrant filter for filters/node_ids/doc_ids (``None``: no restriction)."""
        from qdrant_client import models

        must: list[Any] = []
        if filters is not None and filters.filters:
            must.append(to_qdrant_filter(filters, self._facet))
        for key, values in (("node_id", node_ids), ("ref_doc_id", doc_ids)):
            if values is not None:
                wanted = sorted(set(values))
                must.append(models.FieldCondition(key=key, match=models.MatchAny(any=wanted)) if wanted else NOTHING)
                if key == "node_id" and wanted:
                    must.append(models.HasIdCondition(has_id=[records.node_id_to_faiss_id(n) for n in wanted]))
        return models.Filter(must=must) if must else None

    def _facet(self, key: str) -> list[str]:
        """The distinct values of payload field ``key`` (exact)."""
        if self._dim is None:
            return []
        response = self._call("count values", "facet", self.collection_name, key,
                              limit=max(1, self.count()) + 1, exact=True)
        return [str(hit.value) for hit in response.hits]

    def _scroll(self, qfilter: Any, payload: Any, vectors: bool = False,
                collection: str | None = None) -> Iterator[list[Any]]:
        """Pages of points of ``collection`` (default: this store's) matching ``qfilter``, in id
        order (as ``PointStruct``s with ``vectors``)."""
        from qdrant_client import models

        if self._dim is None:
            return
        offset = None
        while True:
            points, offset = self._call("read points", "scroll", collection or self.collection_name, scroll_filter=qfilter,
                                        limit=_PAGE, offset=offset, with_payload=payload, with_vectors=vectors)
            if vectors:
                points = [models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points]
            if points:
                yield points
            if offset is None:
                return

    def _record(self, payload: dict[str, Any]) -> NodeRecord:
        record = NodeRecord(payload["node_id"], payload.get("ref_doc_id"), payload["node_type"], payload["node"])
        if self._root is not None:
            self._anchor([record], self._root)
        return record

    def iter_records(self) -> Iterator[NodeRecord]:
        """Every node record as stored (image paths not anchored), in id order."""
        from qdrant_client import models

        for page in self._scroll(None, models.PayloadSelectorExclude(exclude=[FIELDS])):
            for point in page:
                p = point.payload
                yield NodeRecord(p["node_id"], p.get("ref_doc_id"), p["node_type"], p["node"])

    def count(self) -> int:
        """Number of vectors (nodes) in the store."""
        if self._dim is None:
            return 0
        return int(self._call("count points", "count", self.collection_name, exact=True).count)

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
        points = [] if self._dim is None else self._call(
            "read a vector", "retrieve", self.collection_name, ids=[fid], with_payload=["node_id"], with_vectors=True)
        if not points or points[0].payload.get("node_id") != node_id:
            raise KeyError(f"node {node_id!r} is not in the vector store")
        return np.asarray(points[0].vector, dtype=np.float32)

    def counts_by(self, key: str) -> dict[Any, int]:
        """Number of nodes per value of metadata ``key`` (list values count per element)."""
        from index.vector_store.qdrant_filters import field_key

        counts: dict[Any, int] = {}
        if self._dim is None:
            return counts
        for sub in ("c", "e"):
            response = self._call("count values", "facet", self.collection_name, f"{FIELDS}.{field_key(key)}.{sub}",
                                  limit=self.count() + 1, exact=True)
            for hit in response.hits:
                if not str(hit.value).startswith("l:"):
                    value = decode(str(hit.value))
                    counts[value] = counts.get(value, 0) + hit.count
        return counts

    # ------------------------------------------------------------------ searching
    def _hits(self, vector: Any, k: int, qfilter: Any, payload: Any) -> list[Any]:
        from qdrant_client import models

        if self._dim is None or k <= 0:
            return []
        query = as_matrix(vector, self._dim, self.config.normalize)
        if query.shape[0] != 1:
            raise ValueError(f"expected one query vector, got {query.shape[0]}")
        params = None if self.is_local else models.SearchParams(  # local mode is always exact
            exact=self.config.type == "flat",
            hnsw_ef=max(self.config.hnsw_ef_search, k) if self.config.type == "hnsw" else None)
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
        write_pointer(directory, {"backend": "qdrant", "collection": self.collection_name,
                                  "previous": self.previous, "alias": self.config.qdrant.collection,
                                  "location": location(self.config.qdrant), "dim": self._dim,
                                  "count": self.count(), "type": self.config.type,
                                  "normalize": self.config.normalize})

    @classmethod
    def from_persist_dir(cls, persist_dir: str | os.PathLike[str] | None = None, fs: Any = None,
                         config: VectorIndexConfig | None = None, *, writable: bool = False,
                         fork: bool = False) -> QdrantNodeStore:
        """Open the collection that ``persist_dir``'s ``qdrant.json`` names, at ``config``'s location.

        Args:
            persist_dir: The directory (default ``config.dir``).
            config: Connection and search settings (default: in-memory local mode).
            writable: Allow writes (a store opened for reading refuses them).
            fork: Write into a new generation, a copy made on the first write (a build working
                from a published index), and drop the named collection's predecessor then.

        Raises:
            VectorStoreFileError: If ``qdrant.json`` is missing or unreadable, or the collection
                it names is not at ``config``'s location (the message says to rebuild).
        """
        from index.vector_store import VectorStoreFileError, resolve_store_dir

        config = config or _MEMORY
        directory = resolve_store_dir(persist_dir if persist_dir is not None else config.dir)
        info = read_pointer(directory)
        store = cls(config=config, collection_name=info["collection"], previous=info.get("previous"))
        if info.get("dim") is not None and store.dim is None:
            raise VectorStoreFileError(
                f"{directory / POINTER} names the Qdrant collection {info['collection']}, which is not at "
                f"{location(config.qdrant)}; rebuild the index", "store_missing")
        store._root, store._read_only = directory, not writable
        store._fork, store._retire = fork, (info.get("previous") if fork else None)
        logger.info("opened Qdrant collection %s (%d vectors) for %s", store.collection_name, store.count(), directory)
        return store
