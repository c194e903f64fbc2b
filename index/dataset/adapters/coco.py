"""COCO: one JSON for many images, with polygon segmentation or boxes.

The format most public damage sets ship in (Roboflow exports, CarDD). Category names are
matched against the taxonomy, so a COCO category "scratch" or "rayón" finds its label. RLE
segmentations fall back to the annotation's box, and the shape records that.

A dataset may hold one file or one per split, read as one dataset: ``instances_train.json``,
``instances_val.json``... over a shared ``images/`` (or ``images/train/``...), the official
``annotations/instances_val2017.json`` beside ``val2017/``, or Roboflow's
``train/_annotations.coco.json`` with its images in ``train/``. ``dataset.annotation_file``
names one file; without it (or when the folder ``--dataset`` names lacks it) every JSON at the
top is read, else those in ``annotations/`` (``instances_*`` only, when there are any), else
those one folder down. Each image records its file's split, ``attributes["split"]`` = ``train``
/ ``val`` / ``test``, from the file's name or else its folder's (``valid`` is val). Image ids
are per file: two files' id 1 are two images. Two entries naming one image file, in one file or
two, are a ``duplicate_annotation`` (the first is kept; files are read train, val, test, then
the rest). Among several files found, a JSON with no ``images`` list is a ``not_coco`` skip.

A hand-edited or half-exported file is read entry by entry: a bad entry becomes an
:class:`~index.dataset.records.Issue` (a counted skip) and the read goes on. Reason codes:

- ``malformed_image_entry``: an ``images`` entry that is not an object, or whose ``id`` is not
  a plain value (a list, an object); the entry is skipped.
- ``malformed_annotation``: an annotation that is not an object, or whose ``image_id`` /
  ``category_id`` is not a plain value; a needed ``bbox`` that is not four finite numbers; a
  segmentation ring that is not an even-length list of finite numbers (one issue per ring), or
  a segmentation that is neither rings nor RLE. When no ring is usable the box is used, as for
  RLE (``attributes["segmentation"]`` says ``"malformed (box used)"``); with no usable box
  either, the annotation is skipped. A bad ``bbox`` next to usable rings is not needed and
  not reported.
- ``malformed_category``: a category that is not an object or has no plain ``id``.
- ``malformed_section``: ``annotations`` or ``categories`` present but not a list; read as empty.
- ``bad_file_name``: a ``file_name`` the file system cannot look up (longer than the system
  allows) or that is not valid UTF-8 text.
- ``missing_image``, ``duplicate_annotation``, ``no_annotation``, and ``undecodable_name``
  for a file in the images folder whose name is not UTF-8.

A declared ``width`` / ``height`` that is not a positive finite number (``"wide"``, ``[800]``,
``true``, ``-5``, NaN) is treated as unknown: ``declared_size`` is None, the image header gives
the size, and nothing else is recorded (a debug log line only). ``file_name`` is joined to the
images folder as given, absolute and ``../`` paths included; whether the result lies inside the
dataset is ingestion's check. A file that leaves nothing to read (not JSON, no ``images`` list)
raises :class:`~index.dataset.adapters.base.AdapterError`. One file's reading is
:mod:`index.dataset.adapters._coco_file`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from index.config import DatasetConfig
from index.dataset.adapters._coco_file import CocoFile, NotCocoError, safe_text
from index.dataset.adapters.base import (
    AdapterError,
    has_readable_name,
    inside_folder,
    list_files,
    printable_path,
    split_name,
)
from index.dataset.records import Issue, RawImage

logger = logging.getLogger(__name__)


class CocoAdapter:
    """Reads a COCO dataset: one instances JSON, or one per split, and the images they list."""

    def __init__(self, config: DatasetConfig) -> None:
        self.root = Path(config.root)
        self.extensions = config.image_extensions
        self._issues: list[Issue] = []
        images_dir = self.root / config.images_dir if config.images_dir is not None else None
        if images_dir is not None and not images_dir.is_dir():
            logger.warning("COCO dataset %s: dataset.images_dir %s is not a folder; looking for the images "
                           "beside each annotation file", printable_path(self.root), printable_path(images_dir))
            images_dir = None
        order = {"train": 0, "val": 1, "test": 2}  # when two files list one image, the train one is kept
        paths = sorted(self._annotation_files(config.annotation_file),
                       key=lambda p: (order.get(self._split(p) or "", 3), p))
        self._files: list[CocoFile] = []
        not_coco: list[NotCocoError] = []
        for path in paths:
            name = _relative(path, self.root)
            try:
                self._files.append(CocoFile(path, images_dir or self._images_dir(path), name, self._split(path)))
            except NotCocoError as exc:
                if len(paths) == 1:
                    raise
                not_coco.append(exc)
                self._issues.append(Issue(printable_path(path), "not_coco",
                                          f"{name} has no 'images' list: not a COCO file; skipped."))
        if not self._files:
            raise not_coco[0]
        logger.info("COCO dataset %s: %s", printable_path(self.root),
                    ", ".join(f"{f.name} ({f.split or 'no split'})" for f in self._files))

    def _annotation_files(self, configured: Path | None) -> list[Path]:
        """The configured file, else every COCO file found (see :meth:`_discover`)."""
        named = self.root / configured if configured is not None else None
        if named is not None and named.exists():
            return [named]
        found = self._discover()
        if named is not None and found:  # --dataset named another folder than the config's
            logger.warning("COCO dataset %s has no %s (dataset.annotation_file); reading the %d annotation "
                           "files it holds: %s", printable_path(self.root), printable_path(configured or ""),
                           len(found), ", ".join(_relative(p, self.root) for p in found))
        if found:
            return found
        if named is not None:
            return [named]  # reading it says it does not exist
        raise AdapterError(f"COCO dataset {printable_path(self.root)}: no annotation JSON at its top, in its "
                           "annotations/ folder or in its subfolders (e.g. train/); set dataset.annotation_file.")

    def _discover(self) -> list[Path]:
        """JSON files at the top; else in ``annotations/`` (``instances_*`` first); else one level down.

        The last is Roboflow's layout: ``train/_annotations.coco.json`` beside its images.
        """
        top = self._jsons(self.root)
        if top:
            return top
        inside = self._jsons(self.root / "annotations")
        if inside:
            return [p for p in inside if p.name.startswith("instances_")] or inside
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and has_readable_name(p))
        return [path for folder in folders for path in self._jsons(folder)]

    def _jsons(self, folder: Path) -> list[Path]:
        """The regular ``.json`` files directly in ``folder``; names that are not UTF-8 become issues."""
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() != ".json" or not path.is_file():
                continue
            if has_readable_name(path):
                found.append(path)
            else:
                shown = printable_path(path)
                self._issues.append(Issue(shown, "undecodable_name", f"{shown}: the file name is not valid "
                                          "UTF-8; rename it to read it."))
        return found

    def _images_dir(self, annotation_file: Path) -> Path:
        """Where a file's images are: a folder its name's split word names, else ``images/``, else its own.

        ``annotations/instances_val2017.json`` finds ``val2017/`` (the official COCO layout);
        ``instances_val.json`` finds ``images/val/`` or, failing that, the shared ``images/``;
        ``train/_annotations.coco.json`` finds ``train/`` itself.
        """
        folder = annotation_file.parent
        base = self.root if folder.name == "annotations" and folder != self.root else folder
        words = [w for w in re.split(r"[_.]", annotation_file.stem) if w and split_name(w)]
        candidates = [c for w in words for c in (base / w, base / "images" / w)] + [base / "images"]
        return next((c for c in candidates if c.is_dir()), base)

    def _split(self, annotation_file: Path) -> str | None:
        """The split the file's name says, else the nearest folder's name below the root."""
        split, folder = split_name(annotation_file.stem), annotation_file.parent
        while split is None and folder != self.root and inside_folder(folder, self.root):
            split, folder = split_name(folder.name), folder.parent
        return split

    def count(self) -> int:
        """Number of image entries in the COCO files."""
        return sum(f.count() for f in self._files)

    def read(self, progress: Callable[[int], None] | None = None) -> Iterator[RawImage | Issue]:
        """Yield one :class:`RawImage` per listed image, and issues for the rest."""
        yield from self._issues
        claimed: dict[Path, tuple[str, int, Any]] = {}
        for file in self._files:
            yield from file.read(progress, claimed)
        names = [f.name for f in self._files]
        where = names[0] if len(names) == 1 else safe_text(f"any of the {len(names)} annotation files ({', '.join(names)})", 160)
        seen: set[str] = set()  # the images folders of several files may be one folder, or nest
        for folder in dict.fromkeys(f.images_dir for f in self._files):
            images, issues = list_files(folder, self.extensions)
            for issue in issues:
                if issue.file not in seen:
                    seen.add(issue.file)
                    yield issue
            for image in images:
                if image not in claimed and str(image) not in seen:
                    seen.add(str(image))
                    yield Issue(str(image), "no_annotation", f"{image.name} is not listed in {where}.")

ADAPTER = CocoAdapter


def _relative(path: Path, root: Path) -> str:
    """``path`` below ``root`` as printable text (the file's name in messages), else the whole path."""
    try:
        return printable_path(path.relative_to(root).as_posix())
    except ValueError:
        return printable_path(path)


