"""LabelMe: one JSON per image, paired through its ``imagePath`` (never the file stem).

The user's files pair ``..._imageDANO_original.jpg`` with ``..._labelDANO_modificado.json``,
so the stem says nothing; ``imagePath`` does. It may be relative to the JSON, absolute, or a
Windows path from the annotator's machine: we try it relative to the JSON first, then look
the bare file name up among the dataset's images.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

from index.config import DatasetConfig
from index.dataset.adapters.base import inside_folder, list_files
from index.dataset.records import Issue, RawImage, RawShape, shorten
from index.errors import json_kind

logger = logging.getLogger(__name__)

_STANDARD_KEYS = {"version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"}
_SHAPE_KEYS = {"label", "points", "shape_type"}


class LabelMeAdapter:
    """Reads a folder of LabelMe JSON files and their images."""

    def __init__(self, config: DatasetConfig) -> None:
        self.root = Path(config.root)
        self.extensions = config.image_extensions
        self._jsons, self._unreadable = list_files(self.root, [".json"])
        self._images, unreadable_images = list_files(self.root, self.extensions)
        self._unreadable += unreadable_images

    def count(self) -> int:
        """Number of annotation files to read."""
        return len(self._jsons)

    def read(self, progress: Callable[[int], None] | None = None) -> Iterator[RawImage | Issue]:
        """Yield one :class:`RawImage` per readable annotation, and issues for the rest."""
        by_name: dict[str, list[Path]] = {}
        for image in self._images:
            by_name.setdefault(image.name.casefold(), []).append(image)
        claimed: dict[Path, Path] = {}
        yield from self._unreadable
        for json_path in self._jsons:
            if progress:
                progress(1)
            item = self._read_one(json_path, by_name)
            if isinstance(item, RawImage) and item.image_path is not None:
                owner = claimed.setdefault(item.image_path, json_path)
                if owner != json_path:
                    yield Issue(
                        str(json_path),
                        "duplicate_annotation",
                        f"{json_path.name} annotates {item.image_path.name}, which "
                        f"{owner.name} already annotates; kept {owner.name}.",
                    )
                    continue
            if item is not None:
                yield item
        for image in self._images:
            if image not in claimed:
                yield Issue(
                    str(image), "no_annotation", f"{image.name} has no LabelMe JSON naming it."
                )

    def _read_one(self, json_path: Path, by_name: dict[str, list[Path]]) -> RawImage | Issue | None:
        try:
            data = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return Issue(str(json_path), "malformed_json", f"{json_path.name} is not valid JSON ({exc}).")
        if not isinstance(data, dict) or "shapes" not in data or "imagePath" not in data:
            logger.debug("%s is not a LabelMe file; ignored", json_path)
            return Issue(
                str(json_path), "not_labelme", f"{json_path.name} has no 'shapes'/'imagePath': not LabelMe."
            )
        if not isinstance(data["shapes"], list):
            return Issue(str(json_path), "malformed_annotation",
                         f"{json_path.name}: 'shapes' is {json_kind(data['shapes'])}, not a list of shapes.")
        image_ref = data.get("imagePath") or ""
        if not isinstance(image_ref, str):
            return Issue(str(json_path), "malformed_annotation",
                         f"{json_path.name}: 'imagePath' is {json_kind(image_ref)}, not a file name.")
        image_path = self._find_image(json_path, image_ref, by_name)
        embedded = None
        if data.get("imageData"):
            try:
                embedded = base64.b64decode(data["imageData"], validate=False)
            except (binascii.Error, ValueError, TypeError):
                embedded = None
        if image_path is None and embedded is None:
            return Issue(
                str(json_path),
                "missing_image",
                f"{json_path.name} names image '{shorten(image_ref)}', which is not in the dataset folder.",
            )
        declared = _declared_size(data.get("imageWidth"), data.get("imageHeight"))
        shapes: list[RawShape] = []
        for raw in data["shapes"]:
            if not isinstance(raw, dict):
                shapes.append(RawShape("", "polygon", [], {"_error": f"{json_kind(raw)} where a shape should be"}))
                continue
            attributes = {
                k: v for k, v in raw.items() if k not in _SHAPE_KEYS and v not in (None, {}, "")
            }
            points = _points(raw.get("points"))
            if points is None:
                attributes["_error"] = "points that are not [x, y] number pairs"
            shapes.append(
                RawShape(
                    label=str(raw.get("label", "")),
                    shape_type=str(raw.get("shape_type") or "polygon"),
                    points=points or [],
                    attributes=attributes,
                )
            )
        attributes: dict[str, Any] = {k: v for k, v in data.items() if k not in _STANDARD_KEYS}
        if declared is None and (data.get("imageWidth") is not None or data.get("imageHeight") is not None):
            attributes["_declared_size_error"] = (
                f"imageWidth {data.get('imageWidth')!r:.40} / imageHeight {data.get('imageHeight')!r:.40} "
                "are not positive whole numbers")
        flags = data.get("flags") or {}
        if isinstance(flags, dict) and any(flags.values()):
            attributes["flags"] = sorted(k for k, v in flags.items() if v)
        return RawImage(
            annotation_path=json_path,
            image_path=image_path if image_path is not None or embedded is None else None,
            image_ref=image_ref,
            declared_size=declared,
            shapes=shapes,
            attributes=attributes,
            embedded_image=embedded if image_path is None else None,
        )

    def _find_image(self, json_path: Path, image_ref: str, by_name: dict[str, list[Path]]) -> Path | None:
        """The image ``image_ref`` names: beside the JSON, else by file name among the dataset's images.

        A reference that exists but lies outside the dataset folder (an absolute path from the
        annotator's machine, a ``../``) loses to a same-named image inside it; failing that it is
        returned, and ingestion decides (``dataset.allow_outside_root``).
        """
        if not image_ref:
            return None
        candidate = json_path.parent / image_ref
        try:
            exists = candidate.is_file()
        except (OSError, ValueError):  # a name too long for the file system, or a NUL byte
            exists = False
        if exists and inside_folder(candidate, self.root):
            return candidate
        name = PureWindowsPath(image_ref).name if "\\" in image_ref else Path(image_ref).name
        matches = by_name.get(name.casefold(), [])
        if len(matches) > 1:
            near = [m for m in matches if m.parent == json_path.parent]
            matches = near or matches
        if matches:
            return matches[0]
        return candidate if exists else None


def _points(raw: Any) -> list[tuple[float, float]] | None:
    """The shape's points as floats, or None if any point is malformed."""
    if not isinstance(raw, list):
        return None if raw else []
    try:
        points = [(_number(p[0]), _number(p[1])) for p in raw]
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        return None
    return points


def _number(value: Any) -> float:
    """A JSON number as a float (``"12.5"`` too; a bool or a list is not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"not a number: {value!r:.20}")
    return float(value)


def _declared_size(width: Any, height: Any) -> tuple[int, int] | None:
    """(imageWidth, imageHeight) when both are positive whole numbers, else None."""
    try:
        w, h = _number(width), _number(height)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(w) and math.isfinite(h)) or w < 1 or h < 1 or w != int(w) or h != int(h):
        return None
    return int(w), int(h)




ADAPTER = LabelMeAdapter
