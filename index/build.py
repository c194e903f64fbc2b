"""Build or update the vector index: dataset → regions → embeddings → FAISS, incrementally.

Each photo is decoded once, at the least JPEG scale its crops need, by a pool of worker
threads (Pillow releases the GIL while decoding), while the main thread embeds batches of
crops. A worker holds one decoded photo at a time and hands back only its small crops, and
at most ``4 × workers`` photos' crops wait to be embedded (``8 ×`` while the model is still
loading in the background), so memory stays bounded. Unchanged photos (same pixel
signature, same planned nodes) are reused; vanished ones are dropped. Work happens in a
staging directory with periodic checkpoints and is swapped in at the end (see
:mod:`index.index_dir`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from index.config import DomainConfig
from index.dataset.records import ImageRecord, Issue, issue_list
from index.files import digest, write_json_atomic
from index.index_dir import (
    BUILD_REPORT,
    CROPS,
    FORMAT_VERSION,
    MANIFEST,
    link_or_copy,
    node_counts,
    recover,
    staging_dir,
    swap_in,
    write_manifest,
)
from index.inspection import plan_dataset
from index.regions.cut import RenderedCrop, crop_file_name, pixel_signature, render_photo
from index.regions.plan import RegionCrop

logger = logging.getLogger(__name__)


def image_signature(record: ImageRecord, crops: list[RegionCrop], dataset: str, pixels: str | None = None) -> str:
    """What must stay equal for an image's nodes to be reused: pixels (``pixels``, if known) and crops."""
    return digest({"pixels": pixels or pixel_signature(record),
                   "crops": [[crop.node_id, crop.metadata(dataset)] for crop in crops]})


class _ModelLoader:
    """Loads the embedder in a background thread, so reading and decoding need not wait for it."""

    def __init__(self, config: DomainConfig, embedder: Any = None) -> None:
        self.config = config
        self._embedder = embedder
        self._future: Future | None = None

    def start(self) -> None:
        """Begin loading (once)."""
        if self._embedder is None and self._future is None:
            from index.embedders import load_embedder

            loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-embedder")
            self._future = loader.submit(load_embedder, self.config.embedder)
            loader.shutdown(wait=False)

    def ready(self) -> bool:
        """Whether the embedder is loaded (or failed to)."""
        return self._embedder is not None or (self._future is not None and self._future.done())

    def get(self) -> Any:
        """The embedder, waiting for it if needed (re-raises a loading error)."""
        if self._embedder is None:
            self.start()
            assert self._future is not None
            self._embedder = self._future.result()
        return self._embedder


class _Batcher:
    """Collects rendered photos and embeds their crops in batches."""

    def __init__(self, model: _ModelLoader, store: Any, dataset: str, batch_size: int) -> None:
        self.model, self.store, self.dataset = model, store, dataset
        self.batch_size = batch_size
        self.pending: list[tuple[str, str, list[RenderedCrop]]] = []  # (image id, signature, crops)
        self.done: list[tuple[str, str, list[str]]] = []
        self.threads: _EmbedThreads | None = None

    def add(self, image_id: str, signature: str, rendered: list[RenderedCrop]) -> None:
        self.pending.append((image_id, signature, rendered))
        if self.model.ready() and sum(len(r) for _, _, r in self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        crops = [c for _, _, rendered in self.pending for c in rendered]
        if crops:
            embedder = self.model.get()
            if self.threads is not None:
                self.threads.apply()
            vectors = embedder.embed_images([c.image for c in crops])
            nodes = []
            for rendered, vector in zip(crops, vectors, strict=True):
                node = rendered.crop.to_image_node(self.dataset, image_path=rendered.relative_path)
                node.embedding = vector.tolist()
                nodes.append(node)
            self.store.add(nodes)
        for image_id, signature, rendered in self.pending:
            self.done.append((image_id, signature, [c.crop.node_id for c in rendered]))
        self.pending = []


class _EmbedThreads:
    """Give torch the cores the decode threads leave (it competes with them otherwise)."""

    def __init__(self, workers: int) -> None:
        self.threads = max(1, (os.cpu_count() or 1) - workers)
        self.previous: int | None = None

    def apply(self) -> None:
        """Limit torch's threads (once), when the embedder runs on torch."""
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and self.previous is None:
            self.previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)

    def restore(self) -> None:
        """Give torch its threads back."""
        if self.previous is not None:
            import torch

            torch.set_num_threads(self.previous)


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
        recorded = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))["embedder"]
    except (OSError, ValueError, KeyError):
        return None
    files = _model_files(config)
    if files is None or recorded.get("config") != config.embedder.model_dump(mode="json") or recorded.get("files") != files:
        return None
    return EmbedderInfo(recorded["model_id"], recorded["family"], recorded["dim"], recorded["fingerprint"])


def _load_base(index_dir: Path, staging: Path, fingerprint: str, config: DomainConfig):
    """The state to start from: a resumable staging area, the current index, or nothing."""
    from index.vector_store import FaissNodeStore

    for where, resuming in ((staging, True), (index_dir, False)):
        path = where / MANIFEST
        if not path.is_file():
            continue
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if manifest.get("format_version") != FORMAT_VERSION:
            continue
        if resuming and manifest.get("complete"):
            continue
        old = manifest.get("embedder", {})
        if old.get("fingerprint") != fingerprint:
            if not resuming:
                return None, None, False, f"the embedder changed ({old.get('model_id')} → {config.embedder.model}); rebuilt from scratch"
            continue
        try:
            store = FaissNodeStore.from_persist_dir(where, config=config.index)
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
) -> dict[str, Any]:
    """Build the index, or bring an existing one up to date.

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

    Returns:
        The build report (also written to ``build_report.json``).

    Raises:
        EmbedderError: If the embedder cannot be loaded.
        AdapterError: If the dataset cannot be read at all.
    """
    from index.vector_store import FaissNodeStore

    started = time.perf_counter()
    index_dir = Path(index_dir or config.index.dir)
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    recover(index_dir)
    staging = staging_dir(index_dir)
    model = _ModelLoader(config, embedder)
    info = embedder.info if embedder is not None else _recorded_info(index_dir, config)
    if info is None:
        model.start()  # loads while the dataset is read (and, for a first build, decoded)
    scan, crops = plan_dataset(config, limit=limit, seed=seed, images=images)
    fresh = not (index_dir / MANIFEST).is_file() and not (staging / MANIFEST).is_file()
    if info is None and not fresh:
        info = model.get().info  # an existing index: its fingerprint decides what is reusable
    base, store, resuming, rebuilt = (None, None, False, None) if fresh else _load_base(index_dir, staging, info.fingerprint, config)
    previous: dict[str, dict[str, Any]] = dict(base["images"]) if base else {}
    store = store or FaissNodeStore(config=config.index)

    crops_by_image: dict[str, list[RegionCrop]] = {}
    for crop in crops:
        crops_by_image.setdefault(crop.record.image_id, []).append(crop)
    plan: list[tuple[ImageRecord, list[RegionCrop], str]] = []
    kept: dict[str, dict[str, Any]] = {}
    # Pixel signatures are also recorded alone: DamageIndex.image_ids_of knows a query photo by them.
    pixels_by_image: dict[str, str] = {}
    for record in scan.records:
        mine = crops_by_image.get(record.image_id, [])
        pixels = pixels_by_image[record.image_id] = pixel_signature(record)
        signature = image_signature(record, mine, config.name, pixels)
        before = previous.get(record.image_id)
        if before and before["signature"] == signature and before["nodes"] == [c.node_id for c in mine]:
            kept[record.image_id] = {**before, "pixels": pixels}
        else:
            plan.append((record, mine, signature))
    stale = [n for image_id, state in previous.items() if image_id not in kept for n in state["nodes"]]
    up_to_date = base is not None and not resuming and not plan and not stale and rebuilt is None

    build_issues: list[Issue] = []
    if not up_to_date:
        model.start()
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
        batcher = _Batcher(model, store, config.name, max(1, config.embedder.batch_size))
        images_state = dict(kept)

        def checkpoint(complete: bool) -> None:
            batcher.flush()
            for image_id, signature, node_ids in batcher.done:
                images_state[image_id] = {
                    "signature": signature,
                    "pixels": pixels_by_image[image_id],
                    "nodes": node_ids,
                    "crops": [crop_file_name(c, signature) for c in crops_by_image[image_id]],
                }
            batcher.done = []
            store.persist(staging)
            write_manifest(staging, config, model.get().info, counts=_counts(images_state, crops_by_image),
                           images=images_state, complete=complete, build_seconds=time.perf_counter() - started,
                           embedder_files=_model_files(config))

        workers = workers or os.cpu_count() or 1
        threads = batcher.threads = _EmbedThreads(workers)
        try:
            _render_and_embed(plan, staging, workers, model, batcher, build_issues, checkpoint, checkpoint_every, progress)
            checkpoint(True)
        except Exception:
            if not (staging / MANIFEST).is_file():  # nothing resumable: leave no debris
                shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            threads.restore()
        live = {name for state in images_state.values() for name in state["crops"]}
        for path in (staging / CROPS).iterdir():
            if f"{CROPS}/{path.name}" not in live:
                path.unlink()
    else:
        images_state = kept

    info = info if up_to_date else model.get().info
    report = _report(config, scan, crops_by_image, images_state, build_issues, info, store, started,
                     embedded=len(plan) - len(build_issues), reused=len(kept), removed=len(stale), rebuilt=rebuilt,
                     up_to_date=up_to_date)
    target = index_dir if up_to_date else staging
    write_json_atomic(target / BUILD_REPORT, report)
    if not up_to_date:
        swap_in(staging, index_dir)
    report["index_dir"] = str(index_dir)
    logger.info("index at %s: %s", index_dir, report["nodes_by_kind"])
    return report


def _render_and_embed(plan: list[tuple[ImageRecord, list[RegionCrop], str]], staging: Path, workers: int,
                      model: _ModelLoader, batcher: _Batcher, build_issues: list[Issue],
                      checkpoint: Callable[[bool], None], checkpoint_every: int,
                      progress: Callable[[int], None] | None) -> None:
    """Decode photos in a thread pool (in order, a bounded window ahead) and embed their crops."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        window: deque[tuple[ImageRecord, str, Future]] = deque()
        queue = iter(plan)
        processed = 0
        try:
            while True:
                # While the model loads, decode further ahead (rendered crops are small).
                while len(window) < (4 if model.ready() else 8) * workers:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    record, mine, signature = nxt
                    window.append((record, signature, pool.submit(render_photo, record, mine, signature, staging)))
                if not window:
                    break
                record, signature, future = window.popleft()
                result = future.result()
                if isinstance(result, Issue):
                    build_issues.append(result)
                else:
                    batcher.add(record.image_id, signature, result)
                processed += 1
                if progress:
                    progress(1)
                if processed % checkpoint_every == 0:
                    checkpoint(False)
        finally:
            for _, _, future in window:
                future.cancel()


def _counts(images_state: dict[str, Any], crops_by_image: dict[str, list[RegionCrop]]) -> dict[str, Any]:
    live = [c for image_id in images_state for c in crops_by_image.get(image_id, [])]
    return node_counts(live, images=len(images_state))


def _report(config, scan, crops_by_image, images_state, build_issues, info, store, started, *,
            embedded: int, reused: int, removed: int, rebuilt: str | None, up_to_date: bool) -> dict[str, Any]:
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
        "up_to_date": up_to_date,
        "rebuilt": rebuilt,
        "skipped_by_reason": dict(Counter(i.reason for i in skipped).most_common()),
        "repaired_by_reason": dict(Counter(i.reason for i in scan.repaired).most_common()),
        "skipped": issue_list(skipped),
        "repaired": issue_list(scan.repaired),
        "seconds": round(time.perf_counter() - started, 3),
    }
