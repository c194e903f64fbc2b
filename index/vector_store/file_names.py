"""The names of a :class:`~index.vector_store.FaissNodeStore` directory's files (kept free of
heavy imports, so that a reader of an index can name them without loading FAISS or LlamaIndex).
The format itself is described in :mod:`~index.vector_store.persistence`."""

from __future__ import annotations

INDEX_FILE = "faiss.index"
METADATA_FILE = "metadata.sqlite"
#: the metadata file of format version 1, recognised only to say that it needs a rebuild
LEGACY_METADATA_FILE = "metadata.json"
