"""A metadata.json that is valid JSON but wrongly shaped is one VectorStoreFileError naming it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from index.errors import DamageRagError
from index.vector_store import FaissNodeStore, VectorStoreFileError
from index.vector_store.persistence import read_metadata
from tests.fixtures.paths import REPO

Payload = dict[str, Any]


def _first(payload: Payload) -> Payload:
    return next(iter(payload["nodes"].values()))


def _set_first(value: Any) -> Callable[[Payload], Any]:
    def mutate(payload: Payload) -> None:
        payload["nodes"][next(iter(payload["nodes"]))] = value
    return mutate


def _record(**changes: Any) -> Callable[[Payload], Any]:
    def mutate(payload: Payload) -> None:
        record = _first(payload)
        for key, value in changes.items():
            if value is _DROP:
                del record[key]
            else:
                record[key] = value
    return mutate


def _node(**changes: Any) -> Callable[[Payload], Any]:
    def mutate(payload: Payload) -> None:
        _first(payload)["node"].update(changes)
    return mutate


def _rekey(new_key: str) -> Callable[[Payload], Any]:
    def mutate(payload: Payload) -> None:
        key = next(iter(payload["nodes"]))
        payload["nodes"][new_key] = payload["nodes"].pop(key)
    return mutate


_DROP = object()

WRONG_SHAPES: dict[str, tuple[Callable[[Payload], Any], str]] = {
    "nodes_is_a_list": (lambda p: p.update(nodes=[]), "'nodes' is a list"),
    "nodes_missing": (lambda p: p.__delitem__("nodes"), "'nodes' is missing"),
    "record_is_a_number": (_set_first(5), "must be an object, not a number"),
    "record_is_a_list": (_set_first(["n0", "TextNode"]), "must be an object, not a list"),
    "record_without_node_id": (_record(node_id=_DROP), "no string 'node_id'"),
    "node_id_is_a_number": (_record(node_id=7), "no string 'node_id'"),
    "unknown_node_type": (_record(node_type="Banana"), "unknown node type 'Banana'"),
    "node_type_missing": (_record(node_type=_DROP), "unknown node type None"),
    "node_is_a_string": (_record(node="text"), "'node' is a string"),
    "node_missing": (_record(node=_DROP), "'node' is null"),
    "ref_doc_id_is_a_list": (_record(ref_doc_id=["d"]), "'ref_doc_id' is a list"),
    "metadata_is_a_list": (_node(metadata=[1, 2]), "'metadata' is a list"),
    "node_id_disagrees": (_node(id_="someone-else"), "its 'node' has id 'someone-else'"),
    "dim_is_a_string": (lambda p: p.update(dim="x"), "'dim' is 'x'"),
    "dim_is_a_bool": (lambda p: p.update(dim=True), "'dim' is True"),
    "dim_is_negative": (lambda p: p.update(dim=-3), "'dim' is -3"),
    "key_not_an_integer": (_rekey("abc"), "node key 'abc' is not an integer"),
    "key_of_another_node": (_rekey("12345"), "is filed under FAISS id 12345"),
    "config_is_a_string": (lambda p: p.update(config="flat"), "'config' is missing or not an object"),
    "config_bad_type": (lambda p: p["config"].update(type="annoy"), "bad 'config' (type:"),
    "count_is_wrong": (lambda p: p.update(count=p["count"] + 1), "but 600 nodes are listed"),
    "count_is_a_string": (lambda p: p.update(count="600"), "'count' is '600'"),
    "not_an_object": (lambda p: [p], "not a damage_rag.faiss_node_store file"),  # returns the new payload
}
#: checked when the store loads (pydantic), not by read_metadata
LOAD_ONLY = {"config_bad_type"}


@pytest.fixture
def persisted(tmp_path: Path, flat_store: FaissNodeStore) -> Path:
    """A directory holding the 600-node flat store (faiss.index + metadata.json)."""
    flat_store.persist(tmp_path / "vi")
    return tmp_path / "vi"


@pytest.mark.parametrize("case", list(WRONG_SHAPES))
def test_a_wrong_shape_is_one_clear_error(persisted: Path, case: str) -> None:
    mutate, what = WRONG_SHAPES[case]
    path = persisted / "metadata.json"
    payload = json.loads(path.read_text(encoding="utf-8"))
    replaced = mutate(payload)  # mutates in place, or returns a whole new payload
    path.write_text(json.dumps(payload if replaced is None else replaced), encoding="utf-8")
    loads = [lambda: FaissNodeStore.from_persist_dir(persisted)]
    if case not in LOAD_ONLY:
        loads.append(lambda: read_metadata(persisted))
    for load in loads:
        with pytest.raises(VectorStoreFileError) as caught:
            load()
        message = str(caught.value)
        assert isinstance(caught.value, DamageRagError) and caught.value.code == "store_corrupt"
        assert str(path) in message and what in message, message
        assert "rebuild the index with `python -m index build`" in message
        assert "\n" not in message


def test_missing_files_are_project_errors_and_still_file_not_found(persisted: Path) -> None:
    os.remove(persisted / "faiss.index")
    with pytest.raises(VectorStoreFileError, match="faiss.index") as caught:
        FaissNodeStore.from_persist_dir(persisted)
    assert isinstance(caught.value, FileNotFoundError) and caught.value.code == "store_missing"
    os.remove(persisted / "metadata.json")
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        FaissNodeStore.from_persist_dir(persisted)


def test_a_type_mismatch_is_a_project_error(persisted: Path) -> None:
    from index.vector_store import VectorIndexConfig

    with pytest.raises(VectorStoreFileError, match="'flat' index") as caught:
        FaissNodeStore.from_persist_dir(persisted, config=VectorIndexConfig(type="hnsw"))
    assert caught.value.code == "type_mismatch"


def test_search_on_an_index_with_nodes_as_a_list_is_one_line(synth_index_dir: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(synth_index_dir, index_dir)
    meta = index_dir / "metadata.json"
    payload = json.loads(meta.read_text(encoding="utf-8"))
    payload["nodes"] = []
    meta.write_text(json.dumps(payload), encoding="utf-8")
    source = tmp_path / "query.jpg"
    shutil.copy(index_dir / "crops" / sorted(os.listdir(index_dir / "crops"))[0], source)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "300"}
    done = subprocess.run([sys.executable, "-m", "index", "search", "--out", str(index_dir), "--image", str(source)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(meta) in lines[0] and "'nodes' is a list" in lines[0] and "python -m index build" in lines[0]
