"""The embedder's own throughput: crops/s on crops already cut, nothing else running.

With a real-size model the embedder, not decoding, is what bounds a build; this is that bound.
The crops of the first photos are cut once (as the build cuts them) and held in memory, the
model is loaded and warmed up with one batch, then every crop is embedded in batches of
``embedder.batch_size``, once on one torch thread and once on every core; the faster counts. It runs in a child process of
its own (``python -m index.bench embed-child JSON``).
"""

from __future__ import annotations

import time
from typing import Any


def embedder_throughput(config_path: str, dataset: str, model: str, photos: int,
                        overrides: dict[str, Any] | None = None, min_crops: int = 8) -> dict[str, Any]:
    """Embed the pre-cut crops of the first ``photos`` photos and time it.

    Args:
        config_path: The domain YAML (regions and embedder settings).
        dataset: The dataset folder.
        model: The local model directory.
        photos: Photos whose crops are embedded (more if they give fewer than ``min_crops``).
        overrides: Further config overrides (``embedder.device``, ``embedder.batch_size``).
        min_crops: At least this many crops are timed.

    Returns:
        ``crops``, ``seconds``, ``crops_per_s``, ``ms_per_crop``, ``batch_size``, ``torch_threads``,
        ``device``, ``model_load_s``.
    """
    from index.config import apply_overrides, load_config
    from index.embedders import load_embedder
    from index.inspection import plan_dataset
    from index.regions.cut import RenderedCrop, render_photo

    config = apply_overrides(load_config(config_path),
                             {"dataset.root": dataset, "embedder.model": model, **(overrides or {})})
    scan, crops = plan_dataset(config)
    by_image: dict[str, list[Any]] = {}
    for crop in crops:
        by_image.setdefault(crop.record.image_id, []).append(crop)
    images = []
    for i, record in enumerate(scan.records):
        if i >= photos and len(images) >= min_crops:
            break
        rendered = render_photo(record, by_image.get(record.image_id, []), "floor", None)
        if isinstance(rendered, list):
            images += [c.image for c in rendered if isinstance(c, RenderedCrop)]
    loading = time.perf_counter()
    embedder = load_embedder(config.embedder)
    load_s = time.perf_counter() - loading
    batch = config.embedder.batch_size
    embedder.embed_images(images[:batch])  # warm-up: first forward pass, lazy inits
    import os
    import sys

    torch = sys.modules.get("torch")
    # The best of one thread and every core: on a small or busy CPU torch's threads can wait
    # for each other more than they compute.
    timings = {}
    for threads in sorted({1, os.cpu_count() or 1}) if torch is not None else [None]:
        if threads is not None:
            torch.set_num_threads(threads)
        started = time.perf_counter()
        embedder.embed_images(images)
        timings[threads] = time.perf_counter() - started
    best = min(timings, key=lambda t: timings[t])
    seconds = timings[best]
    if torch is not None:
        torch.set_num_threads(best)
    return {
        "crops": len(images),
        "seconds": seconds,
        "crops_per_s": len(images) / seconds if seconds > 0 else None,
        "ms_per_crop": seconds / len(images) * 1000 if images else None,
        "batch_size": batch,
        "torch_threads": best,
        "seconds_by_threads": {str(k): round(v, 3) for k, v in timings.items()},
        "device": getattr(embedder, "_device", None),
        "model_load_s": load_s,
    }
