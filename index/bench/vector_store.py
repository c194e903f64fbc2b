"""Benchmark FaissNodeStore: add time and per-query latency, unfiltered and filtered.

    python index/bench/vector_store.py                # 30,000 x 768, flat
    python index/bench/vector_store.py --type hnsw --n 100000

Filtered queries use an EQ filter on ``kind`` that allows ~10% of the vectors (10 kinds), and a
CONTAINS filter on a ``labels`` list. ``search`` returns (node id, score); ``query`` is the
LlamaIndex path and also rebuilds the returned nodes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from index.vector_store.store import FaissNodeStore, VectorIndexConfig

LABELS = ["dent", "scratch", "crack", "rust", "glass", "paint", "lamp", "tyre"]


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p95 wall time of ``fn`` in milliseconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def main() -> None:
    """Run the benchmark and print a small table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30_000, help="number of vectors")
    ap.add_argument("--dim", type=int, default=768, help="vector dimension")
    ap.add_argument("--type", choices=["flat", "hnsw", "ivf"], default="flat")
    ap.add_argument("--k", type=int, default=5, help="top-k per query")
    ap.add_argument("--queries", type=int, default=200, help="queries per measurement")
    args = ap.parse_args()

    import faiss

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    print(
        f"FaissNodeStore[{args.type}] {args.n:,} x {args.dim}, k={args.k}, "
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads"
    )

    t0 = time.perf_counter()
    nodes = [
        TextNode(
            id_=f"node-{i:07d}",
            text=f"region {i}",
            metadata={
                "kind": f"kind{i % 10}",
                "labels": [LABELS[i % len(LABELS)], LABELS[(i * 7 + 3) % len(LABELS)]],
            },
            embedding=vectors[i].tolist(),
        )
        for i in range(args.n)
    ]
    print(f"  build {args.n:,} TextNodes (not the store): {time.perf_counter() - t0:7.2f} s")

    store = FaissNodeStore(VectorIndexConfig(type=args.type))
    t0 = time.perf_counter()
    for start in range(0, args.n, 2048):  # VectorStoreIndex inserts in batches of 2048
        store.add(nodes[start : start + 2048])
    add_s = time.perf_counter() - t0
    print(f"  add (upsert, incl. node snapshots):      {add_s:7.2f} s  ({store.index_kind})")

    eq = MetadataFilters(filters=[MetadataFilter(key="kind", value="kind3")])
    contains = MetadataFilters(
        filters=[MetadataFilter(key="labels", value="rust", operator=FilterOperator.CONTAINS)]
    )
    allowed_eq = sum(1 for n in nodes if n.metadata["kind"] == "kind3")
    allowed_c = sum(1 for n in nodes if "rust" in n.metadata["labels"])
    it = iter(range(10**9))

    def q() -> np.ndarray:
        return queries[next(it) % len(queries)]

    rows = [
        ("search, unfiltered", lambda: store.search(q(), args.k)),
        (f"search, EQ kind ({allowed_eq:,} allowed)", lambda: store.search(q(), args.k, eq)),
        (
            f"search, CONTAINS label ({allowed_c:,} allowed)",
            lambda: store.search(q(), args.k, contains),
        ),
        (
            "query (LlamaIndex), unfiltered",
            lambda: store.query(
                VectorStoreQuery(query_embedding=q().tolist(), similarity_top_k=args.k)
            ),
        ),
        (
            "query (LlamaIndex), EQ kind",
            lambda: store.query(
                VectorStoreQuery(query_embedding=q().tolist(), similarity_top_k=args.k, filters=eq)
            ),
        ),
    ]
    for name, fn in rows:
        fn()  # warm-up
        med, p95 = timed(fn, args.queries)
        print(f"  {name:<42} median {med:7.3f} ms   p95 {p95:7.3f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store.persist(tmp)
        persist_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        FaissNodeStore.from_persist_dir(tmp)
        load_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
    print(f"  persist {persist_s:5.2f} s, load {load_s:5.2f} s, {size:,.0f} MB on disk")


if __name__ == "__main__":
    main()
