"""Region-merging micro-benchmark: one photo with very many marks, against the old merge.

``python -m index.bench.merging`` times :func:`~index.regions.plan.merge_regions` on one
synthetic 4000 x 3000 photo with 1,000, 2,000, 20,000 and 200,000 marks, and, as the
baseline, the first, pairwise version of the merge (:func:`pairwise_merge`, kept here
verbatim) at 1,000 marks only: it rescans every pair after every merge, about cubic, and a
few thousand marks already take minutes. Times are CPU seconds of this process (the wall
clock on a shared machine says more about the neighbours than about the merge).

The marks (:func:`synthetic_record`) are what a heavy annotation looks like: small scratches,
dents and peeling spread over the photo, denser in a few damaged areas, three labels, with
the default region strategy (merge within 2% of the longer side, merged boxes up to 25%).
Not wired into ``python -m index``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from index.config import RegionStrategy
from index.dataset.records import ImageRecord, Region
from index.imaging import geometry
from index.regions.plan import merge_regions

#: Mark counts timed by default, and those the pairwise baseline is also timed at.
SIZES = (1_000, 2_000, 20_000, 200_000)
BASELINE_SIZES = (1_000,)
LABELS = (("scratch", 0.6), ("dent", 0.25), ("paint_peeling", 0.15))


def synthetic_record(n: int, seed: int = 0, size: tuple[int, int] = (4000, 3000)) -> ImageRecord:
    """One photo's record with ``n`` small marks: half anywhere, half around damaged areas."""
    rng = random.Random(seed)
    width, height = size
    areas = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(max(3, n // 400))]
    keys = [key for key, _ in LABELS]
    weights = [w for _, w in LABELS]
    regions = []
    for _ in range(n):
        w, h = rng.uniform(6, 60), rng.uniform(4, 40)
        if rng.random() < 0.5:
            cx, cy = rng.choice(areas)
            x, y = rng.gauss(cx, width / 40), rng.gauss(cy, width / 40)
        else:
            x, y = rng.uniform(0, width), rng.uniform(0, height)
        x, y = min(max(0.0, x), width - w), min(max(0.0, y), height - h)
        key = rng.choices(keys, weights)[0]
        poly = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        regions.append(Region(key, key, key.replace("_", " "), "polygon", poly, (x, y, x + w, y + h), w * h))
    return ImageRecord("bench.jpg", Path("bench.jpg"), Path("bench.json"), width, height, True, False, "RGB",
                       regions, vehicle_group="bench")


def pairwise_merge(record: ImageRecord, strategy: RegionStrategy) -> list[list[Region]]:
    """The first ``merge_regions``, unchanged: the baseline (about cubic in the marks)."""
    long_side = record.long_side
    limit = strategy.merge_distance * long_side
    max_side = strategy.merge_max_side * long_side
    groups = [[r] for r in record.regions]
    if limit <= 0:
        return groups
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i], groups[j]
                if a[0].label_key != b[0].label_key:
                    continue
                box_a = geometry.union_box([r.bbox for r in a])
                box_b = geometry.union_box([r.bbox for r in b])
                joint = geometry.union_box([box_a, box_b])
                if geometry.box_gap(box_a, box_b) <= limit and max(joint[2] - joint[0], joint[3] - joint[1]) <= max_side:
                    groups[i] = a + b
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def _partition(record: ImageRecord, groups: list[list[Region]]) -> list[list[int]]:
    index = {id(r): i for i, r in enumerate(record.regions)}
    return sorted(sorted(index[id(r)] for r in group) for group in groups)


def merge_benchmark(sizes: tuple[int, ...] = SIZES, baseline_sizes: tuple[int, ...] = BASELINE_SIZES,
                    seed: int = 0, strategy: RegionStrategy | None = None) -> dict[str, Any]:
    """Time the merge at each size, and the pairwise baseline at ``baseline_sizes``.

    Returns:
        The strategy's two fractions and one row per size: marks, groups, CPU seconds, and,
        where the baseline ran, its seconds, its groups and how many of ours it did not make
        (only where the cap binds can they differ: then the order of the merges decides).
    """
    strategy = strategy or RegionStrategy()
    rows = []
    for n in sizes:
        record = synthetic_record(n, seed)
        started = time.process_time()
        groups = merge_regions(record, strategy)
        row: dict[str, Any] = {"shapes": n, "groups": len(groups), "seconds": time.process_time() - started,
                               "baseline_seconds": None, "baseline_groups": None, "groups_not_in_baseline": None}
        if n in baseline_sizes:
            started = time.process_time()
            old = pairwise_merge(record, strategy)
            seconds = time.process_time() - started
            ours = {tuple(g) for g in _partition(record, groups)}
            row.update(baseline_seconds=seconds, baseline_groups=len(old),
                       groups_not_in_baseline=len(ours - {tuple(g) for g in _partition(record, old)}))
        rows.append(row)
    return {"merge_distance": strategy.merge_distance, "merge_max_side": strategy.merge_max_side, "rows": rows}


def format_merge_table(result: dict[str, Any]) -> str:
    """The benchmark as a small plain-text table, the baseline beside the new merge."""
    lines = [f"merge_regions, one 4000x3000 photo (merge_distance {result['merge_distance']:g}, "
             f"merge_max_side {result['merge_max_side']:g}), CPU seconds",
             f"{'shapes':>8}  {'groups':>6}  {'grid merge':>10}  {'pairwise (old)':>14}  {'speed-up':>8}  groups"]
    for row in result["rows"]:
        old = row["baseline_seconds"]
        lines.append(f"{row['shapes']:>8,}  {row['groups']:>6}  {row['seconds']:>9.3f}s  "
                     + (f"{old:>13.2f}s  {old / max(row['seconds'], 1e-9):>7.0f}x  old {row['baseline_groups']}, "
                        f"{row['groups_not_in_baseline']} of ours not among them"
                        if old is not None else f"{'-':>14}  {'-':>8}  -"))
    if any(row["groups_not_in_baseline"] for row in result["rows"]):
        lines.append("* groups differ only where the merge_max_side cap binds: which merges win then depends "
                     "on the order; both results are fixpoints")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m index.bench.merging [--sizes N ...] [--baseline N ...] [--seed S] [--json]``."""
    parser = argparse.ArgumentParser(prog="python -m index.bench.merging", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="mark counts to time")
    parser.add_argument("--baseline", type=int, nargs="*", default=list(BASELINE_SIZES),
                        help="mark counts to time the pairwise baseline at too (minutes beyond ~1,500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = merge_benchmark(tuple(args.sizes), tuple(args.baseline), args.seed)
    print(json.dumps(result, indent=2) if args.json else format_merge_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
