"""FaissNodeStore metadata filters: every filtered top-k on flat equals brute force."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from index.vector_store import FaissNodeStore, FilterError
from tests.index.vector_store.helpers import (
    OP,
    assert_same_hits,
    brute_force,
    predicate,
    random_filter,
)


# ---------------------------------------------------------------------------- filters (flat = exact)
def test_unfiltered_top_k_equals_brute_force(flat_store: FaissNodeStore, store_data: Any) -> None:
    vectors, nodes = store_data
    rng = np.random.default_rng(2)
    for _ in range(20):
        q = rng.standard_normal(32)
        assert_same_hits(flat_store.search(q, 10), brute_force(vectors, nodes, q, 10))


def test_filtered_top_k_equals_brute_force(flat_store: FaissNodeStore, store_data: Any) -> None:
    vectors, nodes = store_data
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
    flat_store: FaissNodeStore, store_data: Any, flt: MetadataFilter
) -> None:
    vectors, nodes = store_data
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


def test_and_or_not_and_nested(flat_store: FaissNodeStore, store_data: Any) -> None:
    vectors, nodes = store_data
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


def test_k_larger_than_allowed_returns_all_allowed(flat_store: FaissNodeStore, store_data: Any) -> None:
    _, nodes = store_data
    filters = MetadataFilters(filters=[MetadataFilter(key="kind", value="tile")])
    hits = flat_store.search(np.ones(32), 10_000, filters)
    assert sorted(h[0] for h in hits) == sorted(
        n.node_id for n in nodes if n.metadata["kind"] == "tile"
    )
    sims = [h[1] for h in hits]
    assert sims == sorted(sims, reverse=True)
    assert len(flat_store.search(np.ones(32), 10_000)) == len(nodes)


def test_node_ids_and_doc_ids_restrict_query(flat_store: FaissNodeStore, store_data: Any) -> None:
    _, nodes = store_data
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


