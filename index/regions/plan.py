"""Which pixels to embed: plan region, image, background and tile crops for one image.

Planning is pure geometry on an :class:`ImageRecord`; it never decodes pixels and needs no
model. Its output, :class:`RegionCrop`, is the typed hand-over to the build, which decodes
each photo once, cuts the crops, stores them and embeds them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from index.config import RegionStrategy
from index.dataset.records import ImageRecord, Region
from index.imaging import geometry
from index.imaging.geometry import Box, Point
from index.regions.merging import merge_region_groups


@dataclass
class RegionCrop:
    """One planned node: a crop of a source photo with its labels and geometry."""

    node_id: str
    kind: str  # region | image | background | tile
    record: ImageRecord
    crop_box: tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels (EXIF-oriented)
    output_size: tuple[int, int]  # width, height of the stored / embedded crop
    regions: list[Region] = field(default_factory=list)  # annotations shown in the crop

    @property
    def label_keys(self) -> list[str]:
        """Keys of the labels in this crop, each once."""
        return list(dict.fromkeys(r.label_key for r in self.regions))

    @property
    def bbox(self) -> Box | None:
        """Union box of the crop's annotations in source pixels, or None."""
        return geometry.union_box([r.bbox for r in self.regions]) if self.regions else None

    def polygons_in_crop(self) -> list[list[Point]]:
        """The annotation polygons in the output crop's pixel coordinates (for outlines)."""
        x0, y0, x1, y1 = self.crop_box
        sx = self.output_size[0] / max(1, x1 - x0)
        sy = self.output_size[1] / max(1, y1 - y0)
        return [[((x - x0) * sx, (y - y0) * sy) for x, y in r.polygon] for r in self.regions]

    def metadata(self, dataset: str) -> dict[str, Any]:
        """Flat, JSON-ready metadata stored with the node and used for filtering."""
        rec = self.record
        first = self.regions[0] if self.regions else None
        single = self.kind == "region" and first is not None
        attrs = rec.attributes
        pieces = [r.attributes["piece"] for r in self.regions if "piece" in r.attributes]
        area = sum(r.area for r in self.regions)
        return {
            "kind": self.kind,
            "dataset": dataset,
            "label": first.label_key if single else None,
            "label_id": first.label_id if single else None,
            "label_name": first.label_name if single else None,
            "labels": self.label_keys,
            "label_ids": list(dict.fromkeys(r.label_id for r in self.regions)),
            "label_names": list(dict.fromkeys(r.label_name for r in self.regions)),
            "polygons": [[[x, y] for x, y in r.polygon] for r in self.regions],
            "polygon_labels": [r.label_key for r in self.regions],
            "bbox": list(self.bbox) if self.bbox else None,
            "crop_box": list(self.crop_box),
            "area_fraction": round(area / (rec.width * rec.height), 6),
            "region_count": len(self.regions),
            "shape_types": sorted({r.shape_type for r in self.regions}),
            "piece": pieces[0] if len(set(pieces)) == 1 else (pieces or None),
            "pixelated_type": next((r.attributes["pixelated_type"] for r in self.regions if "pixelated_type" in r.attributes), None),
            "zone": attrs.get("zone"),
            "split": attrs.get("split"),
            "vehicle_group": rec.vehicle_group,
            "captured_at": attrs.get("captured_at"),
            "doubtful": bool(attrs.get("doubtful", False)),
            "edited": bool(attrs.get("edited", False)),
            "image_id": rec.image_id,
            "source_image": str(rec.image_path),
            "annotation_file": str(rec.annotation_path),
            "image_width": rec.width,
            "image_height": rec.height,
        }

    def to_image_node(self, dataset: str, image_path: str | None = None):
        """This crop as a LlamaIndex ``ImageNode`` (geometry kept out of the embed/LLM text).

        Args:
            dataset: Dataset name stored in the metadata.
            image_path: The stored crop file, once the build has written it.
        """
        from llama_index.core.schema import ImageNode

        metadata = self.metadata(dataset)
        hidden = ["polygons", "polygon_labels", "bbox", "crop_box", "source_image", "annotation_file", "label_ids",
                  "image_width", "image_height", "shape_types", "dataset"]
        return ImageNode(
            id_=self.node_id,
            image_path=image_path,
            text=describe(metadata),
            metadata=metadata,
            excluded_embed_metadata_keys=hidden,
            excluded_llm_metadata_keys=hidden,
        )


def describe(metadata: dict[str, Any]) -> str:
    """A one-line description of a node, for people and for the model."""
    kind = metadata["kind"]
    labels = ", ".join(metadata.get("label_names") or []) or "no annotated damage"
    where = f" in zone {metadata['zone']}" if metadata.get("zone") else ""
    if kind == "region":
        size = metadata["area_fraction"] * 100
        extra = f" ({metadata['region_count']} marks)" if metadata["region_count"] > 1 else ""
        return f"{labels}{extra}{where}, {size:.2g}% of the photo"
    if kind == "background":
        return f"undamaged surface{where}"
    return f"{kind} showing {labels}{where}"


def plan_crops(record: ImageRecord, strategy: RegionStrategy, dataset: str) -> list[RegionCrop]:
    """Plan every node of one image according to the strategy.

    Args:
        record: A checked image record.
        strategy: The region strategy from the config.
        dataset: Dataset name, part of every node id.

    Returns:
        The planned crops, regions first, in a deterministic order.
    """
    crops: list[RegionCrop] = []
    if "region" in strategy.kinds:
        for group in merge_regions(record, strategy):
            crops.append(_region_crop(record, group, strategy, dataset))
    if "image" in strategy.kinds:
        crops.append(_crop(record, "image", (0, 0, record.width, record.height),
                           _fit(record.width, record.height, strategy.image_max_side, upscale=False), record.regions, dataset))
    if "tile" in strategy.kinds:
        crops.extend(_tiles(record, strategy, dataset))
    if "background" in strategy.kinds and strategy.background_per_image:
        crops.extend(_backgrounds(record, strategy, dataset))
    return crops


def merge_regions(record: ImageRecord, strategy: RegionStrategy) -> list[list[Region]]:
    """Group nearby regions of one label (e.g. many tiny scratches) into merged regions.

    Two groups of one label merge when their union boxes are within ``merge_distance`` and
    the merged box stays within ``merge_max_side`` (both fractions of the longer side);
    repeated until no two groups could still merge. Near-linear in the regions (a grid, see
    :mod:`index.regions.merging`); groups come ordered by their first region, the regions of
    a group in input order.
    """
    long_side = record.long_side
    return merge_region_groups(record.regions, strategy.merge_distance * long_side,
                               strategy.merge_max_side * long_side)


def _region_crop(record: ImageRecord, group: list[Region], strategy: RegionStrategy, dataset: str) -> RegionCrop:
    x0, y0, x1, y1 = geometry.union_box([r.bbox for r in group])
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    min_side = strategy.min_side * record.long_side
    cw = max(w * (1 + 2 * strategy.context_margin), min_side)
    ch = max(h * (1 + 2 * strategy.context_margin), min_side)
    if strategy.square:
        cw = ch = max(cw, ch)
    cw, ch = min(cw, record.width), min(ch, record.height)
    box = _place(cx, cy, cw, ch, record.width, record.height)
    out = _fit(box[2] - box[0], box[3] - box[1], strategy.crop_size)
    return _crop(record, "region", box, out, group, dataset)


def _place(cx: float, cy: float, w: float, h: float, width: int, height: int) -> tuple[int, int, int, int]:
    """A w x h box centred on (cx, cy), shifted (not shrunk) to lie inside the image."""
    x0 = min(max(0.0, cx - w / 2), width - w)
    y0 = min(max(0.0, cy - h / 2), height - h)
    return (round(x0), round(y0), round(x0 + w), round(y0 + h))


def _fit(width: float, height: float, longest: int, upscale: bool = True) -> tuple[int, int]:
    """Output size whose longer side is ``longest`` (or the input's, when smaller and not ``upscale``)."""
    scale = longest / max(width, height)
    if not upscale:
        scale = min(1.0, scale)
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def _node_id(record: ImageRecord, kind: str, box: tuple[int, int, int, int], labels: list[str], dataset: str) -> str:
    key = f"{dataset}|{record.image_id}|{kind}|{box}|{','.join(labels)}"
    return f"{kind[0]}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def _crop(record: ImageRecord, kind: str, box: tuple[int, int, int, int], out: tuple[int, int],
          regions: list[Region], dataset: str) -> RegionCrop:
    labels = list(dict.fromkeys(r.label_key for r in regions))
    return RegionCrop(_node_id(record, kind, box, labels, dataset), kind, record, box, out, list(regions))


def _tiles(record: ImageRecord, strategy: RegionStrategy, dataset: str) -> list[RegionCrop]:
    rows, cols = strategy.tile_grid
    out = []
    for r in range(rows):
        for c in range(cols):
            box = (round(c * record.width / cols), round(r * record.height / rows),
                   round((c + 1) * record.width / cols), round((r + 1) * record.height / rows))
            inside = [reg for reg in record.regions
                      if box[0] <= (reg.bbox[0] + reg.bbox[2]) / 2 < box[2] and box[1] <= (reg.bbox[1] + reg.bbox[3]) / 2 < box[3]]
            out.append(_crop(record, "tile", box, _fit(box[2] - box[0], box[3] - box[1], strategy.crop_size), inside, dataset))
    return out


def _backgrounds(record: ImageRecord, strategy: RegionStrategy, dataset: str) -> list[RegionCrop]:
    side = min(strategy.background_side * record.long_side, record.width, record.height)
    clearance = strategy.background_clearance * record.long_side
    blocked = [geometry.expand_box(r.bbox, clearance) for r in record.regions]
    seed = int(hashlib.sha1(f"{strategy.seed}|{record.image_id}".encode()).hexdigest()[:8], 16)
    rng = random.Random(seed)
    out: list[RegionCrop] = []
    for _ in range(40 * strategy.background_per_image):
        if len(out) == strategy.background_per_image:
            break
        x0 = rng.uniform(0, record.width - side)
        y0 = rng.uniform(0, record.height - side)
        box = (round(x0), round(y0), round(x0 + side), round(y0 + side))
        taken = blocked + [c.crop_box for c in out]
        if any(geometry.boxes_intersect(box, b) for b in taken):
            continue
        out.append(_crop(record, "background", box, (strategy.crop_size, strategy.crop_size), [], dataset))
    return out
