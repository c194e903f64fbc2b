"""Persisting again where a store was loaded from or last persisted to rewrites only the rows that
changed (a build's checkpoints); anywhere else, or over a file someone else wrote, the files are
written whole; a crash between the two files' writes is caught at load; lazily indexed filters
agree with a store built in memory, before and after edits."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import TextNode

import index.vector_store.node_db as node_db
from index.vector_store import FaissNodeStore, VectorStoreFileError
from tests.index.vector_store import metadata_file
from tests.index.vector_store.helpers import make_nodes, random_filter


def _same(a: FaissNodeStore, b: FaissNodeStore, seed: int = 3) -> None:
    assert sorted(a.node_ids()) == sorted(b.node_ids())
    rng = np.random.default_rng(seed)
    for _ in range(15):
        q, filters = rng.standard_normal(32), random_filter(rng)
        assert a.search(q, 8, filters) == b.search(q, 8, filters)
    assert a.counts_by("kind") == b.counts_by("kind") and a.counts_by("labels") == b.counts_by("labels")


@pytest.fixture
def fresh(store_data: Any) -> list[Any]:
    """Nodes that are not in ``flat_store`` (other ids, same vectors)."""
    vectors, _ = store_data
    return make_nodes(vectors[:30], seed=5, prefix="new")


def test_a_checkpoint_rewrites_only_the_changed_rows(tmp_path: Path, flat_store: FaissNodeStore,
                                                     store_data: Any, fresh: list[Any], monkeypatch) -> None:
    _, nodes = store_data
    d = tmp_path / "staging"
    flat_store.persist(d)
    inode = (d / "metadata.sqlite").stat().st_ino
    flat_store.add(fresh)
    flat_store.delete_nodes([nodes[0].node_id, nodes[1].node_id])
    flat_store.add([nodes[2]])  # an upsert
    monkeypatch.setattr(node_db, "_copy_to", lambda *a: pytest.fail("a checkpoint wrote the whole file"))
    flat_store.persist(d)
    assert (d / "metadata.sqlite").stat().st_ino == inode  # updated in place, in one transaction
    assert sorted(os.listdir(d)) == ["faiss.index", "metadata.sqlite"]  # no journal left behind
    loaded = FaissNodeStore.from_persist_dir(d)
    _same(loaded, flat_store)
    assert loaded.node_ids() == flat_store.node_ids()  # insertion order kept (the upsert moved last)
    assert metadata_file.header(d)["count"] == flat_store.count() == len(nodes) + len(fresh) - 2


def test_a_loaded_store_checkpoints_where_it_was_loaded_and_writes_elsewhere_whole(
        tmp_path: Path, flat_store: FaissNodeStore, fresh: list[Any]) -> None:
    index_dir, staging = tmp_path / "index", tmp_path / "index.staging"
    flat_store.persist(index_dir)
    before = (index_dir / "metadata.sqlite").read_bytes()
    loaded = FaissNodeStore.from_persist_dir(index_dir)
    loaded.add(fresh[:10])
    loaded.persist(staging)  # what a build does: the index stays as it was
    assert (index_dir / "metadata.sqlite").read_bytes() == before
    loaded.add(fresh[10:])
    loaded.persist(staging)
    _same(FaissNodeStore.from_persist_dir(staging), loaded)
    resumed = FaissNodeStore.from_persist_dir(staging)  # a resumed build checkpoints in place
    resumed.delete_nodes([fresh[0].node_id])
    resumed.persist(staging)
    assert fresh[0].node_id not in FaissNodeStore.from_persist_dir(staging).node_ids()


def test_nothing_changed_rewrites_no_vectors(tmp_path: Path, flat_store: FaissNodeStore) -> None:
    flat_store.persist(tmp_path / "s")
    stat = (tmp_path / "s" / "faiss.index").stat()
    flat_store.persist(tmp_path / "s")
    again = (tmp_path / "s" / "faiss.index").stat()
    assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_a_file_someone_else_wrote_since_is_written_whole(tmp_path: Path, flat_store: FaissNodeStore,
                                                          fresh: list[Any]) -> None:
    d = tmp_path / "s"
    flat_store.persist(d)
    other = FaissNodeStore()
    other.add([TextNode(id_="intruder", text="x", embedding=[1.0] * 32)])
    other.persist(d)  # another writer: another generation
    flat_store.add(fresh[:3])
    flat_store.persist(d)
    loaded = FaissNodeStore.from_persist_dir(d)
    assert "intruder" not in loaded.node_ids()
    _same(loaded, flat_store)


def test_a_crash_between_the_two_writes_is_caught_at_load(tmp_path: Path, flat_store: FaissNodeStore,
                                                          fresh: list[Any], monkeypatch) -> None:
    d = tmp_path / "s"
    flat_store.persist(d)
    flat_store.add(fresh[:5])

    def crash(*args: Any) -> bool:
        raise KeyboardInterrupt  # the process dies after faiss.index was replaced

    monkeypatch.setattr(node_db, "_save_changes", crash)
    with pytest.raises(KeyboardInterrupt):
        flat_store.persist(d)
    with pytest.raises(VectorStoreFileError, match="disagree") as caught:
        FaissNodeStore.from_persist_dir(d)
    assert caught.value.code == "ids_mismatch"
    monkeypatch.undo()
    flat_store.persist(d)  # the next persist repairs both
    _same(FaissNodeStore.from_persist_dir(d), flat_store)


def test_lazily_indexed_filters_stay_right_through_edits(tmp_path: Path, flat_store: FaissNodeStore,
                                                         store_data: Any, fresh: list[Any]) -> None:
    _, nodes = store_data
    flat_store.persist(tmp_path / "s")
    loaded = FaissNodeStore.from_persist_dir(tmp_path / "s")
    _same(loaded, flat_store, seed=1)  # indexes the filtered keys of the loaded store
    for store in (loaded, flat_store):
        store.add(fresh)
        store.delete_nodes([n.node_id for n in nodes[:40]])
        store.add(make_nodes(np.ones((3, 32)), seed=9, prefix="n"))  # upserts under old ids, new metadata
    _same(loaded, flat_store, seed=2)
    copy = Path(shutil.copytree(tmp_path / "s", tmp_path / "copy"))  # a copied directory loads as it is
    assert FaissNodeStore.from_persist_dir(copy).count() == len(nodes)
