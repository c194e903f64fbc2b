"""FaissNodeStore ids and writes: stable hashed ids, node round trips, upserts, deletes, accessors."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery

import index.vector_store.records as records_module
from index.vector_store import (
    FaissIdCollisionError,
    FaissNodeStore,
    VectorIndexConfig,
    node_id_to_faiss_id,
)
from tests.index.vector_store.helpers import KINDS, OP, assert_same_hits, brute_force, normalize


# ---------------------------------------------------------------------------- ids
def test_faiss_ids_are_stable_positive_int64() -> None:
    a = node_id_to_faiss_id("img-0001")
    assert a == node_id_to_faiss_id("img-0001")
    assert 0 <= a < 2**63
    ids = {node_id_to_faiss_id(f"node-{i}") for i in range(10_000)}
    assert len(ids) == 10_000
    expected = int.from_bytes(hashlib.blake2b(b"img-0001", digest_size=8).digest(), "little")
    assert a == expected & (2**63 - 1)


def test_id_collision_raises_and_leaves_store_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FaissNodeStore()
    store.add([TextNode(id_="a", text="a", embedding=[1.0, 0.0])])
    monkeypatch.setattr(records_module, "node_id_to_faiss_id", lambda node_id: 42)
    store2 = FaissNodeStore()
    store2.add([TextNode(id_="a", text="a", embedding=[1.0, 0.0])])
    with pytest.raises(FaissIdCollisionError, match="'b'.*'a'"):
        store2.add([TextNode(id_="b", text="b", embedding=[0.0, 1.0])])
    with pytest.raises(FaissIdCollisionError):
        FaissNodeStore().add([TextNode(id_=x, text=x, embedding=[1.0, 0.0]) for x in "xy"])
    assert store2.node_ids() == ["a"]
    assert store2.search(np.array([0.0, 1.0]), 5) == [("a", pytest.approx(0.0, abs=1e-6))]

# ---------------------------------------------------------------------------- reading
def test_counts_and_accessors(flat_store: FaissNodeStore, store_data: Any) -> None:
    vectors, nodes = store_data
    assert flat_store.count() == len(nodes)
    assert sorted(flat_store.node_ids()) == sorted(n.node_id for n in nodes)
    kinds = flat_store.counts_by("kind")
    assert kinds == {k: sum(n.metadata["kind"] == k for n in nodes) for k in KINDS if k in kinds}
    assert sum(kinds.values()) == len(nodes)
    assert flat_store.counts_by("labels")["dent"] == sum(
        "dent" in n.metadata["labels"] for n in nodes
    )
    np.testing.assert_allclose(
        flat_store.get_vector(nodes[5].node_id), normalize(vectors[5]), atol=1e-6
    )
    with pytest.raises(KeyError):
        flat_store.get_vector("missing")
    got = flat_store.get_nodes([nodes[2].node_id, "missing", nodes[1].node_id])
    assert [n.node_id for n in got] == [nodes[2].node_id, nodes[1].node_id]


# ---------------------------------------------------------------------------- round trip of nodes
def test_nodes_round_trip_without_embedding() -> None:
    img = ImageNode(
        id_="img-7",
        image_path="/data/car7.jpg",
        text="front bumper",
        metadata={"kind": "image", "labels": ["dent", "scratch"], "zone": 3},
        excluded_embed_metadata_keys=["zone"],
        excluded_llm_metadata_keys=["labels"],
        embedding=[0.0, 1.0, 0.0],
    )
    img.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="car7")
    txt = TextNode(
        id_="txt-1", text="a dent", metadata={"kind": "region"}, embedding=[1.0, 0.0, 0.0]
    )
    store = FaissNodeStore()
    store.add([img, txt])
    (back,) = store.get_nodes(["img-7"])
    assert isinstance(back, ImageNode)
    assert back.embedding is None
    assert (back.node_id, back.image_path, back.text, back.metadata) == (
        img.node_id,
        img.image_path,
        img.text,
        img.metadata,
    )
    assert back.excluded_embed_metadata_keys == ["zone"]
    assert back.excluded_llm_metadata_keys == ["labels"]
    assert back.ref_doc_id == "car7"
    r = store.query(VectorStoreQuery(query_embedding=[1.0, 0.1, 0.0], similarity_top_k=2))
    assert r.ids == ["txt-1", "img-7"]
    assert isinstance(r.nodes[0], TextNode) and not isinstance(r.nodes[0], ImageNode)
    assert all(n.embedding is None for n in r.nodes)
    assert img.embedding == [0.0, 1.0, 0.0]  # caller's node untouched


# ---------------------------------------------------------------------------- writes
def test_upsert_replaces_vector_and_metadata() -> None:
    store = FaissNodeStore()
    store.add(
        [
            TextNode(
                id_="a",
                text="old",
                metadata={"kind": "image", "labels": ["dent"]},
                embedding=[1.0, 0.0, 0.0],
            )
        ]
    )
    store.add([TextNode(id_="b", text="b", metadata={"kind": "image"}, embedding=[0.0, 0.0, 1.0])])
    store.add(
        [
            TextNode(
                id_="a",
                text="new",
                metadata={"kind": "region", "labels": ["rust"]},
                embedding=[0.0, 1.0, 0.0],
            )
        ]
    )
    assert store.count() == 2 and store.client.ntotal == 2
    np.testing.assert_allclose(store.get_vector("a"), [0.0, 1.0, 0.0])
    assert store.get_nodes(["a"])[0].text == "new"
    dent = MetadataFilters(
        filters=[MetadataFilter(key="labels", value="dent", operator=OP.CONTAINS)]
    )
    assert store.search(np.array([1.0, 0.0, 0.0]), 5, dent) == []
    region = MetadataFilters(filters=[MetadataFilter(key="kind", value="region")])
    assert [h[0] for h in store.search(np.array([1.0, 0.0, 0.0]), 5, region)] == ["a"]
    assert store.counts_by("kind") == {"image": 1, "region": 1}
    # duplicates inside one batch: last wins, one vector
    ids = store.add(
        [
            TextNode(id_="c", text="1", embedding=[1.0, 1.0, 0.0]),
            TextNode(id_="c", text="2", embedding=[0.0, 1.0, 1.0]),
        ]
    )
    assert ids == ["c", "c"] and store.count() == 3 and store.get_nodes(["c"])[0].text == "2"


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_delete_then_add_never_collides_with_live_ids(index_type: str) -> None:
    """Defect 3 of llama-index-vector-stores-faiss: an add after a delete reused a live id."""
    rng = np.random.default_rng(6)
    vecs = normalize(rng.standard_normal((4, 16)))
    store = FaissNodeStore(VectorIndexConfig(type=index_type))
    store.add(
        [
            TextNode(id_=n, text=n, embedding=v.tolist())
            for n, v in zip("abc", vecs[:3], strict=True)
        ]
    )
    store.delete_nodes(["b"])
    store.add([TextNode(id_="d", text="d", embedding=vecs[3].tolist())])
    assert sorted(store.node_ids()) == ["a", "c", "d"]
    assert store.client.ntotal == 3
    for name, v in zip("abcd", vecs, strict=True):
        if name != "b":
            assert store.search(v, 1) == [(name, pytest.approx(1.0, abs=1e-5))]
            assert store.get_nodes([name])[0].text == name
    assert all(h[0] != "b" for h in store.search(vecs[1], 10))
    # the FAISS ids of live vectors are exactly the hashes of their node ids
    live = sorted(store._backend.ids().tolist())
    assert live == sorted(node_id_to_faiss_id(x) for x in "acd")


def test_text_and_image_nodes_never_collide() -> None:
    """Defect 1: text and image stores sharing FAISS positions returned image nodes for text."""
    rng = np.random.default_rng(7)
    text_store, image_store, both = FaissNodeStore(), FaissNodeStore(), FaissNodeStore()
    texts = [
        TextNode(
            id_=f"t{i}",
            text=f"t{i}",
            metadata={"kind": "region"},
            embedding=rng.standard_normal(8).tolist(),
        )
        for i in range(5)
    ]
    images = [
        ImageNode(
            id_=f"i{i}",
            image_path=f"/{i}.jpg",
            metadata={"kind": "image"},
            embedding=rng.standard_normal(8).tolist(),
        )
        for i in range(5)
    ]
    text_store.add(texts)
    image_store.add(images)
    both.add(texts + images)
    q = rng.standard_normal(8)
    assert all(
        isinstance(n, TextNode) and not isinstance(n, ImageNode) for n in text_store.get_nodes()
    )
    assert {h[0] for h in text_store.search(q, 10)} == {n.node_id for n in texts}
    assert {h[0] for h in image_store.search(q, 10)} == {n.node_id for n in images}
    assert both.count() == 10 and len(set(faiss_ids(both))) == 10
    only_images = MetadataFilters(filters=[MetadataFilter(key="kind", value="image")])
    r = both.query(
        VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=10, filters=only_images)
    )
    assert all(isinstance(n, ImageNode) for n in r.nodes) and len(r.nodes) == 5


def faiss_ids(store: FaissNodeStore) -> list[int]:
    import faiss

    return faiss.vector_to_array(store.client.id_map).tolist()


def test_delete_by_ref_doc_delete_nodes_by_filter_and_clear(store_data: Any) -> None:
    vectors, nodes = store_data
    store = FaissNodeStore()
    store.add(nodes)
    store.delete("doc3")
    assert all(n.ref_doc_id != "doc3" for n in store.get_nodes())
    left = [n for n in nodes if n.ref_doc_id != "doc3"]
    assert store.count() == len(left) == store.client.ntotal
    tiles = MetadataFilters(filters=[MetadataFilter(key="kind", value="tile")])
    store.delete_nodes(filters=tiles)
    assert store.search(np.ones(32), 10, tiles) == []
    left = [n for n in left if n.metadata["kind"] != "tile"]
    q = np.random.default_rng(8).standard_normal(32)
    keep = np.array([n in left for n in nodes])
    assert_same_hits(store.search(q, 15), brute_force(vectors[keep], left, q, 15))
    with pytest.raises(ValueError, match="clear"):
        store.delete_nodes()
    store.clear()
    assert store.count() == 0 and store.search(np.ones(32), 3) == [] and store.dim is None
    store.add([TextNode(id_="x", text="x", embedding=[1.0, 2.0])])  # new dimension after clear
    assert store.dim == 2


def test_dimension_mismatch_and_missing_embedding_are_clear_errors() -> None:
    store = FaissNodeStore()
    store.add([TextNode(id_="a", text="a", embedding=[1.0, 0.0, 0.0])])
    with pytest.raises(ValueError, match="dimension 4 does not match the index dimension 3"):
        store.add([TextNode(id_="b", text="b", embedding=[1.0, 0.0, 0.0, 0.0])])
    with pytest.raises(ValueError, match="dimension 2"):
        store.search(np.ones(2), 1)
    with pytest.raises(ValueError, match="has no embedding"):
        store.add([TextNode(id_="c", text="c")])
    assert store.node_ids() == ["a"]

