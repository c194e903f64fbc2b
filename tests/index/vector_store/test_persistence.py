"""FaissNodeStore persistence: identical results after a round trip, corrupt files named."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import TextNode

from index.vector_store import FaissNodeStore, VectorIndexConfig, VectorStoreFileError
from tests.index.vector_store.helpers import random_filter


# ---------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_persist_load_gives_identical_results(tmp_path: Any, store_data: Any, index_type: str) -> None:
    vectors, nodes = store_data
    cfg = VectorIndexConfig(
        type=index_type, ivf_nlist=8, ivf_min_points_per_list=39, exact_filter_threshold=0
    )
    store = FaissNodeStore(cfg)
    store.add(nodes)
    store.delete_nodes([nodes[0].node_id, nodes[1].node_id])
    if index_type == "ivf":
        assert store.index_kind == "ivf"
    store.persist(tmp_path / "vi")
    assert sorted(os.listdir(tmp_path / "vi")) == ["faiss.index", "metadata.sqlite"]
    loaded = FaissNodeStore.from_persist_dir(tmp_path / "vi")
    assert loaded.index_kind == store.index_kind and loaded.count() == store.count()
    assert loaded.config.type == index_type
    rng = np.random.default_rng(9)
    for _ in range(20):
        q, filters = rng.standard_normal(32), random_filter(rng)
        assert loaded.search(q, 10, filters) == store.search(q, 10, filters)
        assert loaded.search(q, 10) == store.search(q, 10)
    a = store.get_nodes([nodes[5].node_id])[0]
    b = loaded.get_nodes([nodes[5].node_id])[0]
    assert a == b and type(a) is type(b)
    # still writable after load: upsert and delete
    loaded.add([nodes[0]])
    loaded.delete_nodes([nodes[2].node_id])
    assert loaded.count() == store.count()


def test_persist_errors_name_the_file(tmp_path: Any, flat_store: FaissNodeStore) -> None:
    with pytest.raises(FileNotFoundError, match="metadata.sqlite"):
        FaissNodeStore.from_persist_dir(tmp_path / "nothing")
    d = tmp_path / "vi"
    flat_store.persist(d)
    (d / "faiss.index").write_bytes(b"garbage")
    with pytest.raises(VectorStoreFileError, match="faiss.index"):
        FaissNodeStore.from_persist_dir(d)
    os.remove(d / "faiss.index")
    with pytest.raises(FileNotFoundError, match="faiss.index"):
        FaissNodeStore.from_persist_dir(d)
    flat_store.persist(d)
    (d / "metadata.sqlite").write_text("{not json")
    with pytest.raises(VectorStoreFileError, match="metadata.sqlite"):
        FaissNodeStore.from_persist_dir(d)
    # index and metadata from two different persists: detected
    flat_store.persist(d)
    other = FaissNodeStore()
    other.add([TextNode(id_="zz", text="z", embedding=[0.5] * 32)])
    other.persist(tmp_path / "other")
    os.replace(tmp_path / "other" / "faiss.index", d / "faiss.index")
    with pytest.raises(VectorStoreFileError, match="disagree"):
        FaissNodeStore.from_persist_dir(d)
    assert not [f for f in os.listdir(d) if f.endswith(".tmp")]


def test_empty_store_persists_and_config_override(tmp_path: Any) -> None:
    FaissNodeStore(VectorIndexConfig(type="hnsw")).persist(tmp_path / "e")
    loaded = FaissNodeStore.from_persist_dir(
        tmp_path / "e", config=VectorIndexConfig(type="hnsw", hnsw_ef_search=200)
    )
    assert loaded.count() == 0 and loaded.config.hnsw_ef_search == 200
    with pytest.raises(ValueError, match="'hnsw' index"):
        FaissNodeStore.from_persist_dir(tmp_path / "e", config=VectorIndexConfig(type="flat"))
    cfg = VectorIndexConfig(dir=str(tmp_path / "auto"))
    store = FaissNodeStore.load_or_create(cfg)
    store.add([TextNode(id_="a", text="a", embedding=[1.0, 0.0])])
    store.persist()
    assert FaissNodeStore.load_or_create(cfg).node_ids() == ["a"]

