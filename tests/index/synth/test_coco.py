"""Tests for the COCO writer of the synthetic dataset generator (index.synth)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from index.synth import synthesize_coco

SMALL = (640, 480)


def test_bad_bbox_only_fraction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bbox_only_fraction"):
        synthesize_coco(tmp_path, 2, ["a"], bbox_only_fraction=1.5)
    with pytest.raises(ValueError, match="categories"):
        synthesize_coco(tmp_path, 2, [])


def test_coco(tmp_path: Path) -> None:
    cats = ["short", "open", "spur", "mousebite", "missing_hole"]
    summary = synthesize_coco(tmp_path, 12, cats, size=SMALL, seed=5, bbox_only_fraction=0.5)
    (ann_path,) = summary.annotation_files
    assert ann_path == tmp_path / "annotations.json"
    doc = json.loads(ann_path.read_text(encoding="utf-8"))
    assert {"images", "annotations", "categories"} <= set(doc)
    assert doc["categories"] == [{"id": i + 1, "name": c} for i, c in enumerate(cats)]
    images = {im["id"]: im for im in doc["images"]}
    assert len(images) == 12 == len(summary.images)
    for im in images.values():
        assert set(im) == {"id", "file_name", "width", "height"}
        path = tmp_path / "images" / im["file_name"]
        with Image.open(path) as pil:
            assert pil.size == (im["width"], im["height"]) == SMALL
    ids, bbox_only = set(), 0
    for ann in doc["annotations"]:
        assert set(ann) == {"id", "image_id", "category_id", "segmentation", "bbox", "area",
                            "iscrowd"}
        assert ann["id"] not in ids and ann["image_id"] in images and ann["iscrowd"] == 0
        ids.add(ann["id"])
        assert 1 <= ann["category_id"] <= len(cats)
        x, y, w, h = ann["bbox"]
        assert min(x, y) >= 0 and w > 0 and h > 0 and x + w < 640 and y + h < 480
        assert ann["area"] > 0
        if not ann["segmentation"]:
            bbox_only += 1
            continue
        (poly,) = ann["segmentation"]
        assert len(poly) >= 6 and len(poly) % 2 == 0
        xs, ys = poly[0::2], poly[1::2]
        assert [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)] == ann["bbox"]
    assert 0 < bbox_only < len(doc["annotations"])
    assert {doc["categories"][a["category_id"] - 1]["name"] for a in doc["annotations"]} == set(cats)
    assert all(summary.label_counts[c] > 0 for c in cats)
