"""FaissNodeStore approximate index types: HNSW and IVF recall, filters, deletes, upserts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from index.vector_store import FaissNodeStore, VectorIndexConfig
from tests.index.vector_store.helpers import (
    OP,
    assert_same_hits,
    brute_force,
    clustered,
    make_nodes,
    normalize,
    recall,
)


# ---------------------------------------------------------------------------- approximate types
@pytest.fixture(scope="module")
def big() -> tuple[np.ndarray, list[BaseNode], np.ndarray]:
    vectors, queries = clustered(2000, 50, 64, seed=10)
    return vectors, make_nodes(vectors, seed=12), queries


def test_hnsw_recall_filtered_recall_and_delete(big: Any) -> None:
    vectors, nodes, queries = big
    store = FaissNodeStore(VectorIndexConfig(type="hnsw", exact_filter_threshold=0))
    store.add(nodes)
    assert store.index_kind == "hnsw" and not store.is_exact
    assert recall(store, vectors, nodes, queries) >= 0.9
    not_tile = MetadataFilters(filters=[MetadataFilter(key="kind", value="tile", operator=OP.NE)])
    assert recall(store, vectors, nodes, queries, filters=not_tile) >= 0.9
    # delete a quarter (graph rebuilt from reconstructed vectors)
    gone = {n.node_id for n in nodes[::4]}
    store.delete_nodes(sorted(gone))
    assert store.count() == store.client.ntotal == 1500
    keep = np.array([n.node_id not in gone for n in nodes])
    kept_nodes = [n for n in nodes if n.node_id not in gone]
    assert recall(store, vectors[keep], kept_nodes, queries) >= 0.9
    for q in queries[:10]:
        assert not gone & {h[0] for h in store.search(q, 50)}
    np.testing.assert_allclose(
        store.get_vector(kept_nodes[7].node_id), normalize(vectors[keep][7]), atol=1e-6
    )
    # upsert on hnsw
    store.add([nodes[1].model_copy(update={"embedding": queries[0].tolist()})])
    assert store.search(queries[0], 1)[0][0] == nodes[1].node_id and store.count() == 1500


def test_hnsw_tight_filter_is_exact(big: Any) -> None:
    vectors, nodes, queries = big
    store = FaissNodeStore(VectorIndexConfig(type="hnsw"))  # default exact_filter_threshold
    store.add(nodes)
    rust = MetadataFilters(
        filters=[MetadataFilter(key="labels", value="rust", operator=OP.CONTAINS)]
    )
    for q in queries[:10]:
        assert_same_hits(store.search(q, 10, rust), brute_force(vectors, nodes, q, 10, rust))


def test_ivf_small_falls_back_to_exact_then_trains(big: Any) -> None:
    vectors, nodes, queries = big
    store = FaissNodeStore(VectorIndexConfig(type="ivf"))  # nlist 256: needs 9,984 vectors
    store.add(nodes[:100])
    assert store.index_kind == "ivf_pending" and store.is_exact
    assert_same_hits(
        store.search(queries[0], 5), brute_force(vectors[:100], nodes[:100], queries[0], 5)
    )

    store = FaissNodeStore(
        VectorIndexConfig(type="ivf", ivf_nlist=16, ivf_nprobe=6, exact_filter_threshold=0)
    )
    store.add(nodes[:500])
    assert store.index_kind == "ivf_pending"  # 500 < 16 * 39
    store.add(nodes[500:])
    assert store.index_kind == "ivf" and store.count() == store.client.ntotal == 2000
    assert recall(store, vectors, nodes, queries) >= 0.9
    image = MetadataFilters(filters=[MetadataFilter(key="kind", value="image")])
    assert recall(store, vectors, nodes, queries, filters=image) >= 0.9
    store.delete_nodes([n.node_id for n in nodes[:300]])
    assert store.count() == store.client.ntotal == 1700
    assert recall(store, vectors[300:], nodes[300:], queries) >= 0.9
    store.add([nodes[400].model_copy(update={"embedding": queries[1].tolist()})])
    assert store.search(queries[1], 1)[0][0] == nodes[400].node_id and store.count() == 1700

