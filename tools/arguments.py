"""Coercing and validating the arguments a model sends: numbers as strings, boxes as text, synonyms.

Every failure raises :class:`ArgumentError` (or :class:`tools.boxes.BoxError`) whose message
is one sentence the model can act on: what was wrong and a valid example.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from index.errors import DamageRagError
from index.taxonomy import Label, LabelTaxonomy
from tools.boxes import BOX_HELP, BoxError, check_qwen_box

K_MIN, K_MAX = 1, 10
_ABSENT_WORDS = {"", "null", "none", "nil", "any", "all", "n/a"}
_NUMBERS_ONLY = re.compile(r"[\s\[\](){},;:\d.+\-eE]*")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_INT_TEXT = re.compile(r"[+-]?\d+(?:\.0*)?")
_BOX_KEYS = ("bbox_2d", "bbox", "box", "region")


class ArgumentError(DamageRagError, ValueError):
    """A tool argument the model got wrong; the message says how to fix it."""


def _is_absent(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str) and value.strip().casefold() in _ABSENT_WORDS:
        return True
    return isinstance(value, (list, tuple, dict)) and len(value) == 0


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """The model's arguments as a dict: accepts a dict, a JSON object string, or nothing.

    Raises:
        ArgumentError: If it is not a JSON object.
    """
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, (str, bytes)):
        text = arguments.decode() if isinstance(arguments, bytes) else arguments
        if not text.strip():
            return {}
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            raise ArgumentError(
                f"The arguments {text[:120]!r} are not valid JSON; send a JSON object such as "
                '{"region": [250, 300, 600, 700], "k": 3}.'
            ) from None
        if isinstance(parsed, dict):
            return parsed
    raise ArgumentError(
        f"The arguments must be a JSON object of named arguments, got {str(arguments)[:120]!r}; "
        'e.g. {"label": "scratch", "k": 3}.'
    )


def coerce_int(value: Any, name: str, lo: int = K_MIN, hi: int = K_MAX) -> tuple[int, bool]:
    """A whole number from an int, an integral float or a numeric string, clamped to [lo, hi].

    Returns:
        The number and whether it was clamped.

    Raises:
        ArgumentError: If it is not a whole number.
    """
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        number = int(float(value.strip()))
    if number is None:
        raise ArgumentError(f"{name} must be a whole number from {lo} to {hi}, e.g. {name}=3; got {value!r}.")
    clamped = min(hi, max(lo, number))
    return clamped, clamped != number


def coerce_box(value: Any, name: str = "region", required: bool = False) -> list[float] | None:
    """A Qwen-style 0-1000 box from a list, a JSON/text list ("[1,2,3,4]", "1 2 3 4") or a
    grounding object ({"bbox_2d": [...]}); None when absent and not required.

    Raises:
        BoxError: If it is missing (when required) or not a valid 0-1000 box.
    """
    if _is_absent(value):
        if required:
            raise BoxError(f"This tool needs {name}: {BOX_HELP}.")
        return None
    box = value
    if isinstance(box, str):
        text = box.strip()
        try:
            box = json.loads(text)
        except json.JSONDecodeError:
            if _NUMBERS_ONLY.fullmatch(text):
                box = [float(n) for n in _NUMBER.findall(text)]
            else:
                raise BoxError(f"The {name} {value!r} is not 4 numbers: {BOX_HELP}.") from None
    if isinstance(box, Mapping):
        key = next((k for k in _BOX_KEYS if k in box), None)
        if key is None:
            raise BoxError(f"The {name} {value!r} is not 4 numbers: {BOX_HELP}.")
        box = box[key]
    if isinstance(box, (list, tuple)) and len(box) == 1 and isinstance(box[0], (list, tuple, Mapping, str)):
        return coerce_box(box[0], name, required)
    if isinstance(box, (list, tuple)):
        items: list[Any] = []
        for item in box:
            if isinstance(item, str) and _NUMBER.fullmatch(item.strip()):
                items.append(float(item))
            else:
                items.append(item)
        box = items
    return list(check_qwen_box(box))


def valid_labels_text(taxonomy: LabelTaxonomy) -> str:
    """The valid labels as 'key (id)' list, for error messages."""
    return ", ".join(f"{label.key} ({label.id})" for label in taxonomy.labels)


def _unknown_label(value: Any, taxonomy: LabelTaxonomy, name: str) -> ArgumentError:
    first = taxonomy.labels[0].key
    return ArgumentError(
        f"Unknown {name} {value!r}; valid labels are: {valid_labels_text(taxonomy)} "
        f"(English or Spanish names and synonyms work too), e.g. {name}=\"{first}\"."
    )


def coerce_label(value: Any, taxonomy: LabelTaxonomy, name: str = "label", required: bool = False) -> Label | None:
    """The label named by ``value`` (id, key, name or synonym, any language); None when absent.

    Raises:
        ArgumentError: If missing (when required) or naming no label; lists the valid ones.
    """
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if _is_absent(value):
        if required:
            raise ArgumentError(
                f"This tool needs {name}: one of {valid_labels_text(taxonomy)}, e.g. "
                f"{name}=\"{taxonomy.labels[0].key}\"."
            )
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _unknown_label(value, taxonomy, name)
    label = taxonomy.find(value)
    if label is None:
        raise _unknown_label(value, taxonomy, name)
    return label


def coerce_labels(value: Any, taxonomy: LabelTaxonomy, name: str = "labels") -> list[Label] | None:
    """Several labels from a list, a JSON list string or a comma-separated string; None when absent.

    Raises:
        ArgumentError: Naming the strings that match no label, with the valid ones.
    """
    if _is_absent(value):
        return None
    items: list[Any]
    if isinstance(value, str):
        text = value.strip()
        if taxonomy.find(text) is not None:
            items = [text]
        else:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                items = parsed
            else:
                items = [p.strip() for p in re.split(r"[,;]|\s+and\s+|\s+y\s+", text) if p.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    else:
        raise _unknown_label(value, taxonomy, name)
    found: list[Label] = []
    unknown: list[Any] = []
    for item in items:
        label = taxonomy.find(item) if isinstance(item, (str, int)) and not isinstance(item, bool) else None
        if label is None:
            unknown.append(item)
        elif label not in found:
            found.append(label)
    if unknown:
        raise ArgumentError(
            f"Unknown label(s) {', '.join(repr(u) for u in unknown)}; valid labels are: "
            f"{valid_labels_text(taxonomy)}, e.g. {name}=[\"{taxonomy.labels[0].key}\"], or omit {name} for all."
        )
    return found or None
