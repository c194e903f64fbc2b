"""The index directory: manifest, staging area and the atomic swap.

Layout of ``outputs/vector_index/`` (or ``--out``)::

    faiss.index        vectors (written by FaissNodeStore)
    metadata.sqlite    per-vector node records (written by FaissNodeStore, see index.vector_store.persistence)
    manifest.json      format version, embedder id/dim/fingerprint, config snapshot, counts,
                       per-image signatures and node ids, build time
    build_report.json  what the last build did, skipped and why
    crops/             one small JPEG per node, named <node id>_<pixel signature>.jpg

A build writes into ``<dir>.staging`` (crops of unchanged photos are hard-linked, not
copied) and swaps it in with two renames, so an interrupted build leaves the previous index
whole; the staging area keeps its checkpoints, so the next build resumes from them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from index.errors import DamageRagError
from index.files import write_json_atomic

if TYPE_CHECKING:
    from index.config import DomainConfig
    from index.embedders.config import EmbedderInfo
    from index.regions.plan import RegionCrop

logger = logging.getLogger(__name__)

#: 2: the store's node records are ``metadata.sqlite`` (format 2 of index.vector_store.persistence),
#: no longer ``metadata.json``; an index of version 1 is rebuilt (readers say so in one line)
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
BUILD_REPORT = "build_report.json"
CROPS = "crops"


class IndexNotFoundError(DamageRagError, FileNotFoundError):
    """There is no built index at the given directory."""


def node_counts(crops: Iterable[RegionCrop], images: int | None = None) -> dict[str, Any]:
    """The manifest's ``counts``: images, nodes, nodes per kind and region nodes per label.

    ``images`` defaults to the number of photos the crops come from.
    """
    live = list(crops)
    return {
        "images": len({c.record.image_id for c in live}) if images is None else images,
        "nodes": len(live),
        "nodes_by_kind": dict(Counter(c.kind for c in live)),
        "regions_by_label": dict(Counter(c.label_keys[0] for c in live if c.kind == "region")),
    }


def write_manifest(
    index_dir: Path,
    config: DomainConfig,
    embedder: EmbedderInfo,
    *,
    counts: dict[str, Any],
    images: dict[str, Any],
    complete: bool,
    build_seconds: float,
    embedder_files: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``manifest.json`` atomically: the one writer of the index's manifest.

    Args:
        index_dir: The index (or staging) directory.
        config: The configuration the index was built with (its snapshot is recorded).
        embedder: The embedder's identity (model id, family, dim, fingerprint).
        counts: What the index holds (:func:`node_counts`).
        images: Per-image signatures and node ids (``{}`` for a one-off index).
        complete: False for a checkpoint of a build still running.
        build_seconds: How long the build took so far.
        embedder_files: A cheap identity of a local model directory, if any.
        extra: More fields (the evaluation records its strategy and cache key).

    Returns:
        The manifest as written.
    """
    embedder_record = {**embedder.to_dict(), "config": config.embedder.model_dump(mode="json"), "files": embedder_files}
    manifest = {
        "format_version": FORMAT_VERSION,
        "complete": complete,
        "dataset": config.name,
        "embedder": embedder_record,
        "dim": embedder.dim,
        "index_type": config.index.type,
        "config": config.model_dump(mode="json"),
        "counts": counts,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(build_seconds, 2),
        "images": images,
        **(extra or {}),
    }
    write_json_atomic(index_dir / MANIFEST, manifest)
    return manifest


class _EmbedderRecord(BaseModel):
    model_id: str
    family: str
    dim: int
    fingerprint: str
    config: dict[str, Any]


class _Counts(BaseModel):
    images: int
    nodes: int
    nodes_by_kind: dict[str, int]
    regions_by_label: dict[str, int]


class _ImageState(BaseModel):
    signature: str
    nodes: list[str]
    crops: list[str]


class _ManifestShape(BaseModel, extra="allow"):
    """What readers and the build rely on in ``manifest.json``."""

    format_version: int
    complete: bool = True
    dataset: str
    embedder: _EmbedderRecord
    dim: int
    index_type: str
    built_at: str
    build_seconds: float
    config: dict[str, Any]
    counts: _Counts
    images: dict[str, _ImageState] = {}


def check_manifest(manifest: Any, path: Path) -> dict[str, Any]:
    """``manifest`` if it has the shape of this program's manifests (and its taxonomy is valid).

    Raises:
        IndexNotFoundError: Naming ``path``, the first field at fault and how to recover.
    """
    from pydantic import ValidationError

    from index.taxonomy import LabelTaxonomy

    if isinstance(manifest, dict) and manifest.get("format_version") not in (None, FORMAT_VERSION):
        raise IndexNotFoundError(
            f"{path} has format version {manifest.get('format_version')}, this program reads "
            f"{FORMAT_VERSION}; rebuild the index with `python -m index build`.")
    try:
        _ManifestShape.model_validate(manifest)
        LabelTaxonomy.model_validate(manifest["config"].get("taxonomy"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the top level"
        raise IndexNotFoundError(
            f"{path} is not a valid index manifest ({where}: {first['msg']}); rebuild the index "
            "with `python -m index build`.") from None
    return manifest


def load_manifest(path: Path) -> dict[str, Any]:
    """Read and check one ``manifest.json`` (of an index or of a staging area).

    Raises:
        IndexNotFoundError: If it is missing, unreadable or wrongly shaped.
    """
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexNotFoundError(f"{path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexNotFoundError(f"{path} is unreadable ({exc}); rebuild the index.") from None
    return check_manifest(manifest, path)


def readable_dir(index_dir: Path) -> Path:
    """The directory a reader opens: ``index_dir``, or the ``.old`` copy a build's swap left.

    A swap that stopped between its two renames leaves only ``<index>.old``, which is whole;
    readers read it as it is and rename nothing (the next build restores it).
    """
    if (index_dir / MANIFEST).is_file():
        return index_dir
    old = _old_dir(index_dir)
    if not index_dir.exists() and (old / MANIFEST).is_file():
        logger.warning("reading %s: an interrupted build left it there; the next build restores %s", old, index_dir)
        return old
    return index_dir


def read_manifest(index_dir: Path) -> dict[str, Any]:
    """The manifest of a built index (read from :func:`readable_dir`), checked.

    Raises:
        IndexNotFoundError: If the directory holds no index (with how to build one), or its
            manifest is unreadable or wrongly shaped.
    """
    path = readable_dir(index_dir) / MANIFEST
    if not path.is_file():
        raise IndexNotFoundError(
            f"No index at {index_dir}: build one with `python -m index build --config CONFIG "
            f"--out {index_dir}`."
        )
    return load_manifest(path)


def staging_dir(index_dir: Path) -> Path:
    """Where a build writes before the swap."""
    return index_dir.with_name(index_dir.name + ".staging")


def _old_dir(index_dir: Path) -> Path:
    return index_dir.with_name(index_dir.name + ".old")


def recover(index_dir: Path) -> None:
    """Finish or undo a swap that was interrupted between its two renames (writers only)."""
    old = _old_dir(index_dir)
    if old.is_dir():
        if index_dir.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(index_dir)
            logger.warning("restored %s from an interrupted swap", index_dir)


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (copy across file systems)."""
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def swap_in(staging: Path, index_dir: Path) -> None:
    """Replace ``index_dir`` by ``staging``: rename the old aside, rename the new in, drop the old."""
    old = _old_dir(index_dir)
    if old.exists():
        shutil.rmtree(old)
    if index_dir.exists():
        index_dir.rename(old)
    staging.rename(index_dir)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def disk_size(path: Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
