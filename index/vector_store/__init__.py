"""The project's FAISS node store: exact filters, stable ids, its own files (replaces
``llama-index-vector-stores-faiss``).

:class:`FaissNodeStore` is a LlamaIndex ``BasePydanticVectorStore`` that keeps whole nodes.
Every vector's FAISS id is a stable hash of its node id, ``add`` is an upsert, metadata filters
are exact (a filtered top-k on ``flat`` is the true top-k) and the store persists to its own
directory (``faiss.index`` + ``metadata.sqlite``; a checkpoint to the same directory rewrites
only the rows that changed, and loading reads node ids only). Similarity is cosine::

    from index.vector_store import FaissNodeStore, VectorIndexConfig

    store = FaissNodeStore.load_or_create(VectorIndexConfig(dir="outputs/vector_index"))
    store.add(nodes)                                  # nodes with embeddings; upsert
    store.search(vector, 10, filters)                 # [(node id, similarity)], best first
    store.persist()

Modules, each with one job:

- :mod:`~index.vector_store.config`: :class:`VectorIndexConfig` (index type and parameters);
- :mod:`~index.vector_store.store`: :class:`FaissNodeStore`, the LlamaIndex vector store;
- :mod:`~index.vector_store.records`: stable ids and node snapshots;
- :mod:`~index.vector_store.node_table`: :class:`NodeTable`, the nodes of one store, lazily
  parsed and indexed, over :mod:`~index.vector_store.node_db` (the SQLite rows and their writes);
- :mod:`~index.vector_store.filters`: :class:`MetadataIndex`, exact metadata filters;
- :mod:`~index.vector_store.faiss_backend`: :class:`FaissBackend`, the FAISS index of one store
  (flat, HNSW, IVF);
- :mod:`~index.vector_store.persistence`: the two files (format version 2) and their checks;
  :mod:`~index.vector_store.file_names`: their names;
- :mod:`~index.vector_store.backends`: ``index.backend`` → :func:`new_store` /
  :func:`open_store`, FAISS or :class:`QdrantNodeStore` (the same interface and filter
  semantics on a Qdrant collection: :mod:`~index.vector_store.qdrant_store`,
  :mod:`~index.vector_store.qdrant_filters`, :mod:`~index.vector_store.qdrant_generations`,
  :mod:`~index.vector_store.qdrant_connect`; qdrant-client is imported only there).

Importing this package is cheap: the configuration loads eagerly (domain configs validate it),
everything else (LlamaIndex, FAISS) on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from index.vector_store.config import Backend, IndexType, QdrantConfig, VectorIndexConfig

if TYPE_CHECKING:
    from index.vector_store.backends import new_store, open_store, publish_store, store_records
    from index.vector_store.faiss_backend import FaissBackend, IndexKind, as_matrix
    from index.vector_store.file_names import INDEX_FILE, LEGACY_METADATA_FILE, METADATA_FILE
    from index.vector_store.filters import FilterError, MetadataIndex
    from index.vector_store.node_table import NodeTable
    from index.vector_store.persistence import (
        FORMAT_VERSION,
        VectorStoreFileError,
        resolve_store_dir,
    )
    from index.vector_store.qdrant_connect import QdrantBackendError
    from index.vector_store.qdrant_store import QdrantNodeStore
    from index.vector_store.records import (
        FaissIdCollisionError,
        NodeRecord,
        node_id_to_faiss_id,
    )
    from index.vector_store.store import FaissNodeStore

__all__ = [
    "FORMAT_VERSION",
    "INDEX_FILE",
    "LEGACY_METADATA_FILE",
    "METADATA_FILE",
    "Backend",
    "FaissBackend",
    "FaissIdCollisionError",
    "FaissNodeStore",
    "FilterError",
    "IndexKind",
    "IndexType",
    "MetadataIndex",
    "NodeRecord",
    "NodeTable",
    "QdrantBackendError",
    "QdrantConfig",
    "QdrantNodeStore",
    "VectorIndexConfig",
    "VectorStoreFileError",
    "as_matrix",
    "new_store",
    "node_id_to_faiss_id",
    "open_store",
    "publish_store",
    "resolve_store_dir",
    "store_records",
]

_LAZY = {
    "FaissBackend": "faiss_backend",
    "IndexKind": "faiss_backend",
    "as_matrix": "faiss_backend",
    "FilterError": "filters",
    "MetadataIndex": "filters",
    "INDEX_FILE": "file_names",
    "LEGACY_METADATA_FILE": "file_names",
    "METADATA_FILE": "file_names",
    "FORMAT_VERSION": "persistence",
    "VectorStoreFileError": "persistence",
    "resolve_store_dir": "persistence",
    "FaissIdCollisionError": "records",
    "NodeRecord": "records",
    "NodeTable": "node_table",
    "node_id_to_faiss_id": "records",
    "FaissNodeStore": "store",
    "QdrantBackendError": "qdrant_connect",
    "QdrantNodeStore": "qdrant_store",
    "new_store": "backends",
    "open_store": "backends",
    "publish_store": "backends",
    "store_records": "backends",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
