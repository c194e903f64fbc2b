"""What :class:`~index.vector_store.FaissNodeStore` knows about its nodes, apart from the vectors.

- :func:`node_id_to_faiss_id`: a node's FAISS id is a stable 64-bit hash of its node id, never a
  counter or a position; two node ids hashing alike raise :class:`FaissIdCollisionError`.
- :class:`NodeRecord`: the snapshot kept per vector, the node without its embedding (one row of
  ``metadata.sqlite``: its metadata and the rest of the node as two JSON texts); a store loaded
  from a directory anchors its relative ``image_path`` there (:meth:`NodeRecord.anchor`), so
  the nodes it returns open from anywhere while the file keeps the path relative.
- :func:`resolve_inside`: the check that a stored path stays inside the store's directory.

The records of one store live in its :class:`~index.vector_store.node_table.NodeTable`
(importable from here too, for the callers that imported it from this module).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llama_index.core.schema import (
    BaseNode,
    Document,
    ImageDocument,
    ImageNode,
    IndexNode,
    Node,
    TextNode,
)

from index.errors import DamageRagError, json_kind

_ID_MASK = (1 << 63) - 1

#: the node classes a store keeps, by LlamaIndex class name (a record's ``node_type``)
NODE_CLASSES: dict[str, type[BaseNode]] = {
    cls.class_name(): cls for cls in (TextNode, ImageNode, IndexNode, Node, Document, ImageDocument)
}
_NODE_CLASSES = NODE_CLASSES
# fields that hold vectors: never stored in the metadata file, never returned
_EMBEDDING_FIELDS = ("embedding", "text_embedding")


class FaissIdCollisionError(DamageRagError, ValueError):
    """Two different node ids map to the same 64-bit FAISS id."""


def latest_by_id(nodes: Sequence[BaseNode]) -> list[BaseNode]:
    """``nodes`` with each node id once: the last occurrence wins, in its position (what an
    upsert of a batch holding one id twice means)."""
    latest: dict[str, BaseNode] = {}
    for node in nodes:
        latest.pop(node.node_id, None)
        latest[node.node_id] = node
    return list(latest.values())


def node_id_to_faiss_id(node_id: str) -> int:
    """The stable FAISS id of a node: first 8 bytes of blake2b(node_id), as a positive int64."""
    digest = hashlib.blake2b(node_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _ID_MASK


@functools.cache
def _vector_fields(cls: type[BaseNode]) -> frozenset[str]:
    return frozenset(name for name in _EMBEDDING_FIELDS if name in cls.model_fields)


def resolve_inside(path: str, base: str, parents: dict[str, str] | None = None) -> str | None:
    """``path`` (relative) joined to ``base`` (a resolved directory) and resolved — absolute,
    ``..`` and symlinks followed — or None when that is not a file path inside ``base``.

    ``parents`` caches the resolved folders between calls (a store's crops share one), so a
    10,000-node store resolves with one ``lstat`` per node.
    """
    try:
        parent, name = os.path.split(os.path.normpath(os.path.join(base, path)))
        real = None if parents is None else parents.get(parent)
        if real is None:
            real = os.path.realpath(parent)
            if parents is not None:
                parents[parent] = real
        resolved = os.path.join(real, name)
        if os.path.islink(resolved):
            resolved = os.path.realpath(resolved)
    except (OSError, ValueError):  # a NUL byte
        return None
    return resolved if resolved.startswith(base.rstrip(os.sep) + os.sep) else None


@dataclass
class NodeRecord:
    """What the store keeps per vector: the node without its embedding."""

    node_id: str
    ref_doc_id: str | None
    node_type: str
    data: dict[str, Any]  # node.model_dump(mode="json") with embeddings removed
    #: Fields the returned nodes carry instead of ``data``'s (see :meth:`anchor`); never persisted.
    overrides: dict[str, Any] = field(default_factory=dict)

    def anchor(self, base: str, parents: dict[str, str] | None = None) -> bool:
        """Make the nodes returned carry the ``image_path`` resolved against ``base`` (the store's
        directory, resolved), absolute, so they open from anywhere; ``data`` keeps it relative
        (an absolute path under ``base``, as a returned node carries it back, is made relative).

        Another absolute or a missing ``image_path`` is left as it is. Returns False when the
        relative path leads out of ``base``: the nodes returned then carry no image path at all.
        ``parents`` is :func:`resolve_inside`'s cache.
        """
        path = self.data.get("image_path")
        if not isinstance(path, str) or not path:
            return True
        if os.path.isabs(path):
            if not path.startswith(base.rstrip(os.sep) + os.sep):
                return True
            path = self.data["image_path"] = Path(os.path.relpath(path, base)).as_posix()
        self.overrides["image_path"] = resolve_inside(path, base, parents)
        return self.overrides["image_path"] is not None

    @property
    def metadata(self) -> dict[str, Any]:
        """The node's metadata (JSON-normalised), as used for filtering."""
        return self.data.get("metadata") or {}

    @classmethod
    def from_node(cls, node: BaseNode) -> NodeRecord:
        """Snapshot a node (its embedding is dropped)."""
        node_type = node.class_name()
        if node_type not in _NODE_CLASSES:
            raise TypeError(
                f"node {node.node_id!r}: unsupported node class {type(node).__name__} "
                f"(supported: {', '.join(sorted(_NODE_CLASSES))})"
            )
        vector_fields = _vector_fields(type(node))
        data = node.model_dump(mode="json", exclude=set(vector_fields))  # don't serialise vectors
        data.pop("class_name", None)
        for name in vector_fields:
            data[name] = None
        return cls(node.node_id, node.ref_doc_id, node_type, data)

    def to_node(self) -> BaseNode:
        """A fresh node object equal to the one added (without embedding; its image path
        anchored, see :meth:`anchor`)."""
        data = {**self.data, **self.overrides} if self.overrides else self.data
        return _NODE_CLASSES[self.node_type].from_dict(data)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (the record of format version 1's ``metadata.json``; a payload)."""
        return {
            "node_id": self.node_id,
            "ref_doc_id": self.ref_doc_id,
            "node_type": self.node_type,
            "node": self.data,
        }

    @classmethod
    def from_json(cls, obj: Any) -> NodeRecord:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: If ``obj`` is not shaped like :meth:`to_json`'s output (the message
                says which field is wrong).
        """
        if not isinstance(obj, dict):
            raise ValueError(f"a node record must be an object, not {json_kind(obj)}")
        node_id = obj.get("node_id")
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node record has no string 'node_id' (got {json_kind(node_id)})")
        node_type = obj.get("node_type")
        if not isinstance(node_type, str) or node_type not in _NODE_CLASSES:
            raise ValueError(f"node {node_id!r}: unknown node type {node_type!r}")
        ref_doc_id = obj.get("ref_doc_id")
        if ref_doc_id is not None and not isinstance(ref_doc_id, str):
            raise ValueError(
                f"node {node_id!r}: 'ref_doc_id' is {json_kind(ref_doc_id)}, not a string"
            )
        data = obj.get("node")
        if not isinstance(data, dict):
            raise ValueError(f"node {node_id!r}: 'node' is {json_kind(data)}, not an object")
        if data.get("id_") != node_id:
            raise ValueError(f"node {node_id!r}: its 'node' has id {data.get('id_')!r}")
        metadata = data.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError(
                f"node {node_id!r}: 'metadata' is {json_kind(metadata)}, not an object"
            )
        return cls(node_id, ref_doc_id, node_type, dict(data))


def __getattr__(name: str) -> Any:
    if name == "NodeTable":  # moved to node_table, which imports this module
        from index.vector_store.node_table import NodeTable

        return NodeTable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
