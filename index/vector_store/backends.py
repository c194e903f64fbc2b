"""The vector-store backend switch: one place that knows which store ``index.backend`` names.

The build, search, verification and evaluation call these instead of constructing a store:

- :func:`new_store`: an empty store for a build (FAISS: in memory until persisted; Qdrant: a new
  collection generation, see :mod:`~index.vector_store.qdrant_generations`);
- :func:`open_store`: the store of an index (or staging) directory — for reading, or for a build
  to update (``writable=True``: a Qdrant store then writes a copy of the published collection,
  never the collection readers use, unless the directory is a build's own staging area);
- :func:`store_records`: the node records and dimension of an index directory, for
  :func:`index.verify.verify_index`.

Both stores have the same interface (add, delete, delete_nodes, get_nodes, search, query,
counts_by, count, node_ids, get_vector, persist) and the same filter semantics.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.vector_store.config import VectorIndexConfig

if TYPE_CHECKING:
    from index.vector_store.records import NodeRecord

__all__ = ["new_store", "open_store", "store_records"]

_STAGING = ".staging"  # index.index_dir.staging_dir names a build's staging area <index>.staging


def new_store(config: VectorIndexConfig, replaces: str | Path | None = None) -> Any:
    """An empty store of ``config.backend``.

    Args:
        config: The index configuration.
        replaces: The index directory the new store's contents will replace (Qdrant: the
            collection that directory names becomes this generation's predecessor, and the one
            before it is dropped on the first write).
    """
    if config.backend == "faiss":
        from index.vector_store.store import FaissNodeStore

        return FaissNodeStore(config=config)
    from index.vector_store import VectorStoreFileError
    from index.vector_store.qdrant_connect import require_qdrant

    require_qdrant()  # before the modules that import qdrant-client: one sentence, not a traceback
    from index.vector_store.qdrant_generations import POINTER, new_generation, read_pointer
    from index.vector_store.qdrant_store import QdrantNodeStore

    if replaces is not None:
        _check_local_path(config, Path(replaces))
    replaced: dict[str, Any] = {}
    if replaces is not None and (Path(replaces) / POINTER).is_file():
        try:
            replaced = read_pointer(Path(replaces))
        except VectorStoreFileError:
            replaced = {}
    store = QdrantNodeStore(config, collection_name=new_generation(config.qdrant.collection),
                            previous=replaced.get("collection"))
    store.retire_on_write(replaced.get("previous"))
    return store


def open_store(directory: str | Path, config: VectorIndexConfig, writable: bool = False) -> Any:
    """The store persisted in ``directory`` (an index or a build's staging directory).

    Args:
        directory: The directory.
        config: The index configuration (its backend decides which files are read).
        writable: For a build: FAISS stores are always writable (in memory); a Qdrant store
            opened from a published index writes a new generation, from a staging area the
            staging collection itself. Opened for reading, a Qdrant store refuses writes.

    Raises:
        VectorStoreFileError: If the directory's store files are missing or unreadable.
        QdrantBackendError: If qdrant-client is missing or the server cannot be reached.
    """
    directory = Path(directory)
    if config.backend == "faiss":
        from index.vector_store.store import FaissNodeStore

        return FaissNodeStore.from_persist_dir(directory, config=config)
    from index.vector_store.qdrant_connect import require_qdrant

    require_qdrant()
    from index.vector_store.qdrant_generations import publish
    from index.vector_store.qdrant_store import QdrantNodeStore

    published = not directory.name.endswith(_STAGING)
    if writable:
        _check_local_path(config, directory.with_name(directory.name.removesuffix(_STAGING)))
    store = QdrantNodeStore.from_persist_dir(directory, config=config, writable=writable,
                                             fork=writable and published)
    if published and store.dim is not None:
        publish(store.client, config.qdrant.collection, store.collection_name)
    return store


def publish_store(store: Any, config: VectorIndexConfig) -> None:
    """After a build's directory swap: point the Qdrant alias at the collection just published,
    so other Qdrant clients follow the build at once (FAISS: nothing to do). Best effort."""
    if config.backend != "qdrant":
        return
    from index.vector_store.qdrant_generations import publish

    publish(store.client, config.qdrant.collection, store.collection_name)


def _check_local_path(config: VectorIndexConfig, index_dir: Path) -> None:
    """Refuse a local-mode folder inside the index directory, which a build's swap replaces."""
    from index.errors import UserError

    path = config.qdrant.path
    if config.qdrant.url is not None or path is None or path == ":memory:":
        return
    folder, index_dir = Path(path).resolve(), index_dir.resolve()
    for swapped in (index_dir, index_dir.with_name(index_dir.name + _STAGING)):
        if folder == swapped or folder.is_relative_to(swapped):
            raise UserError(f"index.qdrant.path {path} lies inside the index directory {index_dir}, which "
                            f"every build replaces; put it beside the index (e.g. {index_dir}.qdrant)")


def store_records(directory: str | Path, config: VectorIndexConfig | None) -> tuple[int | None, list[NodeRecord]]:
    """The vector dimension and node records of the store in ``directory`` (without loading
    a FAISS index into a searchable store, or opening a Qdrant collection for writing).

    Raises:
        VectorStoreFileError: As :func:`open_store`.
    """
    if config is None or config.backend == "faiss":
        from index.vector_store.persistence import load_store

        _config, backend, table = load_store(Path(directory))
        records = list(table.values()) if isinstance(table, dict) else table.records(table.fids())
        return (backend.dim if backend is not None else None), records
    store = open_store(directory, config)
    return store.dim, list(store.iter_records())
