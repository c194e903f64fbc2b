"""The adapter interface and the lookup of an adapter by format name."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from index.dataset.records import Issue, RawImage
from index.errors import DamageRagError

if TYPE_CHECKING:
    from index.config import DatasetConfig


class AdapterError(DamageRagError, ValueError):
    """The dataset cannot be read at all (missing folder, unknown format)."""


class DatasetAdapter(Protocol):
    """Reads one annotation format. Constructed with the dataset section of the config."""

    def __init__(self, config: DatasetConfig) -> None: ...

    def count(self) -> int:
        """How many items :meth:`read` will go through (for progress bars)."""
        ...

    def read(self, progress: Callable[[int], None] | None = None) -> Iterator[RawImage | Issue]:
        """Yield each image's raw annotation, or an issue for what cannot be read.

        Also yields issues for images with no annotation. ``progress(n)`` is called as
        items are read.
        """
        ...


def load_adapter(config: DatasetConfig) -> DatasetAdapter:
    """The adapter for ``config.format``: a module of this package or 'module:Class'.

    Raises:
        AdapterError: If the format names no adapter or the dataset folder is missing.
    """
    root = Path(config.root)
    if root.is_file():
        raise AdapterError(
            f"Dataset {printable_path(root)} is a file, not a folder; a single annotation file can be "
            "the dataset for formats that keep one (a COCO .json, a YOLO data.yaml), not for "
            f"'{config.format}': give its folder."
        )
    if not root.is_dir():
        raise AdapterError(f"Dataset folder {config.root} does not exist or is not a folder.")
    fmt = config.format
    if ":" in fmt:
        module_name, _, attr = fmt.partition(":")
    else:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", fmt):
            raise AdapterError(f"Unknown dataset format '{fmt}'.")
        module_name, attr = f"index.dataset.adapters.{fmt}", "ADAPTER"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise AdapterError(f"The adapter module {module_name} of format '{fmt}' cannot be imported ({exc}).") from exc
        module = None
    except ImportError as exc:  # the module exists but is broken: say so, not "unknown format"
        raise AdapterError(f"The adapter module {module_name} of format '{fmt}' cannot be imported ({exc}).") from exc
    adapter_cls = getattr(module, attr, None)
    if adapter_cls is None:
        builtin = sorted(
            p.stem for p in Path(__file__).parent.glob("*.py") if p.stem != "base" and not p.stem.startswith("_")
        )
        where = f" ({module_name} has no '{attr}')" if module is not None else ""
        raise AdapterError(
            f"Unknown dataset format '{fmt}'{where}; built-in formats: {', '.join(builtin)} "
            "(or give 'package.module:AdapterClass')."
        )
    return adapter_cls(config)


def printable_path(path: Path | str) -> str:
    """``path`` as text that can be printed and written as JSON.

    A name that is not valid UTF-8 (a Latin-1 name from an old zip, say) reaches Python with
    surrogate escapes, which no UTF-8 writer accepts; its undecodable bytes are shown as ``\\xNN``.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def inside_folder(path: Path, root: Path) -> bool:
    """Whether ``path`` lies inside ``root``, by normalised absolute paths.

    ``..`` and absolute paths written in an annotation are judged by where they point;
    symlinks the user placed inside the folder are followed as placed.
    """
    target, folder = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))
    return target == folder or target.startswith(folder.rstrip(os.sep) + os.sep)


_SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
           "test": "test", "testing": "test"}


def split_name(text: str) -> str | None:
    """The split a file or folder name says: ``"train"``, ``"val"`` or ``"test"``, else None.

    The first word that names one counts, digits ignored: ``instances_train2017`` is train,
    ``valid`` is val, ``image_info_test-dev2017`` is test, ``_annotations.coco`` is None.
    """
    for word in re.split(r"[^a-z]+", text.lower()):
        if word in _SPLITS:
            return _SPLITS[word]
    return None


def has_readable_name(path: Path) -> bool:
    """Whether ``path`` is valid UTF-8 text (it can be stored in the index and shown)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_files(root: Path, suffixes: list[str]) -> tuple[list[Path], list[Issue]]:
    """Regular files under ``root`` (recursive, sorted) whose suffix is one of ``suffixes``.

    Only regular files count: a named pipe or a device called ``x.json`` would block a read.
    Files whose names are not valid UTF-8 are returned as ``undecodable_name`` issues instead,
    before anything reads them.
    """
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in suffixes}
    found, issues = [], []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in wanted or not path.is_file():
            continue
        if has_readable_name(path):
            found.append(path)
        else:
            shown = printable_path(path)
            issues.append(Issue(shown, "undecodable_name", f"{shown}: the file name is not valid UTF-8; "
                                "rename it (e.g. `convmv -f latin1 -t utf8`) to index it."))
    return found, issues


def list_images(root: Path, extensions: list[str]) -> list[Path]:
    """All image files under ``root`` with a readable name (see :func:`list_files`)."""
    return list_files(root, extensions)[0]
