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
:func:`format_table`); the naive baseline runs as ``python -m index.bench naive-child``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from index.errors import DamageRagError

logger = logging.getLogger(__name__)

#: The folder that holds the packages, put on the children's PYTHONPATH.
REPO = Path(__file__).resolve().parents[2]
DEFAULT_WORKDIR = Path("outputs/bench")
COMPLETE_MARKER = ".bench_complete"  # not *.json: the LabelMe adapter must not read it
MODEL_DIR_NAME = "tiny-dinov2"
#: Camera-like photos: luminance grain of this standard deviation, saved at this JPEG quality.
#: Plain synthetic renders are smooth (0.6 MB, ~28 ms to decode); real 12 MP photos are 3-6 MB
#: and decode ~3x slower, and the issue's targets are relative to that decode cost.
DEFAULT_GRAIN = 8.0
DEFAULT_QUALITY = 95

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


class BenchError(DamageRagError, RuntimeError):
    """A benchmark step failed; the message says which and how."""


# --------------------------------------------------------------------------------------------
# child processes


@dataclass
class ChildRun:
    """What a child process did: exit code, output, wall time and peak resident memory."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_mb: float | None


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def run_child(cmd: list[str], timeout: float) -> ChildRun:
    """Run ``cmd`` and measure its own peak RSS (``os.wait4``; psutil polling elsewhere)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=_child_env())
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                # Linux reports ru_maxrss in KiB, macOS in bytes.
                peak = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
            else:  # pragma: no cover - Windows
                peak = _poll_peak_rss(proc)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return ChildRun(proc.returncode, out.read().decode("utf-8", "replace"),
                        err.read().decode("utf-8", "replace"), wall, peak)


def _poll_peak_rss(proc: subprocess.Popen) -> float | None:  # pragma: no cover - Windows
    import psutil

    peak = 0
    try:
        handle = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak = max(peak, handle.memory_info().rss)
            time.sleep(0.05)
    except psutil.Error:
        pass
    proc.wait()
    return peak / 2**20 if peak else None


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON object on stdout")


def _checked(run: ChildRun, what: str) -> dict[str, Any]:
    if run.returncode != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-15:])
        raise BenchError(f"{what} failed (exit code {run.returncode}):\n{tail}")
    try:
        return _last_json(run.stdout)
    except ValueError as exc:
        raise BenchError(f"{what} printed no JSON report ({exc}); stderr:\n{run.stderr[-2000:]}") from None


# --------------------------------------------------------------------------------------------
# inputs: the synthetic dataset and the tiny model


def _synth_one(plan: Any, out_dir: str, grain: float, quality: int) -> None:
    import numpy as np
    from PIL import Image

    from index.synth import labelme_document, render_labelme_photo

    pixels, shapes = render_labelme_photo(plan)
    if grain > 0:  # luminance grain, the same on R, G and B; marks and polygons are unchanged
        noise = np.random.default_rng([plan.seed, plan.index, 7]).normal(0.0, grain, pixels.shape[:2])
        pixels = np.clip(pixels + noise.astype(np.int16)[..., None], 0, 255).astype(np.uint8)
    out = Path(out_dir)
    Image.fromarray(pixels).save(out / plan.image_name, "JPEG", quality=quality)
    doc = labelme_document(plan, shapes)
    (out / plan.json_name).write_text(json.dumps(doc, indent=4, ensure_ascii=False), encoding="utf-8")


def ensure_dataset(root: Path, n: int, size: tuple[int, int], seed: int, grain: float = 0.0,
                   quality: int | None = None) -> tuple[float, bool]:
    """Write ``n`` synthetic photos into ``root`` unless a complete set is already there.

    The photos and JSONs of :func:`index.synth.dataset.synthesize_labelme` (same plan, same names),
    drawn by one process per core, optionally with camera-like grain. Returns (seconds spent,
    reused).
    """
    from index.synth import JPEG_QUALITY, plan_labelme

    quality = int(quality or JPEG_QUALITY)
    marker = root / COMPLETE_MARKER
    expected = {"n": n, "size": list(size), "seed": seed, "grain": float(grain), "quality": quality}
    plans = plan_labelme(n, size, seed)
    if marker.is_file():
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            recorded = None
        if recorded == expected and all((root / p.image_name).is_file() and (root / p.json_name).is_file() for p in plans):
            return 0.0, True
        marker.unlink()
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    workers = min(os.cpu_count() or 1, n)
    if workers <= 1 or n < 4:
        for plan in plans:
            _synth_one(plan, str(root), float(grain), quality)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the caller may already hold torch's thread pools, which fork does not survive
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_synth_one, plans, [str(root)] * n, [float(grain)] * n, [quality] * n, chunksize=4))
    marker.write_text(json.dumps(expected), encoding="utf-8")
    return time.perf_counter() - started, False


def ensure_tiny_model(path: Path) -> Path:
    """A tiny random DINOv2 saved like a real one; reused when present."""
    from index.embedders.tiny import save_tiny_dinov2

    return save_tiny_dinov2(path)


# --------------------------------------------------------------------------------------------
# decode floor


def _decode(path: Path, reduce: int = 1) -> None:
    from PIL import Image

    with Image.open(path) as img:
        if reduce > 1:
            img.draft("RGB", (img.width // reduce, img.height // reduce))
        img.load()


class _ReusedImageMemory:
    """Let Pillow keep freed image blocks while decoding, so every decode reuses warm memory.

    Otherwise glibc may hand each 12 MP buffer (48 MB, RGBX) back to the kernel and the next
    decode page-faults it in again (~12,000 faults, ~17 ms here), depending on the process's
    allocation history: the floor would measure the allocator's mood, not the decoder.
    """

    def __init__(self, size: tuple[int, int], threads: int) -> None:
        from PIL import Image

        self.core = Image.core
        per_photo = -(-size[0] * size[1] * 4 // self.core.get_block_size())
        self.blocks = (threads + 1) * per_photo + 2

    def __enter__(self) -> None:
        self.saved = self.core.get_blocks_max()
        self.core.set_blocks_max(max(self.saved, self.blocks))

    def __exit__(self, *exc: object) -> None:
        self.core.set_blocks_max(self.saved)  # also frees the cached blocks


def decode_reference(photos: list[Path]) -> dict[str, float]:
    """Single-core ms/photo at full, 1/2, 1/4 and 1/8 scale (DCT scaling, ``Image.draft``)."""
    _decode(photos[0])  # warm-up: memory blocks, decoder tables
    out = {}
    for reduce, key in ((1, "full"), (2, "half"), (4, "quarter"), (8, "eighth")):
        started = time.perf_counter()
        for path in photos:
            _decode(path, reduce)
        out[key] = (time.perf_counter() - started) / len(photos) * 1000
    return out


def decode_floor(photos: list[Path], threads: int, passes: int = 2) -> list[float]:
    """Seconds to decode every photo once at full resolution with ``threads`` threads, per pass."""
    times = []
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="floor") as pool:
        for _ in range(passes):
            started = time.perf_counter()
            list(pool.map(_decode, photos))
            times.append(time.perf_counter() - started)
    return times


def _warm_cache(photos: list[Path]) -> None:
    """Read every file once, so each measurement starts from the page cache."""
    for path in photos:
        with open(path, "rb") as handle:
            while handle.read(1 << 22):
                pass


# --------------------------------------------------------------------------------------------
# naive baseline (runs in a child process)


def naive_baseline(config_path: str, dataset: str, model: str, photos: int) -> dict[str, Any]:
    """Full decode of the photo for each crop, cut, embed one crop at a time; no crop files."""
    from index.config import apply_overrides, load_config
    from index.embedders import load_embedder
    from index.imaging.decode import decode_image
    from index.imaging.drawing import cut_crop
    from index.inspection import plan_dataset

    config = apply_overrides(load_config(config_path), {"dataset.root": dataset, "embedder.model": model})
    scan, crops = plan_dataset(config)
    by_image: dict[str, list[Any]] = {}
    for crop in crops:
        by_image.setdefault(crop.record.image_id, []).append(crop)
    records = scan.records[:photos]
    started = time.perf_counter()
    embedder = load_embedder(config.embedder)
    load_s = time.perf_counter() - started
    from PIL import Image

    embedder.embed_images([Image.new("RGB", (64, 64))])  # warm-up: first forward pass, lazy inits
    started = time.perf_counter()
    n_crops = 0
    for record in records:
        for crop in by_image.get(record.image_id, []):
            photo, scale = decode_image(record.image_path, embedded=record.embedded,
                                        exif_transpose=record.exif_transpose)  # min_scale=1: no draft
            image = cut_crop(photo, crop.crop_box, crop.output_size, scale)
            photo.close()
            embedder.embed_images([image])
            n_crops += 1
    seconds = time.perf_counter() - started
    return {
        "photos": len(records),
        "crops": n_crops,
        "seconds": seconds,
        "model_load_s": load_s,
        "dataset_photos": len(scan.records),
        "dataset_crops": len(crops),
    }


# --------------------------------------------------------------------------------------------
# the benchmark


class _CpuWatch:
    """How much CPU other processes used while a phase ran (this process and its children excluded).

    ``share`` is their CPU seconds over the phase's wall time x cores: 0 on an idle machine.
    """

    def __init__(self) -> None:
        self.shares: dict[str, float] = {}

    @staticmethod
    def _now() -> tuple[float, float, float]:
        import psutil

        t = psutil.cpu_times()
        busy = t.user + t.system + sum(getattr(t, k, 0.0) for k in ("nice", "irq", "softirq"))
        mine = os.times()
        own = mine.user + mine.system + mine.children_user + mine.children_system
        return time.perf_counter(), busy, own

    def phase(self, name: str) -> _CpuPhase:
        return _CpuPhase(self, name)


class _CpuPhase:
    def __init__(self, watch: _CpuWatch, name: str) -> None:
        self.watch, self.name = watch, name

    def __enter__(self) -> None:
        self.start = self.watch._now()

    def __exit__(self, *exc: object) -> None:
        end = self.watch._now()
        wall = end[0] - self.start[0]
        others = (end[1] - self.start[1]) - (end[2] - self.start[2])
        share = max(0.0, others) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0
        self.watch.shares[self.name] = round(min(1.0, share), 3)


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
    _warm_cache(photos)
    file_mb = sum(path.stat().st_size for path in photos) / len(photos) / 1e6
    k = min(len(photos), int(p["reference_photos"]))
    refs = [photos[i * len(photos) // k] for i in range(k)]  # spread over the set
    watch = _CpuWatch()
    with _ReusedImageMemory(size, cpus), watch.phase("decode_floor"):
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
    first = _checked(first_run, "the first build")
    _say(progress, f"first build: {first['seconds']:.1f}s; rerun over the unchanged dataset")
    rerun_run = run_child(build_cmd, float(p["timeout"]))
    rerun = _checked(rerun_run, "the rerun")
    if not p["keep_index"]:
        shutil.rmtree(index_dir, ignore_errors=True)

    # naive baseline on a subset
    naive_n = min(n, int(p["naive_n"]))
    _say(progress, f"naive baseline: {naive_n} photos, full decode per crop, batch of 1 (child process)")
    naive_cmd = [sys.executable, "-m", "index.bench", "naive-child",
                 json.dumps({"config_path": str(config_path), "dataset": str(data), "model": str(model), "photos": naive_n})]
    with watch.phase("naive"):
        naive_run = run_child(naive_cmd, float(p["timeout"]))
    naive = _checked(naive_run, "the naive baseline")

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
        f"{_pillow_version()}), best of 2 passes, files in the page cache, Pillow's block cache on (freed "
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


def _pillow_version() -> str:
    import PIL

    return PIL.__version__


# --------------------------------------------------------------------------------------------
# the table


def _mark(target: dict[str, Any]) -> str:
    return "PASS" if target["pass"] else "MISS"


def format_table(result: dict[str, Any]) -> str:
    """A one-screen plain-text table: each figure beside its baseline or target, PASS/MISS."""
    t = result["targets"]
    w, h = result["size"]
    emb = result.get("embedder") or {}
    title = (f"Indexing benchmark: {result['n']} photos {w}x{h}, {result['cpu_count']} CPU cores, "
             f"embedder {Path(str(emb.get('model_id', result.get('model', '?')))).name} ({emb.get('dim', '?')}-d)")
    rows: list[tuple[str, str, str, str]] = [
        ("pipeline", f"{result['pipeline_images_per_s']:.2f} img/s",
         f"{result['crops_per_photo']:.1f} crops/photo, {result['pipeline_crops_per_s']:.1f} crops/s", ""),
        ("  vs naive baseline", f"x{t['speedup_vs_naive']['value']:.2f}" if t["speedup_vs_naive"]["value"] else "-",
         f"naive {result['naive_images_per_s'] or 0:.2f} img/s; target >= x{TARGET_SPEEDUP:g}",
         _mark(t["speedup_vs_naive"])),
        ("  vs decode-only floor", f"{t['fraction_of_decode_floor']['value'] * 100:.0f} %",
         f"floor {result['decode_floor_images_per_s']:.2f} img/s; target >= {TARGET_FLOOR_FRACTION * 100:.0f} %",
         _mark(t["fraction_of_decode_floor"])),
        ("peak RSS (first build)", f"{result['peak_rss_mb']:.0f} MB" if result["peak_rss_mb"] is not None else "-",
         f"target < {TARGET_PEAK_RSS_MB:.0f} MB at {TARGET_RSS_AT_N} photos"
         + ("" if result["n"] == TARGET_RSS_AT_N else f" (measured at {result['n']})"),
         _mark(t["peak_rss_mb"])),
        ("first build", f"{result['first_build_s']:.2f} s", f"{result['first_build_wall_s']:.2f} s with start-up", ""),
        ("rerun, unchanged data", f"{result['rerun_s']:.2f} s",
         f"{t['rerun_fraction']['value'] * 100:.1f} % of first build; target < {TARGET_RERUN_FRACTION * 100:.0f} %"
         + ("" if result["rerun_up_to_date"] else " (NOT up to date)"),
         _mark(t["rerun_fraction"])),
        ("naive baseline", f"{result['naive_images_per_s'] or 0:.2f} img/s",
         f"subset {result['naive_photos']} photos / {result['naive_crops']} crops, {result['naive_ms_per_crop']} ms/crop", ""),
        ("naive peak RSS", f"{result['naive_peak_rss_mb']:.0f} MB" if result["naive_peak_rss_mb"] is not None else "-", "", ""),
        ("decode floor", f"{result['decode_floor_images_per_s']:.2f} img/s",
         f"full decode, {result['decode_threads']} threads; photos {result.get('photo_file_mb', 0):.1f} MB each", ""),
        ("decode, 1 core", f"{result['decode_full_ms_single_core']:.1f} ms",
         f"1/2 {result['decode_half_ms_single_core']:.1f} ms, 1/4 {result['decode_quarter_ms_single_core']:.1f} ms, "
         f"1/8 {result['decode_eighth_ms_single_core']:.1f} ms per photo", ""),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [title, "-" * min(100, max(len(title), sum(widths) + 12))]
    for name, value, ref, mark in rows:
        lines.append(f"{name:<{widths[0]}}  {value:>{widths[1]}}  {ref:<{widths[2]}}  {mark}".rstrip())
    passed = sum(1 for x in t.values() if x["pass"])
    lines.append(f"targets met: {passed}/{len(t)}")
    lines.extend(f"* {note}" for note in result["notes"])
    return "\n".join(lines)
