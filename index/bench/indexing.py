"""Indexing throughput benchmark: the build pipeline beside its floors, a naive baseline and LlamaIndex.

One run synthesises (or reuses) ``N`` photos in the user's LabelMe layout, with camera-like grain
so they cost what a camera JPEG costs to decode, saves a random model (``--model-size tiny``: a
tiny DINOv2, so decoding dominates; ``base``: a DINOv2-base-sized one, so the real compute cost
shows), then measures, each in a child process whose peak memory is its own (``os.wait4``):

* **pipeline**: ``python -m index build`` on a fresh index directory. images/s is the photos it
  indexed (``N`` less those the dataset marks incorrect) over the child's wall time (interpreter
  start-up, imports and model load included: what a user waits for) and over the build's own
  ``seconds``; its report gives the seconds of each stage (scan, model load, decode, cut,
  embed, writes) and which one was the bottleneck. A second build over the unchanged dataset
  gives the rerun time.
* **decode floor**: every photo decoded once at full resolution by ``os.cpu_count()`` threads
  (best of two passes), plus single-core reference times at full, 1/2, 1/4 and 1/8 scale.
* **embedder alone** (:mod:`~index.bench.embed_floor`): crops/s on crops cut beforehand, the
  floor when the model is the bottleneck.
* **LlamaIndex peer** (:mod:`~index.bench.peer`): ``MultiModalVectorStoreIndex.from_documents``
  over the same photos as ``ImageDocument``\\ s with the same embedder.
* **naive baseline** (on a subset): for every planned crop, decode the whole photo at full
  resolution, cut that crop and embed it alone.

Other processes' CPU use during each phase is measured and reported: on a shared machine the
figures are only as good as the machine was quiet.

``python -m index bench`` runs it (:class:`BenchOptions`, :func:`run_benchmark`,
:func:`~index.bench.table.format_table`); the children run as ``python -m index.bench
{naive,peer,embed}-child``. This module runs the phases; :mod:`~index.bench.result` assembles
the result and its targets.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from index.bench.children import checked_json, run_child
from index.bench.cpu_watch import CpuWatch
from index.bench.decode_floor import (
    ReusedImageMemory,
    decode_floor,
    decode_reference,
    warm_cache,
)
from index.bench.errors import BenchError
from index.bench.inputs import (
    BASE_MODEL_DIR_NAME,
    DEFAULT_GRAIN,
    DEFAULT_QUALITY,
    MODEL_DIR_NAME,
    MODEL_SIZES,
    ensure_base_model,
    ensure_dataset,
    ensure_tiny_model,
)
from index.bench.result import assemble

logger = logging.getLogger(__name__)

DEFAULT_WORKDIR = Path("outputs/bench")

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class BenchOptions:
    """What one benchmark run measures (the flags of ``python -m index bench``)."""

    n: int = 100  # synthetic photos; the memory target is stated for 500
    size: str = "4000x3000"
    naive_n: int = 20  # photos the (slow) naive baseline runs on
    reference_photos: int = 10  # photos of the single-core decode reference
    workdir: Path | None = None  # cached dataset, tiny model and index (default DEFAULT_WORKDIR)
    config: Path | None = None  # domain YAML (default DEFAULT_CONFIG)
    model: Path | None = None  # a local model directory instead of the tiny random DINOv2
    seed: int = 0
    grain: float = DEFAULT_GRAIN
    quality: int = DEFAULT_QUALITY
    workers: int | None = None  # decoding threads of the build
    keep_index: bool = False
    timeout: float = 3600.0  # seconds before a child process is killed
    model_size: str = "tiny"  # "tiny" (decoding dominates) or "base" (a random DINOv2-base: real compute)
    device: str = "auto"  # embedder.device of every child: auto, cpu, cuda, mps
    batch_size: int | None = None  # embedder.batch_size (default: the config's)
    peer_n: int | None = None  # photos of the LlamaIndex peer (default: all n)
    embed_photos: int = 4  # photos whose pre-cut crops time the embedder's own throughput

    def __post_init__(self) -> None:
        if min(int(self.n), int(self.naive_n), int(self.reference_photos), int(self.embed_photos)) < 1:
            raise BenchError("--n, --naive-n, --reference-photos and --embed-photos must be at least 1")
        if self.peer_n is not None and int(self.peer_n) < 0:
            raise BenchError("--peer-n must be 0 (no peer) or more")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise BenchError("--batch-size must be at least 1")
        if self.model_size not in MODEL_SIZES:
            raise BenchError(f"--model-size must be one of {', '.join(MODEL_SIZES)}, not {self.model_size!r}")
        if self.device not in DEVICES:
            raise BenchError(f"--device must be one of {', '.join(DEVICES)}, not {self.device!r}")


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)
    logger.info(message)


def _child_overrides(p: dict[str, Any]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if p["device"] != "auto":
        overrides["embedder.device"] = p["device"]
    if p["batch_size"]:
        overrides["embedder.batch_size"] = int(p["batch_size"])
    return overrides


def _build_config(config_path: Path, overrides: dict[str, Any], workdir: Path) -> Path:
    """The domain YAML the build child reads: ``config_path`` itself, or a copy with ``overrides``."""
    if not overrides:
        return config_path
    import yaml

    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        data.setdefault(section, {})[key] = value
    suffix = "_".join(f"{dotted.split('.')[1]}-{value}" for dotted, value in overrides.items())
    target = workdir / f"bench_config_{suffix}.yaml"
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


def _check_device(device: str) -> None:
    """Refuse an accelerator this machine lacks before anything is written (one sentence)."""
    if device == "auto" or device == "cpu":
        return
    from index.embedders.config import EmbedderError
    from index.embedders.loading import select_device

    try:
        select_device(device)
    except EmbedderError as exc:
        raise BenchError(f"--device {device}: {exc}") from None


def run_benchmark(options: BenchOptions | None = None, /, *,
                  progress: Callable[[str], None] | None = None, **params: Any) -> dict[str, Any]:
    """Run the whole benchmark and return its result (see the module docstring).

    Args:
        options: What to measure (defaults: :class:`BenchOptions`).
        progress: Called with a one-line message at each stage.
        **params: Override any field of ``options`` by name.

    Returns:
        A JSON-ready mapping (:func:`~index.bench.result.assemble`): ``pipeline_images_per_s``,
        ``naive_images_per_s``, ``decode_floor_images_per_s``, ``peer``, ``embedder_floor``,
        ``stages``, ``peak_rss_mb``, ``first_build_s``, ``rerun_s``, …, ``targets`` (each with
        value, target and pass) and ``notes``.

    Raises:
        BenchError: If a build, the baseline, the peer or the embedder run fails, or
            ``--device`` names an accelerator this machine lacks.
        TypeError: If ``params`` names no option.
    """
    from index.config import DEFAULT_CONFIG, resolve_config_path
    from index.synth import parse_size

    p = asdict(replace(options or BenchOptions(), **params))
    _check_device(str(p["device"]))
    bench_started = time.perf_counter()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    n, size, seed = int(p["n"]), parse_size(str(p["size"])), int(p["seed"])
    workdir = Path(p["workdir"] or DEFAULT_WORKDIR)
    config_path = resolve_config_path(p["config"] or DEFAULT_CONFIG).resolve()
    cpus = os.cpu_count() or 1
    grain, quality = float(p["grain"]), int(p["quality"])
    tag = f"{n}_{size[0]}x{size[1]}" + (f"_s{seed}" if seed else "")
    if (grain, quality) != (DEFAULT_GRAIN, DEFAULT_QUALITY):
        tag += f"_g{grain:g}q{quality}"
    data = (workdir / f"data_{tag}").resolve()

    _say(progress, f"dataset: {n} photos {size[0]}x{size[1]} in {data}")
    synth_s, reused = ensure_dataset(data, n, size, seed, grain, quality)
    _say(progress, "dataset reused" if reused else f"dataset written in {synth_s:.1f}s")
    if p["model"]:
        model = Path(p["model"]).resolve()
    elif p["model_size"] == "base":
        _say(progress, "model: a random DINOv2-base-sized model (saved once, reused)")
        model = ensure_base_model((workdir / BASE_MODEL_DIR_NAME).resolve())
    else:
        model = ensure_tiny_model((workdir / MODEL_DIR_NAME).resolve())
    photos = sorted(data.glob("*.jpg"))
    overrides = _child_overrides(p)
    build_config = _build_config(config_path, overrides, workdir.resolve())
    timeout = float(p["timeout"])

    def child(kind: str, what: str, **kwargs: Any) -> tuple[dict[str, Any], Any]:
        args = {"config_path": str(config_path), "dataset": str(data), "model": str(model), **kwargs}
        if overrides:
            args["overrides"] = overrides
        with watch.phase(kind):
            run = run_child([sys.executable, "-m", "index.bench", f"{kind}-child", json.dumps(args)], timeout)
        return checked_json(run, what), run

    # decode floor (and the page cache warmed for everything after it)
    warm_cache(photos)
    file_mb = sum(path.stat().st_size for path in photos) / len(photos) / 1e6
    k = min(len(photos), int(p["reference_photos"]))
    refs = [photos[i * len(photos) // k] for i in range(k)]  # spread over the set
    watch = CpuWatch()
    with ReusedImageMemory(size, cpus), watch.phase("decode_floor"):
        _say(progress, f"single-core decode reference on {len(refs)} photos")
        reference = decode_reference(refs)
        _say(progress, f"decode floor: {len(photos)} photos, {cpus} threads, best of 2 passes")
        floor_passes = decode_floor(photos, cpus)

    # the embedder's own throughput, on crops cut beforehand
    _say(progress, f"embedder alone: the pre-cut crops of {p['embed_photos']} photos (child process)")
    embed_floor, _ = child("embed", "the embedder-throughput run", photos=int(p["embed_photos"]))

    # pipeline: first build on a fresh index, then a rerun over the unchanged dataset
    index_dir = (workdir / f"index_{tag}").resolve()
    shutil.rmtree(index_dir, ignore_errors=True)
    build_cmd = [sys.executable, "-m", "index", "build", "--config", str(build_config), "--dataset", str(data),
                 "--embedder", str(model), "--out", str(index_dir), "--json"]
    if p["workers"]:
        build_cmd += ["--workers", str(int(p["workers"]))]
    _say(progress, "pipeline: first build (child process)")
    with watch.phase("first_build"):
        first_run = run_child(build_cmd, timeout)
    first = checked_json(first_run, "the first build")
    _say(progress, f"first build: {first['seconds']:.1f}s; rerun over the unchanged dataset")
    rerun_run = run_child(build_cmd, timeout)
    rerun = checked_json(rerun_run, "the rerun")
    if not p["keep_index"]:
        shutil.rmtree(index_dir, ignore_errors=True)

    # LlamaIndex's own ingestion, same photos, same embedder
    peer_n = n if p["peer_n"] is None else min(n, int(p["peer_n"]))
    peer = peer_run = None
    if peer_n:
        _say(progress, f"LlamaIndex peer: MultiModalVectorStoreIndex.from_documents over {peer_n} ImageDocuments (child process)")
        peer, peer_run = child("peer", "the LlamaIndex peer", photos=peer_n)

    # naive baseline on a subset
    naive_n = min(n, int(p["naive_n"]))
    _say(progress, f"naive baseline: {naive_n} photos, full decode per crop, batch of 1 (child process)")
    naive, naive_run = child("naive", "the naive baseline", photos=naive_n)

    load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = assemble(p, n=n, size=size, cpus=cpus, data=data, model=model, synth_s=synth_s, reused=reused,
                      reference=reference, floor_passes=floor_passes, first=first, first_run=first_run,
                      rerun=rerun, rerun_run=rerun_run, naive=naive, naive_run=naive_run, peer=peer,
                      peer_run=peer_run, embed_floor=embed_floor, load=(load_start, load_end))
    result["photo_file_mb"] = round(file_mb, 2)
    result["other_processes_cpu_share"] = watch.shares
    busy = {k: v for k, v in watch.shares.items() if v > 0.05}
    if busy:
        result["notes"].append(
            "other processes used the CPU during the run (share of all cores: "
            + ", ".join(f"{k} {v * 100:.0f} %" for k, v in busy.items())
            + "): those figures are lower than on an idle machine; rerun when it is quiet.")
    result["bench_s"] = round(time.perf_counter() - bench_started, 2)
    return result
