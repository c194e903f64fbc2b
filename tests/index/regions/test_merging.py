"""Merging nearby regions at scale (index/regions/merging.py) against a brute-force reference."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from index.bench.merging import (
    format_merge_table,
    merge_benchmark,
    pairwise_merge,
    synthetic_record,
)
from index.config import RegionStrategy
from index.dataset.records import ImageRecord, Region
from index.imaging import geometry
from index.regions.merging import merge_boxes
from index.regions.plan import merge_regions

SIZE = (4000, 3000)


def region(label: str, box: tuple[float, float, float, float]) -> Region:
    x0, y0, x1, y1 = box
    poly = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return Region(label, label, label.title(), "polygon", poly, box, geometry.polygon_area(poly))


def record(regions: list[Region], size: tuple[int, int] = SIZE) -> ImageRecord:
    return ImageRecord("a.jpg", Path("a.jpg"), Path("a.json"), size[0], size[1], True, False, "RGB", regions)


def random_record(rng: random.Random, n: int, spread: float, labels: str = "ab", big: float = 0.0) -> ImageRecord:
    """``n`` marks of up to ``big`` (fraction of the marks) large ones, packed into ``spread`` of the photo."""
    regions = []
    for _ in range(n):
        side = rng.uniform(100, 900) if rng.random() < big else rng.uniform(0, 60)
        w, h = side, rng.uniform(0, side)
        if rng.random() < 0.5:
            w, h = h, w
        x = rng.uniform(0, spread * SIZE[0] - w) if spread * SIZE[0] > w else 0.0
        y = rng.uniform(0, spread * SIZE[1] - h) if spread * SIZE[1] > h else 0.0
        if rng.random() < 0.1:  # on the grid: equal edges and gaps of exactly the limit happen
            x, y, w, h = round(x / 40) * 40, round(y / 40) * 40, round(w / 40) * 40, round(h / 40) * 40
        regions.append(region(rng.choice(labels), (x, y, x + w, y + h)))
    return record(regions)


def brute_force(rec: ImageRecord, strategy: RegionStrategy) -> list[list[int]]:
    """The rule, spelt out: merge any mergeable pair of groups until none is left."""
    limit = strategy.merge_distance * rec.long_side
    max_side = strategy.merge_max_side * rec.long_side
    groups = [[i] for i in range(len(rec.regions))]
    boxes = [r.bbox for r in rec.regions]
    keys = [r.label_key for r in rec.regions]
    if limit <= 0:
        return groups
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                joint = geometry.union_box([boxes[i], boxes[j]])
                if (keys[i] == keys[j] and geometry.box_gap(boxes[i], boxes[j]) <= limit
                        and max(joint[2] - joint[0], joint[3] - joint[1]) <= max_side):
                    groups[i] += groups.pop(j)
                    boxes[i] = joint
                    del boxes[j], keys[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(sorted(g) for g in groups)


def indices(rec: ImageRecord, groups: list[list[Region]]) -> list[list[int]]:
    at = {id(r): i for i, r in enumerate(rec.regions)}
    return [[at[id(r)] for r in group] for group in groups]


def check_groups(rec: ImageRecord, strategy: RegionStrategy, groups: list[list[int]]) -> None:
    """Every region once, one label per group, ordered, within the cap, and a fixpoint."""
    limit = strategy.merge_distance * rec.long_side
    max_side = strategy.merge_max_side * rec.long_side
    assert sorted(i for g in groups for i in g) == list(range(len(rec.regions)))
    assert all(g == sorted(g) for g in groups) and [g[0] for g in groups] == sorted(g[0] for g in groups)
    boxes = [geometry.union_box([rec.regions[i].bbox for i in g]) for g in groups]
    keys = []
    for g, box in zip(groups, boxes, strict=True):
        assert len({rec.regions[i].label_key for i in g}) == 1
        keys.append(rec.regions[g[0]].label_key)
        if len(g) > 1:
            assert max(box[2] - box[0], box[3] - box[1]) <= max_side
    # fixpoint: screen all pairs with arrays (a hair of tolerance), then decide exactly
    b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    label = np.array([sorted(set(keys)).index(k) for k in keys])
    for i in range(len(groups)):
        rest = slice(i + 1, None)
        dx = np.maximum(np.maximum(b[i, 0], b[rest, 0]) - np.minimum(b[i, 2], b[rest, 2]), 0)
        dy = np.maximum(np.maximum(b[i, 1], b[rest, 1]) - np.minimum(b[i, 3], b[rest, 3]), 0)
        side = np.maximum(np.maximum(b[i, 2], b[rest, 2]) - np.minimum(b[i, 0], b[rest, 0]),
                          np.maximum(b[i, 3], b[rest, 3]) - np.minimum(b[i, 1], b[rest, 1]))
        close = (label[rest] == label[i]) & (np.hypot(dx, dy) <= limit * (1 + 1e-9)) & (side <= max_side * (1 + 1e-9))
        for j in (np.flatnonzero(close) + i + 1).tolist():
            joint = geometry.union_box([boxes[i], boxes[j]])
            assert not (geometry.box_gap(boxes[i], boxes[j]) <= limit
                        and max(joint[2] - joint[0], joint[3] - joint[1]) <= max_side), (groups[i], groups[j])


def test_twenty_thousand_marks_in_one_photo_reach_a_fixpoint():
    rec = synthetic_record(20_000, seed=3)
    strategy = RegionStrategy()
    groups = indices(rec, merge_regions(rec, strategy))
    assert 1 < len(groups) < 20_000 and max(len(g) for g in groups) > 100
    check_groups(rec, strategy, groups)
    assert indices(rec, merge_regions(rec, strategy)) == groups  # deterministic


def test_without_the_cap_the_result_is_the_brute_force_one():
    rng = random.Random(7)
    strategy = RegionStrategy(merge_distance=0.02, merge_max_side=1.0)  # never binds inside the photo
    for case in range(300):
        rec = random_record(rng, rng.randint(0, 40), spread=rng.choice([0.05, 0.1, 0.3, 1.0]),
                            labels=rng.choice(["a", "ab", "abc"]), big=rng.choice([0.0, 0.2]))
        groups = indices(rec, merge_regions(rec, strategy))
        assert groups == brute_force(rec, strategy), case
        assert sorted(groups) == sorted(sorted(g) for g in indices(rec, pairwise_merge(rec, strategy))), case


def test_the_cap_is_respected_and_the_result_is_a_fixpoint():
    rng = random.Random(11)
    for case in range(300):
        strategy = RegionStrategy(merge_distance=rng.choice([0.01, 0.02, 0.05]),
                                  merge_max_side=rng.choice([0.02, 0.05, 0.1, 0.25]))
        rec = random_record(rng, rng.randint(0, 60), spread=rng.choice([0.05, 0.1, 0.3]),
                            labels=rng.choice(["a", "ab"]), big=rng.choice([0.0, 0.1]))
        groups = indices(rec, merge_regions(rec, strategy))
        check_groups(rec, strategy, groups)
        assert indices(rec, merge_regions(rec, strategy)) == groups, case


def test_cap_on_a_dense_photo_and_marks_larger_than_the_cap_stay_alone():
    rng = random.Random(5)
    rec = random_record(rng, 3000, spread=1.0, labels="ab", big=0.05)
    strategy = RegionStrategy(merge_distance=0.02, merge_max_side=0.1)
    groups = indices(rec, merge_regions(rec, strategy))
    check_groups(rec, strategy, groups)
    for group in groups:
        box = geometry.union_box([rec.regions[i].bbox for i in group])
        if max(box[2] - box[0], box[3] - box[1]) > 400:
            assert len(group) == 1


def test_order_first_region_then_input_order_and_exact_limit_merges():
    rec = record([
        region("scratch", (0, 0, 10, 10)),
        region("dent", (1000, 1000, 1010, 1010)),
        region("scratch", (170, 0, 180, 10)),  # 80 px from the union of the first and the last
        region("scratch", (90, 0, 100, 10)),  # exactly 80 px from the first
    ])
    groups = indices(rec, merge_regions(rec, RegionStrategy(merge_distance=0.02)))
    assert groups == [[0, 2, 3], [1]]
    assert merge_boxes([], [], 80, 1000) == []
    assert merge_boxes([(0, 0, 1, 1)] * 3, ["a"] * 3, 0, 1000) == [[0], [1], [2]]
    assert merge_boxes([(0, 0, 1, 1)] * 3, ["a"] * 3, 1, 1000) == [[0, 1, 2]]


def test_the_merge_benchmark_runs_small_and_says_how_it_compares():
    result = merge_benchmark(sizes=(60, 120), baseline_sizes=(60,), strategy=RegionStrategy(merge_max_side=1.0))
    first, second = result["rows"]
    assert (first["shapes"], second["shapes"]) == (60, 120)
    assert first["groups_not_in_baseline"] == 0 and first["baseline_groups"] == first["groups"]
    assert second["baseline_seconds"] is None and second["seconds"] >= 0
    table = format_merge_table(result).splitlines()
    assert len(table) == 4 and "0 of ours not among them" in table[2] and table[3].split()[-1] == "-"
