"""Rendering and embedding the crops a retrieval evaluation plans.

Each photo is decoded once for all its crops (:func:`index.regions.cut.render_photo`, in
threads, a bounded window ahead) and the crops are embedded in batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from index.dataset.records import ImageRecord, Issue
from index.evaluation.context import Progress
from index.regions.cut import render_photo
from index.regions.plan import RegionCrop


def _rendered(plan: list[tuple[ImageRecord, list[RegionCrop]]], workers: int) -> Iterator[tuple[ImageRecord, Any]]:
    """Decode each photo once (in threads, at most ``2 × workers`` in flight), in plan order."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval-decode") as pool:
        window: deque[tuple[ImageRecord, Any]] = deque()
        queue = iter(plan)
        try:
            while True:
                while len(window) < 2 * workers:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    record, crops = nxt
                    future = pool.submit(render_photo, record, crops, "eval") if crops else None
                    window.append((record, future))
                if not window:
                    break
                record, future = window.popleft()
                yield record, (future.result() if future is not None else [])
        finally:
            for _, future in window:
                if future is not None:
                    future.cancel()


def embed_plan(
    plan: list[tuple[ImageRecord, list[RegionCrop]]],
    embedder: Any,
    *,
    batch_size: int = 16,
    workers: int = 2,
    progress: Progress | None = None,
) -> tuple[list[RegionCrop], np.ndarray, list[Issue]]:
    """Render and embed every planned crop: each photo decoded once, crops embedded in batches.

    Args:
        plan: ``(record, crops)`` per photo.
        embedder: A loaded embedder (``embed_images`` returns unit float32 rows).
        batch_size: Crops per forward pass.
        workers: Decoding threads.
        progress: Called with 1 after each photo.

    Returns:
        The crops that were embedded, their vectors (one row each) and the photos that could
        not be decoded.
    """
    crops: list[RegionCrop] = []
    chunks: list[np.ndarray] = []
    issues: list[Issue] = []
    pending: list[Any] = []

    def flush() -> None:
        if pending:
            chunks.append(np.asarray(embedder.embed_images([r.image for r in pending]), dtype=np.float32))
            crops.extend(r.crop for r in pending)
            for rendered in pending:
                rendered.image.close()
            pending.clear()

    for _record, result in _rendered(plan, workers):
        if isinstance(result, Issue):
            issues.append(result)
        else:
            pending.extend(result)
            if len(pending) >= batch_size:
                flush()
        if progress:
            progress(1)
    flush()
    dim = chunks[0].shape[1] if chunks else 0
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, dim), dtype=np.float32)
    return crops, vectors, issues
