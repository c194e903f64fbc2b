"""The Qdrant backend as a store: writes on both backends alike, stable point ids, and the index
directory's qdrant.json (read-only opens, a build's new generation, the alias, clear errors)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from index.vector_store import (
    QdrantConfig,
    VectorIndexConfig,
    VectorStoreFileError,
    new_store,
    node_id_to_faiss_id,
    open_store,
)
from tests.index.vector_store.helpers import assert_same_hits, brute_force, normalize

pytest.importorskip("qdrant_client")


def node(node_id: str, vector: list[float], text: str = "", **metadata: Any) -> TextNode:
    return TextNode(id_=node_id, text=text or node_id, metadata=metadata, embedding=vector)


def test_upsert_and_deletes_behave_alike_on_both_backends(backend_store: Any, store_data: Any) -> None:
    vectors, nodes = store_data
    store = backend_store
    store.add([node("n5", [1.0] * 32, "new", kind="region", labels=["rust"])])  # an upsert of n5
    assert store.count() == len(nodes)
    np.testing.assert_allclose(store.get_vector("n5"), normalize(np.ones(32)), atol=1e-6)
    assert store.get_nodes(["n5"])[0].text == "new" and store.get_nodes(["n5"])[0].metadata["labels"] == ["rust"]
    store.delete("doc3")
    tiles = MetadataFilters(filters=[MetadataFilter(key="kind", value="tile")])
    store.delete_nodes(filters=tiles)
    store.delete_nodes(["n0", "not-there"])
    left = [i for i, n in enumerate(nodes) if n.ref_doc_id != "doc3" and n.metadata["kind"] != "tile"
            and n.node_id not in ("n0", "n5")]
    assert sorted(store.node_ids()) == sorted([nodes[i].node_id for i in left] + ["n5"])
    q = np.random.default_rng(8).standard_normal(32)
    want = brute_force(vectors[left], [nodes[i] for i in left], q, 15)
    assert_same_hits([h for h in store.search(q, 16) if h[0] != "n5"][:15], want)
    with pytest.raises(ValueError, match="clear"):
        store.delete_nodes()
    store.clear()
    assert store.count() == 0 and store.search(np.ones(32), 3) == [] and store.dim is None
    store.add([node("x", [1.0, 2.0])])  # a new dimension after clear
    assert store.dim == 2 and store.node_ids() == ["x"]


def test_point_ids_are_the_stable_faiss_ids(store_data: Any) -> None:
    from tests.fixtures.vector_store import qdrant_memory_store

    store = qdrant_memory_store()
    store.add(store_data[1][:50])
    points, _ = store.client.scroll(store.collection_name, limit=100)
    assert sorted(int(p.id) for p in points) == sorted(node_id_to_faiss_id(n.node_id) for n in store_data[1][:50])


def local(tmp_path: Any, **kwargs: Any) -> VectorIndexConfig:
    return VectorIndexConfig(backend="qdrant", qdrant=QdrantConfig(path=str(tmp_path / "qdrant"), collection="t"),
                             **kwargs)


def collections(store: Any) -> set[str]:
    return {c.name for c in store.client.get_collections().collections}


def test_a_build_writes_a_new_generation_and_readers_keep_theirs(tmp_path: Any) -> None:
    config = local(tmp_path)
    first = new_store(config, replaces=tmp_path / "index")
    first.add([node("a", [1.0, 0.0]), node("b", [0.0, 1.0])])
    first.persist(tmp_path / "index")
    reader = open_store(tmp_path / "index", config)
    assert reader.collection_name == first.collection_name and reader.search(np.array([1.0, 0.1]), 1)[0][0] == "a"
    with pytest.raises(PermissionError, match="opened for reading"):
        reader.add([node("c", [1.0, 1.0])])
    aliases = {a.alias_name: a.collection_name for a in reader.client.get_aliases().aliases}
    assert aliases == {"t": first.collection_name}  # published when the index was opened

    build = open_store(tmp_path / "index", config, writable=True)
    assert build.collection_name == first.collection_name  # nothing written yet: no copy
    build.delete_nodes(["b"])
    build.add([node("c", [1.0, 1.0])])
    assert build.collection_name != first.collection_name and build.previous == first.collection_name
    assert sorted(build.node_ids()) == ["a", "c"] and sorted(reader.node_ids()) == ["a", "b"]
    build.persist(tmp_path / "index.staging")
    resumed = open_store(tmp_path / "index.staging", config, writable=True)  # a build's own staging
    resumed.add([node("d", [0.5, 1.0])])
    assert resumed.collection_name == build.collection_name and build.count() == 3
    resumed.persist(tmp_path / "index")  # what the swap does to the directory

    third = open_store(tmp_path / "index", config, writable=True)
    third.add([node("e", [0.0, 0.2])])
    # live and previous remain; the one before (first) is dropped once a newer generation exists
    assert collections(third) == {build.collection_name, third.collection_name}
    third.persist(tmp_path / "index")
    open_store(tmp_path / "index", config)
    assert {a.alias_name: a.collection_name for a in third.client.get_aliases().aliases} == {
        "t": third.collection_name}


def test_a_rebuild_from_scratch_replaces_the_live_generation(tmp_path: Any) -> None:
    config = local(tmp_path)
    old = new_store(config)
    old.add([node("a", [1.0, 0.0])])
    old.persist(tmp_path / "index")
    fresh = new_store(config, replaces=tmp_path / "index")
    assert fresh.previous == old.collection_name and fresh.count() == 0
    fresh.add([node("z", [0.0, 1.0])])
    assert fresh.node_ids() == ["z"] and old.node_ids() == ["a"]


def test_missing_files_and_collections_are_one_sentence(tmp_path: Any) -> None:
    config = local(tmp_path)
    with pytest.raises(VectorStoreFileError, match=r"qdrant.json does not exist"):
        open_store(tmp_path / "nothing", config)
    store = new_store(config)
    store.add([node("a", [1.0, 0.0])])
    store.persist(tmp_path / "index")
    store.client.delete_collection(store.collection_name)
    with pytest.raises(VectorStoreFileError, match=r"names the Qdrant collection t-.*which is not at .*rebuild"):
        open_store(tmp_path / "index", config)
    (tmp_path / "index" / "qdrant.json").write_text("{")
    with pytest.raises(VectorStoreFileError, match="unreadable"):
        open_store(tmp_path / "index", config)


def test_without_qdrant_client_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from index.vector_store import QdrantBackendError
    from index.vector_store.qdrant_connect import require_qdrant

    monkeypatch.setitem(sys.modules, "qdrant_client", None)
    with pytest.raises(QdrantBackendError, match=r"pip install damage-rag\[qdrant\]"):
        require_qdrant()
    config = VectorIndexConfig(backend="qdrant", qdrant=QdrantConfig(path=":memory:"))
    with pytest.raises(QdrantBackendError, match=r"needs qdrant-client: pip install damage-rag\[qdrant\]$"):
        new_store(config)


def test_the_faiss_backend_never_imports_qdrant_client(tmp_path: Any) -> None:
    import subprocess

    code = ("import sys; from index.vector_store import new_store, VectorIndexConfig; "
            "from llama_index.core.schema import TextNode; s = new_store(VectorIndexConfig()); "
            "s.add([TextNode(id_='a', text='a', embedding=[1.0, 0.0])]); s.persist(sys.argv[1]); "
            "from index.vector_store import open_store; open_store(sys.argv[1], VectorIndexConfig()); "
            "print('qdrant_client' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "i")], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_config_names_what_the_qdrant_backend_needs() -> None:
    with pytest.raises(ValueError, match="needs index.qdrant.path"):
        VectorIndexConfig(backend="qdrant")
    with pytest.raises(ValueError, match="'ivf' is FAISS-only"):
        VectorIndexConfig(backend="qdrant", type="ivf", qdrant=QdrantConfig(url="http://localhost:6333"))
    with pytest.raises(ValueError, match="not both"):
        QdrantConfig(path="q", url="http://localhost:6333")


def test_inside_llama_index_with_filters() -> None:
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.schema import ImageNode

    from tests.fixtures.vector_store import qdrant_memory_store
    from tests.index.vector_store.test_llama_index import KeyedEmbedding

    embed, query = KeyedEmbedding(embed_dim=16), "dent on the rear door"
    rng = np.random.default_rng(13)
    nodes = [ImageNode(id_=f"img{i}", image_path=f"/cars/{i}.jpg", metadata={"kind": "image", "labels": ["dent"] if i % 2
                       else ["scratch"]}, embedding=(embed.vector(query) + rng.normal(0, 0.05, 16)).tolist() if i == 3
                       else rng.standard_normal(16).tolist()) for i in range(6)]
    nodes.append(TextNode(id_="txt0", text="note", metadata={"kind": "region"}, embedding=embed.vector(query)))
    store = qdrant_memory_store()
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed)
    assert [r.node.node_id for r in index.as_retriever(similarity_top_k=1).retrieve(query)] == ["txt0"]
    dent = MetadataFilters(filters=[MetadataFilter(key="kind", value="image"),
                                    MetadataFilter(key="labels", value="dent", operator="contains")])
    got = index.as_retriever(similarity_top_k=10, filters=dent).retrieve(query)
    assert [r.node.node_id for r in got][0] == "img3" and {r.node.node_id for r in got} == {"img1", "img3", "img5"}
    assert all(isinstance(r.node, ImageNode) and r.node.image_path for r in got)
