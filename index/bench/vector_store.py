"""FAISS node store benchmark: add time, per-query latency (unfiltered and filtered), and how its
files scale (persist, checkpoint, load and peak memory, format 2 beside format 1).

``python -m index bench-store`` runs it (:class:`StoreBenchOptions`, :func:`run_store_benchmark`,
:func:`format_store_table`)::

    python -m index bench-store                      # 30,000 x 768, flat; files at 10,000 and 40,000
    python -m index bench-store --type hnsw --n 100000 --persist-n 0

``n`` random vectors (seed 0) are added to a :class:`~index.vector_store.FaissNodeStore` as
``TextNode`` objects. Filtered queries use an EQ filter on ``kind`` that allows ~10% of the
vectors (10 kinds), and a CONTAINS filter on a ``labels`` list. ``search`` returns (node id,
score); ``query`` is the LlamaIndex path and also rebuilds the returned nodes. Last, the store
is persisted to a temporary folder and loaded back. Then, for each of ``persist_sizes``, a store
of ImageNodes shaped like a build's is persisted, checkpointed and loaded in both file formats
(:mod:`~index.bench.store_persistence`).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from index.bench.errors import BenchError
from index.bench.store_persistence import format_persistence, measure_persistence

logger = logging.getLogger(__name__)

LABELS = ["dent", "scratch", "crack", "rust", "glass", "paint", "lamp", "tyre"]
STORE_TYPES = ("flat", "hnsw", "ivf")
#: Nodes per ``add`` call: ``VectorStoreIndex`` inserts in batches of 2048.
ADD_BATCH = 2048


@dataclass(frozen=True)
class StoreBenchOptions:
    """What one store benchmark measures (the flags of ``python -m index bench-store``)."""

    n: int = 30_000  # number of vectors
    dim: int = 768  # vector dimension
    type: Literal["flat", "hnsw", "ivf"] = "flat"  # the store's index type
    k: int = 5  # top-k per query
    queries: int = 200  # queries per measurement
    persist_sizes: tuple[int, ...] = (10_000, 40_000)  # node counts of the file-format comparison

    def __post_init__(self) -> None:
        if min(int(self.n), int(self.dim), int(self.k), int(self.queries)) < 1:
            raise BenchError("--n, --dim, --k and --queries must be at least 1")
        if any(int(size) < 1 for size in self.persist_sizes):
            raise BenchError("--persist-n takes node counts of at least 1 (or 0 alone, for none)")
        if self.type not in STORE_TYPES:
            raise BenchError(f"--type must be one of {', '.join(STORE_TYPES)}, got {self.type!r}")


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p95 wall time of ``fn`` in milliseconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def run_store_benchmark(options: StoreBenchOptions | None = None,
                        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time a store of ``options.n`` random vectors (default :class:`StoreBenchOptions`).

    ``progress``, if given, is told each stage in one line (stages are also logged).

    Returns:
        A JSON-ready mapping: the options, ``faiss_version``, ``omp_threads``, ``index_kind``,
        ``nodes_s`` (building the ``TextNode`` objects, not the store), ``add_s``,
        ``latencies`` (one entry per measurement: ``name``, ``method``, ``filter``,
        ``allowed``, ``median_ms``, ``p95_ms``), ``persist_s``, ``load_s``, ``disk_mb`` and
        ``persistence`` (rows of :func:`~index.bench.store_persistence.measure_persistence`).
    """
    import faiss
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import (
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
    )

    from index.vector_store import FaissNodeStore, VectorIndexConfig

    o = options or StoreBenchOptions()

    def say(message: str) -> None:
        if progress is not None:
            progress(message)
        logger.info(message)

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((o.n, o.dim), dtype=np.float32)
    queries = rng.standard_normal((o.queries, o.dim), dtype=np.float32)
    say(f"FaissNodeStore[{o.type}] {o.n:,} x {o.dim}, k={o.k}, faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} OpenMP threads: building {o.n:,} TextNodes")

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
        for i in range(o.n)
    ]
    nodes_s = time.perf_counter() - t0

    say("adding the nodes to the store")
    store = FaissNodeStore(VectorIndexConfig(type=o.type))
    t0 = time.perf_counter()
    for start in range(0, o.n, ADD_BATCH):
        store.add(nodes[start : start + ADD_BATCH])
    add_s = time.perf_counter() - t0
    index_kind = store.index_kind  # right after the adds (an IVF index may train later)

    eq = MetadataFilters(filters=[MetadataFilter(key="kind", value="kind3")])
    contains = MetadataFilters(
        filters=[MetadataFilter(key="labels", value="rust", operator=FilterOperator.CONTAINS)]
    )
    allowed_eq = sum(1 for n in nodes if n.metadata["kind"] == "kind3")
    allowed_c = sum(1 for n in nodes if "rust" in n.metadata["labels"])
    it = iter(range(10**9))

    def q() -> np.ndarray:
        return queries[next(it) % len(queries)]

    measurements: list[tuple[str, str, str | None, int, Callable[[], object]]] = [
        ("search, unfiltered", "search", None, o.n, lambda: store.search(q(), o.k)),
        ("search, EQ kind", "search", "eq_kind", allowed_eq, lambda: store.search(q(), o.k, eq)),
        ("search, CONTAINS label", "search", "contains_label", allowed_c, lambda: store.search(q(), o.k, contains)),
        ("query (LlamaIndex), unfiltered", "query", None, o.n,
         lambda: store.query(VectorStoreQuery(query_embedding=q().tolist(), similarity_top_k=o.k))),
        ("query (LlamaIndex), EQ kind", "query", "eq_kind", allowed_eq,
         lambda: store.query(VectorStoreQuery(query_embedding=q().tolist(), similarity_top_k=o.k, filters=eq))),
    ]
    latencies = []
    for name, method, filter_name, allowed, fn in measurements:
        say(f"timing {name}: {o.queries} queries")
        fn()  # warm-up
        med, p95 = timed(fn, o.queries)
        latencies.append({"name": name, "method": method, "filter": filter_name, "allowed": allowed,
                          "median_ms": round(med, 4), "p95_ms": round(p95, 4)})

    say("persisting and loading the store")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store.persist(tmp)
        persist_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        FaissNodeStore.from_persist_dir(tmp)
        load_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6

    persistence = [row for size in o.persist_sizes for row in measure_persistence(size, o.dim, say)]
    return {
        **asdict(o),
        "persist_sizes": list(o.persist_sizes),
        "faiss_version": faiss.__version__,
        "omp_threads": faiss.omp_get_max_threads(),
        "index_kind": index_kind,
        "nodes_s": round(nodes_s, 4),
        "add_s": round(add_s, 4),
        "latencies": latencies,
        "persist_s": round(persist_s, 4),
        "load_s": round(load_s, 4),
        "disk_mb": round(size, 3),
        "persistence": persistence,
    }


def format_store_table(result: dict[str, Any]) -> str:
    """The store benchmark as a small plain-text table (the lines the old script printed)."""
    lines = [
        f"FaissNodeStore[{result['type']}] {result['n']:,} x {result['dim']}, k={result['k']}, "
        f"faiss {result['faiss_version']}, {result['omp_threads']} OpenMP threads",
        f"  build {result['n']:,} TextNodes (not the store): {result['nodes_s']:7.2f} s",
        f"  add (upsert, incl. node snapshots):      {result['add_s']:7.2f} s  ({result['index_kind']})",
    ]
    for row in result["latencies"]:
        name = row["name"]
        if row["method"] == "search" and row["filter"]:
            name += f" ({row['allowed']:,} allowed)"
        lines.append(f"  {name:<42} median {row['median_ms']:7.3f} ms   p95 {row['p95_ms']:7.3f} ms")
    lines.append(f"  persist {result['persist_s']:5.2f} s, load {result['load_s']:5.2f} s, "
                 f"{result['disk_mb']:,.0f} MB on disk")
    if result.get("persistence"):
        lines += format_persistence(result["persistence"], result["dim"])
    return "\n".join(lines)
