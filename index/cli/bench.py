"""``python -m index bench``: indexing throughput and memory beside the decode and embedder floors, LlamaIndex's
own ingestion and a naive baseline;
``python -m index bench-store``: add time and query latency of the FAISS node store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from index.bench import (
    DEFAULT_WORKDIR,
    DEVICES,
    MODEL_SIZES,
    STORE_TYPES,
    BenchOptions,
    StoreBenchOptions,
    format_store_table,
    format_table,
    run_benchmark,
    run_store_benchmark,
)
from index.config import DEFAULT_CONFIG
from index.console import console, out, print_json

_DEFAULTS = BenchOptions()
_STORE_DEFAULTS = StoreBenchOptions()


def register(sub: Any) -> None:
    """Add ``bench`` and ``bench-store`` to the sub-command parsers ``sub``."""
    _register_bench(sub)
    _register_bench_store(sub)


def _register_bench(sub: Any) -> None:
    parser = sub.add_parser("bench", help="Indexing speed and memory: pipeline vs its decode and embedder floors, "
                                          "LlamaIndex's ingestion and a naive baseline.",
                            example="python -m index bench --n 100; python -m index bench --n 20 --model-size base --naive-n 3")
    parser.add_argument("--n", type=int, default=_DEFAULTS.n,
                        help="Number of synthetic photos (default %(default)s; the issue's memory target is for 500).")
    parser.add_argument("--size", default=_DEFAULTS.size, help="Photo size WIDTHxHEIGHT (default %(default)s).")
    parser.add_argument("--naive-n", type=int, default=_DEFAULTS.naive_n,
                        help="Photos the naive baseline runs on (default %(default)s; it is slow).")
    parser.add_argument("--reference-photos", type=int, default=_DEFAULTS.reference_photos,
                        help="Photos for the single-core decode reference times (default %(default)s).")
    parser.add_argument("--workdir", type=Path,
                        help=f"Folder for the cached dataset, the tiny model and the index (default {DEFAULT_WORKDIR}).")
    parser.add_argument("--config", type=Path, help=f"Domain YAML (default {DEFAULT_CONFIG}).")
    parser.add_argument("--embedder", type=Path, metavar="MODEL_DIR",
                        help="Local model directory to embed with (default: a tiny random DINOv2).")
    parser.add_argument("--model", type=Path, dest="embedder", help=argparse.SUPPRESS)  # its name before --embedder
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="Seed of the synthetic dataset (default %(default)s).")
    parser.add_argument("--grain", type=float, default=_DEFAULTS.grain,
                        help="Sensor-like luminance noise (std. dev.) added to the synthetic photos, so they "
                             "decode like camera JPEGs (default %(default)s; 0 = plain renders).")
    parser.add_argument("--quality", type=int, default=_DEFAULTS.quality,
                        help="JPEG quality of the synthetic photos (default %(default)s).")
    parser.add_argument("--workers", type=int, help="Decoding threads of the build (default: CPU cores).")
    parser.add_argument("--model-size", choices=MODEL_SIZES, default=_DEFAULTS.model_size,
                        help="Random model to embed with when --embedder is not given: 'tiny' (decoding dominates) or "
                             "'base' (DINOv2-base-sized, 86 M parameters: the real compute cost; no weights are "
                             "downloaded) (default %(default)s).")
    parser.add_argument("--device", choices=DEVICES, default=_DEFAULTS.device,
                        help="embedder.device for every run (default %(default)s; 'cuda' on a GPU machine, half precision there).")
    parser.add_argument("--batch-size", type=int, help="embedder.batch_size for every run (default: the config's).")
    parser.add_argument("--peer-n", type=int,
                        help="Photos LlamaIndex's own ingestion runs on (default: all --n; 0 skips it).")
    parser.add_argument("--embed-photos", type=int, default=_DEFAULTS.embed_photos,
                        help="Photos whose pre-cut crops time the embedder alone (default %(default)s).")
    parser.add_argument("--keep-index", action="store_true", help="Keep the benchmark's index directory.")
    parser.add_argument("--timeout", type=float, default=_DEFAULTS.timeout,
                        help="Seconds after which a child process is killed (default %(default)s).")
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object on stdout.")
    parser.set_defaults(func=cmd_bench)


def _register_bench_store(sub: Any) -> None:
    parser = sub.add_parser("bench-store", help="FaissNodeStore: add time and per-query latency, unfiltered and filtered; "
                                                "persist, checkpoint and load of its files beside the old format.",
                            example="python -m index bench-store --n 100000 --dim 768 --type hnsw --persist-n 0")
    parser.add_argument("--n", type=int, default=_STORE_DEFAULTS.n, help="Number of vectors (default %(default)s).")
    parser.add_argument("--dim", type=int, default=_STORE_DEFAULTS.dim, help="Vector dimension (default %(default)s).")
    parser.add_argument("--type", choices=STORE_TYPES, default=_STORE_DEFAULTS.type,
                        help="Index type of the store (default %(default)s).")
    parser.add_argument("--k", type=int, default=_STORE_DEFAULTS.k, help="Top-k per query (default %(default)s).")
    parser.add_argument("--queries", type=int, default=_STORE_DEFAULTS.queries,
                        help="Queries per measurement (default %(default)s).")
    parser.add_argument("--persist-n", type=lambda text: tuple(int(v) for v in text.split(",") if int(v)),
                        default=_STORE_DEFAULTS.persist_sizes, metavar="N[,N...]",
                        help="Node counts at which the file formats are compared (default "
                             f"{','.join(map(str, _STORE_DEFAULTS.persist_sizes))}; 0 for none).")
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object on stdout.")
    parser.set_defaults(func=cmd_bench_store)


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """The :class:`BenchOptions` of parsed ``bench`` flags."""
    return BenchOptions(
        n=args.n, size=args.size, naive_n=args.naive_n, reference_photos=args.reference_photos,
        workdir=args.workdir, config=args.config, model=args.embedder, seed=args.seed, grain=args.grain,
        quality=args.quality, workers=args.workers, keep_index=args.keep_index, timeout=args.timeout,
        model_size=args.model_size, device=args.device, batch_size=args.batch_size, peer_n=args.peer_n,
        embed_photos=args.embed_photos,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the indexing benchmark and print its table (or JSON)."""
    result = run_benchmark(options_from_args(args), progress=lambda message: console.print(message, highlight=False, markup=False))
    if args.json:
        print_json(result)
    else:
        out.print(format_table(result), highlight=False, markup=False)
    return 0


def cmd_bench_store(args: argparse.Namespace) -> int:
    """Run the vector-store benchmark and print its table (or JSON)."""
    options = StoreBenchOptions(n=args.n, dim=args.dim, type=args.type, k=args.k, queries=args.queries,
                                persist_sizes=args.persist_n)
    result = run_store_benchmark(options, progress=lambda message: console.print(message, highlight=False, markup=False))
    if args.json:
        print_json(result)
    else:
        out.print(format_store_table(result), highlight=False, markup=False)
    return 0
