"""Tests for the LabelMe writer of the synthetic dataset generator (index.synth)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from PIL import Image

from index.synth import DEFAULT_LABELS, parse_size, polygon_area, synthesize_labelme

SAMPLE = Path("/work/shared/samples/labelme_example.json")
# Key sets of the user's real file (samples/labelme_example.json).
TOP_KEYS = {"dudosa", "editada", "flags", "imageData", "imageHeight", "imagePath", "imageWidth",
            "incorrecta", "root", "shapes", "version"}
SHAPE_KEYS = {"flags", "group_id", "label", "piece", "pixelated_type", "points", "shape_type"}
SHAPE_REQUIRED = SHAPE_KEYS - {"piece", "pixelated_type"}
NAME = re.compile(r"^(zona1_ko_\d+_\d+)_(\d{13})_zona_([1-9])_(imageDANO_original\.jpg|"
                  r"labelDANO_modificado\.json)$")
SMALL = (640, 480)



@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("labelme")
    calls: list[int] = []
    summary = synthesize_labelme(out, 20, SMALL, seed=1, progress=calls.append)
    docs = {p: json.loads(p.read_text(encoding="utf-8")) for p in summary.annotation_files}
    return summary, docs, calls


def test_parse_size() -> None:
    assert parse_size("4000x3000") == (4000, 3000)
    assert parse_size(" 640 X 480 ") == (640, 480)
    assert parse_size("1024×768") == (1024, 768)
    for bad in ("4000", "4000x", "x3000", "0x10", "axb", "40x30x2", "-4x3", ""):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        synthesize_labelme(tmp_path, -1, SMALL)
    with pytest.raises(ValueError):
        synthesize_labelme(tmp_path, 2, (32, 32))
    with pytest.raises(ValueError):
        synthesize_labelme(tmp_path, 2, SMALL, labels=("1", "1"))


def test_files_pair_by_image_path(small) -> None:
    summary, docs, calls = small
    assert len(summary.images) == len(summary.annotation_files) == 20
    assert calls == list(range(1, 21))
    assert {p.name for p in summary.out_dir.iterdir()} == (
        {p.name for p in summary.images} | {p.name for p in summary.annotation_files})
    for json_path, doc in docs.items():
        image = json_path.parent / doc["imagePath"]
        assert image.is_file() and image.stem != json_path.stem
        mj, mi = NAME.match(json_path.name), NAME.match(image.name)
        assert mj and mi and mj.groups()[:3] == mi.groups()[:3]
        assert mi.group(4) == "imageDANO_original.jpg"
        assert mj.group(4) == "labelDANO_modificado.json"
        zone = mi.group(3)
        assert doc["root"] == ("Minsait_Old_Dataset/Minsait_Dataset_Images/"
                               f"Minsait_Dataset_Images_Zonas/{zone}/{image.name}")
        with Image.open(image) as im:
            assert im.format == "JPEG" and im.size == (doc["imageWidth"], doc["imageHeight"])
        assert (doc["imageWidth"], doc["imageHeight"]) == SMALL


def test_json_layout_matches_sample(small) -> None:
    _, docs, _ = small
    if SAMPLE.is_file():
        sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
        assert set(sample) == TOP_KEYS
        assert set().union(*(s.keys() for s in sample["shapes"])) == SHAPE_KEYS
    with_extra = without_extra = 0
    for path, doc in docs.items():
        assert list(doc) == sorted(TOP_KEYS)  # same keys, same (alphabetical) order
        assert path.read_text(encoding="utf-8").startswith('{\n    "dudosa": ')
        assert doc["version"] == "4.6.0" and doc["flags"] == {} and doc["imageData"] is None
        assert all(isinstance(doc[k], bool) for k in ("dudosa", "editada", "incorrecta"))
        for shape in doc["shapes"]:
            assert SHAPE_REQUIRED <= set(shape) <= SHAPE_KEYS
            assert shape["flags"] == {} and shape["group_id"] is None
            assert shape["shape_type"] == "polygon"
            if "piece" in shape:
                assert isinstance(shape["piece"], int)
                assert isinstance(shape["pixelated_type"], int)
                with_extra += 1
            else:
                assert "pixelated_type" not in shape
                without_extra += 1
    assert with_extra and without_extra


def test_every_label_and_undamaged(small) -> None:
    summary, docs, _ = small
    seen = [s["label"] for d in docs.values() for s in d["shapes"]]
    assert set(seen) == set(DEFAULT_LABELS)
    assert summary.label_counts == {lab: seen.count(lab) for lab in DEFAULT_LABELS}
    assert any(not d["shapes"] for d in docs.values())


def test_polygons_valid(small) -> None:
    _, docs, _ = small
    for doc in docs.values():
        w, h = doc["imageWidth"], doc["imageHeight"]
        for shape in doc["shapes"]:
            pts = shape["points"]
            assert len(pts) >= 3
            assert all(isinstance(v, int) for p in pts for v in p)
            assert all(0 <= x < w and 0 <= y < h for x, y in pts)
            assert polygon_area(pts) > 0


def test_vehicle_groups(small) -> None:
    summary, _, _ = small
    rows = []
    for image, vehicle in zip(summary.images, summary.vehicles, strict=True):
        m = NAME.match(image.name)
        assert m
        rows.append((int(m.group(2)), m.group(1), int(m.group(3)), vehicle))
    rows.sort()
    assert 2 <= len({r[3] for r in rows}) < len(rows)
    for (t0, p0, _, v0), (t1, p1, _, v1) in zip(rows, rows[1:], strict=False):
        assert t1 > t0
        if v0 == v1:
            assert p0 == p1 and 1_000 <= t1 - t0 <= 5 * 60_000  # seconds to minutes apart
        else:
            assert t1 - t0 >= 3_600_000  # vehicles are hours apart
    for v in {r[3] for r in rows}:
        zones = [r[2] for r in rows if r[3] == v]
        assert len(zones) == len(set(zones))
    assert all(1554076800000 <= r[0] < 1556668800000 for r in rows)  # April 2019


def test_deterministic(tmp_path: Path) -> None:
    a = synthesize_labelme(tmp_path / "a", 5, SMALL, seed=7)
    b = synthesize_labelme(tmp_path / "b", 5, SMALL, seed=7)
    c = synthesize_labelme(tmp_path / "c", 5, SMALL, seed=8)
    for pa, pb in zip(a.images + a.annotation_files, b.images + b.annotation_files, strict=True):
        assert pa.name == pb.name and pa.read_bytes() == pb.read_bytes()
    assert {p.name for p in a.images} != {p.name for p in c.images}


def test_full_resolution_photo(tmp_path: Path) -> None:
    start = time.perf_counter()
    summary = synthesize_labelme(tmp_path, 1, seed=4)
    elapsed = time.perf_counter() - start
    doc = json.loads(summary.annotation_files[0].read_text(encoding="utf-8"))
    assert (doc["imageWidth"], doc["imageHeight"]) == (4000, 3000)
    with Image.open(summary.images[0]) as im:
        assert im.size == (4000, 3000)
    assert doc["shapes"] and all(
        all(0 <= x < 4000 and 0 <= y < 3000 for x, y in s["points"]) for s in doc["shapes"])
    assert elapsed < 5.0  # about 0.35 s on one core; generous for slow CI machines
