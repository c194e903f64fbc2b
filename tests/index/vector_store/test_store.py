"""Tests of index.vector_store.store.FaissNodeStore: exact filters, stable ids, persistence, types."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.schema import (
    BaseNode,
    ImageNode,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

import index.vector_store.store as vs_module
from index.vector_store.store import (
    FaissIdCollisionError,
    FaissNodeStore,
    FilterError,
    VectorIndexConfig,
    VectorStoreFileError,
    node_id_to_faiss_id,
)

KINDS = ["image", "region", "background", "tile"]
LABELS = ["dent", "scratch", "crack", "rust", "glass"]
OP = FilterOperator


# ---------------------------------------------------------------------------- helpers
def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_nodes(vectors: np.ndarray, seed: int = 0, prefix: str = "n") -> list[BaseNode]:
    """Mixed image/text nodes with kinds, label lists, an optional int and a ref doc."""
    rng = np.random.default_rng(seed)
    nodes: list[BaseNode] = []
    for i, vec in enumerate(vectors):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        labels = sorted(rng.choice(LABELS, size=int(rng.integers(0, 4)), replace=False).tolist())
        metadata: dict[str, Any] = {"kind": kind, "labels": labels, "split": f"s{i % 3}"}
        if rng.random() < 0.8:  # some nodes lack "area"
            metadata["area"] = int(rng.integers(0, 100))
        common = {"id_": f"{prefix}{i}", "metadata": metadata, "embedding": vec.tolist()}
        if kind == "image":
            node: BaseNode = ImageNode(image_path=f"/data/{i}.jpg", text=f"photo {i}", **common)
        else:
            node = TextNode(text=f"{kind} {i}", **common)
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{i % 7}")
        nodes.append(node)
    return nodes


def predicate(f: MetadataFilter | MetadataFilters) -> Callable[[dict], bool]:
    """Independent reference implementation of the filter semantics."""
    if isinstance(f, MetadataFilters):
        parts = [predicate(x) for x in f.filters]
        if f.condition == FilterCondition.OR:
            return lambda md: any(p(md) for p in parts)
        if f.condition == FilterCondition.NOT:
            return lambda md: not any(p(md) for p in parts)
        return lambda md: all(p(md) for p in parts)
    key, v, op = f.key, f.value, f.operator

    def check(md: dict) -> bool:
        has = key in md and md[key] is not None
        x = md.get(key)
        if op == OP.EQ:
            return has and x == v
        if op == OP.NE:
            return not (has and x == v)
        if op == OP.IN:
            return has and not isinstance(x, list) and x in v
        if op == OP.NIN:
            return not (has and not isinstance(x, list) and x in v)
        if op in (OP.GT, OP.GTE, OP.LT, OP.LTE):
            if not has or isinstance(x, list):
                return False
            return {OP.GT: x > v, OP.GTE: x >= v, OP.LT: x < v, OP.LTE: x <= v}[op]
        if op == OP.CONTAINS:
            return has and isinstance(x, list) and v in x
        if op == OP.ANY:
            return has and isinstance(x, list) and any(y in x for y in v)
        if op == OP.ALL:
            return has and isinstance(x, list) and all(y in x for y in v)
        raise AssertionError(op)

    return check


def random_filter(rng: np.random.Generator, depth: int = 0) -> MetadataFilters:
    def leaf() -> MetadataFilter:
        choice = int(rng.integers(9))
        kind = KINDS[int(rng.integers(len(KINDS)))]
        label = LABELS[int(rng.integers(len(LABELS)))]
        some_labels = rng.choice(LABELS, size=2, replace=False).tolist()
        area = int(rng.integers(0, 100))
        return [
            MetadataFilter(key="kind", value=kind),
            MetadataFilter(key="kind", value=kind, operator=OP.NE),
            MetadataFilter(
                key="kind", value=rng.choice(KINDS, 2, replace=False).tolist(), operator=OP.IN
            ),
            MetadataFilter(key="kind", value=[kind], operator=OP.NIN),
            MetadataFilter(key="labels", value=label, operator=OP.CONTAINS),
            MetadataFilter(key="labels", value=some_labels, operator=OP.ANY),
            MetadataFilter(key="labels", value=some_labels, operator=OP.ALL),
            MetadataFilter(
                key="area", value=area, operator=[OP.GT, OP.GTE, OP.LT, OP.LTE][area % 4]
            ),
            MetadataFilter(key="split", value=f"s{area % 3}"),
        ][choice]

    items: list[MetadataFilter | MetadataFilters] = [leaf() for _ in range(int(rng.integers(1, 4)))]
    if depth == 0 and rng.random() < 0.4:
        items.append(random_filter(rng, depth=1))
    condition = [FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT][
        int(rng.choice(3, p=[0.45, 0.45, 0.1]))
    ]
    return MetadataFilters(filters=items, condition=condition)


def brute_force(
    vectors: np.ndarray, nodes: list[BaseNode], q: np.ndarray, k: int, filters: Any = None
) -> list[tuple[str, float]]:
    scores = normalize(vectors) @ normalize(q)
    mask = np.ones(len(nodes), bool)
    if filters is not None:
        p = predicate(filters)
        mask = np.array([p(n.metadata) for n in nodes])
    idx = np.flatnonzero(mask)
    idx = idx[np.argsort(-scores[idx], kind="stable")][:k]
    return [(nodes[i].node_id, float(scores[i])) for i in idx]


def assert_same_hits(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [g[0] for g in got] == [w[0] for w in want]
    np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=1e-5, atol=1e-5)


def clustered(
    n: int, n_queries: int, d: int, seed: int, centers: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-mixture vectors and queries drawn from the same mixture (like real embeddings)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d))
    x = c[rng.integers(centers, size=n + n_queries)] + 0.5 * rng.standard_normal((n + n_queries, d))
    x = x.astype(np.float32)
    return x[:n], x[n:]


def recall(
    store: FaissNodeStore,
    vectors: np.ndarray,
    nodes: list[BaseNode],
    queries: np.ndarray,
    k: int = 10,
    filters: Any = None,
) -> float:
    hits = total = 0
    for q in queries:
        want = {h[0] for h in brute_force(vectors, nodes, q, k, filters)}
        got = {h[0] for h in store.search(q, k, filters)}
        hits += len(want & got)
        total += len(want)
    return hits / max(total, 1)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, list[BaseNode]]:
    vectors = np.random.default_rng(1).standard_normal((600, 32)).astype(np.float32)
    return vectors, make_nodes(vectors)


@pytest.fixture
def flat_store(data: tuple[np.ndarray, list[BaseNode]]) -> FaissNodeStore:
    store = FaissNodeStore(VectorIndexConfig(type="flat"))
    store.add(data[1])
    return store


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
    monkeypatch.setattr(vs_module, "node_id_to_faiss_id", lambda node_id: 42)
    store2 = FaissNodeStore()
    store2.add([TextNode(id_="a", text="a", embedding=[1.0, 0.0])])
    with pytest.raises(FaissIdCollisionError, match="'b'.*'a'"):
        store2.add([TextNode(id_="b", text="b", embedding=[0.0, 1.0])])
    with pytest.raises(FaissIdCollisionError):
        FaissNodeStore().add([TextNode(id_=x, text=x, embedding=[1.0, 0.0]) for x in "xy"])
    assert store2.node_ids() == ["a"]
    assert store2.search(np.array([0.0, 1.0]), 5) == [("a", pytest.approx(0.0, abs=1e-6))]


# ---------------------------------------------------------------------------- filters (flat = exact)
def test_unfiltered_top_k_equals_brute_force(flat_store: FaissNodeStore, data: Any) -> None:
    vectors, nodes = data
    rng = np.random.default_rng(2)
    for _ in range(20):
        q = rng.standard_normal(32)
        assert_same_hits(flat_store.search(q, 10), brute_force(vectors, nodes, q, 10))


def test_filtered_top_k_equals_brute_force(flat_store: FaissNodeStore, data: Any) -> None:
    vectors, nodes = data
    rng = np.random.default_rng(3)
    non_trivial = 0
    for _ in range(300):
        filters = random_filter(rng)
        q = rng.standard_normal(32)
        k = int(rng.choice([1, 5, 20, 1000]))
        want = brute_force(vectors, nodes, q, k, filters)
        assert_same_hits(flat_store.search(q, k, filters), want)
        non_trivial += 0 < len(want) < len(nodes)
    assert non_trivial > 100


@pytest.mark.parametrize(
    "flt",
    [
        MetadataFilter(key="kind", value="image"),
        MetadataFilter(key="labels", value="dent", operator=OP.CONTAINS),
        MetadataFilter(key="kind", value=["tile", "region"], operator=OP.IN),
        MetadataFilter(key="kind", value="image", operator=OP.NE),
        MetadataFilter(key="kind", value=["image"], operator=OP.NIN),
        MetadataFilter(key="area", value=50, operator=OP.GTE),
        MetadataFilter(key="area", value=50, operator=OP.LT),
        MetadataFilter(key="labels", value=["dent", "rust"], operator=OP.ALL),
        MetadataFilter(key="labels", value=["dent", "rust"], operator=OP.ANY),
    ],
)
def test_each_operator_through_query(
    flat_store: FaissNodeStore, data: Any, flt: MetadataFilter
) -> None:
    vectors, nodes = data
    q = np.random.default_rng(4).standard_normal(32)
    filters = MetadataFilters(filters=[flt])
    result = flat_store.query(
        VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=7, filters=filters)
    )
    want = brute_force(vectors, nodes, q, 7, filters)
    assert_same_hits(list(zip(result.ids, result.similarities, strict=True)), want)
    assert [n.node_id for n in result.nodes] == result.ids
    p = predicate(filters)
    assert all(p(n.metadata) for n in result.nodes)


def test_and_or_not_and_nested(flat_store: FaissNodeStore, data: Any) -> None:
    vectors, nodes = data
    q = np.random.default_rng(5).standard_normal(32)
    image_with_dent = MetadataFilters(
        filters=[
            MetadataFilter(key="kind", value="image"),
            MetadataFilter(key="labels", value="dent", operator=OP.CONTAINS),
        ]
    )
    either = MetadataFilters(
        filters=[image_with_dent, MetadataFilter(key="kind", value="tile")],
        condition=FilterCondition.OR,
    )
    for filters in (image_with_dent, either):
        assert_same_hits(
            flat_store.search(q, 50, filters), brute_force(vectors, nodes, q, 50, filters)
        )
    not_image = MetadataFilters(
        filters=[MetadataFilter(key="kind", value="image")], condition=FilterCondition.NOT
    )
    hits = flat_store.search(q, 1000, not_image)
    assert {h[0] for h in hits} == {n.node_id for n in nodes if n.metadata["kind"] != "image"}


def test_filter_matching_nothing_is_empty_not_error(flat_store: FaissNodeStore) -> None:
    filters = MetadataFilters(filters=[MetadataFilter(key="kind", value="no-such-kind")])
    result = flat_store.query(
        VectorStoreQuery(query_embedding=[0.1] * 32, similarity_top_k=5, filters=filters)
    )
    assert result.ids == [] and result.nodes == [] and result.similarities == []
    missing_key = MetadataFilters(filters=[MetadataFilter(key="nope", value=3, operator=OP.GT)])
    assert flat_store.search(np.ones(32), 5, missing_key) == []


def test_other_operators_and_missing_key_semantics() -> None:
    store = FaissNodeStore()
    rows = {
        "a": {"kind": "image", "note": "Rear Door dent", "labels": [], "flag": True},
        "b": {"kind": "region", "note": "scratch", "labels": ["dent"], "flag": 1},
        "c": {"kind": "tile", "note": None},
        "d": {"kind": "image", "note": ""},
    }
    rng = np.random.default_rng(14)
    store.add(
        [
            TextNode(id_=k, text=k, metadata=md, embedding=rng.standard_normal(4).tolist())
            for k, md in rows.items()
        ]
    )

    def ids(*filters: MetadataFilter, condition: FilterCondition = FilterCondition.AND) -> set[str]:
        mf = MetadataFilters(filters=list(filters), condition=condition)
        assert {n.node_id for n in store.get_nodes(filters=mf)} == {
            h[0] for h in store.search(np.ones(4), 10, mf)
        }
        return {h[0] for h in store.search(np.ones(4), 10, mf)}

    assert ids(MetadataFilter(key="note", value="door", operator=OP.TEXT_MATCH)) == set()
    assert ids(MetadataFilter(key="note", value="door", operator=OP.TEXT_MATCH_INSENSITIVE)) == {
        "a"
    }
    assert ids(MetadataFilter(key="note", value="Door", operator=OP.CONTAINS)) == {"a"}  # substring
    assert ids(MetadataFilter(key="note", value=None, operator=OP.IS_EMPTY)) == {"c", "d"}
    assert ids(MetadataFilter(key="labels", value=None, operator=OP.IS_EMPTY)) == {"a", "c", "d"}
    assert ids(MetadataFilter(key="note", value=None)) == {"c"}  # EQ None: missing or None
    assert ids(MetadataFilter(key="labels", value="dent", operator=OP.NE)) == {"a", "b", "c", "d"}
    assert ids(MetadataFilter(key="flag", value=1)) == {"b"}  # True is not 1
    assert ids(MetadataFilter(key="kind", value="x", operator=OP.NE)) == set(rows)
    assert ids(
        MetadataFilter(key="kind", value="image"),
        MetadataFilter(key="kind", value="tile"),
        condition=FilterCondition.NOT,
    ) == {"b"}
    assert ids() == set(rows)  # empty filter list allows everything
    with pytest.raises(FilterError, match="number or a string"):
        ids(MetadataFilter(key="kind", value=["a"], operator=OP.GT))
    # delete_nodes with ids and filters deletes the intersection
    store.delete_nodes(
        ["a", "b"], filters=MetadataFilters(filters=[MetadataFilter(key="kind", value="image")])
    )
    assert sorted(store.node_ids()) == ["b", "c", "d"]


def test_unknown_operator_is_a_clear_error(flat_store: FaissNodeStore) -> None:
    bogus = MetadataFilter.model_construct(key="kind", value="image", operator="bogus")
    with pytest.raises(FilterError, match="Unsupported filter operator"):
        flat_store.search(
            np.ones(32),
            5,
            MetadataFilters.model_construct(filters=[bogus], condition=FilterCondition.AND),
        )


def test_k_larger_than_allowed_returns_all_allowed(flat_store: FaissNodeStore, data: Any) -> None:
    _, nodes = data
    filters = MetadataFilters(filters=[MetadataFilter(key="kind", value="tile")])
    hits = flat_store.search(np.ones(32), 10_000, filters)
    assert sorted(h[0] for h in hits) == sorted(
        n.node_id for n in nodes if n.metadata["kind"] == "tile"
    )
    sims = [h[1] for h in hits]
    assert sims == sorted(sims, reverse=True)
    assert len(flat_store.search(np.ones(32), 10_000)) == len(nodes)


def test_node_ids_and_doc_ids_restrict_query(flat_store: FaissNodeStore, data: Any) -> None:
    _, nodes = data
    wanted = [nodes[3].node_id, nodes[10].node_id, "not-there"]
    q = VectorStoreQuery(query_embedding=[1.0] * 32, similarity_top_k=10, node_ids=wanted)
    assert sorted(flat_store.query(q, honor_node_ids=True).ids) == sorted(wanted[:2])
    # ignored by default: VectorStoreIndex.as_retriever passes only its image/index node ids
    assert len(flat_store.query(q).ids) == 10
    assert sorted(h[0] for h in flat_store.search(np.ones(32), 10, node_ids=wanted)) == sorted(
        wanted[:2]
    )
    r = flat_store.query(
        VectorStoreQuery(query_embedding=[1.0] * 32, similarity_top_k=1000, doc_ids=["doc2"])
    )
    assert sorted(r.ids) == sorted(n.node_id for n in nodes if n.ref_doc_id == "doc2")


def test_counts_and_accessors(flat_store: FaissNodeStore, data: Any) -> None:
    vectors, nodes = data
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


def test_delete_by_ref_doc_delete_nodes_by_filter_and_clear(data: Any) -> None:
    vectors, nodes = data
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


# ---------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_persist_load_gives_identical_results(tmp_path: Any, data: Any, index_type: str) -> None:
    vectors, nodes = data
    cfg = VectorIndexConfig(
        type=index_type, ivf_nlist=8, ivf_min_points_per_list=39, exact_filter_threshold=0
    )
    store = FaissNodeStore(cfg)
    store.add(nodes)
    store.delete_nodes([nodes[0].node_id, nodes[1].node_id])
    if index_type == "ivf":
        assert store.index_kind == "ivf"
    store.persist(tmp_path / "vi")
    assert sorted(os.listdir(tmp_path / "vi")) == ["faiss.index", "metadata.json"]
    loaded = FaissNodeStore.from_persist_dir(tmp_path / "vi")
    assert loaded.index_kind == store.index_kind and loaded.count() == store.count()
    assert loaded.config.type == index_type
    rng = np.random.default_rng(9)
    for _ in range(20):
        q, filters = rng.standard_normal(32), random_filter(rng)
        assert loaded.search(q, 10, filters) == store.search(q, 10, filters)
        assert loaded.search(q, 10) == store.search(q, 10)
    a = store.get_nodes([nodes[5].node_id])[0]
    b = loaded.get_nodes([nodes[5].node_id])[0]
    assert a == b and type(a) is type(b)
    # still writable after load: upsert and delete
    loaded.add([nodes[0]])
    loaded.delete_nodes([nodes[2].node_id])
    assert loaded.count() == store.count()


def test_persist_errors_name_the_file(tmp_path: Any, flat_store: FaissNodeStore) -> None:
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        FaissNodeStore.from_persist_dir(tmp_path / "nothing")
    d = tmp_path / "vi"
    flat_store.persist(d)
    (d / "faiss.index").write_bytes(b"garbage")
    with pytest.raises(VectorStoreFileError, match="faiss.index"):
        FaissNodeStore.from_persist_dir(d)
    os.remove(d / "faiss.index")
    with pytest.raises(FileNotFoundError, match="faiss.index"):
        FaissNodeStore.from_persist_dir(d)
    flat_store.persist(d)
    (d / "metadata.json").write_text("{not json")
    with pytest.raises(VectorStoreFileError, match="metadata.json"):
        FaissNodeStore.from_persist_dir(d)
    # index and metadata from two different persists: detected
    flat_store.persist(d)
    other = FaissNodeStore()
    other.add([TextNode(id_="zz", text="z", embedding=[0.5] * 32)])
    other.persist(tmp_path / "other")
    os.replace(tmp_path / "other" / "faiss.index", d / "faiss.index")
    with pytest.raises(VectorStoreFileError, match="disagree"):
        FaissNodeStore.from_persist_dir(d)
    assert not [f for f in os.listdir(d) if f.endswith(".tmp")]


def test_empty_store_persists_and_config_override(tmp_path: Any) -> None:
    FaissNodeStore(VectorIndexConfig(type="hnsw")).persist(tmp_path / "e")
    loaded = FaissNodeStore.from_persist_dir(
        tmp_path / "e", config=VectorIndexConfig(type="hnsw", hnsw_ef_search=200)
    )
    assert loaded.count() == 0 and loaded.config.hnsw_ef_search == 200
    with pytest.raises(ValueError, match="'hnsw' index"):
        FaissNodeStore.from_persist_dir(tmp_path / "e", config=VectorIndexConfig(type="flat"))
    cfg = VectorIndexConfig(dir=str(tmp_path / "auto"))
    store = FaissNodeStore.load_or_create(cfg)
    store.add([TextNode(id_="a", text="a", embedding=[1.0, 0.0])])
    store.persist()
    assert FaissNodeStore.load_or_create(cfg).node_ids() == ["a"]


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


# ---------------------------------------------------------------------------- LlamaIndex integration
class KeyedEmbedding(MockEmbedding):
    """Deterministic, offline: a text's vector is seeded by its sha256."""

    def vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.embed_dim).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self.vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.vector(text)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self.vector(text)


def test_vector_store_index_retriever_with_filters(tmp_path: Any) -> None:
    embed = KeyedEmbedding(embed_dim=16)
    query = "dent on the rear door"
    rng = np.random.default_rng(13)
    nodes: list[BaseNode] = [
        TextNode(
            id_=f"txt{i}",
            text=f"note {i}",
            metadata={"kind": "region", "labels": ["dent"]},
            embedding=(embed.vector(query) if i == 0 else rng.standard_normal(16).tolist()),
        )
        for i in range(6)
    ]
    nodes += [
        ImageNode(
            id_=f"img{i}",
            image_path=f"/cars/{i}.jpg",
            metadata={"kind": "image", "labels": ["dent"] if i % 2 else ["scratch"]},
            embedding=(embed.vector(query) + rng.normal(0, 0.05, 16)).tolist()
            if i == 3
            else rng.standard_normal(16).tolist(),
        )
        for i in range(6)
    ]
    store = FaissNodeStore()
    storage = StorageContext.from_defaults(vector_store=store)
    index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed)
    assert store.count() == 12

    unfiltered = index.as_retriever(similarity_top_k=1).retrieve(query)
    assert [r.node.node_id for r in unfiltered] == ["txt0"]
    images_with_dent = MetadataFilters(
        filters=[
            MetadataFilter(key="kind", value="image"),
            MetadataFilter(key="labels", value="dent", operator=OP.CONTAINS),
        ]
    )
    got = index.as_retriever(similarity_top_k=10, filters=images_with_dent).retrieve(query)
    assert [r.node.node_id for r in got][0] == "img3"
    assert {r.node.node_id for r in got} == {"img1", "img3", "img5"}
    assert all(isinstance(r.node, ImageNode) and r.node.image_path for r in got)
    scores = [r.score for r in got]
    assert scores == sorted(scores, reverse=True)

    # StorageContext.persist: the store gets its own directory, no shared id_map.json
    storage.persist(persist_dir=str(tmp_path / "storage"))
    assert not (tmp_path / "storage" / "id_map.json").exists()
    store_dir = tmp_path / "storage" / "default__vector_store"
    assert sorted(os.listdir(store_dir)) == ["faiss.index", "metadata.json"]
    loaded_store = FaissNodeStore.from_persist_path(
        str(tmp_path / "storage" / "default__vector_store.json")
    )
    loaded = load_index_from_storage(
        StorageContext.from_defaults(
            persist_dir=str(tmp_path / "storage"), vector_store=loaded_store
        ),
        embed_model=embed,
    )
    again = loaded.as_retriever(similarity_top_k=10, filters=images_with_dent).retrieve(query)
    assert [(r.node.node_id, r.score) for r in again] == [(r.node.node_id, r.score) for r in got]

    # deleting a source document through the index removes its nodes from the store
    index.delete_nodes(["txt0"])
    assert "txt0" not in store.node_ids()


def test_two_stores_in_one_storage_context_do_not_overwrite(tmp_path: Any) -> None:
    """Defect 2: two FAISS stores persisted through one StorageContext shared id_map.json."""
    text_store, image_store = FaissNodeStore(), FaissNodeStore()
    text_store.add([TextNode(id_="t", text="t", embedding=[1.0, 0.0])])
    image_store.add([ImageNode(id_="i", image_path="/i.jpg", embedding=[0.0, 1.0])])
    # NB: from_defaults(vector_stores={"image": ...}) is silently replaced by a SimpleVectorStore;
    # the image store must be passed as image_store=
    storage = StorageContext.from_defaults(vector_store=text_store, image_store=image_store)
    storage.persist(persist_dir=str(tmp_path))
    t = FaissNodeStore.from_persist_path(str(tmp_path / "default__vector_store.json"))
    i = FaissNodeStore.from_persist_path(str(tmp_path / "image__vector_store.json"))
    assert t.node_ids() == ["t"] and i.node_ids() == ["i"]
    meta = json.loads((tmp_path / "image__vector_store" / "metadata.json").read_text())
    (record,) = meta["nodes"].values()
    assert meta["count"] == 1 and record["node_id"] == "i"
    assert record["node"]["embedding"] is None and record["node"]["text_embedding"] is None


async def _aquery(store: FaissNodeStore) -> Any:
    return await store.aquery(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=1))


def test_async_query_delegates() -> None:
    import asyncio

    store = FaissNodeStore()
    store.add([TextNode(id_="a", text="a", embedding=[1.0, 0.0])])
    assert asyncio.run(_aquery(store)).ids == ["a"]
