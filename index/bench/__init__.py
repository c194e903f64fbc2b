"""Benchmarks of the offline side: indexing throughput and memory, and the FAISS node store.

:func:`run_benchmark` (``python -m index bench``) runs the build pipeline on synthetic
camera-like photos beside the JPEG-decode floor, the embedder's own throughput, LlamaIndex's
own ingestion and a naive baseline, and :func:`format_table` prints its figures beside the
issue's targets;
:func:`run_store_benchmark` (``python -m index bench-store``) times adding to and querying a
:class:`~index.vector_store.FaissNodeStore`, and :func:`format_store_table` prints it.

Modules, each with one job:

- :mod:`~index.bench.indexing`: :class:`BenchOptions` and :func:`run_benchmark` (the phases);
- :mod:`~index.bench.result`: the assembled result and its targets;
- :mod:`~index.bench.table`: :func:`format_table`;
- :mod:`~index.bench.inputs`: the cached synthetic dataset and the random models (tiny, base-sized);
- :mod:`~index.bench.embed_floor`: the embedder alone on pre-cut crops (``embed-child``);
- :mod:`~index.bench.peer`: LlamaIndex's ``MultiModalVectorStoreIndex.from_documents`` (``peer-child``);
- :mod:`~index.bench.decode_floor`: decode-only reference times and floor;
- :mod:`~index.bench.naive`: the naive baseline (run as ``python -m index.bench naive-child``);
- :mod:`~index.bench.children`: child processes, their peak memory and JSON report;
- :mod:`~index.bench.cpu_watch`: other processes' CPU use during each phase;
- :mod:`~index.bench.vector_store`: the store micro-benchmark;
- :mod:`~index.bench.errors`: :class:`BenchError`.

Models, FAISS, LlamaIndex and Pillow are imported only when a benchmark runs.
"""

from index.bench.children import REPO, ChildRun, checked_json, child_env, run_child
from index.bench.cpu_watch import CpuPhase, CpuWatch
from index.bench.decode_floor import ReusedImageMemory, decode_floor, decode_reference, warm_cache
from index.bench.embed_floor import embedder_throughput
from index.bench.errors import BenchError
from index.bench.indexing import DEFAULT_WORKDIR, DEVICES, BenchOptions, run_benchmark
from index.bench.inputs import (
    BASE_MODEL_DIR_NAME,
    COMPLETE_MARKER,
    DEFAULT_GRAIN,
    DEFAULT_QUALITY,
    MODEL_DIR_NAME,
    MODEL_SIZES,
    ensure_base_model,
    ensure_dataset,
    ensure_tiny_model,
)
from index.bench.naive import naive_baseline
from index.bench.peer import llama_index_peer
from index.bench.result import (
    TARGET_EMBEDDER_FRACTION,
    TARGET_FLOOR_FRACTION,
    TARGET_PEAK_RSS_MB,
    TARGET_RERUN_FRACTION,
    TARGET_RSS_AT_N,
    TARGET_SPEEDUP,
)
from index.bench.table import format_table
from index.bench.vector_store import (
    STORE_TYPES,
    StoreBenchOptions,
    format_store_table,
    run_store_benchmark,
)

__all__ = [
    "BASE_MODEL_DIR_NAME",
    "COMPLETE_MARKER",
    "DEVICES",
    "MODEL_SIZES",
    "TARGET_EMBEDDER_FRACTION",
    "DEFAULT_GRAIN",
    "DEFAULT_QUALITY",
    "DEFAULT_WORKDIR",
    "MODEL_DIR_NAME",
    "REPO",
    "TARGET_FLOOR_FRACTION",
    "TARGET_PEAK_RSS_MB",
    "TARGET_RERUN_FRACTION",
    "TARGET_RSS_AT_N",
    "STORE_TYPES",
    "TARGET_SPEEDUP",
    "BenchError",
    "BenchOptions",
    "ChildRun",
    "CpuPhase",
    "CpuWatch",
    "ReusedImageMemory",
    "StoreBenchOptions",
    "checked_json",
    "child_env",
    "decode_floor",
    "decode_reference",
    "embedder_throughput",
    "ensure_base_model",
    "ensure_dataset",
    "ensure_tiny_model",
    "format_store_table",
    "format_table",
    "llama_index_peer",
    "naive_baseline",
    "run_benchmark",
    "run_child",
    "run_store_benchmark",
    "warm_cache",
]
