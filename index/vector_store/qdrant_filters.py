"""The project's metadata-filter semantics, exactly, as Qdrant payload fields and filters.

Qdrant's own matching differs from :mod:`index.vector_store.filters` in ways that change
results: a ``MatchValue`` on an array matches any element (the project's ``EQ`` compares the
whole value), ``1`` never matches ``1.0``, there is no whole-list equality, no string range
and ``MatchExcept`` never matches a missing key (the project's ``NE``/``NIN`` do). So the
store does not filter on the raw metadata. Each metadata key gets derived payload fields under
``f.<key>`` (:func:`filter_fields`), written by the store on upsert:

- ``c``: the whole value as a type-tagged string (``"s:dent"``, ``"n:1"`` for 1 and 1.0,
  ``"b:1"``, ``"l:[...]"`` for a list): ``EQ``, ``IN`` and their negations are exact keyword
  matches on it;
- ``e``: the same strings for each element of a list value: ``CONTAINS``, ``ANY``, ``ALL``;
- ``n``: a numeric (non-bool) scalar, for ranges; ``s``: a string scalar and ``i``: its
  lower-case form, for substring matches (``TEXT_MATCH``, ``CONTAINS`` on a string);
- ``p``: the key is present with a non-None value; ``z``: its value is ``""``, ``[]`` or ``{}``.

:func:`to_qdrant_filter` then translates any :class:`MetadataFilters` (``AND``/``OR``/``NOT``,
nested) into a Qdrant ``Filter`` whose matches are exactly those of
:class:`~index.vector_store.filters.MetadataIndex`: negations are ``must_not`` (which a missing
key satisfies, as in the project), ``NOT`` is ``must_not`` over its items. String ranges have no
Qdrant condition: they are resolved through the key's distinct values (a facet), as the
project does. Invalid filters raise the same :class:`~index.vector_store.filters.FilterError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from qdrant_client import models

from index.vector_store.filters import Canon, FilterError, canon

__all__ = ["FIELDS", "decode", "encode", "field_key", "filter_fields", "to_qdrant_filter"]

#: the payload object holding the derived filter fields
FIELDS = "f"
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_RANGES = {
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
}
_COMPARE: dict[str, Callable[[str, str], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
#: a condition no point satisfies
NOTHING = models.Filter(must=[models.HasIdCondition(has_id=[])])
#: values of one key, for string ranges: (payload path of the ``c`` field) -> encoded values
Facet = Callable[[str], list[str]]


def field_key(key: str) -> str:
    """The payload name of a metadata key's fields: the key itself when it is a plain
    identifier, else ``x_`` and its UTF-8 hex (so dots and brackets never reach a JSON path)."""
    if _SAFE_KEY.match(key) and not key.startswith("x_"):
        return key
    return "x_" + key.encode("utf-8").hex()


def _path(key: str, sub: str) -> str:
    return f"{FIELDS}.{field_key(key)}.{sub}"


def encode(c: Canon | None) -> str | None:
    """The type-tagged string of a canonical value (``None``: not indexable, like NaN)."""
    if c is None:
        return None
    tag, value = c
    if tag == "l":
        items = [encode(item) for item in value]
        return None if any(item is None for item in items) else "l:" + json.dumps(items)
    if tag == "b":
        return "b:1" if value else "b:0"
    if tag == "n":
        if isinstance(value, float):
            if math.isnan(value):
                return None  # NaN equals nothing, itself included
            if value.is_integer():
                value = int(value)  # 1 == 1.0, as in Python
        return f"n:{value!r}"
    return f"s:{value}"


def decode(text: str) -> Any:
    """The value of a scalar's :func:`encode` string (lists come back as their JSON text)."""
    tag, value = text[0], text[2:]
    if tag == "b":
        return value == "1"
    if tag == "n":
        return float(value) if any(ch in value for ch in ".en") else int(value)
    return value


def filter_fields(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The derived payload fields of one node's metadata (see the module doc)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        fields: dict[str, Any] = {"p": True}
        if isinstance(value, (str, list, tuple, dict)) and len(value) == 0:
            fields["z"] = True
        whole = encode(canon(value))
        if whole is not None:
            fields["c"] = whole
        if isinstance(value, (list, tuple)):
            elements = [e for e in (encode(canon(item)) for item in value) if e is not None]
            if elements:
                fields["e"] = sorted(set(elements))
        elif isinstance(value, str):
            fields["s"], fields["i"] = value, value.lower()
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            fields["n"] = value
        out[field_key(key)] = fields
    return out


def _match(key: str, sub: str, values: list[str]) -> models.Filter | models.FieldCondition:
    if not values:
        return NOTHING
    match = models.MatchValue(value=values[0]) if len(values) == 1 else models.MatchAny(any=values)
    return models.FieldCondition(key=_path(key, sub), match=match)


def _present(key: str) -> models.FieldCondition:
    return models.FieldCondition(key=_path(key, "p"), match=models.MatchValue(value=True))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _encoded(values: list[Any]) -> list[str]:
    return [e for e in (encode(canon(v)) for v in values) if e is not None]


def _either(*conditions: Any) -> models.Filter:
    return models.Filter(should=list(conditions))


def _none_of(*conditions: Any) -> models.Filter:
    return models.Filter(must_not=list(conditions))


def _member(key: str, values: list[Any]) -> models.Filter:
    """An element of a list value, or the whole value, is one of ``values`` (ANY)."""
    encoded = _encoded(values)
    return _either(_match(key, "e", encoded), _match(key, "c", encoded))


def _leaf(f: MetadataFilter, facet: Facet) -> Any:
    op, key, value = f.operator, f.key, f.value
    if op in (FilterOperator.EQ, FilterOperator.NE):
        eq = _none_of(_present(key)) if value is None else _match(key, "c", _encoded([value]))
        return eq if op == FilterOperator.EQ else _none_of(eq)
    if op in (FilterOperator.IN, FilterOperator.NIN):
        inside = _match(key, "c", _encoded(_as_list(value)))
        return inside if op == FilterOperator.IN else _none_of(inside)
    if op in _RANGES:
        if isinstance(value, (list, tuple)) or value is None:
            raise FilterError(f"{op.value} on {key!r} needs a number or a string, got {value!r}")
        bound = _RANGES[op]
        if isinstance(value, str):  # no string range in Qdrant: compare the key's distinct values
            compare = _COMPARE[bound]
            hits = [c for c in facet(_path(key, "c")) if c.startswith("s:") and compare(c[2:], value)]
            return _match(key, "c", hits)
        return models.FieldCondition(key=_path(key, "n"), range=models.Range(**{bound: float(value)}))
    if op == FilterOperator.CONTAINS:
        if isinstance(value, (list, tuple)):
            raise FilterError(
                f"contains on {key!r} takes one value, got a list {value!r}; use 'all' or 'any'"
            )
        element = _match(key, "e", _encoded([value]))
        if not isinstance(value, str):
            return element
        substring = models.FieldCondition(key=_path(key, "s"), match=models.MatchSubstring(substring=value))
        return _either(element, substring)
    if op == FilterOperator.ANY:
        return _member(key, _as_list(value))
    if op == FilterOperator.ALL:
        values = _as_list(value)
        if not values:
            return _present(key)
        return models.Filter(must=[_member(key, [v]) for v in values])
    if op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        if not isinstance(value, str):
            raise FilterError(f"{op.value} on {key!r} needs a string value, got {value!r}")
        if op == FilterOperator.TEXT_MATCH:
            return models.FieldCondition(key=_path(key, "s"), match=models.MatchSubstring(substring=value))
        return models.FieldCondition(key=_path(key, "i"), match=models.MatchSubstring(substring=value.lower()))
    if op == FilterOperator.IS_EMPTY:
        empty = models.FieldCondition(key=_path(key, "z"), match=models.MatchValue(value=True))
        return _either(_none_of(_present(key)), empty)
    raise FilterError(
        f"Unsupported filter operator {op!r} on key {key!r}; supported: "
        + ", ".join(o.value for o in FilterOperator)
    )


def to_qdrant_filter(filters: MetadataFilters, facet: Facet) -> models.Filter:
    """The Qdrant filter allowing exactly what ``filters`` allows in the FAISS store.

    Args:
        filters: LlamaIndex metadata filters, nested to any depth.
        facet: The distinct encoded values of a ``c`` payload field (used by string ranges only).

    Raises:
        FilterError: For an unknown operator or condition, or a value of the wrong type.
    """
    condition = filters.condition or FilterCondition.AND
    if condition not in (FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT):
        raise FilterError(f"Unsupported filter condition {condition!r}")
    if not filters.filters:
        return models.Filter()  # allows everything, whatever the condition
    items = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            items.append(to_qdrant_filter(item, facet))
        elif isinstance(item, MetadataFilter):
            items.append(_leaf(item, facet))
        else:
            raise FilterError(f"Not a MetadataFilter or MetadataFilters: {item!r}")
    if condition == FilterCondition.AND:
        return models.Filter(must=items)
    if condition == FilterCondition.OR:
        return models.Filter(should=items)
    return models.Filter(must_not=items)
