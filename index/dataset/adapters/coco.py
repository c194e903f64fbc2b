"""COCO: one JSON for many images, with polygon segmentation or boxes.

The format most public damage sets ship in (Roboflow exports, CarDD). Category names are
matched against the taxonomy, so a COCO category "scratch" or "rayón" finds its label. RLE
segmentations fall back to the annotation's box, and the shape records that.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from index.config import DatasetConfig
from index.dataset.adapters.base import AdapterError, list_images
from index.dataset.records import Issue, RawImage, RawShape

logger = logging.getLogger(__name__)


class CocoAdapter:
    """Reads one COCO instances JSON and the images it lists."""

    def __init__(self, config: DatasetConfig) -> None:
        self.root = Path(config.root)
        if config.annotation_file is None:
            found = sorted(self.root.glob("*.json"))
            if len(found) != 1:
                raise AdapterError(
                    f"COCO dataset {self.root}: set dataset.annotation_file "
                    f"({len(found)} JSON files at the top level)."
                )
            self.annotation_file = found[0]
        else:
            self.annotation_file = self.root / config.annotation_file
        if config.images_dir is not None:
            self.images_dir = self.root / config.images_dir
        elif (self.root / "images").is_dir():
            self.images_dir = self.root / "images"
        else:
            self.images_dir = self.root
        self.extensions = config.image_extensions
        try:
            self._data = json.loads(self.annotation_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AdapterError(f"COCO file {self.annotation_file} cannot be read ({exc}).") from None
        if not isinstance(self._data, dict) or "images" not in self._data:
            raise AdapterError(f"COCO file {self.annotation_file} has no 'images' list.")

    def count(self) -> int:
        """Number of image entries in the COCO file."""
        return len(self._data.get("images") or [])

    def read(self, progress: Callable[[int], None] | None = None) -> Iterator[RawImage | Issue]:
        """Yield one :class:`RawImage` per listed image, and issues for the rest."""
        categories = {c.get("id"): str(c.get("name", c.get("id"))) for c in self._data.get("categories") or []}
        by_image: dict[Any, list[dict]] = {}
        for ann in self._data.get("annotations") or []:
            by_image.setdefault(ann.get("image_id"), []).append(ann)
        listed: set[Path] = set()
        claimed: dict[Path, Any] = {}
        for entry in self._data.get("images") or []:
            if progress:
                progress(1)
            name = str(entry.get("file_name", ""))
            image_path = self.images_dir / name
            if not image_path.is_file():
                yield Issue(str(self.annotation_file), "missing_image",
                            f"{self.annotation_file.name} lists image '{name}', which is not in {self.images_dir}.")
                continue
            owner = claimed.setdefault(image_path, entry.get("id"))
            if owner != entry.get("id"):
                yield Issue(str(image_path), "duplicate_annotation",
                            f"{name} is listed twice in {self.annotation_file.name} (ids {owner} and {entry.get('id')}); kept id {owner}.")
                continue
            listed.add(image_path)
            shapes = [s for a in by_image.get(entry.get("id"), []) for s in self._shapes(a, categories)]
            declared = None
            if entry.get("width") and entry.get("height"):
                declared = (int(entry["width"]), int(entry["height"]))
            attributes = {k: v for k, v in entry.items() if k not in ("id", "file_name", "width", "height")}
            yield RawImage(
                annotation_path=self.annotation_file,
                image_path=image_path,
                image_ref=name,
                declared_size=declared,
                shapes=shapes,
                attributes=attributes,
            )
        for image in list_images(self.images_dir, self.extensions):
            if image not in listed and image not in claimed:
                yield Issue(str(image), "no_annotation",
                            f"{image.name} is not listed in {self.annotation_file.name}.")

    @staticmethod
    def _shapes(ann: dict, categories: dict[Any, str]) -> list[RawShape]:
        """One shape per polygon part (COCO splits occluded objects into parts), else the box."""
        label = categories.get(ann.get("category_id"), str(ann.get("category_id")))
        attributes = {k: v for k, v in ann.items()
                      if k in ("id", "iscrowd", "attributes") and v not in (None, {}, "")}
        segmentation = ann.get("segmentation")
        if isinstance(segmentation, list) and segmentation and isinstance(segmentation[0], list):
            return [
                RawShape(label, "polygon", list(zip(ring[0::2], ring[1::2], strict=False)), dict(attributes))
                for ring in segmentation
            ]
        bbox = ann.get("bbox")
        if isinstance(segmentation, dict):
            attributes["segmentation"] = "rle (box used)"
        if isinstance(bbox, list) and len(bbox) == 4:
            x, y, w, h = (float(v) for v in bbox)
            return [RawShape(label, "rectangle", [(x, y), (x + w, y + h)], attributes)]
        attributes["_error"] = "neither a polygon segmentation nor a bbox"
        return [RawShape(label, "polygon", [], attributes)]


ADAPTER = CocoAdapter
