"""Drawing planned car photos and writing them in the user's exact LabelMe 4.6.0 layout.

One JPEG and one JSON per photo in a single folder, different stems (``imagePath`` names the
image), with the user's flags (``dudosa``, ``editada``, ``incorrecta``), undamaged photos,
shapes with and without ``piece``/``pixelated_type``, and clusters of tiny scratches. The plan
comes from :func:`index.synth.plan.plan_labelme`; use :func:`render_labelme_photo` with
``with_marks=False`` to get the clean background of a photo.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from index.synth.dataset import SynthSummary, image_scale, save_jpeg
from index.synth.drawing import MarkSpec
from index.synth.marks import apply_mark, make_mark
from index.synth.plan import DEFAULT_LABELS, PhotoPlan, plan_labelme
from index.synth.scene import Scene, render_car_scene
from index.synth.vehicle_marks import LABEL_STYLES

logger = logging.getLogger(__name__)

LABELME_VERSION = "4.6.0"
Shape = tuple[str, list[list[int]]]


def _place(scene: Scene, rng: np.random.Generator, radius: float,
           placed: list[tuple[float, float, float]]) -> tuple[float, float]:
    """A centre on the painted body, the mark mostly on the body and off earlier marks."""
    wid, hgt = scene.image.size
    m = min(radius * 0.6, wid / 2 - 1, hgt / 2 - 1)
    best: tuple[float, float] | None = None
    for attempt in range(60):
        x, y = rng.uniform(m, wid - m), rng.uniform(m, hgt - m)
        if not scene.is_placeable(x, y):
            continue
        best = best or (x, y)
        k = 0.85 * radius
        on_body = all(scene.is_placeable(x + k * math.cos(a), y + k * math.sin(a))
                      for a in np.linspace(0, 2 * math.pi, 8, endpoint=False))
        free = all(math.hypot(x - px, y - py) > 0.8 * (radius + pr) for px, py, pr in placed)
        if on_body and (free or attempt >= 40):
            return x, y
    return best or (rng.uniform(m, wid - m), rng.uniform(m, hgt - m))


def _mark_on_gap(scene: Scene, rng: np.random.Generator, scale: float
                 ) -> tuple[MarkSpec, float, float] | None:
    if not scene.gaps:
        return None
    x0, y0, x1, y1 = scene.gaps[int(rng.integers(len(scene.gaps)))]
    t = rng.uniform(0.2, 0.8)
    spec = make_mark("misaligned", rng, scale, angle=math.atan2(y1 - y0, x1 - x0))
    return spec, x0 + t * (x1 - x0), y0 + t * (y1 - y0)


def _render(plan: PhotoPlan, with_marks: bool) -> tuple[Image.Image, list[Shape]]:
    scene = render_car_scene(plan.size, np.random.default_rng([plan.seed, plan.index, 1]),
                             plan.zone, plan.body_rgb, plan.environment)
    img = scene.image
    if not with_marks:
        return img, []
    rng = np.random.default_rng([plan.seed, plan.index, 2])
    scale = image_scale(plan.size)
    placed: list[tuple[float, float, float]] = []
    shapes: list[Shape] = []
    for dmg in plan.damages:
        style = LABEL_STYLES.get(dmg.label, "blob")
        marks: list[tuple[MarkSpec, float, float]]
        if dmg.count > 1:  # a cluster of small scratches around one placed centre
            specs = [make_mark(style, rng, scale, size=0.45) for _ in range(dmg.count)]
            spread = max(15.0, 150.0 * scale)
            cx, cy = _place(scene, rng, spread + max(s.radius for s in specs), placed)
            placed.append((cx, cy, spread))
            marks = []
            for spec in specs:
                ox, oy = rng.uniform(-spread, spread, 2)
                marks.append((spec, cx + ox, cy + oy))
        else:
            on_gap = _mark_on_gap(scene, rng, scale) if style == "misaligned" else None
            if on_gap:
                spec, cx, cy = on_gap
            else:
                spec = make_mark(style, rng, scale, label=dmg.label)
                cx, cy = _place(scene, rng, spec.radius, placed)
            placed.append((cx, cy, spec.radius))
            marks = [(spec, cx, cy)]
        for spec, x, y in marks:
            pts = apply_mark(img, spec, x, y)
            if pts:
                shapes.append((dmg.label, pts))
    return img, shapes


def render_labelme_photo(plan: PhotoPlan, *, with_marks: bool = True
                         ) -> tuple[np.ndarray, list[Shape]]:
    """Render one planned photo: ``(pixels H×W×3 uint8, [(label, points), ...])``.

    With ``with_marks=False`` the same clean background is returned with no shapes, so a
    test can compare marked and clean pixels.
    """
    img, shapes = _render(plan, with_marks)
    return np.array(img), shapes


def labelme_document(plan: PhotoPlan, shapes: Sequence[Shape]) -> dict:
    """The LabelMe JSON of a photo, keys and order as in the user's files."""
    out = []
    for k, (label, points) in enumerate(shapes):
        shape: dict = {"flags": {}, "group_id": None, "label": label}
        if plan.extra_keys == "all" or (plan.extra_keys == "mixed" and k < len(shapes) / 2):
            shape["piece"] = plan.piece
            shape["pixelated_type"] = plan.pixelated_type
        shape["points"] = [[int(x), int(y)] for x, y in points]
        shape["shape_type"] = "polygon"
        out.append(shape)
    return {
        "dudosa": plan.dudosa,
        "editada": plan.editada,
        "flags": {},
        "imageData": None,
        "imageHeight": plan.size[1],
        "imagePath": plan.image_name,
        "imageWidth": plan.size[0],
        "incorrecta": plan.incorrecta,
        "root": plan.root,
        "shapes": out,
        "version": LABELME_VERSION,
    }


def synthesize_labelme(out_dir: Path, n: int, size: tuple[int, int] = (4000, 3000),
                       seed: int = 0, labels: Sequence[str] = DEFAULT_LABELS,
                       progress: Callable[[int], None] | None = None) -> SynthSummary:
    """Write ``n`` car photos (JPEG) and their LabelMe JSONs into ``out_dir`` (one folder).

    Every label in ``labels`` appears at least once when ``n >= len(labels)``; labels outside
    "1".."8" are drawn as generic blobs. ``progress`` is called with the number of photos
    written so far. Deterministic for a given ``seed``.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    plans = plan_labelme(n, size, seed, labels)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {lab: 0 for lab in labels}
    images: list[Path] = []
    jsons: list[Path] = []
    for k, plan in enumerate(plans, 1):
        image, shapes = _render(plan, with_marks=True)
        save_jpeg(image, out_dir / plan.image_name)
        doc = labelme_document(plan, shapes)
        (out_dir / plan.json_name).write_text(json.dumps(doc, indent=4, ensure_ascii=False),
                                              encoding="utf-8")
        for label, _ in shapes:
            counts[label] = counts.get(label, 0) + 1
        images.append(out_dir / plan.image_name)
        jsons.append(out_dir / plan.json_name)
        if progress is not None:
            progress(k)
    secs = time.perf_counter() - start
    summary = SynthSummary(out_dir, images, jsons, counts, secs, [p.vehicle for p in plans])
    logger.info("synthesized %d LabelMe photos (%dx%d, %d vehicles) in %s: %.1f s, %.3f s/photo",
                n, size[0], size[1], len({p.vehicle for p in plans}), out_dir, secs,
                summary.seconds_per_image)
    return summary
