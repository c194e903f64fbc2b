"""The train-side index of an evaluation: built from the training photos only, cached by key.

:func:`index.build.build_index` reads the whole configured dataset; to index only the train
side of a split we read the dataset through :class:`SubsetAdapter`, an ordinary dataset
adapter (the documented ``package.module:Class`` extension point) that wraps the configured
format and keeps the photos registered for the current build. The index directory is named
by a key over everything that decides its content (dataset, annotations of the train photos,
region strategy, embedder, index settings, split), so a rerun with the same inputs reuses it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.config import DatasetConfig, DomainConfig
from index.dataset.adapters.base import AdapterError, load_adapter
from index.dataset.records import ImageRecord, Issue, RawImage
from index.files import digest

logger = logging.getLogger(__name__)

SUBSET_FORMAT = "agent.evaluation.train_index:SubsetAdapter"


@dataclass(frozen=True)
class _Subset:
    format: str
    keep: frozenset[tuple[str, str | None]]
    drop_files: frozenset[str]


_ACTIVE: dict[str, _Subset] = {}


def _resolved(path: Path | None) -> str | None:
    return str(Path(path).resolve()) if path is not None else None


def _record_key(record: ImageRecord) -> tuple[str, str | None]:
    return _resolved(record.annotation_path) or "", None if record.embedded else _resolved(record.image_path)


class SubsetAdapter:
    """Reads the dataset in its configured format, keeping only the registered photos.

    Only usable inside :func:`subset_of`, which registers the photos for the dataset root.
    """

    def __init__(self, config: DatasetConfig) -> None:
        subset = _ACTIVE.get(str(Path(config.root).resolve()))
        if subset is None:
            raise AdapterError(f"{SUBSET_FORMAT} reads a registered subset of a dataset; none is registered "
                               f"for {config.root} (it is only meant for `python -m agent eval`).")
        self.keep = subset.keep
        self.drop_files = subset.drop_files
        self.inner = load_adapter(config.model_copy(update={"format": subset.format}))

    def count(self) -> int:
        """Items the wrapped adapter reads."""
        return self.inner.count()

    def read(self, progress: Callable[[int], None] | None = None) -> Iterator[RawImage | Issue]:
        """The wrapped adapter's items, minus the photos outside the subset."""
        for item in self.inner.read(progress):
            if isinstance(item, RawImage):
                key = (_resolved(item.annotation_path) or "", _resolved(item.image_path))
                if key in self.keep:
                    yield item
            elif _resolved(Path(item.file)) not in self.drop_files:
                yield item


@contextlib.contextmanager
def subset_of(config: DomainConfig, records: list[ImageRecord], others: list[ImageRecord]) -> Iterator[DomainConfig]:
    """A config whose dataset reads only ``records`` (``others``' files are left out silently)."""
    root = str(Path(config.dataset.root).resolve())
    drop = frozenset(p for r in others for p in (_resolved(r.annotation_path), _resolved(r.image_path)) if p)
    _ACTIVE[root] = _Subset(config.dataset.format, frozenset(_record_key(r) for r in records), drop)
    try:
        yield config.model_copy(update={"dataset": config.dataset.model_copy(update={"format": SUBSET_FORMAT})})
    finally:
        _ACTIVE.pop(root, None)


def index_key(config: DomainConfig, train: list[ImageRecord], *, test_fraction: float, seed: int) -> str:
    """A short key over everything that decides the train-side index's content."""
    photos = sorted(
        (r.image_id, r.width, r.height, [(g.label_key, [round(v, 1) for v in g.bbox]) for g in r.regions])
        for r in train
    )
    index_settings = config.index.model_dump(mode="json")
    index_settings.pop("dir", None)
    return digest({
        "dataset": config.name, "root": str(Path(config.dataset.root).resolve()), "format": config.dataset.format,
        "strategy": config.regions.model_dump(mode="json"), "embedder": config.embedder.model_dump(mode="json"),
        "index": index_settings, "split": {"test_fraction": test_fraction, "seed": seed}, "train": photos,
    })[:16]


def index_ready(index_dir: Path) -> bool:
    """True when ``index_dir`` holds a complete index."""
    try:
        manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(manifest.get("complete"))


def ensure_train_index(config: DomainConfig, train: list[ImageRecord], test: list[ImageRecord], index_dir: Path,
                       *, embedder: Any = None, rebuild: bool = False,
                       progress: Callable[[int], None] | None = None,
                       total: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Build the index of the train photos at ``index_dir``, or reuse the one already there.

    Returns:
        ``{"dir", "built", "images", "nodes"}``; the build report is in ``build_report.json``.
    """
    from index.build import build_index

    if index_ready(index_dir) and not rebuild:
        manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
        counts = manifest.get("counts") or {}
        logger.info("reusing the train-side index at %s", index_dir)
        return {"dir": str(index_dir), "built": False, "images": counts.get("images"), "nodes": counts.get("nodes")}
    logger.info("building the train-side index (%d photos) at %s", len(train), index_dir)
    with subset_of(config, train, test) as subset_config:
        report = build_index(subset_config, index_dir=index_dir, embedder=embedder, progress=progress, total=total)
    return {"dir": str(index_dir), "built": True, "images": report.get("images"), "nodes": report.get("nodes"),
            "seconds": report.get("seconds")}
