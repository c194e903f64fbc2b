"""The naive baseline of the indexing benchmark: one full decode per crop, one crop per pass.

It runs in a child process of its own (``python -m index.bench naive-child JSON``), so its
peak memory is measured apart from the benchmark's.
"""

from __future__ import annotations

import time
from typing import Any


def naive_baseline(config_path: str, dataset: str, model: str, photos: int,
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Full decode of the photo for each crop, cut, embed one crop at a time; no crop files.

    ``overrides`` are further config overrides (``embedder.device``).
    """
    from index.config import apply_overrides, load_config
    from index.embedders import load_embedder
    from index.imaging.decode import decode_image
    from index.imaging.drawing import cut_crop
    from index.inspection import plan_dataset

    config = apply_overrides(load_config(config_path), {"dataset.root": dataset, "embedder.model": model, **(overrides or {})})
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
