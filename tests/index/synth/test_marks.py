"""Marks change pixels only inside their polygons (index.synth.marks and its callers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.synth import (
    DEFAULT_LABELS,
    plan_labelme,
    polygon_mask,
    render_labelme_photo,
    synthesize_labelme,
)
from index.synth.marks import GENERIC_STYLES, apply_mark, make_mark
from index.synth.vehicle_marks import LABEL_STYLES

SMALL = (640, 480)


def _check_marks(plan) -> int:
    clean, _ = render_labelme_photo(plan, with_marks=False)
    clean = clean.copy()
    marked, shapes = render_labelme_photo(plan)
    h, w = clean.shape[:2]
    diff = np.abs(marked.astype(np.int16) - clean.astype(np.int16)).max(axis=2)
    union = np.zeros((h, w), dtype=bool)
    for label, pts in shapes:
        inside = polygon_mask(pts, w, h)
        union |= inside
        assert diff[inside].mean() > 2.0, (label, diff[inside].mean())
    assert not diff[~union].any()  # marks never spill outside their polygons
    return len(shapes)


def test_marks_differ_from_background_inside_polygons() -> None:
    plans = plan_labelme(12, SMALL, seed=2)
    assert sum(_check_marks(p) for p in plans) > 0
    assert {d.label for p in plans for d in p.damages} == set(DEFAULT_LABELS)


def test_other_taxonomy_uses_generic_marks(tmp_path: Path) -> None:
    labels = ("rust", "hole", "dirt")
    summary = synthesize_labelme(tmp_path, 4, SMALL, seed=3, labels=labels)
    assert set(summary.label_counts) == set(labels) and all(summary.label_counts.values())
    for plan in plan_labelme(4, SMALL, seed=3, labels=labels):
        _check_marks(plan)


@pytest.mark.parametrize("style", [*LABEL_STYLES.values(), *GENERIC_STYLES, "unknown"])
def test_each_style_stays_inside_its_polygon(style: str) -> None:
    for k in range(3):
        rng = np.random.default_rng([k, 11])
        img = np.full((300, 400, 3), 60 + 70 * k, np.uint8)
        before = img.copy()
        spec = make_mark(style, rng, 0.15, angle=0.2 if k else None, label=style)
        assert spec.style == (style if style != "unknown" else "blob")
        pts = apply_mark(img, spec, 200.0, 150.0)
        assert pts is not None and len(pts) >= 3
        changed = (img != before).any(axis=2)
        assert changed.any() and not changed[~polygon_mask(pts, 400, 300)].any()


def test_mark_outside_the_image_draws_nothing() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    spec = make_mark("dent", np.random.default_rng(0), 0.05)
    assert apply_mark(img, spec, -10 * spec.radius, 50.0) is None
    assert not img.any()
