"""HNSW at a million vectors: build time, memory, query p50/p95 and recall@10 beside flat.

``python -m index.bench.hnsw`` fills the project's own FAISS backend
(:class:`~index.vector_store.faiss_backend.FaissBackend`, configured by
:class:`~index.vector_store.VectorIndexConfig`) twice with the same vectors: once ``flat``
(``IndexIDMap2(IndexFlatIP)``, exact) and once ``hnsw`` (``IndexIDMap2(IndexHNSWFlat)`` with
``hnsw_m`` / ``hnsw_ef_construction``), then times single queries through
``FaissBackend.search`` exactly as the store runs them (``search_threads`` OpenMP threads, 1 by
default), sweeping ``hnsw_ef_search``. Recall@10 is measured against the flat index's exact top-10
(a batched search) on the same held-out queries. Targets: p50 < 5 ms and recall@10 >= 0.95::

    python -m index.bench.hnsw --n 100000                       # about minutes on 2 cores
    nice python -m index.bench.hnsw --n 1000000 --ef-search 32 64 128 256

The vectors are synthetic and clustered (:mod:`~index.bench.clustered_vectors`), generated in
chunks from the seed, so the data is never held twice: the flat index is filled, measured and
freed before the HNSW graph is built from the same chunks. Peak memory is about one index
(n x dim x 4 bytes, plus the graph for HNSW) plus one chunk. Build times are wall seconds with
the process's CPU seconds beside them (the machine may be shared). Not wired into
``python -m index``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from index.bench.clustered_vectors import ClusteredVectors, Distribution, chunk_bounds, recall_at_k
from index.bench.errors import BenchError
from index.bench.vector_store import timed
from index.vector_store.config import VectorIndexConfig

logger = logging.getLogger(__name__)

K = 10
TARGET_P50_MS = 5.0
TARGET_RECALL = 0.95
_DEFAULTS = VectorIndexConfig()
#: ef_search values swept by default; the project's default is always among them.
DEFAULT_EF_SEARCH = tuple(sorted({16, 32, _DEFAULTS.hnsw_ef_search, 128, 256}))


@dataclass(frozen=True)
class HnswBenchOptions:
    """What one run measures (the flags of ``python -m index.bench.hnsw``)."""

    n: int = 1_000_000
    dim: int = 768
    queries: int = 1000  # held-out queries timed (HNSW) and scored (both)
    flat_queries: int = 100  # of those, how many are timed one by one on flat (~0.3 s each at 1M)
    m: int = _DEFAULTS.hnsw_m
    ef_construction: int = _DEFAULTS.hnsw_ef_construction
    ef_search: tuple[int, ...] = DEFAULT_EF_SEARCH
    seed: int = 0
    threads: int = 0  # OpenMP threads for building and the exact top-10 (0 = FAISS's default)
    search_threads: int = _DEFAULTS.search_threads
    chunk: int = 50_000
    distribution: Distribution = "clustered"
    clusters: int = 1000
    spread: float = 0.5
    decay: float = 1.0

    def __post_init__(self) -> None:
        if min(self.n, self.dim, self.queries, self.m, self.ef_construction, self.chunk, self.clusters) < 1:
            raise BenchError("--n, --dim, --queries, --m, --ef-construction, --chunk and --clusters must be >= 1")
        if self.n < K:
            raise BenchError(f"--n must be at least {K} (recall@{K})")
        if not self.ef_search or min(self.ef_search) < 1:
            raise BenchError("--ef-search needs one or more values >= 1")
        if self.flat_queries < 1 or self.threads < 0 or self.search_threads < 0:
            raise BenchError("--flat-queries must be >= 1, --threads and --search-threads >= 0")
        if self.spread <= 0 or self.decay < 0:
            raise BenchError("--spread must be > 0 and --decay >= 0")


def rss_bytes() -> int:
    """This process's resident memory now, in bytes."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far, in bytes (Linux ru_maxrss is KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def index_bytes(backend: Any) -> int:
    """Bytes held by the FAISS structures: vectors, HNSW links and levels, the id array.

    ``IndexIDMap2``'s reverse hash map (id -> position) is not counted here; RSS growth is.
    """
    import faiss

    inner = faiss.downcast_index(backend.index.index)
    ids = backend.index.id_map.size() * 8
    if isinstance(inner, faiss.IndexHNSW):
        storage = faiss.downcast_index(inner.storage)
        hnsw = inner.hnsw
        links = hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
        return int(storage.ntotal * storage.code_size + links + ids)
    return int(inner.ntotal * inner.code_size + ids)


def estimated_peak_bytes(o: HnswBenchOptions) -> int:
    """A generous estimate of the run's peak: one index, its HNSW links, three chunks."""
    vectors = o.n * o.dim * 4
    links = o.n * (2 * o.m * 4 * 1.1 + 80)  # level 0 has 2M links; upper levels, ids, id map
    return int(vectors + links + 3 * min(o.chunk, o.n) * o.dim * 4 + 300e6)


def _fill(backend: Any, data: ClusteredVectors, o: HnswBenchOptions, name: str,
          say: Callable[[str], None]) -> dict[str, float]:
    """Add all chunks to ``backend``; wall and CPU seconds of the adds alone, RSS growth."""
    from index.vector_store.faiss_backend import as_matrix

    rss0, wall, cpu, gen = rss_bytes(), 0.0, 0.0, 0.0
    for i, start, stop in chunk_bounds(o.n, o.chunk):
        t0 = time.perf_counter()
        x = as_matrix(data.chunk(i, stop - start), o.dim)  # the store's own validation + normalising
        gen += time.perf_counter() - t0
        w0, c0 = time.perf_counter(), time.process_time()
        backend.add(x, np.arange(start, stop, dtype=np.int64))
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        del x
        rate = stop / max(wall, 1e-9)
        say(f"{name}: {stop:,}/{o.n:,} vectors, {rate:,.0f}/s, ETA {(o.n - stop) / rate:,.0f} s")
    return {"build_s": wall, "build_cpu_s": cpu, "generate_s": gen, "rss_growth_bytes": rss_bytes() - rss0,
            "index_bytes": index_bytes(backend)}


def _time_queries(backend: Any, queries: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """One ``FaissBackend.search`` per query row: the ids found and p50/p95 latency (ms)."""
    backend.search(queries[:1], K)  # warm-up
    found = np.full((len(queries), K), -1, dtype=np.int64)
    rows = iter(range(len(queries)))

    def one() -> None:
        row = next(rows)
        _, ids = backend.search(queries[row : row + 1], K)
        found[row, : len(ids)] = ids

    p50, p95 = timed(one, len(queries))
    return found, {"p50_ms": p50, "p95_ms": p95}


def run_hnsw_benchmark(options: HnswBenchOptions | None = None,
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build flat then HNSW over the same vectors and measure both (default :class:`HnswBenchOptions`).

    Returns:
        A JSON-ready mapping: the options, ``data`` (what the vectors are), ``faiss_version``,
        ``threads``, ``load_avg`` before and after, ``flat`` and ``hnsw`` (build wall/CPU seconds,
        RSS growth, index bytes), ``flat_query`` (p50/p95 ms, recall of the timed queries),
        ``hnsw_query`` (one row per ef_search: p50/p95 ms, recall@10), ``peak_rss_bytes``,
        ``peak_rss_after`` (the peak so far after each phase) and ``meets_targets`` (the smallest ef_search meeting both targets, or None).
    """
    import faiss
    import psutil

    from index.vector_store.faiss_backend import FaissBackend

    o = options or HnswBenchOptions()

    def say(message: str) -> None:
        logger.info(message)
        if progress is not None:
            progress(message)

    available = psutil.virtual_memory().available
    if estimated_peak_bytes(o) > available:
        raise BenchError(f"--n {o.n:,} x --dim {o.dim} needs about {estimated_peak_bytes(o) / 1e9:.1f} GB; "
                         f"only {available / 1e9:.1f} GB is available")
    if o.threads:
        faiss.omp_set_num_threads(o.threads)
    threads = faiss.omp_get_max_threads()
    data = ClusteredVectors(o.dim, o.clusters, o.spread, o.decay, o.seed, o.distribution)
    queries = data.queries(o.queries)
    load_before = os.getloadavg()
    say(f"{o.n:,} x {o.dim}: {data.describe()}; estimated peak {estimated_peak_bytes(o) / 1e9:.1f} GB")

    flat = FaissBackend(VectorIndexConfig(type="flat", search_threads=o.search_threads), o.dim)
    flat_build = _fill(flat, data, o, "flat", say)
    peaks = {"flat_build": peak_rss_bytes()}
    say(f"exact top-{K} of {o.queries:,} queries (batched, {threads} threads)")
    t0 = time.perf_counter()
    _, truth = flat.index.search(queries, K)
    truth_s = time.perf_counter() - t0
    peaks["exact_topk"] = peak_rss_bytes()
    timed = queries[: min(o.flat_queries, o.queries)]
    say(f"timing flat: {len(timed):,} single queries")
    flat_found, flat_query = _time_queries(flat, timed)
    flat_query["recall"] = recall_at_k(flat_found, truth[: len(timed)], K)
    flat_query["queries"] = len(timed)
    peaks["flat_queries"] = peak_rss_bytes()
    del flat, flat_found
    gc.collect()

    config = VectorIndexConfig(type="hnsw", hnsw_m=o.m, hnsw_ef_construction=o.ef_construction,
                               hnsw_ef_search=o.ef_search[0], search_threads=o.search_threads)
    hnsw = FaissBackend(config, o.dim)
    hnsw_build = _fill(hnsw, data, o, f"hnsw M={o.m} efC={o.ef_construction}", say)
    peaks["hnsw_build"] = peak_rss_bytes()
    rows = []
    for ef in o.ef_search:
        hnsw.config = config.model_copy(update={"hnsw_ef_search": ef})
        say(f"timing hnsw ef_search={ef}: {o.queries:,} single queries")
        found, row = _time_queries(hnsw, queries)
        row.update(ef_search=ef, recall=recall_at_k(found, truth, K))
        rows.append(row)
    meets = [r for r in rows if r["p50_ms"] < TARGET_P50_MS and r["recall"] >= TARGET_RECALL]
    return {
        **asdict(o), "ef_search": list(o.ef_search), "k": K, "data": data.describe(),
        "faiss_version": faiss.__version__, "threads": threads, "cpu_count": os.cpu_count(),
        "load_avg_before": round(load_before[0], 2), "load_avg_after": round(os.getloadavg()[0], 2),
        "flat": flat_build, "exact_topk_s": truth_s, "flat_query": flat_query, "hnsw": hnsw_build,
        "hnsw_query": rows, "peak_rss_bytes": peak_rss_bytes(), "peak_rss_after": peaks,
        "targets": {"p50_ms": TARGET_P50_MS, "recall": TARGET_RECALL},
        "meets_targets": meets[0]["ef_search"] if meets else None,
    }


def _speedup(base_ms: float, ms: float) -> str:
    ratio = base_ms / max(ms, 1e-9)
    return f"x{ratio:,.0f}" if ratio >= 10 else f"x{ratio:.1f}"


def _mb(value: float) -> str:
    return f"{value / 1e6:,.0f} MB"


def format_hnsw_table(result: dict[str, Any]) -> str:
    """Flat and HNSW side by side: build, memory, p50/p95, speed-up and recall@10, then targets."""
    fb, hb, fq = result["flat"], result["hnsw"], result["flat_query"]
    peaks = result.get("peak_rss_after") or {}
    default_ef = _DEFAULTS.hnsw_ef_search
    head = (f"{'index':<34} {'build s':>9} {'cpu s':>8} {'RSS growth':>11} {'index size':>11} "
            f"{'p50 ms':>8} {'p95 ms':>8} {'vs flat':>8} {'recall@10':>9}")
    lines = [
        f"HNSW vs flat at {result['n']:,} x {result['dim']} float32, k={result['k']}, faiss "
        f"{result['faiss_version']}, {result['threads']} build threads of {result['cpu_count']} cores, "
        f"{result['search_threads']} search thread(s), load avg {result['load_avg_before']:g} -> "
        f"{result['load_avg_after']:g}",
        f"data: {result['data']} (seed {result['seed']})",
        head, "-" * len(head),
        f"{'flat (exact)':<34} {fb['build_s']:>9.1f} {fb['build_cpu_s']:>8.1f} {_mb(fb['rss_growth_bytes']):>11} "
        f"{_mb(fb['index_bytes']):>11} {fq['p50_ms']:>8.2f} {fq['p95_ms']:>8.2f} {'x1':>8} {fq['recall']:>9.3f}",
    ]
    for i, row in enumerate(result["hnsw_query"]):
        name = f"hnsw M={result['m']} efC={result['ef_construction']} ef={row['ef_search']}"
        name += " (default)" if (row["ef_search"] == default_ef and result["m"] == _DEFAULTS.hnsw_m
                                 and result["ef_construction"] == _DEFAULTS.hnsw_ef_construction) else ""
        build = (f"{hb['build_s']:>9.1f} {hb['build_cpu_s']:>8.1f} {_mb(hb['rss_growth_bytes']):>11} "
                 f"{_mb(hb['index_bytes']):>11}" if i == 0 else f"{'':>9} {'':>8} {'':>11} {'':>11}")
        mark = "PASS" if row["p50_ms"] < TARGET_P50_MS and row["recall"] >= TARGET_RECALL else "MISS"
        lines.append(f"{name:<34} {build} {row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f} "
                     f"{_speedup(fq['p50_ms'], row['p50_ms']):>8} {row['recall']:>9.3f}  {mark}")
    ok = result["meets_targets"]
    lines.append(f"targets p50 < {TARGET_P50_MS:g} ms and recall@10 >= {TARGET_RECALL:g}: "
                 + (f"met from ef_search={ok}" if ok is not None else "not met by any ef_search swept"))
    lines.append(f"* build s = wall seconds of the adds ({hb['build_s'] and result['n'] / hb['build_s']:,.0f} "
                 f"vectors/s for hnsw), cpu s = this process's CPU seconds; exact top-{result['k']} of "
                 f"{result['queries']:,} queries took {result['exact_topk_s']:.1f} s batched; flat timed on "
                 f"{fq['queries']:,} of them; peak RSS {_mb(result['peak_rss_bytes'])}"
                 + (f" ({_mb(peaks['flat_build'])} by the end of the flat build)" if peaks else ""))
    if result["distribution"] == "clustered":
        lines.append("* clustered synthetic vectors stand in for real embeddings (uniform random ones in high "
                     "dimension are far harder for ANN, --distribution isotropic); recall on your own vectors "
                     "may differ")
    else:
        lines.append("* isotropic vectors are the ANN worst case, far harder than real embeddings")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m index.bench.hnsw [--n N] [--dim D] [--queries Q] [--m M] [--ef-search E ...] [--json]``."""
    d = HnswBenchOptions()
    parser = argparse.ArgumentParser(prog="python -m index.bench.hnsw", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n", type=int, default=d.n, help="vectors in the index")
    parser.add_argument("--dim", type=int, default=d.dim, help="vector dimension")
    parser.add_argument("--queries", type=int, default=d.queries, help="held-out queries (timed on hnsw, scored on both)")
    parser.add_argument("--flat-queries", type=int, default=d.flat_queries, help="of those, timed one by one on flat")
    parser.add_argument("--m", type=int, default=d.m, help="hnsw_m: graph neighbours per node")
    parser.add_argument("--ef-construction", type=int, default=d.ef_construction, help="hnsw_ef_construction")
    parser.add_argument("--ef-search", type=int, nargs="+", default=list(d.ef_search), help="hnsw_ef_search values to sweep")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=d.threads, help="OpenMP threads to build with (0 = all cores)")
    parser.add_argument("--search-threads", type=int, default=d.search_threads, help="threads per query (the store's)")
    parser.add_argument("--chunk", type=int, default=d.chunk, help="vectors generated and added at a time")
    parser.add_argument("--distribution", choices=["clustered", "isotropic"], default=d.distribution,
                        help="isotropic = uniform on the sphere, the ANN worst case")
    parser.add_argument("--clusters", type=int, default=d.clusters, help="Gaussian clusters in the data")
    parser.add_argument("--spread", type=float, default=d.spread, help="cluster spread relative to the centres'")
    parser.add_argument("--decay", type=float, default=d.decay, help="power-law exponent of the spectrum")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        options = HnswBenchOptions(
            n=args.n, dim=args.dim, queries=args.queries, flat_queries=args.flat_queries, m=args.m,
            ef_construction=args.ef_construction, ef_search=tuple(args.ef_search), seed=args.seed,
            threads=args.threads, search_threads=args.search_threads, chunk=args.chunk,
            distribution=args.distribution, clusters=args.clusters, spread=args.spread, decay=args.decay)
        result = run_hnsw_benchmark(options, progress=lambda m: print(m, file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"python -m index.bench.hnsw: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_hnsw_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
