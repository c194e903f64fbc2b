"""See a dataset before indexing it: what will be indexed, what is skipped, and why."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.config import DomainConfig
from index.dataset.ingest import DatasetScan, read_dataset
from index.dataset.records import ImageRecord, issue_list
from index.dataset.sampling import stratified_sample
from index.files import write_json_atomic
from index.regions.plan import RegionCrop, plan_crops

logger = logging.getLogger(__name__)


@dataclass
class Inspection:
    """A read dataset, its planned crops and the summary report."""

    scan: DatasetScan
    crops: list[RegionCrop]
    report: dict[str, Any]


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 1)

    return {"min": at(0), "p10": at(0.1), "p50": at(0.5), "p90": at(0.9), "max": at(1)}


def plan_dataset(
    config: DomainConfig,
    *,
    limit: int | None = None,
    seed: int = 0,
    images: Collection[str] | None = None,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> tuple[DatasetScan, list[RegionCrop]]:
    """Read the dataset, optionally draw a stratified sample, and plan every crop.

    Args:
        config: The domain configuration.
        limit: Draw a stratified sample of this many images (every label present).
        seed: Seed of the sample.
        images: Keep only these image ids (one side of a split); the others are left out
            silently. Vehicle groups are still formed over the whole dataset.
        progress: Progress callback (items read).
        total: Called once with the number of items to read.
    """
    scan = read_dataset(config, progress=progress, total=total)
    if images is not None:
        wanted = set(images)
        scan.records = [r for r in scan.records if r.image_id in wanted]
    if limit is not None and limit < len(scan.records):
        scan.records = stratified_sample(scan.records, limit, seed=seed)
    crops = [c for r in scan.records for c in plan_crops(r, config.regions, config.name)]
    return scan, crops


def summarise(config: DomainConfig, scan: DatasetScan, crops: list[RegionCrop]) -> dict[str, Any]:
    """The inspection report as a JSON-ready mapping."""
    records = scan.records
    region_crops = [c for c in crops if c.kind == "region"]
    annotations = Counter(r.label_key for rec in records for r in rec.regions)
    sides = [max(r.bbox[2] - r.bbox[0], r.bbox[3] - r.bbox[1]) for rec in records for r in rec.regions]
    fractions = [100 * r.area / (rec.width * rec.height) for rec in records for r in rec.regions]
    return {
        "dataset": config.name,
        "root": str(config.dataset.root),
        "format": config.dataset.format,
        "images": len(records),
        "annotation_items_read": scan.annotation_items,
        "images_without_damage": sum(1 for r in records if not r.regions),
        "annotations_by_label": {k: annotations.get(k, 0) for k in config.taxonomy.label_keys()},
        "regions_by_label": {
            k: sum(1 for c in region_crops if c.label_keys == [k]) for k in config.taxonomy.label_keys()
        },
        "images_by_label": {
            k: sum(1 for r in records if k in r.label_keys()) for k in config.taxonomy.label_keys()
        },
        "nodes_by_kind": dict(Counter(c.kind for c in crops)),
        "merged_regions": sum(1 for c in region_crops if len(c.regions) > 1),
        "annotation_side_px": _percentiles(sides),
        "annotation_area_percent": _percentiles(fractions),
        "image_sizes": dict(Counter(f"{r.width}x{r.height}" for r in records).most_common(10)),
        "zones": dict(sorted(Counter(str(r.attributes.get("zone")) for r in records).items())),
        "vehicle_groups": len({r.vehicle_group for r in records}),
        "doubtful": sum(1 for r in records if r.attributes.get("doubtful")),
        "edited": sum(1 for r in records if r.attributes.get("edited")),
        "excluded_incorrect": sum(1 for i in scan.skipped if i.reason == "marked_incorrect"),
        "embedded_images": sum(1 for r in records if r.embedded),
        "splits": by_split(records, region_crops),
        "skipped_by_reason": dict(Counter(i.reason for i in scan.skipped).most_common()),
        "repaired_by_reason": dict(Counter(i.reason for i in scan.repaired).most_common()),
        "skipped": issue_list(scan.skipped),
        "repaired": issue_list(scan.repaired),
        "read_seconds": round(scan.seconds, 3),
    }


#: The ``splits`` key of images whose adapter recorded no split.
NO_SPLIT = "(none)"


def by_split(records: list[ImageRecord], region_crops: list[RegionCrop]) -> dict[str, dict[str, Any]]:
    """Images, annotations and region nodes per split (``attributes["split"]``: train, val, test…).

    Images without a split count under :data:`NO_SPLIT`; splits come in the order train, val,
    test, then any other, then :data:`NO_SPLIT`.
    """
    nodes = Counter(c.record.image_id for c in region_crops)
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        split = record.attributes.get("split")
        entry = out.setdefault(str(split) if split else NO_SPLIT, {
            "images": 0, "annotations": 0, "region_nodes": 0, "images_without_damage": 0, "annotations_by_label": Counter()})
        entry["images"] += 1
        entry["annotations"] += len(record.regions)
        entry["region_nodes"] += nodes[record.image_id]
        entry["images_without_damage"] += not record.regions
        entry["annotations_by_label"].update(r.label_key for r in record.regions)
    order = {"train": 0, "val": 1, "test": 2, NO_SPLIT: 4}
    return {split: {**entry, "annotations_by_label": dict(entry["annotations_by_label"].most_common())}
            for split, entry in sorted(out.items(), key=lambda kv: (order.get(kv[0], 3), kv[0]))}


def inspect_dataset(
    config: DomainConfig,
    out_dir: Path,
    *,
    limit: int | None = None,
    seed: int = 0,
    contact_sheet: bool = True,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> Inspection:
    """Read, plan and report on a dataset; write ``report.json`` and ``contact_sheet.png``.

    Args:
        config: The domain configuration.
        out_dir: Folder for the report and the contact sheet.
        limit: Inspect a stratified sample of this many images.
        seed: Seed of the sample.
        contact_sheet: Also render the contact sheet (decodes a few photos).
        progress: Progress callback (items read).
        total: Called once with the number of items to read.
    """
    started = time.perf_counter()
    scan, crops = plan_dataset(config, limit=limit, seed=seed, progress=progress, total=total)
    report = summarise(config, scan, crops)
    out_dir.mkdir(parents=True, exist_ok=True)
    if limit is not None:
        report["sample"] = [r.image_id for r in scan.records]
    if contact_sheet:
        from index.regions.contact_sheet import render_contact_sheet

        sheet = out_dir / "contact_sheet.png"
        failures = render_contact_sheet(crops, config, sheet)
        report["contact_sheet"] = str(sheet)
        report["skipped"].extend(issue_list(failures))
    report["seconds"] = round(time.perf_counter() - started, 3)
    path = out_dir / "report.json"
    write_json_atomic(path, report, indent=2)
    report["report"] = str(path)
    return Inspection(scan, crops, report)
