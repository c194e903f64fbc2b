"""The SQLite file behind :class:`~index.vector_store.NodeTable`: ``metadata.sqlite``.

One row per vector in table ``nodes`` (narrow: a load reads only this one) and one in ``bodies``::

    nodes:  fid         INTEGER PRIMARY KEY  -- the FAISS id, a hash of node_id
            seq         INTEGER              -- insertion order (nodes come back in it)
            node_id     TEXT, ref_doc_id TEXT, node_type TEXT
    bodies: fid         INTEGER PRIMARY KEY
            metadata    TEXT                 -- the node's metadata, a JSON object
            node        TEXT                 -- the rest of node.model_dump(mode="json"), embeddings null

and table ``store`` (``key``, ``value`` as JSON): ``format``, ``version``, ``config``, ``dim``,
``index_kind``, ``count`` and ``generation``, a random token that changes at every write.

A process works on an in-memory copy (:func:`open_copy`: SQLite's backup API, one page copy, no
parsing), so a reader never holds the file and never sees a later write. Metadata values are
read per key, by SQLite's JSON functions (:func:`metadata_groups`), only when a filter first
asks for that key; node rows are parsed only for the nodes returned.

Writing (:func:`save`) is either a whole copy of the memory database to a temporary file
that replaces the old one (``os.replace``), or, when the file on disk is the one this copy was
last written to or read from (same ``generation``), one transaction that rewrites only the rows
of the vectors added or removed since: the cost of a checkpoint is its new nodes, not the store.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from index.errors import ResourceError
from index.files import atomic_write

logger = logging.getLogger(__name__)

#: a row as the table hands it over: ``nodes``' columns, then ``bodies``' own
NODE_COLUMNS = ("fid", "seq", "node_id", "ref_doc_id", "node_type", "metadata", "node")
_TABLES = {"store": ("key", "value"), "nodes": NODE_COLUMNS[:5], "bodies": ("fid", "metadata", "node")}
SCHEMA = """
CREATE TABLE IF NOT EXISTS store (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    fid INTEGER PRIMARY KEY, seq INTEGER NOT NULL, node_id TEXT, ref_doc_id TEXT, node_type TEXT
);
CREATE TABLE IF NOT EXISTS bodies (fid INTEGER PRIMARY KEY, metadata TEXT, node TEXT);
"""
_ROWS = "nodes JOIN bodies USING (fid)"
#: rows per ``IN (...)`` look-up (SQLite's oldest variable limit is 999)
CHUNK = 500
#: The first node whose body is missing or not text (the types only, read from the rows'
#: headers: the JSON is parsed, and checked, when a row is first used).
_BAD_SHAPE = """
SELECT nodes.fid, node_id, CASE
    WHEN bodies.fid IS NULL THEN 'it has no row in ''bodies'''
    WHEN typeof(metadata) != 'text' THEN '''metadata'' is ' || typeof(metadata) || ', not JSON text'
    WHEN typeof(node) != 'text' THEN '''node'' is ' || typeof(node) || ', not JSON text'
    END AS problem
FROM nodes LEFT JOIN bodies ON bodies.fid = nodes.fid WHERE problem IS NOT NULL LIMIT 1
"""
_DECODE = {"true": lambda v: True, "false": lambda v: False, "null": lambda v: None,
           "array": json.loads, "object": json.loads, "json": json.loads}


class NodeFileError(ValueError):
    """The file is not a node database of this program (the message says what is wrong)."""


def new_memory_db() -> sqlite3.Connection:
    """An empty in-memory node database (autocommit; the caller serialises access)."""
    db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    db.executescript(SCHEMA)
    return db


def open_copy(path: Path) -> sqlite3.Connection:
    """An in-memory copy of the node database at ``path``, its tables checked.

    Raises:
        NodeFileError: If ``path`` is not an SQLite database with the two tables.
    """
    memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
        try:
            source.backup(memory)
        finally:
            source.close()
        tables = {name: tuple(row[1] for row in memory.execute(f"PRAGMA table_info({name})"))
                  for name in _TABLES}
        extra = 0 if tables != _TABLES else memory.execute(
            "SELECT count(*) FROM bodies WHERE fid NOT IN (SELECT fid FROM nodes)").fetchone()[0]
    except sqlite3.Error as exc:
        memory.close()
        raise NodeFileError(" ".join(str(exc).split()) or type(exc).__name__) from None
    if extra:
        memory.close()
        raise NodeFileError(f"{extra} rows of 'bodies' belong to no node")
    if tables != _TABLES:
        memory.close()
        raise NodeFileError("its tables are not those of a node database")
    return memory


def read_header(db: sqlite3.Connection) -> dict[str, Any]:
    """The ``store`` table as ``{key: decoded JSON value}``.

    Raises:
        NodeFileError: If a value is not JSON.
    """
    header = {}
    for key, value in db.execute("SELECT key, value FROM store"):
        try:
            header[key] = json.loads(value)
        except (TypeError, ValueError):
            raise NodeFileError(f"header field {key!r} is not JSON") from None
    return header


def write_header(db: sqlite3.Connection, header: dict[str, Any]) -> None:
    """Replace the ``store`` table by ``header`` (values JSON-encoded)."""
    db.execute("DELETE FROM store")
    db.executemany("INSERT INTO store VALUES (?, ?)",
                   [(key, json.dumps(value, separators=(",", ":"))) for key, value in header.items()])


def first_bad_row(db: sqlite3.Connection) -> tuple[int, str, str] | None:
    """(fid, node id, what is wrong) of the first row whose JSON columns are not objects at a
    glance, or None (a cheap check: :meth:`NodeTable.records` checks a row in full)."""
    return db.execute(_BAD_SHAPE).fetchone()


def insert_rows(db: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    """Insert or replace rows given as :data:`NODE_COLUMNS` tuples."""
    rows = list(rows)
    db.executemany("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?)", [row[:5] for row in rows])
    db.executemany("INSERT OR REPLACE INTO bodies VALUES (?, ?, ?)", [(row[0], *row[5:]) for row in rows])


def delete_rows(db: sqlite3.Connection, fids: Sequence[int]) -> None:
    """Delete the rows of ``fids``."""
    for table in ("nodes", "bodies"):
        db.executemany(f"DELETE FROM {table} WHERE fid = ?", [(fid,) for fid in fids])


def fetch(db: sqlite3.Connection, columns: str, fids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """``{fid: (columns...)}`` for the rows of ``fids`` (``columns``: a literal column list)."""
    out: dict[int, tuple[Any, ...]] = {}
    for start in range(0, len(fids), CHUNK):
        chunk = fids[start:start + CHUNK]
        sql = f"SELECT fid, {columns} FROM {_ROWS} WHERE fid IN ({', '.join('?' * len(chunk))})"
        for row in db.execute(sql, chunk):
            out[row[0]] = row[1:]
    return out


def _json_path(key: str) -> str | None:
    """SQLite's JSON path of top-level ``key`` (None if it cannot be written as one)."""
    return None if '"' in key or "\\" in key else f'$."{key}"'


def metadata_groups(db: sqlite3.Connection, keys: Sequence[str]) -> dict[str, list[tuple[Any, list[int]]]]:
    """``{key: [(value, fids having it)]}`` for the metadata ``keys`` (nodes lacking one left out).

    SQLite reads the values out of each row's JSON (one parse per row for all ``keys``); Python
    sees each distinct value once. Keys that are no JSON path label are read by parsing rows.

    Raises:
        sqlite3.OperationalError: If a row's metadata is not JSON.
    """
    paths = [_json_path(key) for key in keys]
    simple = [(key, path) for key, path in zip(keys, paths, strict=True) if path is not None]
    others = [key for key, path in zip(keys, paths, strict=True) if path is None]
    select = "".join(", json_type(metadata, ?), json_extract(metadata, ?)" for _ in simple)
    sql = f"SELECT fid{select}{', metadata' if others else ''} FROM bodies"
    raw: dict[str, dict[tuple[str, Any], list[int]]] = {key: {} for key in keys}
    for row in db.execute(sql, [path for _, path in simple for _ in range(2)]):
        fid = row[0]
        for i, (key, _) in enumerate(simple):
            kind = row[1 + 2 * i]
            if kind is not None and kind != "null":
                raw[key].setdefault((kind, row[2 + 2 * i]), []).append(fid)
        if others:
            metadata = json.loads(row[-1])
            for key in others:
                if metadata.get(key) is not None:
                    raw[key].setdefault(("json", json.dumps(metadata[key])), []).append(fid)
    return {key: [(_DECODE.get(kind, _same)(value), fids) for (kind, value), fids in groups.items()]
            for key, groups in raw.items()}


def _same(value: Any) -> Any:
    return value


def node_field(db: sqlite3.Connection, field: str) -> Iterator[tuple[str, Any]]:
    """``(node id, value)`` of one top-level field of every row's ``node`` (missing: None)."""
    path = _json_path(field)
    if path is None:
        raise ValueError(f"{field!r} is not a node field")
    for node_id, kind, value in db.execute(
            f"SELECT node_id, json_type(node, ?), json_extract(node, ?) FROM {_ROWS} ORDER BY seq", (path, path)):
        yield node_id, (_DECODE[kind](value) if kind in _DECODE else value)


def save(db: sqlite3.Connection, path: Path, header: dict[str, Any], changed: set[int],
         generation: str | None) -> str:
    """Write ``db`` to ``path`` with ``header``; returns the new generation written.

    If ``generation`` is the one ``path`` holds, only the rows of ``changed`` are rewritten, in
    one transaction; otherwise the whole database replaces the file atomically.

    Raises:
        ResourceError: If the disk or the folder refuses the write (one sentence naming it).
    """
    new = secrets.token_hex(8)
    write_header(db, {**header, "generation": new})
    try:
        if generation is not None and path.is_file():
            try:
                if _save_changes(db, path, changed, generation):
                    return new
            except sqlite3.OperationalError:
                raise
            except sqlite3.DatabaseError as exc:  # not a database (any more): written whole
                logger.warning("%s is unreadable (%s): writing it whole", path, exc)
        atomic_write(path, lambda tmp: _copy_to(db, tmp))
    except sqlite3.Error as exc:  # full, read-only, locked
        raise ResourceError(f"Cannot write {path}: {' '.join(str(exc).split())}.") from exc
    return new


def _copy_to(db: sqlite3.Connection, target: Path) -> None:
    """The whole memory database into the (new, empty) file ``target``: its bytes written by
    Python where it can (Python 3.11+), so a refused write is an ``OSError`` with its reason
    (SQLite reports a full disk or a file size limit as a bare "disk I/O error")."""
    if hasattr(db, "serialize"):
        with open(target, "wb") as fh:
            fh.write(db.serialize())
        return
    out = sqlite3.connect(target)
    try:
        db.backup(out)
    finally:
        out.close()


def _save_changes(db: sqlite3.Connection, path: Path, changed: set[int], generation: str) -> bool:
    """Rewrite the rows of ``changed`` and the header in ``path``, if it still holds
    ``generation`` (False, and nothing written, if it does not)."""
    db.execute("ATTACH DATABASE ? AS disk", (str(path),))
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            found = db.execute("SELECT value FROM disk.store WHERE key = 'generation'").fetchone()
            if found is None or found[0] != json.dumps(generation):
                db.execute("ROLLBACK")
                logger.info("%s was written by someone else since: writing it whole", path)
                return False
            db.execute("CREATE TEMP TABLE IF NOT EXISTS changed (fid INTEGER PRIMARY KEY)")
            db.execute("DELETE FROM temp.changed")
            db.executemany("INSERT INTO temp.changed VALUES (?)", [(fid,) for fid in changed])
            for table in ("nodes", "bodies"):
                db.execute(f"DELETE FROM disk.{table} WHERE fid IN (SELECT fid FROM temp.changed)")
                db.execute(f"INSERT INTO disk.{table} SELECT * FROM main.{table} "
                           "WHERE fid IN (SELECT fid FROM temp.changed)")
            db.execute("DELETE FROM disk.store")
            db.execute("INSERT INTO disk.store SELECT * FROM main.store")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    finally:
        db.execute("DETACH DATABASE disk")
    logger.debug("wrote %d changed rows to %s", len(changed), path)
    return True
