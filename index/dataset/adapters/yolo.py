"""YOLO: ``data.yaml`` names the classes; one ``.txt`` of normalised rows per image, same stem.

The export every labelling tool offers (Ultralytics, Roboflow, CVAT, Label Studio). A row is
``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 x3 y3 ...`` (a polygon, segmentation; an
oriented box is a four-point polygon), every coordinate a fraction of the image's side. The
image header (read here, no pixels decoded) turns fractions into pixels of the EXIF-oriented
frame, which is the frame Ultralytics normalises against. With ``kpt_shape`` in data.yaml rows
are pose rows and their box is read.

Layouts: ``images/`` and ``labels/`` side by side (the label of ``images/train/a.jpg`` is
``labels/train/a.txt``: the last ``images`` folder of the path becomes ``labels``), Roboflow's
``train/images`` + ``train/labels``, or a ``.txt`` beside each image (darknet). Every image
under the dataset folder (or ``dataset.images_dir``) is read, plus the images data.yaml's
``train`` / ``val`` / ``test`` entries name (folders, lists of folders, or ``.txt`` lists of
image paths; resolved against data.yaml's ``path`` when that is a folder, else data.yaml's own
folder, and Roboflow's ``../train/images`` also without its ``../``). Each image records
``attributes["split"]``: the entry whose folder or list holds it, else the nearest folder
named like a split (``train``, ``valid``/``val``, ``test``).

Class names (``names:`` a list or an ``{id: name}`` mapping; without data.yaml,
``classes.txt`` or ``obj.names``) are matched to the taxonomy by ingestion, as COCO categories
are. Reason codes: ``malformed_annotation`` for a row with the wrong number of columns, a value
that is not a finite number, a class index out of range or a coordinate far outside 0-1 (the
row is skipped, the read goes on) and for a label file that cannot be read as text (the image
is skipped); ``malformed_category`` for a class name that is not text; ``no_annotation`` for an
image with no label file (an *empty* label file is an image with no regions); ``missing_image``
for a label file with no image, or a listed image that is not there; ``duplicate_annotation``
for two images sharing one label file (``a.jpg``, ``a.png``); ``undecodable_name``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from index.config import DatasetConfig
from index.dataset.adapters.base import (
    AdapterError,
    inside_folder,
    list_files,
    printable_path,
    split_name,
)
from index.dataset.records import Issue, RawImage, RawShape, shorten
from index.imaging.decode import ImageReadError, read_header

logger = logging.getLogger(__name__)

_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
_CLASS_FILES = ("classes.txt", "obj.names")
_SLACK = 0.01  # a fraction this far outside 0-1 is rounding, clipped by ingestion; beyond, not normalised


class YoloAdapter:
    """Reads a YOLO dataset (boxes, polygons or pose boxes) and its images."""

    def __init__(self, config: DatasetConfig) -> None:
        self.root = Path(config.root)
        self.extensions = config.image_extensions
        self._issues: list[Issue] = []
        self.yaml_file = self._find_yaml(config.annotation_file)
        data = self._load_yaml() if self.yaml_file else {}
        self._pose = data.get("kpt_shape") is not None
        self.names = self._class_names(data)
        self._lists: set[Path] = set()
        scan = self.root / config.images_dir if config.images_dir is not None else self.root
        if not scan.is_dir():
            logger.warning("YOLO dataset %s: dataset.images_dir %s is not a folder; reading the whole dataset",
                           printable_path(self.root), printable_path(scan))
            scan = self.root
        self._images = self._list_images(scan, self._split_entries(data))

    def _find_yaml(self, configured: Path | None) -> Path | None:
        """data.yaml (or the configured file, or the one ``.yaml`` at the top), or None."""
        if configured is not None:
            if (self.root / configured).is_file():
                return self.root / configured
            logger.warning("YOLO dataset %s has no %s (dataset.annotation_file); looking for data.yaml",
                           printable_path(self.root), printable_path(configured))
        for name in _YAML_NAMES:
            if (self.root / name).is_file():
                return self.root / name
        found = sorted(p for p in self.root.iterdir() if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
        if len(found) > 1:
            raise AdapterError(f"YOLO dataset {printable_path(self.root)} has {len(found)} YAML files and no "
                               "data.yaml; set dataset.annotation_file (or give the file as --dataset).")
        return found[0] if found else None

    def _load_yaml(self) -> dict[str, Any]:
        """The parsed data.yaml; one that cannot be read at all is an :class:`AdapterError`."""
        assert self.yaml_file is not None
        shown = printable_path(self.yaml_file)
        try:
            data = yaml.safe_load(self.yaml_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise AdapterError(f"YOLO file {shown} cannot be read ({shorten(exc, 200)}).") from None
        except RecursionError:
            raise AdapterError(f"YOLO file {shown} is nested too deeply to read.") from None
        if not isinstance(data, dict):
            raise AdapterError(f"YOLO file {shown} is not a mapping of names, train, val…")
        return data

    def _class_names(self, data: dict[str, Any]) -> list[str | None]:
        """Class index -> name (None where the file gives no usable name)."""
        names: Any = data.get("names")
        where = self.yaml_file.name if self.yaml_file else ""
        if names is None:
            for name in _CLASS_FILES:
                path = (self.yaml_file.parent if self.yaml_file else self.root) / name
                if path.is_file():
                    where = name
                    names = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
                    names = [n for n in names if n]
                    break
        if isinstance(names, dict):
            keyed = {_index(k): v for k, v in names.items()}
            if None in keyed:
                bad = next(k for k in names if _index(k) is None)
                raise AdapterError(f"YOLO file {where}: names key {shorten(repr(bad), 40)} is not a class index.")
            names = [keyed.get(i) for i in range(max(keyed, default=-1) + 1)]  # type: ignore[arg-type]
        if names is not None and not isinstance(names, list):
            raise AdapterError(f"YOLO file {where}: names is {shorten(repr(names), 40)}, not a list or an "
                               "{index: name} mapping.")
        if not names:
            raise AdapterError(f"YOLO dataset {printable_path(self.root)}: no class names (data.yaml 'names:', "
                               "classes.txt or obj.names); class indices alone cannot be matched to labels.")
        out: list[str | None] = []
        for index, name in enumerate(names):
            if isinstance(name, (str, int, float)) and not isinstance(name, bool) and str(name).strip():
                out.append(str(name).strip())
            else:
                out.append(None)
                self._issues.append(Issue(str(self.yaml_file or self.root), "malformed_category",
                                          f"{where}: class {index} is named {shorten(repr(name), 40)}, not text; "
                                          "its rows are skipped."))
        declared = data.get("nc")
        if isinstance(declared, int) and declared != len(out):
            logger.warning("%s: nc is %d but %d names are given; the names count", where, declared, len(out))
        return out

    def _split_entries(self, data: dict[str, Any]) -> list[tuple[str, Path]]:
        """(split, folder or list file) for data.yaml's train / val / test entries that exist."""
        base = self.yaml_file.parent if self.yaml_file else self.root
        if isinstance(data.get("path"), str) and (base / data["path"]).is_dir():
            base = base / data["path"]
        entries: list[tuple[str, Path]] = []
        for key, value in data.items():
            split = split_name(key) if isinstance(key, str) and key.isalpha() else None
            if split is None or not value:
                continue
            for entry in value if isinstance(value, list) else [value]:
                if not isinstance(entry, str):
                    continue
                tries = [base / entry] + ([base / entry[3:]] if entry.startswith("../") else [])
                found = next((p for p in tries if p.exists()), None)
                if found is None:
                    logger.warning("%s: %s entry %r is not in the dataset; its images are read by their folders",
                                   printable_path(self.yaml_file or ""), key, entry)
                else:
                    entries.append((split, found))
        return entries

    def _list_images(self, scan: Path, entries: list[tuple[str, Path]]) -> list[tuple[Path, str | None]]:
        """Every image to read with its split, each once, in a stable order."""
        folders = [(split, path) for split, path in entries if path.is_dir()]
        images: dict[Path, str | None] = {}
        for folder in dict.fromkeys([scan] + [path for _, path in folders]):
            found, issues = list_files(folder, self.extensions)
            known = {i.file for i in self._issues}
            self._issues.extend(i for i in issues if i.file not in known)
            for image in found:
                images.setdefault(image, None)
        for split, listing in entries:
            if listing.is_file() and listing.suffix.lower() == ".txt":
                self._lists.add(listing)
                for image in self._listed(listing):
                    if images.get(image) is None:
                        images[image] = split
        for image in images:
            if images[image] is None:
                holders = [(len(p.parts), s) for s, p in folders if inside_folder(image, p)]
                images[image] = max(holders, key=lambda h: h[0])[1] if holders else self._folder_split(image)
        return list(images.items())

    def _listed(self, listing: Path) -> list[Path]:
        """The images a ``train.txt``-style list names (relative to the list's folder, or absolute)."""
        out = []
        try:
            lines = listing.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            raise AdapterError(f"YOLO list {printable_path(listing)} cannot be read ({exc.strerror or exc}).") from None
        for line in lines:
            name = line.strip()
            if not name:
                continue
            path = listing.parent / name
            try:
                present = path.is_file()
            except (OSError, ValueError):  # a name too long for the file system, a NUL byte
                present = False
            if present:
                out.append(path)
            else:
                self._issues.append(Issue(printable_path(listing), "missing_image",
                                          f"{listing.name} lists image '{shorten(name)}', which is not there."))
        return out

    def _folder_split(self, image: Path) -> str | None:
        """The split the nearest folder below the root names (never the file's own name)."""
        folder = image.parent
        while folder != self.root and inside_folder(folder, self.root):
            split = split_name(folder.name)
            if split:
                return split
            folder = folder.parent
        return None

    def count(self) -> int:
        """Number of images to read."""
        return len(self._images)

    def read(self, progress: Callable[[int], None] | None = None) -> Iterator[RawImage | Issue]:
        """Yield one :class:`RawImage` per labelled image, and issues for the rest."""
        yield from self._issues
        claimed: dict[Path, Path] = {}
        for image, split in self._images:
            if progress:
                progress(1)
            label = label_path(image, self.root)
            if not label.is_file():
                yield Issue(str(image), "no_annotation", f"{self._rel(image)} has no label file ({self._rel(label)}).")
                continue
            owner = claimed.setdefault(label, image)
            if owner != image:
                yield Issue(str(image), "duplicate_annotation", f"{self._rel(image)} and {owner.name} share the label "
                            f"file {self._rel(label)}; kept {owner.name}.")
                continue
            yield from self._read_image(image, label, split)
        yield from self._orphans(claimed)

    def _read_image(self, image: Path, label: Path, split: str | None) -> Iterator[RawImage | Issue]:
        """The issues of one label file's rows, then its :class:`RawImage`."""
        try:
            content = label.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            yield Issue(str(label), "malformed_annotation", f"{self._rel(label)} cannot be read as text "
                        f"({shorten(exc, 100)}); {image.name} skipped.")
            return
        try:
            size: tuple[int, int] | None = read_header(image).oriented_size
        except ImageReadError:
            size = None  # ingestion reads the header again and names the fault (corrupt_image, too_many_pixels)
        shapes: list[RawShape] = []
        if size is not None:
            for number, line in enumerate(content.splitlines(), start=1):
                if line.strip():
                    shape, problem = self._row(line, size)
                    if shape is None:
                        yield Issue(str(label), "malformed_annotation", f"{self._rel(label)} line {number} "
                                    f"('{shorten(line.strip(), 60)}'): {problem}; row skipped.")
                    else:
                        shapes.append(shape)
        yield RawImage(
            annotation_path=label,
            image_path=image,
            image_ref=self._rel(image),
            declared_size=size,
            shapes=shapes,
            attributes={"split": split} if split else {},
        )

    def _row(self, line: str, size: tuple[int, int]) -> tuple[RawShape | None, str]:
        """One row as a shape in pixels, or None and what is wrong with it."""
        first, *rest = line.split()
        index = _index(first)
        if index is None:
            return None, f"class {shorten(repr(first), 30)} is not a class index"
        if not 0 <= index < len(self.names):
            return None, f"class {index} is out of range (the dataset names {len(self.names)} classes, 0 to {len(self.names) - 1})"
        name = self.names[index]
        if name is None:
            return None, f"class {index} has no usable name"
        values = [_fraction(v) for v in rest]
        bad = next((raw for raw, v in zip(rest, values, strict=True) if v is None), None)
        if bad is not None:
            return None, f"{shorten(repr(bad), 30)} is not a finite number"
        numbers = [v for v in values if v is not None]
        if len(numbers) == 4 or (self._pose and len(numbers) > 4):
            cx, cy, w, h = numbers[:4]
            if w < 0 or h < 0:
                return None, "the box has a negative width or height"
            numbers = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            kind = "rectangle"
        elif len(numbers) >= 6 and len(numbers) % 2 == 0:
            kind = "polygon"
        else:
            return None, (f"{len(numbers)} number{'s' * (len(numbers) != 1)} after the class; a box has 4 "
                          "(cx cy w h), a polygon an even 6 or more (x y pairs)")
        if any(v < -_SLACK or v > 1 + _SLACK for v in numbers):
            return None, "coordinates are not fractions of the image (0 to 1); pixel values?"
        width, height = size
        points = [(x * width, y * height) for x, y in zip(numbers[0::2], numbers[1::2], strict=True)]
        return RawShape(name, kind, points), ""

    def _orphans(self, claimed: dict[Path, Path]) -> Iterator[Issue]:
        """``missing_image`` for label files no image claimed: under a ``labels`` folder, or beside images."""
        beside = {image.parent for image, _ in self._images}
        found, issues = list_files(self.root, [".txt"])
        known = {i.file for i in self._issues}
        yield from (i for i in issues if i.file not in known)
        for path in found:
            parts = path.relative_to(self.root).parts[:-1] if inside_folder(path, self.root) else ()
            if path in claimed or path in self._lists or not ("labels" in parts or path.parent in beside):
                continue
            if path.name.lower() in _CLASS_FILES or path.name.lower().startswith("readme"):
                continue
            images = image_folder(path, self.root)
            yield Issue(str(path), "missing_image", f"{self._rel(path)} has no image named {shorten(path.stem, 60)}"
                        f" (any of {', '.join(self.extensions)}) in {self._rel(images) or '.'}.")

    def _rel(self, path: Path) -> str:
        """``path`` below the dataset folder as printable text (the whole path when outside it)."""
        try:
            return printable_path(path.relative_to(self.root).as_posix())
        except ValueError:
            return printable_path(path)


ADAPTER = YoloAdapter


def label_path(image: Path, root: Path | None = None) -> Path:
    """The label file of ``image``: its last ``images`` folder (below ``root``) becomes ``labels``, the suffix ``.txt``.

    Without an ``images`` folder the label sits beside the image (darknet).
    """
    return _swap(image, "images", "labels", root).with_suffix(".txt")


def image_folder(label: Path, root: Path | None = None) -> Path:
    """Where the image of ``label`` would be (the inverse of :func:`label_path`'s folder change)."""
    return _swap(label, "labels", "images", root).parent


def _swap(path: Path, old: str, new: str, root: Path | None) -> Path:
    """``path`` with its last folder called ``old`` (below ``root``, when inside it) renamed ``new``."""
    parts = list(path.parts)
    lowest = len(root.parts) if root is not None and inside_folder(path, root) else 0
    for i in range(len(parts) - 2, lowest - 1, -1):
        if parts[i] == old:
            parts[i] = new
            return Path(*parts)
    return path


def _index(value: Any) -> int | None:
    """A class index: an int, or text of a whole number ("3", "3.0"); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.0*)?", value.strip()):
        return int(float(value))
    return None


def _fraction(text: str) -> float | None:
    """A row value as a finite float, or None ('nan', 'inf', '0,5', 'x')."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None

