"""FaissNodeStore inside LlamaIndex: VectorStoreIndex, StorageContext persistence, async query."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.schema import BaseNode, ImageNode, TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery

from index.vector_store import FaissNodeStore
from tests.index.vector_store import metadata_file
from tests.index.vector_store.helpers import OP


# ---------------------------------------------------------------------------- LlamaIndex integration
class KeyedEmbedding(MockEmbedding):
    """Deterministic, offline: a text's vector is seeded by its sha256."""

    def vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.embed_dim).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self.vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.vector(text)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self.vector(text)


def test_vector_store_index_retriever_with_filters(tmp_path: Any) -> None:
    embed = KeyedEmbedding(embed_dim=16)
    query = "dent on the rear door"
    rng = np.random.default_rng(13)
    nodes: list[BaseNode] = [
        TextNode(
            id_=f"txt{i}",
            text=f"note {i}",
            metadata={"kind": "region", "labels": ["dent"]},
            embedding=(embed.vector(query) if i == 0 else rng.standard_normal(16).tolist()),
        )
        for i in range(6)
    ]
    nodes += [
        ImageNode(
            id_=f"img{i}",
            image_path=f"/cars/{i}.jpg",
            metadata={"kind": "image", "labels": ["dent"] if i % 2 else ["scratch"]},
            embedding=(embed.vector(query) + rng.normal(0, 0.05, 16)).tolist()
            if i == 3
            else rng.standard_normal(16).tolist(),
        )
        for i in range(6)
    ]
    store = FaissNodeStore()
    storage = StorageContext.from_defaults(vector_store=store)
    index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed)
    assert store.count() == 12

    unfiltered = index.as_retriever(similarity_top_k=1).retrieve(query)
    assert [r.node.node_id for r in unfiltered] == ["txt0"]
    images_with_dent = MetadataFilters(
        filters=[
            MetadataFilter(key="kind", value="image"),
            MetadataFilter(key="labels", value="dent", operator=OP.CONTAINS),
        ]
    )
    got = index.as_retriever(similarity_top_k=10, filters=images_with_dent).retrieve(query)
    assert [r.node.node_id for r in got][0] == "img3"
    assert {r.node.node_id for r in got} == {"img1", "img3", "img5"}
    assert all(isinstance(r.node, ImageNode) and r.node.image_path for r in got)
    scores = [r.score for r in got]
    assert scores == sorted(scores, reverse=True)

    # StorageContext.persist: the store gets its own directory, no shared id_map.json
    storage.persist(persist_dir=str(tmp_path / "storage"))
    assert not (tmp_path / "storage" / "id_map.json").exists()
    store_dir = tmp_path / "storage" / "default__vector_store"
    assert sorted(os.listdir(store_dir)) == ["faiss.index", "metadata.sqlite"]
    loaded_store = FaissNodeStore.from_persist_path(
        str(tmp_path / "storage" / "default__vector_store.json")
    )
    loaded = load_index_from_storage(
        StorageContext.from_defaults(
            persist_dir=str(tmp_path / "storage"), vector_store=loaded_store
        ),
        embed_model=embed,
    )
    again = loaded.as_retriever(similarity_top_k=10, filters=images_with_dent).retrieve(query)
    assert [(r.node.node_id, r.score) for r in again] == [(r.node.node_id, r.score) for r in got]

    # deleting a source document through the index removes its nodes from the store
    index.delete_nodes(["txt0"])
    assert "txt0" not in store.node_ids()


def test_two_stores_in_one_storage_context_do_not_overwrite(tmp_path: Any) -> None:
    """Defect 2: two FAISS stores persisted through one StorageContext shared id_map.json."""
    text_store, image_store = FaissNodeStore(), FaissNodeStore()
    text_store.add([TextNode(id_="t", text="t", embedding=[1.0, 0.0])])
    image_store.add([ImageNode(id_="i", image_path="/i.jpg", embedding=[0.0, 1.0])])
    # NB: from_defaults(vector_stores={"image": ...}) is silently replaced by a SimpleVectorStore;
    # the image store must be passed as image_store=
    storage = StorageContext.from_defaults(vector_store=text_store, image_store=image_store)
    storage.persist(persist_dir=str(tmp_path))
    t = FaissNodeStore.from_persist_path(str(tmp_path / "default__vector_store.json"))
    i = FaissNodeStore.from_persist_path(str(tmp_path / "image__vector_store.json"))
    assert t.node_ids() == ["t"] and i.node_ids() == ["i"]
    (record,) = metadata_file.records(tmp_path / "image__vector_store").values()
    assert metadata_file.header(tmp_path / "image__vector_store")["count"] == 1 and record["node"]["id_"] == "i"
    assert record["node"]["embedding"] is None and record["node"]["text_embedding"] is None


async def _aquery(store: FaissNodeStore) -> Any:
    return await store.aquery(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=1))


def test_async_query_delegates() -> None:
    import asyncio

    store = FaissNodeStore()
    store.add([TextNode(id_="a", text="a", embedding=[1.0, 0.0])])
    assert asyncio.run(_aquery(store)).ids == ["a"]
