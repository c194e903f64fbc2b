"""Mask-to-polygon tracing and polygon helpers for :mod:`index.synth.marks`.

A mark's footprint (a boolean mask) becomes its annotation polygon: max-pool large footprints,
dilate by the margin, trace the outer boundary (Moore neighbourhood), simplify
(Douglas–Peucker). Pure numpy + Pillow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

_OFFS = ((-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1))  # clockwise from W
_OFF_INDEX = {o: i for i, o in enumerate(_OFFS)}


def _dilate(m: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by ``r`` steps, alternating 4- and 8-neighbourhoods (octagonal)."""
    out = m
    for i in range(r):
        v = out.copy()
        v[1:] |= out[:-1]
        v[:-1] |= out[1:]
        src = v if i % 2 else out  # odd steps: square (8-neighbourhood), even steps: cross
        h = src.copy()
        h[:, 1:] |= src[:, :-1]
        h[:, :-1] |= src[:, 1:]
        out = v | h
    return out


def _moore_trace(m: np.ndarray) -> np.ndarray:
    """Outer boundary (clockwise, pixel centres) of the component of the first set pixel in
    raster order. ``m`` must have a background border."""
    ys, xs = np.nonzero(m)
    if len(ys) == 0:
        return np.zeros((0, 2))
    w = m.shape[1]
    flat = m.ravel().tobytes()
    x, y, back = int(xs[0]), int(ys[0]), 0
    pts = [(x, y)]
    seen: dict[tuple[int, int, int], int] = {}
    for _ in range(4 * m.size + 8):
        for k in range(1, 9):
            dx, dy = _OFFS[(back + k) % 8]
            nx, ny = x + dx, y + dy
            if flat[ny * w + nx]:
                bx, by = _OFFS[(back + k - 1) % 8]
                back = _OFF_INDEX[(x + bx - nx, y + by - ny)]
                x, y = nx, ny
                break
        else:
            return np.array(pts, dtype=float)  # isolated pixel
        state = (x, y, back)
        if state in seen:
            return np.array(pts[seen[state]:], dtype=float)
        seen[state] = len(pts)
        pts.append((x, y))
    return np.array(pts, dtype=float)


def _dp_open(pts: np.ndarray, eps: float) -> np.ndarray:
    keep = np.zeros(len(pts), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, b = pts[i], pts[j]
        seg = b - a
        n = math.hypot(seg[0], seg[1])
        rel = pts[i + 1:j] - a
        if n < 1e-9:
            d = np.hypot(rel[:, 0], rel[:, 1])
        else:
            d = np.abs(rel[:, 0] * seg[1] - rel[:, 1] * seg[0]) / n
        k = int(np.argmax(d))
        if d[k] > eps:
            keep[i + 1 + k] = True
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    return pts[keep]


def simplify_closed(pts: np.ndarray, eps: float) -> np.ndarray:
    """Douglas–Peucker simplification of a closed polygon (no repeated end point)."""
    if len(pts) <= 4:
        return pts
    k = int(np.argmax(((pts - pts[0]) ** 2).sum(axis=1)))
    a = _dp_open(pts[: k + 1], eps)
    b = _dp_open(np.vstack([pts[k:], pts[:1]]), eps)
    return np.vstack([a[:-1], b[:-1]])


def _covers(poly: np.ndarray, core: np.ndarray) -> float:
    """Fraction of the ``core`` pixels a polygon covers."""
    inside = polygon_mask(poly.tolist(), core.shape[1], core.shape[0])
    return float((inside & core).sum()) / max(1, int(core.sum()))


def trace_polygon(support: np.ndarray, pad: float, *, max_work: int = 256,
                  max_points: int = 32) -> np.ndarray | None:
    """Polygon (float x, y in ``support`` pixel coordinates) around a footprint, ``pad`` px out.

    Large footprints are traced on a max-pooled copy at most ``max_work`` px wide, so the cost
    stays small at 12 MP. The outline is simplified towards ``max_points`` vertices, but never
    so far that it stops covering the whole footprint (a branching crack keeps more points).
    """
    h, w = support.shape
    g = max(1, math.ceil(max(h, w) / max_work))
    hp, wp = -(-h // g) * g, -(-w // g) * g
    m = np.zeros((hp, wp), dtype=bool)
    m[:h, :w] = support
    r = 1 + math.ceil(pad / g)
    core = np.pad(m.reshape(hp // g, g, wp // g, g).any(axis=(1, 3)), r + 1)
    contour = _moore_trace(_dilate(core, r))
    if len(contour) < 3:
        return None
    eps = 1.0
    poly = simplify_closed(contour, eps)
    while len(poly) > max_points:
        coarser = simplify_closed(contour, eps * 1.5)
        if _covers(coarser, core) < 1.0:
            break
        eps *= 1.5
        poly = coarser
    return (poly - (r + 1)) * g + (g - 1) / 2.0


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """Absolute shoelace area of a polygon."""
    p = np.asarray(points, dtype=float)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def polygon_mask(points: Sequence[Sequence[float]], width: int, height: int,
                 x0: int = 0, y0: int = 0) -> np.ndarray:
    """Boolean mask (``height``×``width``, origin at ``x0, y0``) of the pixels a polygon covers,
    edges included: exactly the pixels :func:`apply_mark` may change."""
    im = Image.new("L", (width, height), 0)
    ImageDraw.Draw(im).polygon([(x - x0, y - y0) for x, y in points], fill=1, outline=1)
    return np.asarray(im, dtype=bool)


def clean_polygon(pts: np.ndarray) -> list[list[int]] | None:
    """Integer polygon without repeated consecutive points, or ``None`` if degenerate."""
    out: list[list[int]] = []
    for x, y in pts.tolist():
        if not out or out[-1] != [x, y]:
            out.append([x, y])
    while len(out) > 1 and out[0] == out[-1]:
        out.pop()
    if len(out) < 3 or polygon_area(out) < 1.0:
        return None
    return out
