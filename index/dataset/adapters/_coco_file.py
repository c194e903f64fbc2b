"""One COCO instances JSON, read entry by entry (the reader behind :mod:`index.dataset.adapters.coco`).

What each malformed entry becomes is listed in :mod:`index.dataset.adapters.coco`; this module
reads one file, :class:`~index.dataset.adapters.coco.CocoAdapter` finds the files and joins them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Generator, Hashable, Iterator
from pathlib import Path
from typing import Any

from index.dataset.adapters.base import AdapterError, has_readable_name, printable_path
from index.dataset.records import Issue, RawImage, RawShape
from index.errors import json_kind
from index.imaging.geometry import Point

logger = logging.getLogger(__name__)

_IMAGE_KEYS = ("id", "file_name", "width", "height")
_ANNOTATION_ATTRIBUTES = ("id", "iscrowd", "attributes")


class NotCocoError(AdapterError):
    """A JSON file with no ``images`` list: not COCO (a counted skip when other files are)."""


class CocoFile:
    """One COCO instances JSON with its images folder and split, read entry by entry."""

    def __init__(self, annotation_file: Path, images_dir: Path, name: str, split: str | None) -> None:
        self.annotation_file = annotation_file
        self.images_dir = images_dir
        self.name = name  # as messages show it: the path below the dataset root
        self.split = split
        self._file = printable_path(self.annotation_file)
        self._name = name
        self._data = self._load()
        self._images: list[Any] = self._data["images"]
        self._sections: dict[str, list[Any]] = {}
        self._section_issues: list[Issue] = []
        for key in ("categories", "annotations"):
            value = self._data.get(key)
            if value is not None and not isinstance(value, list):
                self._section_issues.append(Issue(
                    self._file, "malformed_section",
                    f"{self._name}: '{key}' is {json_kind(value)}, not a list; no {key} read.",
                ))
            self._sections[key] = value if isinstance(value, list) else []

    def _load(self) -> dict[str, Any]:
        """The parsed file; a fault that leaves nothing to read is an :class:`AdapterError`."""
        if not self.annotation_file.is_file():
            raise AdapterError(f"COCO file {self._file} does not exist or is not a regular file.")
        try:
            data = json.loads(self.annotation_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
            raise AdapterError(f"COCO file {self._file} cannot be read ({exc}).") from None
        except RecursionError:
            raise AdapterError(f"COCO file {self._file} is nested too deeply to read.") from None
        if not isinstance(data, dict) or "images" not in data:
            raise NotCocoError(f"COCO file {self._file} has no 'images' list.")
        if not isinstance(data["images"], list):
            raise AdapterError(
                f"COCO file {self._file}: 'images' is {json_kind(data['images'])}, not a list of image entries."
            )
        return data

    def count(self) -> int:
        """Number of image entries in the file."""
        return len(self._images)

    def read(self, progress: Callable[[int], None] | None, claimed: dict[Path, tuple[str, int, Any]]) -> Iterator[RawImage | Issue]:
        """This file's images and issues; ``claimed`` (image -> file, entry, id) is shared by all files."""
        yield from self._section_issues
        categories = yield from self._categories()
        by_image = yield from self._annotations_by_image()
        for index, entry in enumerate(self._images):
            if progress:
                progress(1)
            yield from self._read_entry(index, entry, categories, by_image, claimed)
        listed = {entry.get("id") for entry in self._images if isinstance(entry, dict) and _hashable(entry.get("id"))}
        for image_id, anns in by_image.items():
            if image_id not in listed:
                yield Issue(self._file, "orphan_annotation", f"{self._name}: {len(anns)} annotations name image_id "
                            f"{_show(image_id)}, which no image entry has; skipped.")

    def _categories(self) -> Generator[Issue, None, dict[Any, str]]:
        """Issues for bad categories; returns (as the generator's value) id -> name."""
        categories: dict[Any, str] = {}
        for index, category in enumerate(self._sections["categories"]):
            if not isinstance(category, dict):
                yield Issue(self._file, "malformed_category",
                            f"{self._name} categories[{index}] is {_what(category)}, not an object; skipped.")
                continue
            cid = category.get("id")
            if cid is None or not _hashable(cid):
                yield Issue(self._file, "malformed_category",
                            f"{self._name} categories[{index}] ({_show(category.get('name'))}) has id {_show(cid)}, not a plain id; skipped.")
                continue
            name = category.get("name")
            categories[cid] = str(cid if name is None else name)
        return categories

    def _annotations_by_image(self) -> Generator[Issue, None, dict[Any, list[dict[str, Any]]]]:
        """Issues for annotations that belong to no image; returns image id -> annotations."""
        by_image: dict[Any, list[dict[str, Any]]] = {}
        for index, ann in enumerate(self._sections["annotations"]):
            if not isinstance(ann, dict):
                yield Issue(self._file, "malformed_annotation",
                            f"{self._name} annotations[{index}] is {_what(ann)}, not an object; skipped.")
                continue
            image_id = ann.get("image_id")
            if not _hashable(image_id):
                yield Issue(self._file, "malformed_annotation",
                            f"{self._name} annotation {_show(ann.get('id'))} has image_id {_show(image_id)}, not a plain id; skipped.")
                continue
            by_image.setdefault(image_id, []).append(ann)
        return by_image

    def _read_entry(
        self, index: int, entry: Any, categories: dict[Any, str],
        by_image: dict[Any, list[dict[str, Any]]], claimed: dict[Path, Any],
    ) -> Iterator[RawImage | Issue]:
        """The issues and the :class:`RawImage` of one ``images`` entry."""
        if not isinstance(entry, dict):
            yield Issue(self._file, "malformed_image_entry",
                        f"{self._name} images[{index}] is {_what(entry)}, not an object; skipped.")
            return
        image_id, raw_name = entry.get("id"), entry.get("file_name")
        name = raw_name if isinstance(raw_name, str) else ("" if raw_name is None else str(raw_name))
        if not _hashable(image_id):
            yield Issue(self._file, "malformed_image_entry",
                        f"{self._name} images[{index}] ('{safe_text(name)}') has id {_show(image_id)}, not a plain id; skipped.")
            return
        image_path = self.images_dir / name
        if not has_readable_name(image_path):
            yield Issue(self._file, "bad_file_name",
                        f"{self._name} lists image '{safe_text(name)}', whose name is not valid UTF-8 text; skipped.")
            return
        try:
            present = image_path.is_file()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            yield Issue(self._file, "bad_file_name",
                        f"{self._name} lists image '{safe_text(name)}' ({len(name)} characters), a name the file system cannot look up ({reason}); skipped.")
            return
        if not present:
            yield Issue(str(image_path), "missing_image",
                        f"{self._name} lists image '{safe_text(name)}', which is not in {printable_path(self.images_dir)}.")
            return
        owner = claimed.setdefault(image_path, (self._name, index, image_id))
        if owner[:2] != (self._name, index):
            twice = (f"twice in {self._name} (ids {_show(owner[2])} and {_show(image_id)}); kept id {_show(owner[2])}"
                     if owner[0] == self._name else
                     f"in {owner[0]} (id {_show(owner[2])}) and in {self._name} (id {_show(image_id)}); kept the first")
            yield Issue(str(image_path), "duplicate_annotation", f"{safe_text(name)} is listed {twice}.")
            return
        shapes: list[RawShape] = []
        for ann in by_image.get(image_id, []):
            found, issues = self._shapes(ann, name, categories)
            yield from issues
            shapes.extend(found)
        yield RawImage(
            annotation_path=self.annotation_file,
            image_path=image_path,
            image_ref=name,
            declared_size=self._declared_size(entry, name),
            shapes=shapes,
            attributes={**({"split": self.split} if self.split else {}),
                        **{k: v for k, v in entry.items() if k not in _IMAGE_KEYS}},
        )

    @staticmethod
    def _declared_size(entry: dict[str, Any], name: str) -> tuple[int, int] | None:
        """``(width, height)`` when both are positive finite numbers, else None (unknown)."""
        if not entry.get("width") and not entry.get("height"):
            return None
        width, height = _size(entry.get("width")), _size(entry.get("height"))
        if width is None or height is None:
            logger.debug("%s: declared size %r x %r is not usable; the image header gives it",
                         safe_text(name), entry.get("width"), entry.get("height"))
            return None
        return width, height

    def _shapes(self, ann: dict[str, Any], image_name: str, categories: dict[Any, str]) -> tuple[list[RawShape], list[Issue]]:
        """One shape per polygon ring (COCO splits occluded objects into parts), else the box."""
        where = f"{self._name} annotation {_show(ann.get('id'))} (image '{safe_text(image_name)}')"

        def issues(problems: list[str], outcome: str) -> list[Issue]:
            return [Issue(self._file, "malformed_annotation", f"{where}: {p}; {outcome}.") for p in problems]

        category_id = ann.get("category_id")
        if not _hashable(category_id):
            return [], issues([f"category_id {_show(category_id)} is not a plain id"], "annotation skipped")
        if categories and category_id not in categories:
            return [], [Issue(self._file, "unknown_category", f"{where}: category_id {_show(category_id)} is not "
                              f"among the file's {len(categories)} categories; annotation skipped.")]
        label = categories.get(category_id, str(category_id))  # no categories at all: the id is the label
        attributes = {k: v for k, v in ann.items()
                      if k in _ANNOTATION_ATTRIBUTES and v not in (None, {}, "")}
        segmentation, bbox = ann.get("segmentation"), ann.get("bbox")
        problems: list[str] = []
        shapes: list[RawShape] = []
        if isinstance(segmentation, list) and any(isinstance(ring, list) for ring in segmentation):
            for number, ring in enumerate(segmentation):
                points, problem = _ring(ring)
                if points is None:
                    problems.append(f"segmentation ring {number} {problem}")
                else:
                    shapes.append(RawShape(label, "polygon", points, dict(attributes)))
            if shapes:
                return shapes, issues(problems, "ring skipped")
        elif isinstance(segmentation, list) and segmentation:
            problems.append(f"segmentation {_show(segmentation)} holds no ring (a list of coordinates)")
        elif segmentation not in (None, []) and not isinstance(segmentation, dict):
            problems.append(f"segmentation is {_what(segmentation)}, neither rings nor RLE")
        box = _box(bbox)
        if box is None:
            if bbox is None and not problems and not isinstance(segmentation, dict):
                problems.append("it has neither a polygon segmentation nor a bbox")
            else:
                problems.append(f"bbox {_show(bbox)} is not four finite numbers")
            return [], issues(problems, "annotation skipped")
        if isinstance(segmentation, dict):
            attributes["segmentation"] = "rle (box used)"
        elif problems:
            attributes["segmentation"] = "malformed (box used)"
        x, y, w, h = box
        shape = RawShape(label, "rectangle", [(x, y), (x + w, y + h)], attributes)
        return [shape], issues(problems, "the bbox is used instead")


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (strings, booleans, NaN, infinities, huge ints)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _size(value: Any) -> int | None:
    """A declared side in pixels (a number or a digit string), or None when unusable."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    number = _number(value)
    return round(number) if number is not None and number >= 1 else None


def _ring(ring: Any) -> tuple[list[Point] | None, str]:
    """A COCO ring ``[x0, y0, x1, y1, ...]`` as points, or None and what is wrong with it."""
    if not isinstance(ring, list):
        return None, f"is {_what(ring)}, not a list of coordinates"
    values = [_number(v) for v in ring]
    for raw, number in zip(ring, values, strict=True):
        if number is None:
            return None, f"holds {_show(raw)}, not a finite number"
    if len(values) % 2:
        return None, f"has an odd number of coordinates ({len(values)})"
    xs, ys = values[0::2], values[1::2]
    return [(float(x), float(y)) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None], ""


def _box(bbox: Any) -> tuple[float, float, float, float] | None:
    """A COCO ``[x, y, width, height]`` of four finite numbers, or None."""
    if not isinstance(bbox, list) or len(bbox) != 4:
        return None
    x, y, w, h = (_number(v) for v in bbox)
    if x is None or y is None or w is None or h is None:
        return None
    return x, y, w, h


def _hashable(value: Any) -> bool:
    """Whether ``value`` can be a dictionary key (JSON lists and objects cannot)."""
    if not isinstance(value, Hashable):
        return False
    try:
        hash(value)
    except TypeError:
        return False
    return True




def _what(value: Any) -> str:
    """``value``'s JSON type and a short rendering of it: "a string ('oops')", "null"."""
    return json_kind(value) if value is None else f"{json_kind(value)} ({_show(value)})"


def safe_text(text: str, limit: int = 80) -> str:
    """``text`` safe to print and write as JSON (lone surrogates escaped), shortened to ``limit``."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= limit else f"{safe[:limit - 1]}…"


def _show(value: Any, limit: int = 60) -> str:
    """A short printable rendering of any JSON value, for messages."""
    return safe_text(repr(value) if isinstance(value, str) else json.dumps(value, default=str), limit)
