"""Build or update the vector index: dataset → regions → embeddings → FAISS, incrementally.

The model starts loading in the background before the dataset is read. Each photo is then
decoded once, at the least JPEG scale its crops need, and cut, by a pool of worker threads,
while one thread writes the crop files and another embeds the crops in batches
(:mod:`index.build_pipeline`). A worker holds one decoded photo at a time and hands on only
its small crops, through a bounded queue, so memory stays flat. Unchanged photos (same pixel
signature, same planned nodes) are reused; vanished ones are dropped. Work happens in a
staging directory with periodic checkpoints and is swapped in at the end (see
:mod:`index.index_dir`). The report says how many seconds each stage took (``stages``) and
which one was the bottleneck (``pipeline``).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from index.batches import ModelLoader, StageClock
from index.build_pipeline import Prefetch, default_workers, render_and_embed
from index.config import DomainConfig
from index.dataset.records import ImageRecord, Issue, issue_list
from index.errors import DamageRagError, resource_error
from index.files import digest, write_json_atomic
from index.index_dir import (
    BUILD_REPORT,
    CROPS,
    MANIFEST,
    IndexNotFoundError,
    link_or_copy,
    load_manifest,
    node_counts,
    recover,
    staging_dir,
    swap_in,
    write_manifest,
)
from index.inspection import plan_dataset
from index.lock import writer_lock
from index.regions.cut import crop_file_name, pixel_signature
from index.regions.plan import RegionCrop

logger = logging.getLogger(__name__)


def image_signature(record: ImageRecord, crops: list[RegionCrop], dataset: str, pixels: str | None = None) -> str:
    """What must stay equal for an image's nodes to be reused: pixels (``pixels``, if known) and crops."""
    return digest({"pixels": pixels or pixel_signature(record),
                   "crops": [[crop.node_id, crop.metadata(dataset)] for crop in crops]})


def _model_files(config: DomainConfig) -> dict[str, Any] | None:
    """Cheap identity of a local model directory, or None (hub id, remote)."""
    from index.embedders.loading import model_files_signature

    model_dir = Path(config.embedder.model)
    if config.embedder.backend != "local" or not model_dir.is_dir():
        return None
    return model_files_signature(model_dir)


def _recorded_info(index_dir: Path, config: DomainConfig) -> Any:
    """The index's embedder info when the configured embedder is provably the same one.

    Same configuration and same model files means same fingerprint, so an up-to-date check
    needs no model load (and no torch import).
    """
    from index.embedders import EmbedderInfo

    try:
        recorded = load_manifest(index_dir / MANIFEST)["embedder"]
    except IndexNotFoundError:
        return None
    files = _model_files(config)
    if files is None or recorded.get("config") != config.embedder.model_dump(mode="json") or recorded.get("files") != files:
        return None
    return EmbedderInfo(recorded["model_id"], recorded["family"], recorded["dim"], recorded["fingerprint"])


def _load_base(index_dir: Path, staging: Path, fingerprint: str, config: DomainConfig):
    """The state to start from: a resumable staging area, the current index, or nothing."""
    from index.vector_store import open_store

    for where, resuming in ((staging, True), (index_dir, False)):
        path = where / MANIFEST
        if not path.is_file():
            continue
        try:
            manifest = load_manifest(path)
        except IndexNotFoundError as exc:
            if not resuming:
                return None, None, False, f"{str(exc).split('; rebuild')[0]}; rebuilt from scratch"
            continue
        if resuming and manifest.get("complete"):
            continue
        old = manifest.get("embedder", {})
        if old.get("fingerprint") != fingerprint:
            if not resuming:
                return None, None, False, f"the embedder changed ({old.get('model_id')} → {config.embedder.model}); rebuilt from scratch"
            continue
        try:
            store = open_store(where, config.index, writable=True)
        except (ValueError, OSError) as exc:
            if not resuming:
                return None, None, False, f"the previous index could not be reused ({exc}); rebuilt from scratch"
            continue
        return manifest, store, resuming, None
    return None, None, False, None


def build_index(
    config: DomainConfig,
    *,
    index_dir: Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    images: Collection[str] | None = None,
    workers: int | None = None,
    embedder: Any = None,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
    checkpoint_every: int = 200,
    wait: bool = False,
) -> dict[str, Any]:
    """Build the index, or bring an existing one up to date, holding its writer lock.

    Args:
        config: The domain configuration.
        index_dir: Where the index lives (default ``config.index.dir``).
        limit: Index a stratified sample of this many images.
        seed: Seed of the sample.
        images: Index only these image ids (e.g. the train side of an evaluation split).
        workers: Decoding threads (default: the number of CPU cores).
        embedder: A loaded embedder (default: load ``config.embedder``).
        progress: Called with the number of photos just processed.
        total: Called once with the number of photos to process.
        checkpoint_every: Photos between checkpoints of the staging area.
        wait: If another build is writing ``index_dir``, wait for it (default: refuse).

    Returns:
        The build report (also written to ``build_report.json``).

    Raises:
        EmbedderError: If the embedder cannot be loaded.
        AdapterError: If the dataset cannot be read at all.
        IndexBusyError: If another build holds the index and ``wait`` is false.
        ResourceError: If the disk or a folder refuses a write (full, read-only).
    """
    index_dir = Path(index_dir or config.index.dir)
    try:
        index_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise resource_error(exc, index_dir.parent) from exc
    with writer_lock(index_dir, wait=wait):
        try:
            return _build_locked(config, index_dir, limit=limit, seed=seed, images=images, workers=workers,
                                 embedder=embedder, progress=progress, total=total, checkpoint_every=checkpoint_every)
        except OSError as exc:
            if isinstance(exc, DamageRagError):
                raise
            raise resource_error(exc, verb="use") from exc


def _build_locked(config: DomainConfig, index_dir: Path, *, limit: int | None, seed: int,
                  images: Collection[str] | None, workers: int | None, embedder: Any,
                  progress: Callable[[int], None] | None, total: Callable[[int], None] | None,
                  checkpoint_every: int) -> dict[str, Any]:
    """:func:`build_index` once the writer lock is held."""
    from index.vector_store import new_store, publish_store

    started = time.perf_counter()
    clock = StageClock()
    recover(index_dir)
    staging = staging_dir(index_dir)
    model = ModelLoader(config, embedder, clock)
    info = embedder.info if embedder is not None else _recorded_info(index_dir, config)
    if info is None:
        model.start()  # loads while the dataset is read (and, for a first build, decoded)
    with clock.stage("scan"):
        scan, crops = plan_dataset(config, limit=limit, seed=seed, images=images)
    fresh = not (index_dir / MANIFEST).is_file() and not (staging / MANIFEST).is_file()
    if not fresh and info is None:
        model.shared_imports()  # before waiting for the loader (a fresh build imports it once decoding runs)
        info = model.get().info  # an existing index: its fingerprint decides what is reusable
    base, store, resuming, rebuilt = (None, None, False, None) if fresh else _load_base(index_dir, staging, info.fingerprint, config)
    previous: dict[str, dict[str, Any]] = dict(base["images"]) if base else {}

    crops_by_image: dict[str, list[RegionCrop]] = {}
    for crop in crops:
        crops_by_image.setdefault(crop.record.image_id, []).append(crop)
    plan: list[tuple[ImageRecord, list[RegionCrop], str]] = []
    kept: dict[str, dict[str, Any]] = {}
    # Pixel signatures are also recorded alone: DamageIndex.image_ids_of knows a query photo by them.
    pixels_by_image: dict[str, str] = {}
    base_dir = staging if resuming else index_dir
    recut = 0  # photos whose nodes are unchanged but whose crop files are gone: cut and embedded again
    for record in scan.records:
        mine = crops_by_image.get(record.image_id, [])
        pixels = pixels_by_image[record.image_id] = pixel_signature(record)
        signature = image_signature(record, mine, config.name, pixels)
        before = previous.get(record.image_id)
        if before and before["signature"] == signature and before["nodes"] == [c.node_id for c in mine]:
            if all((base_dir / name).is_file() for name in before["crops"]):
                kept[record.image_id] = {**before, "pixels": pixels}
                continue
            recut += 1
        plan.append((record, mine, signature))
    if recut:
        logger.warning("%d photos of %s had crop files missing; they are cut again", recut, base_dir)
    stale = [n for image_id, state in previous.items() if image_id not in kept for n in state["nodes"]]
    up_to_date = base is not None and not resuming and not plan and not stale and rebuilt is None

    build_issues: list[Issue] = []
    if not up_to_date:
        model.start()
        # Decoding starts now, while this thread imports LlamaIndex (GIL-bound, like the model's imports).
        photos = Prefetch(plan, workers or default_workers(), clock)
        try:
            model.shared_imports()
            store = store or new_store(config.index, replaces=index_dir)
        except BaseException:
            photos.close()
            raise
        if not resuming:
            shutil.rmtree(staging, ignore_errors=True)
        (staging / CROPS).mkdir(parents=True, exist_ok=True)
        if base is not None and not resuming:
            for state in kept.values():
                for name in state["crops"]:
                    link_or_copy(index_dir / name, staging / name)
        store.delete_nodes(stale)
        if total:
            total(len(plan))
        images_state = dict(kept)

        def checkpoint(done: list[tuple[str, str, list[str]]], complete: bool) -> None:
            with clock.stage("write_index"):
                for image_id, signature, node_ids in done:
                    images_state[image_id] = {
                        "signature": signature,
                        "pixels": pixels_by_image[image_id],
                        "nodes": node_ids,
                        "crops": [crop_file_name(c, signature) for c in crops_by_image[image_id]],
                    }
                store.persist(staging)
                write_manifest(staging, config, model.get().info, counts=_counts(images_state, crops_by_image),
                               images=images_state, complete=complete, build_seconds=time.perf_counter() - started,
                               embedder_files=_model_files(config))

        try:
            pipeline = render_and_embed(photos, staging, model, store, config.name, max(1, config.embedder.batch_size),
                                        clock, build_issues, checkpoint, checkpoint_every, progress, started)
        except Exception:
            if not (staging / MANIFEST).is_file():  # nothing resumable: leave no debris
                shutil.rmtree(staging, ignore_errors=True)
            raise
        live = {name for state in images_state.values() for name in state["crops"]}
        for path in (staging / CROPS).iterdir():
            if f"{CROPS}/{path.name}" not in live:
                path.unlink()
    else:
        images_state = kept
        pipeline = None

    info = info if up_to_date else model.get().info
    report = _report(config, scan, crops_by_image, images_state, build_issues, info, store, started,
                     embedded=len(plan) - len(build_issues), reused=len(kept), removed=len(stale), rebuilt=rebuilt,
                     up_to_date=up_to_date, recut=recut)
    report["stages"] = clock.to_dict()
    report["pipeline"] = pipeline
    target = index_dir if up_to_date else staging
    write_json_atomic(target / BUILD_REPORT, report)
    if not up_to_date:
        swap_in(staging, index_dir)
        publish_store(store, config.index)
    report["index_dir"] = str(index_dir)
    logger.info("index at %s: %s", index_dir, report["nodes_by_kind"])
    return report


def _counts(images_state: dict[str, Any], crops_by_image: dict[str, list[RegionCrop]]) -> dict[str, Any]:
    live = [c for image_id in images_state for c in crops_by_image.get(image_id, [])]
    return node_counts(live, images=len(images_state))


def _report(config, scan, crops_by_image, images_state, build_issues, info, store, started, *,
            embedded: int, reused: int, removed: int, rebuilt: str | None, up_to_date: bool,
            recut: int) -> dict[str, Any]:
    skipped = scan.skipped + build_issues
    counts = _counts(images_state, crops_by_image)
    return {
        "dataset": config.name,
        "embedder": info.to_dict(),
        "dim": info.dim,
        **counts,
        "vectors": store.count(),
        "embedded_images": embedded,
        "reused_images": reused,
        "removed_nodes": removed,
        "recut_images": recut,
        "up_to_date": up_to_date,
        "rebuilt": rebuilt,
        "skipped_by_reason": dict(Counter(i.reason for i in skipped).most_common()),
        "repaired_by_reason": dict(Counter(i.reason for i in scan.repaired).most_common()),
        "skipped": issue_list(skipped),
        "repaired": issue_list(scan.repaired),
        "seconds": round(time.perf_counter() - started, 3),
    }
