"""A metadata.sqlite that is an SQLite file but wrongly shaped, truncated, not a database at all,
or the metadata.json of format version 1, is one VectorStoreFileError naming it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from index.errors import DamageRagError
from index.vector_store import METADATA_FILE, FaissNodeStore, VectorStoreFileError
from index.vector_store.persistence import read_metadata
from tests.fixtures.paths import REPO
from tests.index.vector_store import metadata_file

FIRST = "(SELECT fid FROM nodes ORDER BY seq LIMIT 1)"


def _sql(statement: str, *params: object) -> Callable[[Path], None]:
    return lambda d: metadata_file.execute(d, statement, *params)


def _row(column: str, value: object) -> Callable[[Path], None]:
    table = "bodies" if column in ("metadata", "node") else "nodes"
    if column == "fid":  # the node moves to another FAISS id, its body with it
        return lambda d: [_sql(f"UPDATE {t} SET fid = ? WHERE fid = {FIRST}", value)(d) for t in ("bodies", "nodes")]
    return _sql(f"UPDATE {table} SET {column} = ? WHERE fid = {FIRST}", value)


def _header(**fields: object) -> Callable[[Path], None]:
    return lambda d: metadata_file.set_header(d, **fields)


def _first_node(**fields: object) -> Callable[[Path], None]:
    return lambda d: metadata_file.set_node(d, next(iter(metadata_file.records(d))), **fields)


def _config(**fields: object) -> Callable[[Path], None]:
    return lambda d: metadata_file.set_header(d, config={**metadata_file.header(d)["config"], **fields})


def _truncate(d: Path) -> None:
    path = d / METADATA_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


WRONG_SHAPES: dict[str, tuple[Callable[[Path], None], str]] = {
    "nodes_table_dropped": (_sql("DROP TABLE nodes"), "its tables are not those of a node database"),
    "header_table_dropped": (_sql("DROP TABLE store"), "its tables are not those of a node database"),
    "column_dropped": (_sql("ALTER TABLE bodies DROP COLUMN node"), "its tables are not those"),
    "body_missing": (_sql(f"DELETE FROM bodies WHERE fid = {FIRST}"), "it has no row in 'bodies'"),
    "body_of_no_node": (_sql(f"DELETE FROM nodes WHERE fid = {FIRST}"), "1 rows of 'bodies' belong to no node"),
    "not_a_database": (lambda d: (d / METADATA_FILE).write_bytes(b"{not sqlite" * 100), "file is not a database"),
    "truncated": (_truncate, "malformed"),
    "record_without_node_id": (_row("node_id", None), "no string 'node_id' (got null)"),
    "node_id_is_a_blob": (_row("node_id", b"n0"), "no string 'node_id' (got bytes)"),
    "unknown_node_type": (_row("node_type", "Banana"), "unknown node type 'Banana'"),
    "node_type_missing": (_row("node_type", None), "unknown node type None"),
    "seq_is_a_string": (_row("seq", "first"), "'seq' is a string"),
    "node_is_a_string": (_row("node", '"text"'), "'node' is a string, not an object"),
    "node_missing": (_row("node", None), "'node' is null, not JSON text"),
    "node_truncated": (_row("node", '{"id_": '), "its node is not JSON"),
    "node_not_json": (_row("node", '{"id_": "n0",}'), "its node is not JSON"),
    "ref_doc_id_is_a_blob": (_row("ref_doc_id", b"d"), "'ref_doc_id' is bytes"),
    "metadata_is_a_list": (_row("metadata", "[1, 2]"), "'metadata' is a list, not an object"),
    "metadata_is_a_number": (_row("metadata", 5), "'metadata' is a number, not an object"),
    "metadata_is_a_blob": (_row("metadata", b"{}"), "'metadata' is blob, not JSON text"),
    "metadata_not_json": (_row("metadata", "{kind: region}"), "metadata is not JSON"),
    "node_id_disagrees": (_first_node(id_="someone-else"), "its 'node' has id 'someone-else'"),
    "dim_is_a_string": (_header(dim="x"), "'dim' is 'x'"),
    "dim_is_a_bool": (_header(dim=True), "'dim' is True"),
    "dim_is_negative": (_header(dim=-3), "'dim' is -3"),
    "header_not_json": (_sql("UPDATE store SET value = '{' WHERE key = 'dim'"), "header field 'dim' is not JSON"),
    "fid_of_another_node": (_row("fid", 12345), "is filed under FAISS id 12345"),
    "config_is_a_string": (_header(config="flat"), "'config' is missing or not an object"),
    "config_bad_type": (_config(type="annoy"), "bad 'config' (type:"),
    "count_is_wrong": (lambda d: _header(count=metadata_file.header(d)["count"] + 1)(d), "but 600 nodes are listed"),
    "count_is_a_string": (_header(count="600"), "'count' is '600'"),
    "another_format": (_header(format="someone.else"), "not a damage_rag.faiss_node_store file"),
    "version_1_tag": (_header(version=1), "unsupported format version 1"),
}
#: checked when the store loads (pydantic), not by read_metadata
LOAD_ONLY = {"config_bad_type"}
#: a row that looks whole (a JSON object's braces) but is not: found when it is first used (its
#: node returned, its metadata filtered on), not by the load, which parses no row
ON_USE = {"node_not_json", "node_truncated", "node_is_a_string", "metadata_not_json", "metadata_is_a_list",
          "metadata_is_a_number", "node_id_disagrees"}


@pytest.fixture
def persisted(tmp_path: Path, flat_store: FaissNodeStore) -> Path:
    """A directory holding the 600-node flat store (faiss.index + metadata.sqlite)."""
    flat_store.persist(tmp_path / "vi")
    return tmp_path / "vi"


@pytest.mark.parametrize("case", list(WRONG_SHAPES))
def test_a_wrong_shape_is_one_clear_error(persisted: Path, case: str) -> None:
    mutate, what = WRONG_SHAPES[case]
    path = persisted / METADATA_FILE
    mutate(persisted)
    if case in ON_USE:
        store = FaissNodeStore.from_persist_dir(persisted)
        table = read_metadata(persisted)[1]
        loads = [store.get_nodes, lambda: table.records(table.fids())]
        if case == "metadata_not_json":
            loads.append(lambda: store.counts_by("kind"))
    else:
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


def test_a_version_1_directory_is_one_rebuild_line(persisted: Path) -> None:
    os.remove(persisted / METADATA_FILE)
    legacy = persisted / "metadata.json"
    legacy.write_text(json.dumps({"format": "damage_rag.faiss_node_store", "version": 1, "nodes": {}}))
    for load in (lambda: FaissNodeStore.from_persist_dir(persisted), lambda: read_metadata(persisted),
                 lambda: FaissNodeStore.load_or_create(FaissNodeStore().config.model_copy(update={"dir": str(persisted)}))):
        with pytest.raises(VectorStoreFileError) as caught:
            load()
        message = str(caught.value)
        assert caught.value.code == "store_old_format" and not isinstance(caught.value, FileNotFoundError)
        assert str(legacy) in message and "format version 1" in message and "python -m index build" in message
        assert "\n" not in message


def test_missing_files_are_project_errors_and_still_file_not_found(persisted: Path) -> None:
    os.remove(persisted / "faiss.index")
    with pytest.raises(VectorStoreFileError, match="faiss.index") as caught:
        FaissNodeStore.from_persist_dir(persisted)
    assert isinstance(caught.value, FileNotFoundError) and caught.value.code == "store_missing"
    os.remove(persisted / METADATA_FILE)
    with pytest.raises(FileNotFoundError, match=METADATA_FILE):
        FaissNodeStore.from_persist_dir(persisted)


def test_a_type_mismatch_is_a_project_error(persisted: Path) -> None:
    from index.vector_store import VectorIndexConfig

    with pytest.raises(VectorStoreFileError, match="'flat' index") as caught:
        FaissNodeStore.from_persist_dir(persisted, config=VectorIndexConfig(type="hnsw"))
    assert caught.value.code == "type_mismatch"


@pytest.mark.parametrize("fault", ["body_missing", "version_1"])
def test_search_on_a_damaged_or_old_index_is_one_line(synth_index_dir: Path, tmp_path: Path, fault: str) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(synth_index_dir, index_dir)
    meta = index_dir / METADATA_FILE
    if fault == "version_1":
        os.remove(meta)
        meta = index_dir / "metadata.json"
        meta.write_text(json.dumps({"format": "damage_rag.faiss_node_store", "version": 1, "nodes": {}}))
        what = "format version 1"
    else:
        WRONG_SHAPES[fault][0](index_dir)
        what = WRONG_SHAPES[fault][1]
    source = tmp_path / "query.jpg"
    shutil.copy(index_dir / "crops" / sorted(os.listdir(index_dir / "crops"))[0], source)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "300"}
    done = subprocess.run([sys.executable, "-m", "index", "search", "--out", str(index_dir), "--image", str(source)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(meta) in lines[0] and what in lines[0] and "python -m index build" in lines[0]
