"""ImageNodes from a loaded store open from anywhere: their relative ``image_path`` is resolved
against the store's directory when they are returned, while ``metadata.sqlite`` keeps it relative
(the directory stays movable); a path leading out of the directory is dropped and logged once."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.schema import ImageNode, QueryBundle, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from PIL import Image

from index.vector_store import FaissNodeStore
from tests.index.vector_store import metadata_file

DIM = 8
STORE_LOGGER = "index.vector_store.store"


def vector(i: int) -> list[float]:
    return np.random.default_rng(i).standard_normal(DIM).tolist()


def crop(directory: Path, name: str) -> str:
    """A small JPEG at ``directory/crops/name``; returns its path relative to ``directory``."""
    (directory / "crops").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), "red").save(directory / "crops" / name, "JPEG")
    return f"crops/{name}"


def stored_paths(directory: Path) -> dict[str, str | None]:
    return {node_id: r["node"].get("image_path") for node_id, r in metadata_file.records(directory).items()}


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A store persisted to ``tmp_path/index`` with two image nodes and a text node."""
    directory = tmp_path / "index"
    nodes = [ImageNode(id_=f"img{i}", image_path=crop(directory, f"r-{i}.jpg"), embedding=vector(i),
                       metadata={"kind": "region"}) for i in range(2)]
    nodes.append(TextNode(id_="txt", text="a note", embedding=vector(9)))
    store = FaissNodeStore()
    store.add(nodes)
    store.persist(directory)
    return directory


def test_loaded_image_nodes_carry_absolute_paths_that_open_from_elsewhere(built, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    store = FaissNodeStore.from_persist_dir(built)
    nodes = {n.node_id: n for n in store.get_nodes()}
    for i in range(2):
        path = nodes[f"img{i}"].image_path
        assert os.path.isabs(path) and path == str(built.resolve() / "crops" / f"r-{i}.jpg")
        assert Image.open(path).size == (8, 8)
    result = store.query(VectorStoreQuery(query_embedding=vector(0), similarity_top_k=1))
    assert result.nodes[0].image_path == nodes["img0"].image_path
    assert stored_paths(built) == {"img0": "crops/r-0.jpg", "img1": "crops/r-1.jpg", "txt": None}


def test_the_directory_stays_movable_and_persists_relative(built, tmp_path):
    moved = tmp_path / "moved" / "index"
    moved.parent.mkdir()
    shutil.move(built, moved)
    store = FaissNodeStore.from_persist_dir(moved)
    (node,) = store.get_nodes(["img1"])
    assert node.image_path == str(moved.resolve() / "crops" / "r-1.jpg") and Path(node.image_path).is_file()
    # what an incremental build does: load, add (a new node, and a returned one again), persist elsewhere
    fresh = ImageNode(id_="img2", image_path=crop(moved, "r-2.jpg"), embedding=vector(2))
    again = ImageNode(id_="img1", image_path=node.image_path, embedding=vector(1))
    store.add([fresh, again])
    assert all(os.path.isabs(n.image_path) for n in store.get_nodes(["img1", "img2"]))
    staging = tmp_path / "staging"
    store.persist(staging)
    assert stored_paths(staging) == {"img0": "crops/r-0.jpg", "img1": "crops/r-1.jpg", "img2": "crops/r-2.jpg",
                                     "txt": None}


def test_paths_leading_out_are_dropped_and_logged_once(built, tmp_path, caplog):
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (8, 8), "blue").save(outside, "JPEG")
    metadata_file.set_node(built, "img0", image_path="../secret.jpg")
    (built / "crops" / "r-1.jpg").unlink()
    (built / "crops" / "r-1.jpg").symlink_to(outside)  # a crop replaced by a symlink pointing out
    with caplog.at_level(logging.WARNING, logger=STORE_LOGGER):
        store = FaissNodeStore.from_persist_dir(built)
        nodes = {n.node_id: n for n in store.get_nodes()}
        store.get_nodes()
    assert nodes["img0"].image_path is None and nodes["img1"].image_path is None
    warnings = [r.getMessage() for r in caplog.records if r.name == STORE_LOGGER]
    assert len(warnings) == 1 and "2 node(s)" in warnings[0]
    assert stored_paths(built)["img0"] == "../secret.jpg"  # reading never rewrites the file


def test_absolute_paths_elsewhere_are_left_as_stored(tmp_path):
    store = FaissNodeStore()
    store.add([ImageNode(id_="a", image_path="/cars/0.jpg", embedding=vector(0))])
    store.persist(tmp_path / "s")
    (node,) = FaissNodeStore.from_persist_dir(tmp_path / "s").get_nodes()
    assert node.image_path == "/cars/0.jpg"
    assert FaissNodeStore().get_nodes() == []


def test_llama_index_retriever_on_a_built_index_returns_image_nodes_that_open(synth_index_dir, tmp_path,
                                                                              monkeypatch):
    """``VectorStoreIndex.from_vector_store(...).as_retriever()`` over the project's own index."""
    store = FaissNodeStore.from_persist_dir(synth_index_dir)
    query = store.get_vector(store.node_ids()[0]).tolist()
    monkeypatch.chdir(tmp_path)  # not the index directory, not the repository
    index = VectorStoreIndex.from_vector_store(store, embed_model=MockEmbedding(embed_dim=len(query)))
    hits = index.as_retriever(similarity_top_k=5).retrieve(QueryBundle(query_str="dent", embedding=query))
    assert len(hits) == 5 and hits[0].node.node_id == store.node_ids()[0]
    for hit in hits:
        assert isinstance(hit.node, ImageNode) and os.path.isabs(hit.node.image_path)
        assert Path(hit.node.image_path).resolve().is_relative_to(synth_index_dir.resolve())
        with Image.open(hit.node.image_path) as image:
            assert image.size[0] > 0
