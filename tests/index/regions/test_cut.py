"""Cutting a photo's crops: boxed reductions give the same crops as reducing the whole photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from index.config import RegionStrategy
from index.imaging.decode import decode_image
from index.imaging.drawing import cut_crop
from index.regions.cut import needed_scale, render_photo
from index.regions.plan import RegionCrop, plan_crops
from tests.index.regions.test_plan import record, region


def _photo(path: Path, size: tuple[int, int]) -> Path:
    rng = np.random.default_rng(3)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], axis=-1)
    noise = rng.integers(0, 60, (h // 8 + 1, w // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:h, :w]
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, quality=92)
    return path


def _reference(photo: Image.Image, scale: float, crop: RegionCrop, size: tuple[int, int]) -> Image.Image:
    """The former path: every factor reduces the whole photo, then cut_crop."""
    factor = max(1, int(scale / needed_scale([crop])))
    small = photo.reduce(factor) if factor > 1 else photo
    return cut_crop(small, crop.crop_box, crop.output_size, (small.width / size[0], small.height / size[1]))


def test_boxed_reductions_match_whole_photo_reductions(tmp_path):
    size = (2000, 1500)
    path = _photo(tmp_path / "a.jpg", size)
    regions = [
        region("scratch", (700, 500, 760, 540)),  # small: full resolution
        region("dent", (100, 200, 650, 700)),  # 1100 px box at the top-left corner: reduce(2) of its box only
        region("crack", (1300, 900, 1990, 1495)),  # 1380 px box, over half the photo: reduce(3) of the whole photo
    ]
    rec = record(regions, size=size)
    rec.image_path = path
    crops = plan_crops(rec, RegionStrategy(kinds=["region", "image"]), "d")
    assert {c.kind for c in crops} == {"region", "image"}
    rendered = render_photo(rec, crops, "0" * 40)
    assert not isinstance(rendered, tuple) and len(rendered) == len(crops)
    photo, scale = decode_image(path, min_scale=needed_scale(crops))
    factors = {max(1, int(scale / needed_scale([c]))) for c in crops}
    assert factors == {1, 2, 3}  # full resolution, a boxed and a whole-photo reduction
    for out, crop in zip(rendered, crops, strict=True):
        assert out.crop is crop and out.image.size == crop.output_size
        ref = np.asarray(_reference(photo, scale, crop, size), dtype=np.int16)
        diff = np.abs(np.asarray(out.image, dtype=np.int16) - ref)
        assert diff.mean() < 0.5 and diff.max() <= 2, (crop.kind, diff.mean(), diff.max())
