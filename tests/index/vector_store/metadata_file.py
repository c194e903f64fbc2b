"""Reading and editing a persisted store's ``metadata.sqlite`` in tests, as a person would with
the ``sqlite3`` shell: plain SQL on the file (tables ``store``, ``nodes`` and ``bodies``), nothing
from the store's own code."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from index.vector_store import METADATA_FILE


def connect(directory: Path) -> sqlite3.Connection:
    """The store's metadata file, in autocommit mode (every statement is written at once)."""
    return sqlite3.connect(Path(directory) / METADATA_FILE, isolation_level=None)


def records(directory: Path) -> dict[str, dict[str, Any]]:
    """``{node id: {"fid", "ref_doc_id", "node_type", "metadata", "node"}}`` with the JSON parsed."""
    with connect(directory) as db:
        rows = db.execute("SELECT fid, node_id, ref_doc_id, node_type, metadata, node "
                          "FROM nodes JOIN bodies USING (fid) ORDER BY seq")
        return {node_id: {"fid": fid, "ref_doc_id": ref, "node_type": node_type,
                          "metadata": json.loads(metadata), "node": json.loads(node)}
                for fid, node_id, ref, node_type, metadata, node in rows}


def header(directory: Path) -> dict[str, Any]:
    """The ``store`` table, values parsed."""
    with connect(directory) as db:
        return {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM store")}


def set_header(directory: Path, **fields: Any) -> None:
    """Overwrite header fields with the JSON of the values given."""
    db = connect(directory)
    db.executemany("INSERT OR REPLACE INTO store VALUES (?, ?)", [(k, json.dumps(v)) for k, v in fields.items()])
    db.close()


def set_node(directory: Path, node_id: str, **fields: Any) -> None:
    """Set top-level fields of one node's ``node`` JSON (its ``image_path``...)."""
    _set_json(directory, "node", node_id, fields)


def set_metadata(directory: Path, node_id: str, **fields: Any) -> None:
    """Set keys of one node's metadata."""
    _set_json(directory, "metadata", node_id, fields)


def _set_json(directory: Path, column: str, node_id: str, fields: dict[str, Any]) -> None:
    db = connect(directory)
    (fid, text) = db.execute(f"SELECT fid, {column} FROM nodes JOIN bodies USING (fid) WHERE node_id = ?",
                             (node_id,)).fetchone()
    db.execute(f"UPDATE bodies SET {column} = ? WHERE fid = ?", (json.dumps({**json.loads(text), **fields}), fid))
    db.close()


def execute(directory: Path, sql: str, *params: Any) -> None:
    """Run one statement on the file."""
    db = connect(directory)
    db.execute(sql, params)
    db.close()
