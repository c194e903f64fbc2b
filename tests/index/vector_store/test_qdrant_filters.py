"""The Qdrant backend filters exactly as the FAISS store does: every operator, on every kind of
value (missing, None, bool against int, 1 against 1.0, lists, nested lists, empty values, keys
with dots), alone and nested in AND / OR / NOT, and the shared random filters on 600 nodes."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from index.vector_store import FaissNodeStore, FilterError
from tests.fixtures.vector_store import qdrant_memory_store
from tests.index.vector_store.helpers import assert_same_hits, random_filter

pytest.importorskip("qdrant_client")

ROWS: dict[str, dict[str, Any]] = {
    "a": {"kind": "image", "labels": ["dent", "scratch"], "n": 1, "flag": True, "note": "Rear Door dent",
          "zone": 3, "dot.key": "x"},
    "b": {"kind": "region", "labels": ["dent"], "n": 1.0, "flag": 1, "note": "scratch", "zone": 3.5},
    "c": {"kind": "tile", "labels": [], "n": None, "note": None, "nested": [["a"], "b"]},
    "d": {"kind": "image", "note": "", "labels": "dent", "dot.key": "y", "obj": {}},
    "e": {},
    "f": {"kind": ["image"], "labels": ["rust", 2, True], "n": 2, "zone": "3", "obj": {"a": 1}},
    "g": {"kind": "Image", "labels": ["glass", "dent"], "n": -0.5, "note": "DOOR", "flag": False, "zone": 0},
}
KEYS = ["kind", "labels", "n", "flag", "note", "zone", "dot.key", "nested", "obj", "absent"]
VALUES: list[Any] = ["image", "dent", "door", "Door", "3", "a", "b", "", 1, 1.0, 2, 0, 3, -1, True, False,
                     None, [], ["dent"], ["image"], ["a"], ["dent", "scratch"], ["dent", 2]]


@pytest.fixture(scope="module")
def stores() -> tuple[FaissNodeStore, Any]:
    rng = np.random.default_rng(0)
    nodes = [TextNode(id_=k, text=k, metadata=md, embedding=rng.standard_normal(4).tolist()) for k, md in ROWS.items()]
    faiss_store, qdrant_store = FaissNodeStore(), qdrant_memory_store()
    faiss_store.add(nodes)
    qdrant_store.add(nodes)
    return faiss_store, qdrant_store


def matches(store: Any, filters: MetadataFilters, search: bool = False) -> set[str] | str:
    """The node ids ``filters`` allows (by get_nodes, and by search, which must agree, with
    ``search``), or the FilterError's kind."""
    try:
        by_get = {n.node_id for n in store.get_nodes(filters=filters)}
        by_search = {h[0] for h in store.search(np.ones(4), 100, filters)} if search else by_get
    except FilterError as exc:
        return f"FilterError: {str(exc).split(' on ')[0]}"
    assert by_get == by_search
    return by_get


def leaves() -> list[MetadataFilter]:
    return [MetadataFilter.model_construct(key=k, operator=op, value=v)
            for k, op, v in itertools.product(KEYS, FilterOperator, VALUES)]


def test_every_operator_key_and_value_agrees(stores: tuple[FaissNodeStore, Any]) -> None:
    faiss_store, qdrant_store = stores
    differ, non_trivial = [], 0
    for leaf in leaves():
        filters = MetadataFilters(filters=[leaf])
        want, got = matches(faiss_store, filters), matches(qdrant_store, filters)
        non_trivial += isinstance(want, set) and 0 < len(want) < len(ROWS)
        if want != got:
            differ.append((leaf.key, leaf.operator.value, leaf.value, want, got))
    assert differ == []
    assert non_trivial > 300


def test_the_cases_where_qdrant_alone_would_differ(stores: tuple[FaissNodeStore, Any]) -> None:
    """What the derived payload fields are for: each would differ with Qdrant's own matching."""
    _, qdrant_store = stores
    op = FilterOperator

    def ids(key: str, value: Any, operator: FilterOperator = op.EQ) -> Any:
        return matches(qdrant_store, MetadataFilters(filters=[MetadataFilter.model_construct(
            key=key, value=value, operator=operator)]))

    assert ids("kind", "x", op.NE) == set(ROWS)  # NE on a missing key matches
    assert ids("kind", ["image"], op.NIN) == set(ROWS) - {"a", "d"}  # a list value is not in it
    assert ids("labels", "dent") == {"d"}  # EQ is the whole value, not any element
    assert ids("labels", ["dent"]) == {"b"}  # list equality
    assert ids("n", 1) == {"a", "b"}  # 1 == 1.0
    assert ids("flag", 1) == {"b"} and ids("flag", True) == {"a"}  # True is not 1
    assert ids("zone", "2", op.GT) == {"f"}  # a string range
    assert ids("note", "door", op.TEXT_MATCH_INSENSITIVE) == {"a", "g"}
    assert ids("note", "ear Do", op.CONTAINS) == {"a"}  # a substring, not a word
    assert ids("dot.key", "y") == {"d"}
    assert ids("obj", None, op.IS_EMPTY) == set(ROWS) - {"f"}


def test_nested_and_or_not_agree(stores: tuple[FaissNodeStore, Any]) -> None:
    faiss_store, qdrant_store = stores
    rng = np.random.default_rng(5)
    pool = [leaf for leaf in leaves() if isinstance(matches(faiss_store, MetadataFilters(filters=[leaf])), set)]
    conditions = [FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT]

    def tree(depth: int) -> MetadataFilters:
        items: list[Any] = [pool[int(i)] for i in rng.integers(len(pool), size=int(rng.integers(0, 4)))]
        if depth < 2 and rng.random() < 0.6:
            items.append(tree(depth + 1))
        return MetadataFilters(filters=items, condition=conditions[int(rng.integers(3))])

    for _ in range(300):
        filters = tree(0)
        assert matches(qdrant_store, filters, search=True) == matches(faiss_store, filters, search=True), filters


def test_shared_random_filters_give_the_same_top_k(store_data: Any) -> None:
    """The shared filtered top-k case (test_filters.py), FAISS against Qdrant on 80 filters."""
    vectors, nodes = store_data
    faiss_store, qdrant_store = FaissNodeStore(), qdrant_memory_store()
    faiss_store.add(nodes)
    qdrant_store.add(nodes)
    rng = np.random.default_rng(3)
    for _ in range(80):
        filters, q, k = random_filter(rng), rng.standard_normal(32), int(rng.choice([1, 5, 20, 1000]))
        assert_same_hits(qdrant_store.search(q, k, filters), faiss_store.search(q, k, filters))
