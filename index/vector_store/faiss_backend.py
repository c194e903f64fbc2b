"""FAISS plumbing for :class:`~index.vector_store.FaissNodeStore`.

One :class:`FaissBackend` owns one FAISS index whose ids are the store's own stable 64-bit ids
(never positions). Index kinds:

- ``flat``: ``IndexIDMap2(IndexFlatIP)`` -- exact; ``remove_ids`` supported.
- ``hnsw``: ``IndexIDMap2(IndexHNSWFlat(d, M, METRIC_INNER_PRODUCT))`` -- FAISS cannot remove
  from HNSW, so removal rebuilds the graph from the reconstructed remaining vectors (same ids).
- ``ivf``: ``IndexIVFFlat`` with ids stored natively (``add_with_ids``) and a hashtable direct
  map (needed for ``reconstruct`` and ``remove_ids``). ``IndexIDMap2`` is *not* used around IVF:
  its ``remove_ids`` assumes the inner index renumbers positions, which IVF does not do.
- ``ivf_pending``: configured ``ivf`` but not trained yet: an exact ``flat`` index until
  ``nlist * ivf_min_points_per_list`` vectors are present, then trained and converted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Literal

import faiss
import numpy as np

from index.vector_store.config import VectorIndexConfig

logger = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw", "ivf", "ivf_pending"]
_EMPTY_IDS = np.empty(0, dtype=np.int64)


def as_matrix(vectors: Any, dim: int | None = None, normalize: bool = True) -> np.ndarray:
    """A C-contiguous float32 (n, d) copy of ``vectors``, L2-normalised if asked."""
    x = np.array(vectors, dtype=np.float32, copy=True, order="C")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"expected vectors of shape (n, d), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"vector dimension {x.shape[1]} does not match the index dimension {dim}")
    if not np.all(np.isfinite(x)):
        raise ValueError("vectors contain NaN or infinite values")
    if normalize:
        faiss.normalize_L2(x)
    return x


@contextlib.contextmanager
def _omp_threads(n: int) -> Iterator[None]:
    """Limit FAISS's OpenMP threads for the calling thread only (0 = leave unchanged)."""
    if n <= 0:
        yield
        return
    previous = faiss.omp_get_max_threads()
    if previous == n:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


class FaissBackend:
    """A FAISS index keyed by caller-chosen int64 ids, of one configured type."""

    def __init__(self, config: VectorIndexConfig, dim: int, index: Any = None) -> None:
        self.config = config
        self.dim = dim
        if index is None:
            self.kind: IndexKind = "ivf_pending" if config.type == "ivf" else config.type
            self.index = self._new_idmap_index()
        else:
            self.index = index
            self.kind = self._detect_kind(index)

    # ------------------------------------------------------------------ construction
    def _new_idmap_index(self) -> Any:
        if self.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.config.hnsw_ef_construction
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return faiss.IndexIDMap2(inner)

    def _detect_kind(self, index: Any) -> IndexKind:
        if isinstance(index, faiss.IndexIVFFlat):
            return "ivf"
        if isinstance(index, faiss.IndexIDMap2):
            inner = faiss.downcast_index(index.index)
            if isinstance(inner, faiss.IndexHNSWFlat):
                return "hnsw"
            if isinstance(inner, faiss.IndexFlat):
                return "ivf_pending" if self.config.type == "ivf" else "flat"
        raise ValueError(f"unsupported FAISS index structure {type(index).__name__}")

    @property
    def ntotal(self) -> int:
        """Number of vectors in the index."""
        return int(self.index.ntotal)

    @property
    def is_exact(self) -> bool:
        """Whether unfiltered search is exact (flat, or ivf not trained yet)."""
        return self.kind in ("flat", "ivf_pending")

    # ------------------------------------------------------------------ mutation
    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add vectors (already validated/normalised) under ``ids`` (none may be present)."""
        if len(ids) == 0:
            return
        self.index.add_with_ids(vectors, ids)
        self._maybe_train_ivf()

    def remove(self, ids: np.ndarray) -> None:
        """Remove the vectors with these ids (ids not present are ignored)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0 or self.ntotal == 0:
            return
        if self.kind == "hnsw":
            self._rebuild_without(ids)
        elif self.kind == "ivf":
            selector = faiss.IDSelectorArray(ids)  # hashtable direct map needs IDSelectorArray
            self.index.remove_ids(selector)
            del selector
        else:
            self.index.remove_ids(ids)

    def _rebuild_without(self, ids: np.ndarray) -> None:
        all_ids, vectors = self.all_ids_and_vectors()
        keep = ~np.isin(all_ids, ids)
        logger.debug("rebuilding HNSW graph: %d -> %d vectors", len(all_ids), int(keep.sum()))
        self.index = self._new_idmap_index()
        if keep.any():
            self.index.add_with_ids(
                np.ascontiguousarray(vectors[keep]), np.ascontiguousarray(all_ids[keep])
            )

    def _train_threshold(self) -> int:
        return self.config.ivf_nlist * self.config.ivf_min_points_per_list

    def _maybe_train_ivf(self) -> None:
        if self.kind != "ivf_pending" or self.ntotal < self._train_threshold():
            return
        ids, vectors = self.all_ids_and_vectors()
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(
            quantizer, self.dim, self.config.ivf_nlist, faiss.METRIC_INNER_PRODUCT
        )
        ivf.train(vectors)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        ivf.add_with_ids(vectors, ids)
        self.index, self.kind = ivf, "ivf"
        logger.info(
            "trained IVF index (nlist=%d) on %d vectors; search is now approximate",
            self.config.ivf_nlist,
            len(ids),
        )

    # ------------------------------------------------------------------ reading
    def ids(self) -> np.ndarray:
        """All ids in the index (int64)."""
        if self.ntotal == 0:
            return _EMPTY_IDS
        if self.kind == "ivf":
            invlists = self.index.invlists
            parts = []
            for list_no in range(self.index.nlist):
                size = invlists.list_size(list_no)
                if size:
                    parts.append(
                        faiss.rev_swig_ptr(invlists.get_ids(list_no), size).astype(np.int64)
                    )
            return np.concatenate(parts) if parts else _EMPTY_IDS
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def all_ids_and_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """All (ids, vectors) in the index, in storage order."""
        if self.ntotal == 0:
            return _EMPTY_IDS, np.empty((0, self.dim), dtype=np.float32)
        if self.kind == "ivf":
            ids = self.ids()
            return ids, self.reconstruct(ids)
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        inner = faiss.downcast_index(self.index.index)
        return ids, inner.reconstruct_n(0, self.ntotal)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors for ``ids`` (all must be present)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        return self.index.reconstruct_batch(ids)

    # ------------------------------------------------------------------ search
    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (similarities, ids) for one query row; ``allowed`` restricts the ids.

        Padding (-1 ids) is stripped. Approximate kinds fall back to exact brute force over the
        allowed vectors when the filter is tight or the index returned too few results.
        """
        n_candidates = self.ntotal if allowed is None else len(allowed)
        k = min(k, n_candidates)
        if k <= 0:
            return np.empty(0, dtype=np.float32), _EMPTY_IDS
        if (
            allowed is not None
            and not self.is_exact
            and len(allowed) <= self.config.exact_filter_threshold
        ):
            return self._exact_over(query, k, allowed)
        selector = faiss.IDSelectorBatch(allowed) if allowed is not None else None
        params = self._search_params(k, selector)
        with _omp_threads(self.config.search_threads):
            scores, labels = self.index.search(query, k, params=params)
        keep = labels[0] >= 0
        scores, labels = scores[0][keep], labels[0][keep]
        if len(labels) < k and not self.is_exact:
            logger.debug(
                "%s search returned %d < %d results: exact fallback", self.kind, len(labels), k
            )
            if allowed is None:
                allowed = self.ids()
            return self._exact_over(query, k, allowed)
        return scores, labels

    def _search_params(self, k: int, selector: Any) -> Any:
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(
                sel=selector, efSearch=max(self.config.hnsw_ef_search, k)
            )
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(
                sel=selector, nprobe=min(self.config.ivf_nprobe, self.index.nlist)
            )
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def _exact_over(
        self, query: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        vectors = self.reconstruct(allowed)
        scores = vectors @ query[0]
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        order = top[np.lexsort((allowed[top], -scores[top]))]
        return scores[order].astype(np.float32), np.asarray(allowed)[order].astype(np.int64)
