"""Which Qdrant collection an index directory holds, and how a build replaces it.

The index directory stays the unit a build swaps in: next to ``manifest.json`` and ``crops/``
it holds ``qdrant.json``, which names the collection holding its vectors. A build never writes
into the collection readers use. Its store writes into a new *generation*
``<collection>-<UTC time>-<random>`` (:func:`new_generation`), created on the build's first
write (a copy of the live one when the build is incremental), and ``qdrant.json`` in the
staging directory names it; the directory swap then switches readers, atomically, together
with the manifest and crops. When a generation is created, the one before the live one is
dropped: the live collection and its predecessor remain, so a query process that opened the
index before the last build keeps working until the next build starts.

The alias ``<collection>`` names the newest published generation for other Qdrant readers:
:func:`publish` moves it forward (never back) whenever a published index directory is opened.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from index.files import write_json_atomic

logger = logging.getLogger(__name__)

POINTER = "qdrant.json"
_GENERATION = re.compile(r"-(\d{8}T\d{6}\d{6})-[0-9a-f]{6}$")


def new_generation(base: str) -> str:
    """A new collection name for ``base``: sortable by creation time, unique."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    return f"{base}-{stamp}-{secrets.token_hex(3)}"


def generation_time(name: str) -> str:
    """The creation stamp of a generation name ('' for any other name)."""
    found = _GENERATION.search(name)
    return found.group(1) if found else ""


def write_pointer(directory: Path, info: dict[str, Any]) -> None:
    """Write ``qdrant.json`` (atomically) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / POINTER, info)


def read_pointer(directory: Path) -> dict[str, Any]:
    """``qdrant.json`` of ``directory``.

    Raises:
        VectorStoreFileError: If it is missing or not shaped like :func:`write_pointer`'s output
            (the message names the file).
    """
    from index.vector_store import VectorStoreFileError

    path = directory / POINTER
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VectorStoreFileError(
            f"{path} does not exist: {directory} holds no Qdrant-backed index; build it with "
            "index.backend 'qdrant'", "store_missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VectorStoreFileError(f"{path} is unreadable ({exc}); rebuild the index") from None
    if not isinstance(info, dict) or not isinstance(info.get("collection"), str):
        raise VectorStoreFileError(f"{path} names no collection; rebuild the index")
    return info


def drop(client: Any, name: str | None) -> None:
    """Delete collection ``name`` if it exists (an old generation); failures are logged."""
    if not name:
        return
    try:
        if client.collection_exists(name):
            client.delete_collection(name)
            logger.info("dropped the old Qdrant collection %s", name)
    except Exception as exc:  # never fail a build over an old generation
        logger.warning("could not drop the old Qdrant collection %s: %s", name, exc)


def publish(client: Any, alias: str, collection: str) -> None:
    """Point the alias ``alias`` at ``collection`` unless it already names a newer generation.

    Best effort: a read-only key or a race with another process is logged, not raised.
    """
    try:
        current = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}.get(alias)
        if current == collection or generation_time(current or "") > generation_time(collection):
            return
        from qdrant_client import models

        ops: list[Any] = []
        if current is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        ops.append(models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)))
        client.update_collection_aliases(change_aliases_operations=ops)
        logger.info("Qdrant alias %s now names %s", alias, collection)
    except Exception as exc:
        logger.warning("could not point the Qdrant alias %s at %s: %s", alias, collection, exc)
