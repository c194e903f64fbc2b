"""The points of a :class:`~index.vector_store.qdrant_store.QdrantNodeStore` collection.

What one point holds (:func:`point_payload`, :func:`record_of`), the collection's parameters
(:func:`collection_params`), the id check of a batch (:func:`check_ids`), the request filter
of a search or read (:func:`request_filter`) and paging through a collection (:func:`pages`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import MetadataFilters
from qdrant_client import models

import index.vector_store.records as records
from index.vector_store.config import VectorIndexConfig
from index.vector_store.qdrant_filters import (
    FIELDS,
    NOTHING,
    decode,
    field_key,
    filter_fields,
    to_qdrant_filter,
)
from index.vector_store.records import FaissIdCollisionError, NodeRecord

logger = logging.getLogger(__name__)

PAGE = 512
#: ``call(what, method, *args, **kwargs)``: a client method, its failures made one sentence
Call = Callable[..., Any]


def collection_params(config: VectorIndexConfig, dim: int) -> dict[str, Any]:
    """``create_collection`` keyword arguments: cosine (or dot product) vectors of ``dim``,
    Qdrant's HNSW graph for ``hnsw`` and none for ``flat`` (searched exactly)."""
    distance = models.Distance.COSINE if config.normalize else models.Distance.DOT
    hnsw = (models.HnswConfigDiff(m=config.hnsw_m, ef_construct=config.hnsw_ef_construction)
            if config.type == "hnsw" else models.HnswConfigDiff(m=0))
    return {"vectors_config": models.VectorParams(size=dim, distance=distance), "hnsw_config": hnsw}


def search_params(config: VectorIndexConfig, k: int) -> models.SearchParams:
    """A server search: exact on ``flat``, HNSW with ``ef = max(hnsw_ef_search, k)`` on ``hnsw``."""
    return models.SearchParams(exact=config.type == "flat",
                               hnsw_ef=max(config.hnsw_ef_search, k) if config.type == "hnsw" else None)


def point_payload(record: NodeRecord) -> dict[str, Any]:
    """A point's payload: the node record and its derived filter fields."""
    payload = {"node_id": record.node_id, "node_type": record.node_type, "node": record.data,
               FIELDS: filter_fields(record.metadata)}
    if record.ref_doc_id is not None:
        payload["ref_doc_id"] = record.ref_doc_id
    return payload


def record_of(payload: dict[str, Any]) -> NodeRecord:
    """The node record a point's payload holds (as stored: image paths not anchored)."""
    return NodeRecord(payload["node_id"], payload.get("ref_doc_id"), payload["node_type"], payload["node"])


def check_ids(batch: Sequence[BaseNode], owners: Callable[[list[int]], dict[int, str]]) -> list[int]:
    """The point ids of ``batch`` (``owners`` gives the node ids of those already stored).

    Raises:
        FaissIdCollisionError: Two node ids share a point id, in the batch or with a stored point.
    """
    fids = [records.node_id_to_faiss_id(node.node_id) for node in batch]
    stored = owners(sorted(set(fids)))
    seen: dict[int, str] = {}
    for node, fid in zip(batch, fids, strict=True):
        other = seen.get(fid) or stored.get(fid)
        if other is not None and other != node.node_id:
            raise FaissIdCollisionError(
                f"node ids {node.node_id!r} and {other!r} map to the same FAISS id {fid}; rename one of them")
        seen[fid] = node.node_id
    return fids


def request_filter(filters: MetadataFilters | None, node_ids: Sequence[str] | None, doc_ids: Sequence[str] | None,
                   facet: Callable[[str], list[str]]) -> models.Filter | None:
    """The Qdrant filter allowing what filters, node_ids and doc_ids allow (``None``: everything)."""
    must: list[Any] = []
    if filters is not None and filters.filters:
        must.append(to_qdrant_filter(filters, facet))
    for key, values in (("node_id", node_ids), ("ref_doc_id", doc_ids)):
        if values is not None:
            wanted = sorted(set(values))
            must.append(models.FieldCondition(key=key, match=models.MatchAny(any=wanted)) if wanted else NOTHING)
            if key == "node_id" and wanted:
                must.append(models.HasIdCondition(has_id=[records.node_id_to_faiss_id(n) for n in wanted]))
    return models.Filter(must=must) if must else None


def pages(call: Call, collection: str, qfilter: Any, payload: Any, vectors: bool = False) -> Iterator[list[Any]]:
    """Pages of the points of ``collection`` matching ``qfilter``, in id order (``PointStruct``s,
    ready to upsert elsewhere, when ``vectors``)."""
    offset = None
    while True:
        points, offset = call("read points", "scroll", collection, scroll_filter=qfilter, limit=PAGE, offset=offset,
                              with_payload=payload, with_vectors=vectors)
        if vectors:
            points = [models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points]
        if points:
            yield points
        if offset is None:
            return


def anchor_records(snapshots: Iterable[NodeRecord], root: Path) -> None:
    """Resolve the records' relative image paths against ``root`` (as FaissNodeStore does);
    warn once about those leading out of it (their nodes come back without an image path)."""
    base, parents = os.path.realpath(root), {}
    outside = [r.node_id for r in snapshots if not r.anchor(base, parents)]
    if outside:
        logger.warning("%d node(s) of the vector store in %s have an image path outside that directory "
                       "and are returned without one (first: node %s)", len(outside), root, outside[0])


def count_fields(key: str) -> list[str]:
    """The payload fields whose facets count metadata ``key``'s values: whole values, elements."""
    return [f"{FIELDS}.{field_key(key)}.c", f"{FIELDS}.{field_key(key)}.e"]


def value_counts(facets: Iterable[Sequence[Any]]) -> dict[Any, int]:
    """Nodes per value from the facets of :func:`count_fields` (lists count per element, as in
    :meth:`~index.vector_store.filters.MetadataIndex.value_counts`)."""
    counts: dict[Any, int] = {}
    for hits in facets:
        for hit in hits:
            if not str(hit.value).startswith("l:"):
                value = decode(str(hit.value))
                counts[value] = counts.get(value, 0) + hit.count
    return counts
