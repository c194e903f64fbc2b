"""Inputs of the indexing benchmark: the synthetic dataset (cached) and the models.

Two models, both randomly initialised from a config and saved like real ones, so they load
through the same ``from_pretrained(path)`` code as a downloaded model (no weights are fetched):
the tiny DINOv2 (:func:`ensure_tiny_model`, decoding dominates) and a DINOv2-base-sized one
(:func:`ensure_base_model`, the real compute cost of the default embedder).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

COMPLETE_MARKER = ".bench_complete"  # not *.json: the LabelMe adapter must not read it
MODEL_DIR_NAME = "tiny-dinov2"
BASE_MODEL_DIR_NAME = "random-dinov2-base"
#: ``--model-size``: which random model the benchmark embeds with.
MODEL_SIZES = ("tiny", "base")
#: Camera-like photos: luminance grain of this standard deviation, saved at this JPEG quality.
#: Plain synthetic renders are smooth (0.6 MB, ~28 ms to decode); real 12 MP photos are 3-6 MB
#: and decode ~3x slower, and the issue's targets are relative to that decode cost.
DEFAULT_GRAIN = 8.0
DEFAULT_QUALITY = 95


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

    The photos and JSONs of :func:`index.synth.synthesize_labelme` (same plan, same names),
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


def ensure_base_model(path: Path, seed: int = 0) -> Path:
    """A randomly initialised DINOv2 the size of ``facebook/dinov2-base``; reused when present.

    The architecture (768-d, 12 layers, 12 heads, patch 14, 518 px position grid, 86 M
    parameters) and the image processor (shortest edge 256, centre crop 224, bicubic, ImageNet
    mean and std) are those of the real model, so a forward pass costs what the real one costs;
    the weights are random, so the vectors mean nothing.
    """
    if (path / "config.json").is_file() and (path / "preprocessor_config.json").is_file() and any(path.glob("*.safetensors")):
        return path
    import shutil

    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    config = Dinov2Config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4,
                          patch_size=14, image_size=518, layerscale_value=1.0)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    Dinov2Model(config).save_pretrained(tmp)
    BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
                      do_center_crop=True, image_mean=[0.485, 0.456, 0.406],
                      image_std=[0.229, 0.224, 0.225]).save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.replace(path)
    return path
