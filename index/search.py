"""Open a built index and search it with a photo, exactly filtered by label, kind or zone."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from index.config import RegionStrategy
from index.errors import DamageRagError
from index.imaging.query_photo import PhotoSource, QueryPhoto
from index.index_dir import BUILD_REPORT, read_manifest, readable_dir
from index.regions.cut import bytes_signature, file_signature
from index.regions.plan import describe
from index.taxonomy import LabelTaxonomy

logger = logging.getLogger(__name__)


class EmbedderMismatchError(DamageRagError, ValueError):
    """A query embedder that is not the one the index was built with."""


@dataclass
class Hit:
    """One retrieved example."""

    id: str
    kind: str
    label: str | None
    labels: list[str]
    similarity: float
    source_image: str
    crop_path: str
    image_id: str
    vehicle_group: str
    zone: str | None
    area_fraction: float
    description: str
    metadata: dict[str, Any] = field(repr=False, default_factory=dict)
    is_self: bool = False  # cut from the query photo itself (see DamageIndex.image_ids_of)

    def to_dict(self, with_metadata: bool = False) -> dict[str, Any]:
        """JSON-ready form (``is_self`` as ``"self"``); geometry metadata only on request."""
        out = asdict(self)
        out["self"] = out.pop("is_self")
        if not with_metadata:
            out.pop("metadata")
        return out


class DamageIndex:
    """A built index opened for search: the FAISS store, its manifest and its embedder."""

    def __init__(self, index_dir: Path, manifest: dict[str, Any], store: Any, embedder: Any) -> None:
        self.index_dir = index_dir
        self.manifest = manifest
        self.store = store
        self.embedder = embedder
        self.taxonomy = LabelTaxonomy.model_validate(manifest["config"]["taxonomy"])
        self._outside_warned: set[str] = set()  # node ids whose stored image path left the index

    @classmethod
    def open(cls, index_dir: str | Path, embedder_model: str | None = None, embedder: Any = None) -> DamageIndex:
        """Open the index at ``index_dir`` with the embedder its manifest records.

        Args:
            index_dir: The index directory.
            embedder_model: Another model id or path to query with; refused unless it is the
                same model (same fingerprint) as the index's.
            embedder: An already loaded embedder, checked the same way.

        Raises:
            IndexNotFoundError: If there is no index there.
            EmbedderMismatchError: If the given embedder differs from the index's.
            EmbedderError: If the embedder cannot be loaded.
        """
        from index.embedders import EmbedderConfig, load_embedder
        from index.vector_store import VectorIndexConfig, open_store

        index_dir = readable_dir(Path(index_dir))  # an interrupted swap's whole .old, never renamed
        manifest = read_manifest(index_dir)
        recorded = manifest["embedder"]
        if embedder is None:
            config = EmbedderConfig.model_validate(recorded["config"])
            if embedder_model:
                config = config.model_copy(update={"model": embedder_model, "family": "auto"})
            embedder = load_embedder(config)
        if embedder.info.fingerprint != recorded["fingerprint"]:
            raise EmbedderMismatchError(
                f"The index at {index_dir} was built with {recorded['model_id']} ({recorded['dim']}-d, "
                f"fingerprint {recorded['fingerprint'][:12]}) but the query embedder is "
                f"{embedder.info.model_id} ({embedder.info.dim}-d, fingerprint "
                f"{embedder.info.fingerprint[:12]}); vectors from two models are not comparable: "
                "query without --embedder, or rebuild the index with this one."
            )
        stored = VectorIndexConfig.model_validate(manifest["config"]["index"])
        store = open_store(index_dir, stored.model_copy(update={"dir": str(index_dir)}))
        return cls(index_dir, manifest, store, embedder)

    @cached_property
    def strategy(self) -> RegionStrategy:
        """The region strategy the index was built with (margins, square crops, crop and photo sizes)."""
        stored = (self.manifest.get("config") or {}).get("regions")
        if stored is None:
            return RegionStrategy()
        try:
            return RegionStrategy.model_validate(stored)
        except ValueError:
            logger.warning("index manifest has an unreadable region strategy; using defaults")
            return RegionStrategy()

    @cached_property
    def _sources(self) -> dict[str, str]:
        """The indexed photos' ``source_image`` values, by resolved path."""
        return {os.path.realpath(source): source for source in self.store.counts_by("source_image")}

    @cached_property
    def _images_by_pixels(self) -> dict[str, list[str]]:
        """Image ids by the pixel signature the build records per photo (none in older indexes)."""
        out: dict[str, list[str]] = {}
        for image_id, state in (self.manifest.get("images") or {}).items():
            if isinstance(state, dict) and state.get("pixels"):
                out.setdefault(state["pixels"], []).append(image_id)
        return out

    def image_ids_of(self, photo: PhotoSource | QueryPhoto) -> list[str]:
        """Ids of the indexed photos that are ``photo`` itself, sorted; ``[]`` if none is.

        A photo is the same when it is the same file (its resolved path is a node's
        ``source_image``) or has the same bytes: the pixel signature the build records per
        photo (size, first and last 64 KiB, :func:`index.regions.cut.pixel_signature`), so a
        copy under another name or the file's bytes match too. Indexes built before that
        signature was recorded match by path only. A PIL image matches by the file it was
        opened from, if any. Nothing is decoded; the query file is opened once (at most
        128 KiB read).
        """
        from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

        path, data = _identity(photo)
        found: set[str] = set()
        if path is not None and (source := self._sources.get(os.path.realpath(path))) is not None:
            nodes = self.store.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="source_image", value=source)]))
            found.update(str(n.metadata.get("image_id") or "") for n in nodes)
        if self._images_by_pixels and (path is not None or data is not None):
            try:
                signature = bytes_signature(data) if data is not None else file_signature(path)
            except OSError as exc:
                logger.debug("query photo %s unreadable for its signature: %s", path, exc)
            else:
                found.update(self._images_by_pixels.get(signature, []))
        found.discard("")
        return sorted(found)

    def query_image(self, image: PhotoSource | QueryPhoto) -> Image.Image:
        """The pixels a query photo is embedded from: the whole photo at the size of the
        index's whole-image nodes (``regions.image_max_side``), never upscaled.

        ``index search`` and the agent's ``search_similar_damage`` both come through here, so
        one photo gives one vector whichever asks.
        """
        photo = image if isinstance(image, QueryPhoto) else QueryPhoto(image)
        return photo.view(max_side=self.strategy.image_max_side)

    def embed(self, image: PhotoSource | QueryPhoto) -> np.ndarray:
        """The query vector of a photo (see :meth:`query_image`) or of a crop of it."""
        return self.embedder.embed_images([self.query_image(image)])[0]

    def search(
        self,
        image: PhotoSource | QueryPhoto | None = None,
        *,
        vector: np.ndarray | None = None,
        k: int = 5,
        label: str | None = None,
        kind: str | None = None,
        zone: str | None = None,
        exclude_images: list[str] | None = None,
        exclude_groups: list[str] | None = None,
        self_ids: Collection[str] | None = None,
    ) -> list[Hit]:
        """Top-``k`` examples most similar to a photo, exactly filtered.

        Args:
            image: The query photo or crop (path, bytes or PIL image); or give ``vector``.
            vector: A query vector from :meth:`embed`.
            k: How many hits.
            label: Only examples showing this label (id, key, name or synonym).
            kind: Only nodes of this kind (region, image, background, tile).
            zone: Only examples from this zone.
            exclude_images: Image ids never to return (e.g. the query's own photo).
            exclude_groups: Vehicle groups never to return.
            self_ids: Image ids of the query photo itself (:meth:`image_ids_of`): their hits
                are marked ``is_self``.

        Raises:
            UnknownLabelError: If ``label`` names no label of the index's taxonomy.
        """
        from llama_index.core.vector_stores.types import (
            FilterOperator,
            MetadataFilter,
            MetadataFilters,
        )

        if vector is None:
            if image is None:
                raise ValueError("search needs an image or a vector")
            vector = self.embed(image)
        filters = []
        if label is not None:
            key = self.taxonomy.resolve(label).key
            filters.append(MetadataFilter(key="labels", value=key, operator=FilterOperator.CONTAINS))
        if kind is not None:
            filters.append(MetadataFilter(key="kind", value=kind))
        if zone is not None:
            filters.append(MetadataFilter(key="zone", value=str(zone)))
        if exclude_images:
            filters.append(MetadataFilter(key="image_id", value=list(exclude_images), operator=FilterOperator.NIN))
        if exclude_groups:
            filters.append(MetadataFilter(key="vehicle_group", value=list(exclude_groups), operator=FilterOperator.NIN))
        found = self.store.search(np.asarray(vector, dtype=np.float32), k, MetadataFilters(filters=filters) if filters else None)
        nodes = {n.node_id: n for n in self.store.get_nodes([node_id for node_id, _ in found])}
        return [self._hit(nodes[node_id], score, self_ids) for node_id, score in found]

    def _hit(self, node: Any, score: float, self_ids: Collection[str] | None = None) -> Hit:
        meta = node.metadata
        return Hit(
            id=node.node_id,
            kind=meta["kind"],
            label=meta.get("label"),
            labels=list(meta.get("labels") or []),
            similarity=round(float(score), 4),
            source_image=meta["source_image"],
            image_id=meta.get("image_id", ""),
            vehicle_group=meta.get("vehicle_group", ""),
            crop_path=self._crop_path(node),
            zone=meta.get("zone"),
            area_fraction=meta.get("area_fraction", 0.0),
            description=describe(meta),
            metadata=dict(meta),
            is_self=bool(self_ids) and meta.get("image_id") in self_ids,
        )

    @cached_property
    def _root(self) -> Path:
        """The index directory, resolved (symlinks followed): every stored crop lies inside it."""
        return self.index_dir.resolve()

    def _crop_path(self, node: Any) -> str:
        """The node's stored crop, ``index_dir / image_path``, or "" when it has none or the path
        leaves the index directory (``..``, an absolute path, a symlink pointing out): a
        metadata.sqlite edited by hand must never make the agent read, and send to the model, a
        file from elsewhere. Warned once per node, by node id only.
        """
        if not node.image_path:
            return ""
        joined = self.index_dir / str(node.image_path)
        try:
            inside = joined.resolve().is_relative_to(self._root)
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
            inside = False
        if inside:
            return str(joined)
        if node.node_id not in self._outside_warned:
            self._outside_warned.add(node.node_id)
            logger.warning("index node %s: its stored crop path points outside the index directory; "
                           "the example is shown as text only (rebuild the index to restore it)", node.node_id)
        return ""

    def get(self, node_ids: list[str], self_ids: Collection[str] | None = None) -> list[Hit]:
        """Examples by id (similarity 0), in the given order; unknown ids are left out.

        ``self_ids`` marks hits of the query photo itself, as in :meth:`search`.
        """
        nodes = {n.node_id: n for n in self.store.get_nodes(node_ids)}
        return [self._hit(nodes[i], 0.0, self_ids) for i in node_ids if i in nodes]

    def info(self) -> dict[str, Any]:
        """See :func:`index_info`."""
        return index_info(self.index_dir)


def _identity(photo: PhotoSource | QueryPhoto) -> tuple[Path | None, bytes | None]:
    """What identifies a query photo: its file path, or its encoded bytes (neither for bare pixels)."""
    source: Any = photo.source if isinstance(photo, QueryPhoto) else photo
    if isinstance(source, Image.Image):
        source = getattr(source, "filename", "") or None
    if isinstance(source, bytes):
        return None, source
    if isinstance(source, (str, Path)):
        return Path(source), None
    return None, None


def index_info(index_dir: str | Path) -> dict[str, Any]:
    """Counts per kind and label, embedder, dimension, index type and size on disk.

    Reads the manifest only: no model is loaded.

    Raises:
        IndexNotFoundError: If there is no index there.
    """
    from index.index_dir import disk_size

    index_dir = readable_dir(Path(index_dir))
    manifest = read_manifest(index_dir)
    counts = manifest["counts"]
    report_path = index_dir / BUILD_REPORT
    return {
        "index_dir": str(index_dir),
        "dataset": manifest["dataset"],
        "images": counts["images"],
        "nodes": counts["nodes"],
        "nodes_by_kind": counts["nodes_by_kind"],
        "regions_by_label": counts["regions_by_label"],
        "embedder": manifest["embedder"]["model_id"],
        "embedder_family": manifest["embedder"]["family"],
        "fingerprint": manifest["embedder"]["fingerprint"],
        "dim": manifest["dim"],
        "index_type": manifest["index_type"],
        "built_at": manifest["built_at"],
        "build_seconds": manifest["build_seconds"],
        "size_bytes": disk_size(index_dir),
        "build_report": str(report_path) if report_path.is_file() else None,
    }
