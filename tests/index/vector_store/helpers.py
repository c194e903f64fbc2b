"""Plain helpers of the FaissNodeStore tests: random nodes and filters, and a brute-force reference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from llama_index.core.schema import BaseNode, ImageNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from index.vector_store import FaissNodeStore

KINDS = ["image", "region", "background", "tile"]
LABELS = ["dent", "scratch", "crack", "rust", "glass"]
OP = FilterOperator


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

