"""The adapter interface and the lookup of an adapter by format name."""

from __future__ import annotations

import importlib
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
    if not Path(config.root).is_dir():
        raise AdapterError(f"Dataset folder {config.root} does not exist or is not a folder.")
    fmt = config.format
    if ":" in fmt:
        module_name, _, attr = fmt.partition(":")
    else:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", fmt):
            raise AdapterError(f"Unknown dataset format '{fmt}'.")
        module_name, attr = f"index.dataset.adapters.{fmt}", "ADAPTER"
    try:
        adapter_cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        builtin = sorted(
            p.stem for p in Path(__file__).parent.glob("*.py") if p.stem not in ("__init__", "base")
        )
        raise AdapterError(
            f"Unknown dataset format '{fmt}'; built-in formats: {', '.join(builtin)} "
            "(or give 'package.module:AdapterClass')."
        ) from None
    return adapter_cls(config)


def list_images(root: Path, extensions: list[str]) -> list[Path]:
    """All image files under ``root`` (recursive), sorted, matched by extension."""
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in wanted and p.is_file())
