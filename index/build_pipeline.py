"""The decode → cut → write → embed pipeline of a build, each stage in threads of its own.

``workers`` threads decode photos (Pillow releases the GIL while decoding) at the least JPEG
scale their crops need and cut the crops, a bounded window ahead of the photo being handed on;
one thread writes the crop JPEGs (an fsync each, kept off the decoders); the
:class:`~index.batches.EmbedWorker` thread embeds them in batches while the model loads in the
background. The embed queue is bounded (deeper while the model is still loading, so decoding
runs ahead of it), so memory stays flat and a slow embedder holds decoding back instead of
competing with it for the cores. Every stage's seconds go to a :class:`~index.batches.StageClock`.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from index.batches import EmbedThreads, EmbedWorker, ModelLoader, StageClock
from index.dataset.records import ImageRecord, Issue
from index.regions.cut import RenderedCrop, render_photo, save_crop
from index.regions.plan import RegionCrop

Plan = list[tuple[ImageRecord, list[RegionCrop], str]]
#: Photos whose crops may wait for the embedder while it is still loading (~5 MB each).
LOADING_DEPTH = 64


def default_workers() -> int:
    """Decoding threads when none are asked for: one per core."""
    return os.cpu_count() or 1


class Prefetch:
    """Decoding and cutting in a thread pool, in plan order, a bounded window ahead of the consumer.

    It starts on creation, so a build can decode while its main thread still imports (the
    imports hold the GIL; the decoders mostly do not need it). ``pace`` is the mean seconds one
    thread spends decoding and cutting one photo.
    """

    def __init__(self, plan: Plan, workers: int, clock: StageClock) -> None:
        self.workers, self.clock = workers, clock
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        self.photos = 0
        self.busy = 0.0
        self.window: deque[tuple[ImageRecord, str, Future]] = deque()
        self._plan = iter(plan)
        self.fill()

    def fill(self) -> None:
        """Keep ``4 × workers`` photos decoding or decoded ahead."""
        while len(self.window) < 4 * self.workers:
            nxt = next(self._plan, None)
            if nxt is None:
                return
            record, crops, signature = nxt
            self.window.append((record, signature, self.submit(record, crops, signature)))

    def close(self) -> None:
        """Cancel what is not started and wait for the threads."""
        for _, _, future in self.window:
            future.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, record: ImageRecord, crops: list[RegionCrop], signature: str) -> Future:
        return self.pool.submit(self._render, record, crops, signature)

    def _render(self, record: ImageRecord, crops: list[RegionCrop], signature: str) -> list[RenderedCrop] | Issue:
        timings: dict[str, float] = {}
        result = render_photo(record, crops, signature, None, timings=timings)
        for stage, seconds in timings.items():
            self.clock.add(stage, seconds)
        self.busy += sum(timings.values())
        self.photos += 1
        return result

    def pace(self) -> float:
        """Mean seconds one thread spends decoding and cutting one photo (0 before the first)."""
        return self.busy / self.photos if self.photos else 0.0


def _write_crops(rendered: list[RenderedCrop], staging: Path, clock: StageClock) -> None:
    with clock.stage("write_crops"):
        for crop in rendered:
            save_crop(crop, staging)


def render_and_embed(photos: Prefetch, staging: Path, model: ModelLoader, store: Any, dataset: str,
                     batch_size: int, clock: StageClock, build_issues: list[Issue],
                     checkpoint: Callable[[list[tuple[str, str, list[str]]], bool], None], checkpoint_every: int,
                     progress: Callable[[int], None] | None, started: float | None = None) -> dict[str, Any]:
    """Decode, cut, write and embed every photo of ``plan``; checkpoint every ``checkpoint_every`` photos.

    Args:
        photos: The photos being decoded and cut (the plan, in order).
        staging: The staging index directory (crop files go to its ``crops/``).
        model: The embedder, loading or loaded.
        store: The node store the embedded nodes are added to.
        dataset: The dataset name the nodes carry.
        batch_size: Crops per forward pass.
        clock: Where each stage's seconds are added.
        build_issues: Photos that could not be decoded are appended here.
        checkpoint: Called with the photos newly in the store, once their crop files are written,
            and whether they are the last (every ``checkpoint_every`` photos and at the end).
        checkpoint_every: Photos between checkpoints.
        progress: Called with 1 per photo handed to the embedder.
        started: The build's start (``time.perf_counter()``), for ``first_embed_s`` (default: now).

    Returns:
        What the threads did: ``decode_workers``, ``torch_threads``, ``bottleneck``,
        ``embedded_crops`` and ``first_embed_s`` (seconds from ``started`` until the first batch began).
    """
    started = time.perf_counter() if started is None else started
    workers = photos.workers
    threads = EmbedThreads(workers)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-crops")
    # While the model loads, decode further ahead: a photo's crops take ~5 MB, and loading a
    # model (imports included) takes as long as decoding dozens of photos on a small CPU.
    embedder = EmbedWorker(model, store, dataset, batch_size, threads, clock,
                           limit=lambda: 4 * workers if model.ready() else max(16 * workers, LOADING_DEPTH),
                           produce_pace=photos.pace)
    writes: deque[Future] = deque()

    def settle_writes(keep: int) -> None:
        while len(writes) > keep:
            writes.popleft().result()

    def commit(complete: bool) -> None:
        done = embedder.drain()
        settle_writes(0)
        checkpoint(done, complete)

    processed = 0
    try:
        while True:
            photos.fill()
            if not photos.window:
                break
            record, signature, future = photos.window.popleft()
            result = future.result()
            if isinstance(result, Issue):
                build_issues.append(result)
            else:
                writes.append(writer.submit(_write_crops, result, staging, clock))
                settle_writes(4 * workers)
                embedder.put(record.image_id, signature, result)
            processed += 1
            if progress:
                progress(1)
            if processed % checkpoint_every == 0:
                commit(False)
        commit(True)
        embedder.close()
    finally:
        embedder.abort()
        photos.close()
        writer.shutdown(wait=True)
        threads.restore()
    return {
        "decode_workers": workers,
        "torch_threads": threads.threads if "torch" in sys.modules else None,
        "bottleneck": threads.bottleneck,
        "embedded_crops": embedder.embedded,
        "first_embed_s": round(embedder.embed_started - started, 3) if embedder.embed_started else None,
    }
