"""Indexing throughput benchmark: the build pipeline against a naive baseline and the decode floor.

One run synthesises (or reuses) ``N`` photos in the user's LabelMe layout, with camera-like grain
so they cost what a camera JPEG costs to decode, saves a tiny random DINOv2 (so the embedder
costs little and decoding dominates, as the issue asks), then measures:

* **pipeline**: ``python -m index build`` on a fresh index directory, in a child process, so
  its peak resident memory is the child's own (``os.wait4``); images/s is the photos it
  indexed (``N`` less those the dataset marks incorrect) divided by the build's own ``seconds``
  (its report), which leaves out interpreter start-up. A second build
  over the unchanged dataset gives the rerun time.
* **naive baseline** (child process, on a subset): for every planned crop, decode the whole
  photo at full resolution, cut that crop and embed it alone.
* **decode floor**: every photo decoded once at full resolution by ``os.cpu_count()`` threads
  (best of two passes), plus single-core reference times at full, 1/2, 1/4 and 1/8 scale.

Other processes' CPU use during each phase is measured and reported: on a shared machine the
figures are only as good as the machine was quiet.

``python -m index bench`` runs it (:class:`BenchOptions`, :func:`run_benchmark`,
:func:`~index.bench.table.format_table`); the naive baseline runs as
``python -m index.bench naive-child``. This module runs the phases and assembles the result;
:mod:`~index.bench.inputs`, :mod:`~index.bench.decode_floor`, :mod:`~index.bench.naive`,
:mod:`~index.bench.children` and :mod:`~index.bench.cpu_watch` do the measuring.
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
    pillow_version,
    warm_cache,
)
from index.bench.errors import BenchError
from index.bench.inputs import (
    DEFAULT_GRAIN,
    DEFAULT_QUALITY,
    MODEL_DIR_NAME,
    ensure_dataset,
    ensure_tiny_model,
)

logger = logging.getLogger(__name__)

DEFAULT_WORKDIR = Path("outputs/bench")

#: Targets from the issue ("2-core machine, tiny embedder").
TARGET_SPEEDUP = 4.0
TARGET_FLOOR_FRACTION = 0.60
TARGET_PEAK_RSS_MB = 1500.0
TARGET_RSS_AT_N = 500
TARGET_RERUN_FRACTION = 0.05


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

    def __post_init__(self) -> None:
        if min(int(self.n), int(self.naive_n), int(self.reference_photos)) < 1:
            raise BenchError("--n, --naive-n and --reference-photos must be at least 1")


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)
    logger.info(message)


def _target(value: float | None, target: float, op: str, description: str) -> dict[str, Any]:
    passed = value is not None and (value >= target if op == ">=" else value < target)
    return {"value": value, "target": target, "op": op, "pass": passed, "description": description}


def run_benchmark(options: BenchOptions | None = None, /, *,
                  progress: Callable[[str], None] | None = None, **params: Any) -> dict[str, Any]:
    """Run the whole benchmark and return its result (see the module docstring).

    Args:
        options: What to measure (defaults: :class:`BenchOptions`).
        progress: Called with a one-line message at each stage.
        **params: Override any field of ``options`` by name.

    Returns:
        A JSON-ready mapping: ``pipeline_images_per_s``, ``naive_images_per_s``,
        ``decode_floor_images_per_s``, ``peak_rss_mb``, ``first_build_s``, ``rerun_s``, …,
        ``targets`` (each with value, target and pass) and ``notes``.

    Raises:
        BenchError: If a build or the naive baseline fails.
        TypeError: If ``params`` names no option.
    """
    from index.config import DEFAULT_CONFIG, resolve_config_path
    from index.synth import parse_size

    p = asdict(replace(options or BenchOptions(), **params))
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
    model = Path(p["model"]).resolve() if p["model"] else ensure_tiny_model((workdir / MODEL_DIR_NAME).resolve())
    photos = sorted(data.glob("*.jpg"))

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
    floor_s = min(floor_passes)
    floor_ips = len(photos) / floor_s

    # pipeline: first build on a fresh index, then a rerun over the unchanged dataset
    index_dir = (workdir / f"index_{tag}").resolve()
    shutil.rmtree(index_dir, ignore_errors=True)
    build_cmd = [sys.executable, "-m", "index", "build", "--config", str(config_path), "--dataset", str(data),
                 "--embedder", str(model), "--out", str(index_dir), "--json"]
    if p["workers"]:
        build_cmd += ["--workers", str(int(p["workers"]))]
    _say(progress, "pipeline: first build (child process)")
    with watch.phase("first_build"):
        first_run = run_child(build_cmd, float(p["timeout"]))
    first = checked_json(first_run, "the first build")
    _say(progress, f"first build: {first['seconds']:.1f}s; rerun over the unchanged dataset")
    rerun_run = run_child(build_cmd, float(p["timeout"]))
    rerun = checked_json(rerun_run, "the rerun")
    if not p["keep_index"]:
        shutil.rmtree(index_dir, ignore_errors=True)

    # naive baseline on a subset
    naive_n = min(n, int(p["naive_n"]))
    _say(progress, f"naive baseline: {naive_n} photos, full decode per crop, batch of 1 (child process)")
    naive_cmd = [sys.executable, "-m", "index.bench", "naive-child",
                 json.dumps({"config_path": str(config_path), "dataset": str(data), "model": str(model), "photos": naive_n})]
    with watch.phase("naive"):
        naive_run = run_child(naive_cmd, float(p["timeout"]))
    naive = checked_json(naive_run, "the naive baseline")

    load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = _assemble(p, n, size, cpus, data, model, synth_s, reused, reference, floor_s, floor_ips,
                       first, first_run, rerun, rerun_run, naive, naive_run, load_start, load_end)
    result["photo_file_mb"] = round(file_mb, 2)
    result["other_processes_cpu_share"] = watch.shares
    busy = {k: v for k, v in watch.shares.items() if v > 0.05}
    if busy:
        result["notes"].append(
            "other processes used the CPU during the run (share of all cores: "
            + ", ".join(f"{k} {v * 100:.0f} %" for k, v in busy.items())
            + "): those figures are lower than on an idle machine; rerun when it is quiet.")
    result["decode_floor_passes_s"] = [round(x, 3) for x in floor_passes]
    result["bench_s"] = round(time.perf_counter() - bench_started, 2)
    return result


def _assemble(p, n, size, cpus, data, model, synth_s, reused, reference, floor_s, floor_ips,
              first, first_run, rerun, rerun_run, naive, naive_run, load_start, load_end) -> dict[str, Any]:
    first_s = float(first["seconds"])
    rerun_s = float(rerun["seconds"])
    built = int(first.get("embedded_images", first.get("images", n))) or n
    pipeline_ips = built / first_s
    naive_ips = naive["photos"] / naive["seconds"] if naive["seconds"] > 0 else None
    speedup = pipeline_ips / naive_ips if naive_ips else None
    floor_fraction = pipeline_ips / floor_ips
    rerun_fraction = rerun_s / first_s
    peak = first_run.peak_rss_mb
    nodes = int(first.get("nodes", 0))

    rss_note = "" if n == TARGET_RSS_AT_N else f" (the issue states it for {TARGET_RSS_AT_N} photos; measured at {n})"
    targets = {
        "speedup_vs_naive": _target(speedup, TARGET_SPEEDUP, ">=", "pipeline images/s ÷ naive images/s"),
        "fraction_of_decode_floor": _target(floor_fraction, TARGET_FLOOR_FRACTION, ">=",
                                            "pipeline images/s ÷ decode-only floor images/s"),
        "peak_rss_mb": _target(peak, TARGET_PEAK_RSS_MB, "<", "peak RSS of the first build, MB" + rss_note),
        "rerun_fraction": _target(rerun_fraction, TARGET_RERUN_FRACTION, "<",
                                  "rerun seconds ÷ first build seconds (unchanged dataset)"),
    }
    notes = [
        f"pipeline images/s = {built} photos / the first build's own 'seconds' ({first_s:.2f}s: scan, model "
        f"load, decode, embed, crop files, FAISS write); interpreter start-up excluded (child wall time "
        f"{first_run.wall_s:.2f}s). The rerun likewise ({rerun_s:.2f}s own, {rerun_run.wall_s:.2f}s wall).",
        f"naive baseline measured on a subset: the first {naive['photos']} of {n} photos "
        f"({naive['crops']} crops), one full decode per crop, one crop per forward pass, no crop files "
        f"written, model load ({naive['model_load_s']:.2f}s) and one warm-up forward pass excluded; images/s is that subset's.",
        f"decode floor: every photo decoded once at full resolution by {cpus} threads (Pillow "
        f"{pillow_version()}), best of 2 passes, files in the page cache, Pillow's block cache on (freed "
        f"image memory reused, no page faults); single-core references likewise, on "
        f"{min(n, int(p['reference_photos']))} photos spread over the set.",
        (f"photos: synthetic renders with camera-like grain (sigma {p['grain']:g}, JPEG quality {p['quality']}) "
         "so they decode like camera JPEGs; --grain 0 gives the plain renders (about 4x cheaper to decode)."
         if float(p["grain"]) > 0 else
         f"photos: plain synthetic renders (JPEG quality {p['quality']}); they decode several times faster "
         "than camera photos, so fixed per-photo costs weigh more than on real data."),
        "peak RSS: ru_maxrss of the build's own child process (os.wait4), in MiB.",
        f"embedder: {model} (tiny random DINOv2 unless --model), as the issue specifies, so decoding dominates.",
    ]
    if rss_note:
        notes.append(f"memory target {TARGET_PEAK_RSS_MB:.0f} MB is stated for {TARGET_RSS_AT_N} photos; run --n {TARGET_RSS_AT_N} to check it.")
    if not rerun.get("up_to_date", False):
        notes.append("the rerun did NOT find the index up to date: it re-embedded "
                     f"{rerun.get('embedded_images')} photos.")
    crops_per_photo = nodes / built if built else 0.0
    return {
        "n": n,
        "size": list(size),
        "cpu_count": cpus,
        "dataset": str(data),
        "dataset_reused": reused,
        "synth_s": round(synth_s, 2),
        "model": str(model),
        "embedder": first.get("embedder", {}),
        "pipeline_images_per_s": round(pipeline_ips, 3),
        "pipeline_crops_per_s": round(nodes / first_s, 2),
        "first_build_s": round(first_s, 3),
        "first_build_wall_s": round(first_run.wall_s, 3),
        "rerun_s": round(rerun_s, 3),
        "rerun_wall_s": round(rerun_run.wall_s, 3),
        "rerun_fraction": round(rerun_fraction, 4),
        "rerun_up_to_date": bool(rerun.get("up_to_date", False)),
        "peak_rss_mb": round(peak, 1) if peak is not None else None,
        "rerun_peak_rss_mb": round(rerun_run.peak_rss_mb, 1) if rerun_run.peak_rss_mb is not None else None,
        "images_indexed": built,
        "nodes": nodes,
        "nodes_by_kind": first.get("nodes_by_kind", {}),
        "crops_per_photo": round(crops_per_photo, 2),
        "naive_images_per_s": round(naive_ips, 3) if naive_ips else None,
        "naive_photos": naive["photos"],
        "naive_crops": naive["crops"],
        "naive_s": round(naive["seconds"], 3),
        "naive_ms_per_crop": round(naive["seconds"] / naive["crops"] * 1000, 1) if naive["crops"] else None,
        "naive_model_load_s": round(naive["model_load_s"], 3),
        "naive_peak_rss_mb": round(naive_run.peak_rss_mb, 1) if naive_run.peak_rss_mb is not None else None,
        "decode_floor_images_per_s": round(floor_ips, 3),
        "decode_floor_s": round(floor_s, 3),
        "decode_threads": cpus,
        "decode_full_ms_single_core": round(reference["full"], 1),
        "decode_half_ms_single_core": round(reference["half"], 1),
        "decode_quarter_ms_single_core": round(reference["quarter"], 1),
        "decode_eighth_ms_single_core": round(reference["eighth"], 1),
        "speedup_vs_naive": round(speedup, 2) if speedup else None,
        "fraction_of_decode_floor": round(floor_fraction, 3),
        "load_average_start": [round(x, 2) for x in load_start] if load_start else None,
        "load_average_end": [round(x, 2) for x in load_end] if load_end else None,
        "targets": targets,
        "notes": notes,
    }
