"""Writing a synthetic COCO dataset of a neutral domain (textured surface, generic marks)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.synth.dataset import (
    SynthSummary,
    check_request,
    image_scale,
    save_jpeg,
    spread_labels,
)
from index.synth.marks import GENERIC_STYLES, apply_mark, make_mark
from index.synth.polygons import polygon_area
from index.synth.scene import render_neutral_scene

logger = logging.getLogger(__name__)

_COCO_MARK_SCALE = 2.0  # generic marks relative to the image are larger than car scratches
#: ``info.description`` of the written file (kept as it was, so old and new sets are equal).
_DESCRIPTION = "synthetic dataset (index.synth.dataset)"


def synthesize_coco(out_dir: Path, n: int, categories: Sequence[str],
                    size: tuple[int, int] = (1024, 768), seed: int = 0,
                    bbox_only_fraction: float = 0.2) -> SynthSummary:
    """Write a COCO dataset: ``out_dir/images/*.jpg`` and ``out_dir/annotations.json``.

    A neutral textured-surface domain with generic marks (category ``i`` uses style
    ``GENERIC_STYLES[i % 4]`` and a colour derived from its name). About 10 % of images have no
    annotation; a ``bbox_only_fraction`` of annotations keeps only the bbox (empty
    ``segmentation``). Every category appears when ``n >= len(categories)``.
    """
    check_request(n, size, categories, "categories")
    if not 0.0 <= bbox_only_fraction <= 1.0:
        raise ValueError(f"bbox_only_fraction must be in [0, 1], got {bbox_only_fraction}")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    cats = list(categories)
    rng = np.random.default_rng([seed, 0xC0C0])
    empty, primaries = spread_labels(n, cats, rng)
    scale = image_scale(size) * _COCO_MARK_SCALE
    images, image_rows, ann_rows = [], [], []
    counts = {c: 0 for c in cats}
    for i in range(n):
        image = render_neutral_scene(size, np.random.default_rng([seed, i, 3]))
        mrng = np.random.default_rng([seed, i, 4])
        chosen = [] if i in empty else [next(primaries)] + [
            cats[k] for k in mrng.choice(len(cats), int(mrng.integers(0, 4)))]
        for name in chosen:
            ci = cats.index(name)
            spec = make_mark(GENERIC_STYLES[ci % len(GENERIC_STYLES)], mrng, scale, label=name)
            m = min(spec.radius * 0.5, size[0] / 2 - 1, size[1] / 2 - 1)
            pts = apply_mark(image, spec, mrng.uniform(m, size[0] - m),
                             mrng.uniform(m, size[1] - m))
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            bbox_only = bool(mrng.random() < bbox_only_fraction)
            ann_rows.append({
                "id": len(ann_rows) + 1, "image_id": i + 1, "category_id": ci + 1,
                "segmentation": [] if bbox_only else [[v for p in pts for v in p]],
                "bbox": bbox,
                "area": float(bbox[2] * bbox[3]) if bbox_only else polygon_area(pts),
                "iscrowd": 0,
            })
            counts[name] += 1
        name = f"synth_{i:05d}.jpg"
        save_jpeg(image, img_dir / name)
        images.append(img_dir / name)
        image_rows.append({"id": i + 1, "file_name": name, "width": size[0], "height": size[1]})
    doc = {
        "info": {"description": _DESCRIPTION, "version": "1.0"},
        "images": image_rows,
        "annotations": ann_rows,
        "categories": [{"id": k + 1, "name": c} for k, c in enumerate(cats)],
    }
    ann_path = out_dir / "annotations.json"
    ann_path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    secs = time.perf_counter() - start
    logger.info("synthesized %d COCO images (%d annotations) in %s: %.1f s", n, len(ann_rows),
                out_dir, secs)
    return SynthSummary(out_dir, images, [ann_path], counts, secs)
