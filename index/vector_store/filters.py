"""Exact metadata filtering for :class:`~index.vector_store.FaissNodeStore`.

:class:`MetadataIndex` keeps an inverted index ``key -> value -> ids`` (and ``key -> list
element -> ids`` for list-valued metadata such as ``labels``), maintained on add and delete, and
evaluates LlamaIndex :class:`MetadataFilters` to the *set of FAISS ids* they allow. Equality,
``IN``, ``CONTAINS``, ``ANY`` and ``ALL`` are dictionary look-ups; range and text operators
scan the distinct values of one key (not the nodes).

Semantics (close to LlamaIndex's own in-memory filter, ``build_metadata_filter_fn``):

- ``EQ``/``NE`` compare the whole value (a list equals a list); ``EQ None`` matches a missing
  or ``None`` key. A missing key never matches ``EQ``/``IN``/range operators and always
  matches ``NE``/``NIN`` (as in LlamaIndex).
- ``CONTAINS v``: the metadata list contains ``v`` (or the metadata string contains ``v``).
- ``ANY``/``ALL [v...]``: the metadata list contains any/all of them (a scalar counts as a
  one-element list).
- ``GT``/``GTE``/``LT``/``LTE``: numbers with numbers, strings with strings; other types don't
  match (no error).
- ``TEXT_MATCH``/``TEXT_MATCH_INSENSITIVE``: substring of a string value.
- ``IS_EMPTY``: missing, ``None``, ``""``, ``[]`` or ``{}``.
- Conditions ``AND``/``OR``/``NOT`` (``NOT`` = none of the filters matches) and nested
  :class:`MetadataFilters`. An empty filter list allows everything.
"""

from __future__ import annotations

import operator as _op
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from index.errors import DamageRagError

Canon = tuple[str, Any]

_EMPTY: frozenset[int] = frozenset()
_RANGE_OPS: dict[FilterOperator, Callable[[Any, Any], bool]] = {
    FilterOperator.GT: _op.gt,
    FilterOperator.GTE: _op.ge,
    FilterOperator.LT: _op.lt,
    FilterOperator.LTE: _op.le,
}


class FilterError(DamageRagError, ValueError):
    """A metadata filter that cannot be evaluated (unknown operator, bad value type)."""


def canon(value: Any) -> Canon | None:
    """A hashable, type-tagged form of a metadata value (``None`` if it cannot be indexed).

    Tags keep ``True`` apart from ``1`` while ``1`` and ``1.0`` stay equal, as in Python.
    """
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, (list, tuple)):
        items = [canon(v) for v in value]
        if any(item is None for item in items):
            return None
        return ("l", tuple(items))
    return None


def _is_empty_value(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, tuple, dict)) and len(value) == 0)


class MetadataIndex:
    """Inverted index over node metadata, answering filters with sets of FAISS ids."""

    def __init__(self) -> None:
        self._values: dict[str, dict[Canon, set[int]]] = {}
        self._elements: dict[str, dict[Canon, set[int]]] = {}
        self._present: dict[str, set[int]] = {}  # key present with a non-None value
        self._empty: dict[str, set[int]] = {}  # value is "", [], {}

    # ------------------------------------------------------------------ maintenance
    def add(self, fid: int, metadata: Mapping[str, Any]) -> None:
        """Index the metadata of one vector (call :meth:`remove` first when replacing)."""
        for key, value in metadata.items():
            if value is None:
                continue
            self._present.setdefault(key, set()).add(fid)
            if _is_empty_value(value):
                self._empty.setdefault(key, set()).add(fid)
            c = canon(value)
            if c is not None:
                self._values.setdefault(key, {}).setdefault(c, set()).add(fid)
            if isinstance(value, (list, tuple)):
                for element in value:
                    ce = canon(element)
                    if ce is not None:
                        self._elements.setdefault(key, {}).setdefault(ce, set()).add(fid)

    def remove(self, fid: int, metadata: Mapping[str, Any]) -> None:
        """Drop one vector's metadata from the index (``metadata`` as given to :meth:`add`)."""
        for key, value in metadata.items():
            if value is None:
                continue
            _discard(self._present, key, fid)
            _discard(self._empty, key, fid)
            c = canon(value)
            if c is not None:
                _discard_nested(self._values, key, c, fid)
            if isinstance(value, (list, tuple)):
                for element in value:
                    ce = canon(element)
                    if ce is not None:
                        _discard_nested(self._elements, key, ce, fid)

    def clear(self) -> None:
        """Forget everything."""
        self._values.clear()
        self._elements.clear()
        self._present.clear()
        self._empty.clear()

    def value_counts(self, key: str) -> dict[Any, int]:
        """Number of vectors per distinct (hashable) value of ``key``; lists count per element."""
        counts: dict[Any, int] = {}
        for c, ids in self._values.get(key, {}).items():
            if c[0] != "l":
                counts[c[1]] = counts.get(c[1], 0) + len(ids)
        for c, ids in self._elements.get(key, {}).items():
            if c[0] != "l":
                counts[c[1]] = counts.get(c[1], 0) + len(ids)
        return counts

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, filters: MetadataFilters, universe: AbstractSet[int]) -> set[int]:
        """The ids in ``universe`` that ``filters`` allows (a new set, safe to mutate)."""
        return set(self._eval_filters(filters, universe))

    def _eval_filters(
        self, filters: MetadataFilters, universe: AbstractSet[int]
    ) -> AbstractSet[int]:
        condition = filters.condition or FilterCondition.AND
        if condition not in (FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT):
            raise FilterError(f"Unsupported filter condition {condition!r}")
        if not filters.filters:
            return universe
        if condition == FilterCondition.AND:
            result: AbstractSet[int] | None = None
            for item in filters.filters:
                ids = self._eval_item(item, universe)
                result = ids if result is None else (result & ids)
                if not result:
                    return _EMPTY
            return result if result is not None else universe
        union: set[int] = set()
        for item in filters.filters:
            union |= self._eval_item(item, universe)
        if condition == FilterCondition.OR:
            return union
        return universe - union  # NOT: none of the filters matches

    def _eval_item(
        self, item: MetadataFilter | MetadataFilters, universe: AbstractSet[int]
    ) -> AbstractSet[int]:
        if isinstance(item, MetadataFilters):
            return self._eval_filters(item, universe)
        if isinstance(item, MetadataFilter):
            return self._eval_filter(item, universe)
        raise FilterError(f"Not a MetadataFilter or MetadataFilters: {item!r}")

    def _eval_filter(self, f: MetadataFilter, universe: AbstractSet[int]) -> AbstractSet[int]:
        op, key, value = f.operator, f.key, f.value
        if op == FilterOperator.EQ:
            return self._eq(key, value, universe)
        if op == FilterOperator.NE:
            return universe - self._eq(key, value, universe)
        if op == FilterOperator.IN:
            return self._in(key, value)
        if op == FilterOperator.NIN:
            return universe - self._in(key, value)
        if op in _RANGE_OPS:
            return self._range(key, value, _RANGE_OPS[op], op)
        if op == FilterOperator.CONTAINS:
            return self._contains(key, value)
        if op == FilterOperator.ANY:
            return self._any(key, _as_list(value))
        if op == FilterOperator.ALL:
            return self._all(key, _as_list(value))
        if op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
            if not isinstance(value, str):
                raise FilterError(f"{op.value} on {key!r} needs a string value, got {value!r}")
            return self._text(key, value, op == FilterOperator.TEXT_MATCH_INSENSITIVE)
        if op == FilterOperator.IS_EMPTY:
            return (universe - self._present.get(key, _EMPTY)) | self._empty.get(key, _EMPTY)
        raise FilterError(
            f"Unsupported filter operator {op!r} on key {key!r}; supported: "
            + ", ".join(o.value for o in FilterOperator)
        )

    def _lookup(self, table: dict[str, dict[Canon, set[int]]], key: str, value: Any) -> set[int]:
        c = canon(value)
        if c is None:
            return set()
        return table.get(key, {}).get(c, set())

    def _eq(self, key: str, value: Any, universe: AbstractSet[int]) -> AbstractSet[int]:
        if value is None:
            return universe - self._present.get(key, _EMPTY)
        return self._lookup(self._values, key, value)

    def _in(self, key: str, value: Any) -> set[int]:
        out: set[int] = set()
        for v in _as_list(value):
            out |= self._lookup(self._values, key, v)
        return out

    def _range(
        self, key: str, value: Any, cmp: Callable[[Any, Any], bool], op: FilterOperator
    ) -> set[int]:
        if isinstance(value, (list, tuple)) or value is None:
            raise FilterError(f"{op.value} on {key!r} needs a number or a string, got {value!r}")
        want = "s" if isinstance(value, str) else "n"
        out: set[int] = set()
        for (tag, stored), ids in self._values.get(key, {}).items():
            if tag == want and cmp(stored, value):
                out |= ids
        return out

    def _contains(self, key: str, value: Any) -> set[int]:
        if isinstance(value, (list, tuple)):
            raise FilterError(
                f"contains on {key!r} takes one value, got a list {value!r}; use 'all' or 'any'"
            )
        out = set(self._lookup(self._elements, key, value))
        if isinstance(value, str):
            out |= self._text(key, value, insensitive=False)
        return out

    def _member(self, key: str, value: Any) -> set[int]:
        return self._lookup(self._elements, key, value) | self._lookup(self._values, key, value)

    def _any(self, key: str, values: list[Any]) -> set[int]:
        out: set[int] = set()
        for v in values:
            out |= self._member(key, v)
        return out

    def _all(self, key: str, values: list[Any]) -> AbstractSet[int]:
        if not values:
            return self._present.get(key, _EMPTY)
        sets = sorted((self._member(key, v) for v in values), key=len)
        out = sets[0]
        for s in sets[1:]:
            out = out & s
        return out

    def _text(self, key: str, value: str, insensitive: bool) -> set[int]:
        needle = value.lower() if insensitive else value
        out: set[int] = set()
        for (tag, stored), ids in self._values.get(key, {}).items():
            if tag == "s" and needle in (stored.lower() if insensitive else stored):
                out |= ids
        return out


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _discard(table: dict[str, set[int]], key: str, fid: int) -> None:
    ids = table.get(key)
    if ids is not None:
        ids.discard(fid)
        if not ids:
            del table[key]


def _discard_nested(table: dict[str, dict[Canon, set[int]]], key: str, c: Canon, fid: int) -> None:
    by_value = table.get(key)
    if by_value is None:
        return
    ids = by_value.get(c)
    if ids is not None:
        ids.discard(fid)
        if not ids:
            del by_value[c]
    if not by_value:
        del table[key]
