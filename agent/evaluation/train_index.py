"""The train-side index of an evaluation: built from the training photos only, cached by key.

:func:`index.build.build_index` indexes the train photos only (its ``images`` argument: no
special adapter, no process-global state). The index directory is named by a key over everything that decides its content (dataset, annotations of the train photos,
region strategy, embedder, index settings, split), so a rerun with the same inputs reuses it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from index.config import DomainConfig
from index.dataset.records import ImageRecord
from index.files import digest

logger = logging.getLogger(__name__)

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


def ensure_train_index(config: DomainConfig, train: list[ImageRecord], index_dir: Path,
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
    report = build_index(config, index_dir=index_dir, images=[r.image_id for r in train], embedder=embedder,
                         progress=progress, total=total)
    return {"dir": str(index_dir), "built": True, "images": report.get("images"), "nodes": report.get("nodes"),
            "seconds": report.get("seconds")}
