"""Boxes: Qwen-style 0-1000 relative boxes to source pixels, and query crops like index crops."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

from index.errors import DamageRagError

QWEN_SCALE = 1000
BOX_HELP = (
    "give the region as 4 numbers [x1, y1, x2, y2] in 0-1000 coordinates of the photo "
    "(0 = left/top edge, 1000 = right/bottom edge, x1 < x2, y1 < y2), e.g. [250, 300, 600, 700]"
)


class BoxError(DamageRagError, ValueError):
    """A region argument that is not a valid 0-1000 box; the message says how to fix it."""


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))


def check_qwen_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    """Validate a Qwen-style box ``[x1, y1, x2, y2]`` in 0-1000 coordinates.

    Raises:
        BoxError: If it is not 4 finite numbers in 0-1000 with x1 < x2 and y1 < y2.
    """
    if isinstance(box, (str, bytes)) or not isinstance(box, Sequence) or len(box) != 4 or not all(
        _is_number(v) for v in box
    ):
        raise BoxError(f"The region {box!r} is not 4 numbers: {BOX_HELP}.")
    x1, y1, x2, y2 = (float(v) for v in box)
    shown = [_compact(v) for v in (x1, y1, x2, y2)]
    if min(x1, y1, x2, y2) < 0 or max(x1, y1, x2, y2) > QWEN_SCALE:
        hint = " (pixel coordinates are not accepted)" if max(x1, y1, x2, y2) > QWEN_SCALE else ""
        raise BoxError(f"The region {shown} has values outside 0-1000{hint}: {BOX_HELP}.")
    if max(x1, y1, x2, y2) <= 1 and not all(float(v).is_integer() for v in (x1, y1, x2, y2)):
        raise BoxError(f"The region {shown} looks like 0-1 fractions; multiply by 1000: {BOX_HELP}.")
    if x2 <= x1 or y2 <= y1:
        raise BoxError(
            f"The region {shown} is empty or reversed (x2 must exceed x1 and y2 exceed y1): {BOX_HELP}."
        )
    return x1, y1, x2, y2


def _compact(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 2)


def box_from_qwen(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """Convert a Qwen-style box (0-1000, relative to the image shown) to source pixels.

    The conversion is ``x / 1000 * width`` (and ``y / 1000 * height``) of the ORIGINAL photo:
    the downscaled photo the model saw has the same aspect ratio, so relative coordinates carry
    over. The result is rounded and at least one pixel wide and high.

    Args:
        box: ``[x1, y1, x2, y2]`` in 0-1000.
        width: Width of the original photo in pixels.
        height: Height of the original photo in pixels.

    Returns:
        ``(x0, y0, x1, y1)`` in source pixels, inside the photo.

    Raises:
        BoxError: If the box is invalid (see :func:`check_qwen_box`).
    """
    x1, y1, x2, y2 = check_qwen_box(box)
    px0 = min(width - 1, round(x1 / QWEN_SCALE * width))
    py0 = min(height - 1, round(y1 / QWEN_SCALE * height))
    px1 = min(width, max(px0 + 1, round(x2 / QWEN_SCALE * width)))
    py1 = min(height, max(py0 + 1, round(y2 / QWEN_SCALE * height)))
    return px0, py0, px1, py1


def query_crop_box(
    box: Sequence[float],
    width: int,
    height: int,
    *,
    context_margin: float,
    min_side: float,
    square: bool = True,
) -> tuple[int, int, int, int]:
    """The crop around a pixel box that a region node of the index would have.

    Mirrors the index's region planning: ``context_margin`` of the box's own size added on
    each side, at least ``min_side`` (fraction of the longer side of the photo), square when
    asked, then shifted (not shrunk) to lie inside the photo.

    Args:
        box: ``(x0, y0, x1, y1)`` in source pixels.
        width: Photo width in pixels.
        height: Photo height in pixels.
        context_margin: Fraction of the box's width/height added on each side.
        min_side: Least crop side as a fraction of the photo's longer side.
        square: Make the crop square (when the photo allows).

    Returns:
        ``(x0, y0, x1, y1)`` of the crop in source pixels.
    """
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    least = min_side * max(width, height)
    cw = max(w * (1 + 2 * context_margin), least)
    ch = max(h * (1 + 2 * context_margin), least)
    if square:
        cw = ch = max(cw, ch)
    cw, ch = min(cw, width), min(ch, height)
    left = min(max(0.0, cx - cw / 2), width - cw)
    top = min(max(0.0, cy - ch / 2), height - ch)
    return round(left), round(top), round(left + cw), round(top + ch)
