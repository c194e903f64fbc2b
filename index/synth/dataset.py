"""Synthetic labelled datasets for tests, benchmarks and newcomers without data.

:func:`synthesize_labelme` writes car-panel photos with damage marks and one LabelMe 4.6.0 JSON
per photo, in the user's exact layout and naming (image
``zona1_ko_{a}_{b}_{ms}_zona_{zone}_imageDANO_original.jpg`` beside JSON
``zona1_ko_{a}_{b}_{ms}_zona_{zone}_labelDANO_modificado.json``: different stems, ``imagePath``
names the image). Photos come in per-vehicle groups (same prefix, shots seconds to minutes apart,
different zones; vehicles hours apart), with the user's flags (``dudosa``, ``editada``,
``incorrecta``), undamaged photos, shapes with and without ``piece``/``pixelated_type``, and
clusters of tiny scratches. :func:`synthesize_coco` writes a COCO dataset of a neutral domain
(textured surface, generic marks) with some bbox-only annotations.

Every pixel a mark changes lies inside its polygon (see :func:`index.synth.marks.apply_mark`),
and the same seed always gives the same files. Use :func:`plan_labelme` and
:func:`render_labelme_photo` to get the clean background of a photo.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from index.synth.marks import (
    GENERIC_STYLES,
    LABEL_STYLES,
    MarkSpec,
    apply_mark,
    make_mark,
)
from index.synth.polygons import polygon_area
from index.synth.scene import (
    BODY_COLOURS,
    ENVIRONMENTS,
    Scene,
    render_car_scene,
    render_neutral_scene,
)

__all__ = [
    "DEFAULT_LABELS",
    "Damage",
    "PhotoPlan",
    "SynthSummary",
    "labelme_document",
    "parse_size",
    "plan_labelme",
    "render_labelme_photo",
    "synthesize_coco",
    "synthesize_labelme",
]

logger = logging.getLogger(__name__)

DEFAULT_LABELS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6", "7", "8")
LABELME_VERSION = "4.6.0"
ROOT_PREFIX = "Minsait_Old_Dataset/Minsait_Dataset_Images/Minsait_Dataset_Images_Zonas"
JPEG_QUALITY = 85
MIN_SIDE = 64
#: 2019-04-01T00:00:00Z in milliseconds since the epoch.
APRIL_2019_MS = 1554076800000
#: How often each vehicle label is drawn beyond the guaranteed cycle (scratches dominate).
_LABEL_WEIGHTS = {"1": 0.34, "2": 0.15, "3": 0.10, "4": 0.10, "5": 0.08, "6": 0.07, "7": 0.07,
                  "8": 0.09}
_HOUR_MS = 3_600_000
_COCO_MARK_SCALE = 2.0  # generic marks relative to the image are larger than car scratches


@dataclass(frozen=True)
class Damage:
    """One damage to draw: ``count`` > 1 is a cluster of small same-label scratches, each its
    own shape."""

    label: str
    count: int = 1


@dataclass(frozen=True)
class PhotoPlan:
    """Everything about one synthetic LabelMe photo except its pixels and polygons."""

    index: int
    seed: int
    size: tuple[int, int]
    vehicle: int
    prefix: str
    timestamp_ms: int
    zone: int
    body_rgb: tuple[int, int, int]
    environment: str
    damages: tuple[Damage, ...]
    dudosa: bool
    editada: bool
    incorrecta: bool
    extra_keys: str  # which shapes carry piece/pixelated_type: "all", "none" or "mixed"
    piece: int
    pixelated_type: int

    @property
    def stem_prefix(self) -> str:
        return f"{self.prefix}_{self.timestamp_ms}_zona_{self.zone}"

    @property
    def image_name(self) -> str:
        return f"{self.stem_prefix}_imageDANO_original.jpg"

    @property
    def json_name(self) -> str:
        return f"{self.stem_prefix}_labelDANO_modificado.json"

    @property
    def root(self) -> str:
        return f"{ROOT_PREFIX}/{self.zone}/{self.image_name}"


@dataclass
class SynthSummary:
    """What a synthesis run wrote.

    ``label_counts`` counts shapes (LabelMe) or annotations (COCO) per label, every requested
    label included; ``vehicles`` gives, for LabelMe, the vehicle index of each image.
    """

    out_dir: Path
    images: list[Path]
    annotation_files: list[Path]
    label_counts: dict[str, int]
    seconds: float
    vehicles: list[int] = field(default_factory=list)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / len(self.images) if self.images else 0.0


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"4000x3000"`` (also ``X`` or ``×``, spaces allowed) into ``(width, height)``."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"invalid size {text!r}: expected WIDTHxHEIGHT, e.g. '4000x3000'")
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0:
        raise ValueError(f"invalid size {text!r}: width and height must be positive")
    return w, h


def _check(n: int, size: tuple[int, int], labels: Sequence[str], what: str) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if len(size) != 2 or min(size) < MIN_SIDE:
        raise ValueError(f"size must be (width, height) with both >= {MIN_SIDE}, got {size}")
    if not labels:
        raise ValueError(f"{what} must not be empty")
    if len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
        raise ValueError(f"{what} must be distinct non-empty strings, got {list(labels)}")


def _scale(size: tuple[int, int]) -> float:
    """Image scale relative to the user's 4000×3000 photos."""
    return math.sqrt(size[0] * size[1] / 12e6)


def _cycle(labels: Sequence[str], count: int, rng: np.random.Generator) -> list[str]:
    """``count`` labels covering every label once per cycle, in shuffled order."""
    out: list[str] = []
    while len(out) < count:
        out += [labels[i] for i in rng.permutation(len(labels))]
    return out[:count]


def plan_labelme(n: int, size: tuple[int, int] = (4000, 3000), seed: int = 0,
                 labels: Sequence[str] = DEFAULT_LABELS) -> list[PhotoPlan]:
    """Plan ``n`` photos: vehicles, file names, flags and damages (deterministic per seed)."""
    _check(n, size, labels, "labels")
    labels = tuple(labels)
    rng = np.random.default_rng([seed, 0x5EED])
    n_clean = min(round(0.1 * n), max(0, n - len(labels)))
    clean = set(rng.choice(n, n_clean, replace=False).tolist()) if n_clean else set()
    primaries = iter(_cycle(labels, n - n_clean, rng))
    weights = np.array([_LABEL_WEIGHTS.get(x, 0.1) for x in labels])
    weights = weights / weights.sum()
    colours = [c for c, _ in BODY_COLOURS]
    colour_p = np.array([p for _, p in BODY_COLOURS])
    colour_p = colour_p / colour_p.sum()
    # vehicles hours apart, and the whole set inside April 2019 (2,711 photos: about 23 days)
    mean_gap_h = min(6.0, max(1.25, 650.0 / max(1, math.ceil(n / 6))))
    t = APRIL_2019_MS + int(rng.integers(7 * _HOUR_MS, 10 * _HOUR_MS))
    plans: list[PhotoPlan] = []
    vehicle = 0
    while len(plans) < n:
        prefix = f"zona1_ko_{int(rng.integers(1, 5))}_{int(rng.integers(1, 10))}"
        body = colours[int(rng.choice(len(colours), p=colour_p))]
        env = ENVIRONMENTS[int(rng.integers(len(ENVIRONMENTS)))]
        shots = min(int(rng.integers(3, 10)), n - len(plans))
        zones = (rng.permutation(9)[:shots] + 1).tolist()
        for j, zone in enumerate(zones):
            if j:
                t += int(rng.integers(5_000, 180_000))
            i = len(plans)
            damages: list[Damage] = []
            if i not in clean:
                chosen = [next(primaries)]
                extra = int(rng.choice(4, p=[0.45, 0.3, 0.15, 0.1]))
                chosen += [labels[k] for k in rng.choice(len(labels), extra, p=weights)]
                for lab in chosen:
                    cluster = LABEL_STYLES.get(lab) == "scratch" and rng.random() < 0.25
                    damages.append(Damage(lab, int(rng.integers(3, 8)) if cluster else 1))
            plans.append(PhotoPlan(
                index=i, seed=seed, size=(int(size[0]), int(size[1])), vehicle=vehicle,
                prefix=prefix, timestamp_ms=t, zone=int(zone), body_rgb=body, environment=env,
                damages=tuple(damages), dudosa=bool(rng.random() < 0.10),
                editada=bool(rng.random() < 0.5), incorrecta=bool(rng.random() < 0.03),
                extra_keys=str(rng.choice(["all", "none", "mixed"], p=[0.45, 0.35, 0.2])),
                piece=int(rng.integers(1, 13)), pixelated_type=int(rng.integers(1, 4))))
        vehicle += 1
        t += int(rng.uniform(1.0, 2 * mean_gap_h - 1.0) * _HOUR_MS)
    return plans


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


def _render(plan: PhotoPlan, with_marks: bool
            ) -> tuple[Image.Image, list[tuple[str, list[list[int]]]]]:
    scene = render_car_scene(plan.size, np.random.default_rng([plan.seed, plan.index, 1]),
                             plan.zone, plan.body_rgb, plan.environment)
    img = scene.image
    if not with_marks:
        return img, []
    rng = np.random.default_rng([plan.seed, plan.index, 2])
    scale = _scale(plan.size)
    placed: list[tuple[float, float, float]] = []
    shapes: list[tuple[str, list[list[int]]]] = []
    for dmg in plan.damages:
        style = LABEL_STYLES.get(dmg.label, "blob")
        if dmg.count > 1:
            specs = [make_mark(style, rng, scale, size=0.45) for _ in range(dmg.count)]
            spread = max(15.0, 150.0 * scale)
            cx, cy = _place(scene, rng, spread + max(s.radius for s in specs), placed)
            placed.append((cx, cy, spread))
            for spec in specs:
                ox, oy = rng.uniform(-spread, spread, 2)
                pts = apply_mark(img, spec, cx + ox, cy + oy)
                if pts:
                    shapes.append((dmg.label, pts))
            continue
        on_gap = _mark_on_gap(scene, rng, scale) if style == "misaligned" else None
        if on_gap:
            spec, cx, cy = on_gap
        else:
            spec = make_mark(style, rng, scale, label=dmg.label)
            cx, cy = _place(scene, rng, spec.radius, placed)
        placed.append((cx, cy, spec.radius))
        pts = apply_mark(img, spec, cx, cy)
        if pts:
            shapes.append((dmg.label, pts))
    return img, shapes


def render_labelme_photo(plan: PhotoPlan, *, with_marks: bool = True
                         ) -> tuple[np.ndarray, list[tuple[str, list[list[int]]]]]:
    """Render one planned photo: ``(pixels H×W×3 uint8, [(label, points), ...])``.

    With ``with_marks=False`` the same clean background is returned with no shapes, so a
    test can compare marked and clean pixels.
    """
    img, shapes = _render(plan, with_marks)
    return np.array(img), shapes


def labelme_document(plan: PhotoPlan, shapes: Sequence[tuple[str, list[list[int]]]]) -> dict:
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


def _save_jpeg(image: Image.Image, path: Path) -> None:
    image.save(path, "JPEG", quality=JPEG_QUALITY)


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
        _save_jpeg(image, out_dir / plan.image_name)
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


def synthesize_coco(out_dir: Path, n: int, categories: Sequence[str],
                    size: tuple[int, int] = (1024, 768), seed: int = 0,
                    bbox_only_fraction: float = 0.2) -> SynthSummary:
    """Write a COCO dataset: ``out_dir/images/*.jpg`` and ``out_dir/annotations.json``.

    A neutral textured-surface domain with generic marks (category ``i`` uses style
    ``GENERIC_STYLES[i % 4]`` and a colour derived from its name). About 10 % of images have no
    annotation; a ``bbox_only_fraction`` of annotations keeps only the bbox (empty
    ``segmentation``). Every category appears when ``n >= len(categories)``.
    """
    _check(n, size, categories, "categories")
    if not 0.0 <= bbox_only_fraction <= 1.0:
        raise ValueError(f"bbox_only_fraction must be in [0, 1], got {bbox_only_fraction}")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    cats = list(categories)
    rng = np.random.default_rng([seed, 0xC0C0])
    n_empty = min(round(0.1 * n), max(0, n - len(cats)))
    empty = set(rng.choice(n, n_empty, replace=False).tolist()) if n_empty else set()
    primaries = iter(_cycle(cats, n - n_empty, rng))
    scale = _scale(size) * _COCO_MARK_SCALE
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
        _save_jpeg(image, img_dir / name)
        images.append(img_dir / name)
        image_rows.append({"id": i + 1, "file_name": name, "width": size[0], "height": size[1]})
    doc = {
        "info": {"description": "synthetic dataset (index.synth.dataset)", "version": "1.0"},
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
