"""Sampling a damage mark and drawing it with its annotation polygon.

A mark is built in two steps. :func:`make_mark` samples its geometry (relative to its centre)
and returns a :class:`~index.synth.drawing.MarkSpec` whose ``draw`` callback renders it into a
local crop as an additive ``delta`` plus a boolean ``support`` (the mark's footprint).
:func:`apply_mark` then traces the outline of the support into a polygon (dilated by a margin,
simplified, see :mod:`index.synth.polygons`), rasterises that polygon and adds the delta only
inside it: every pixel a mark changes lies inside its annotation polygon by construction, and
the polygon follows the mark's outline (a thin polygon around a thin line, a tree around a
branching crack).

The vehicle styles live in :mod:`index.synth.vehicle_marks`; this module holds the
domain-neutral :data:`GENERIC_STYLES` used for any other taxonomy.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image

from index.synth.drawing import (
    MarkSpec,
    at,
    bridges_mask,
    discs_mask,
    extent,
    fill_mask,
    grid,
    label_tint,
    lines_mask,
    new_seed,
    outline_mask,
    polygon_pad,
    polyline,
    value_noise,
    wobbly_outline,
)
from index.synth.polygons import clean_polygon, polygon_mask, trace_polygon
from index.synth.vehicle_marks import VEHICLE_MARKS

#: Domain-neutral styles (stains, spot clusters, streaks, ring lesions) for other taxonomies.
GENERIC_STYLES: tuple[str, ...] = ("blob", "spots", "streak", "ring")

#: A generic-mark factory: ``(rng, scale, colour, noise seed, polygon pad)``.
GenericMark = Callable[[np.random.Generator, float, np.ndarray, int, float], MarkSpec]


def _spots(rng: np.random.Generator, s: float, col: np.ndarray, nseed: int,
           pad: float) -> MarkSpec:
    r = max(12.0, rng.uniform(60, 200) * s)
    k = int(rng.integers(4, 11))
    cs = rng.uniform(-1, 1, (k, 2)) * r * 0.8
    rs = np.maximum(2.0, rng.uniform(6, 30, k) * s)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        m = discs_mask(h, w, [(cx + x, cy + y) for x, y in cs], rs, blur=0.8)
        out = crop + m[..., None] * 0.85 * (col * 0.55 - crop)
        bridges = bridges_mask(h, w, cx, cy, cs, max(2, round(r * 0.1)))
        return out - crop, (m > 0.03) | (bridges > 0)

    return MarkSpec("spots", r * 0.8 * math.sqrt(2) + float(rs.max()) + pad + 3, pad, draw)


def _streak(rng: np.random.Generator, s: float, col: np.ndarray, nseed: int,
            pad: float) -> MarkSpec:
    length = max(20.0, rng.uniform(150, 600) * s)
    width = max(2, round(rng.uniform(6, 20) * math.sqrt(s)))
    pts = polyline(length, rng.uniform(0, math.pi), rng.uniform(-0.2, 0.2), 0.01, 8, rng)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        m = lines_mask(h, w, [(at(pts, cx, cy), width)], blur=max(0.6, width * 0.3))
        tex = value_noise(h, w, nseed, max(4.0, width * 2.0))
        out = crop + (m * (0.6 + 0.2 * tex))[..., None] * (col - crop)
        return out - crop, m > 0.05

    return MarkSpec("streak", extent(pts) + width + pad + 3, pad, draw)


def _ring(rng: np.random.Generator, s: float, col: np.ndarray, nseed: int,
          pad: float) -> MarkSpec:
    r = max(8.0, rng.uniform(30, 160) * s)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        dx, dy = grid(h, w, cx, cy)
        d = np.sqrt(dx * dx + dy * dy) / r
        ring = np.exp(-((d - 0.8) ** 2) / 0.012)
        centre = np.clip(1.0 - d / 0.7, 0, 1)
        halo = np.clip(1.0 - np.abs(d - 1.05) / 0.15, 0, 1) * 0.5
        out = crop + halo[..., None] * ((crop + (230.0 - crop) * 0.4) - crop)
        out = out + centre[..., None] * 0.7 * ((col + (225.0 - col) * 0.5) - out)
        out = out + ring[..., None] * 0.9 * (col * 0.45 - out)
        support = d < 1.2
        return (out - crop) * support[..., None], support

    return MarkSpec("ring", r * 1.2 + pad + 3, pad, draw)


def _blob(rng: np.random.Generator, s: float, col: np.ndarray, nseed: int,
          pad: float) -> MarkSpec:
    r = max(10.0, rng.uniform(50, 280) * s)
    pts = wobbly_outline(r, rng, 40, 0.25, rng.uniform(0.55, 1.0), rng.uniform(0, math.pi),
                         jag=0.04)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        p = at(pts, cx, cy)
        m = fill_mask(h, w, [p], blur=max(0.6, r * 0.05))
        edge = outline_mask(h, w, [p], max(1, round(r * 0.06)), blur=0.8)
        tex = value_noise(h, w, nseed, max(3.0, r / 6))
        out = crop + m[..., None] * 0.8 * (col * (1.0 + 0.12 * tex)[..., None] - crop)
        out = out + edge[..., None] * 0.5 * (col * 0.5 - out)
        return out - crop, (m > 0.05) | (edge > 0.05)

    return MarkSpec("blob", extent(pts) + pad + 3 + r * 0.1, pad, draw)


#: Factory per generic style; any unknown style is drawn as a "blob".
GENERIC_MARKS: dict[str, GenericMark] = {
    "blob": _blob, "spots": _spots, "streak": _streak, "ring": _ring,
}


def make_mark(style: str, rng: np.random.Generator, scale: float, *, size: float = 1.0,
              angle: float | None = None, label: str = "") -> MarkSpec:
    """Sample a mark of ``style`` (a value of :data:`~index.synth.vehicle_marks.LABEL_STYLES`
    or :data:`GENERIC_STYLES`; anything else is a generic blob).

    ``scale`` is the image scale relative to a 4000×3000 photo (sizes are in pixels of that
    photo times ``scale``, with minimums so marks stay visible at 640×480); ``size`` shrinks
    scratches (used for clusters of small scratches); ``angle`` orients a misalignment along a
    panel gap; ``label`` seeds the colour of generic styles.
    """
    vehicle = VEHICLE_MARKS.get(style)
    if vehicle is not None:
        return vehicle(rng, scale, size, angle)
    col = np.array(label_tint(label or style), dtype=np.float32)
    nseed = new_seed(rng)
    return GENERIC_MARKS.get(style, _blob)(rng, scale, col, nseed, polygon_pad(scale))


def apply_mark(img: np.ndarray | Image.Image, spec: MarkSpec, cx: float, cy: float
               ) -> list[list[int]] | None:
    """Draw ``spec`` centred at (``cx``, ``cy``) into ``img`` in place: an H×W×3 uint8 array
    or an RGB image (only the mark's crop is read and written back).

    Returns the mark's polygon as integer ``[[x, y], ...]`` inside the image, or ``None`` when
    the mark fell entirely outside it. Pixels change only inside the returned polygon.
    """
    is_pil = isinstance(img, Image.Image)
    wid, hgt = img.size if is_pil else (img.shape[1], img.shape[0])
    x0, y0 = max(0, math.floor(cx - spec.radius)), max(0, math.floor(cy - spec.radius))
    x1, y1 = min(wid, math.ceil(cx + spec.radius) + 1), min(hgt, math.ceil(cy + spec.radius) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    if is_pil:
        crop = np.asarray(img.crop((x0, y0, x1, y1)), dtype=np.float32)
    else:
        crop = img[y0:y1, x0:x1].astype(np.float32)
    delta, support = spec.draw(crop, cx - x0, cy - y0)
    if not support.any():
        return None
    poly = trace_polygon(support, spec.pad)
    points = None
    if poly is not None:
        p = np.rint(poly + np.array([x0, y0])).astype(int)
        p[:, 0] = np.clip(p[:, 0], 0, wid - 1)
        p[:, 1] = np.clip(p[:, 1], 0, hgt - 1)
        points = clean_polygon(p)
    if points is None:  # degenerate outline: fall back to the footprint's bounding box
        ys, xs = np.nonzero(support)
        bx0, by0 = max(0, x0 + int(xs.min()) - 1), max(0, y0 + int(ys.min()) - 1)
        bx1, by1 = min(wid - 1, x0 + int(xs.max()) + 1), min(hgt - 1, y0 + int(ys.max()) + 1)
        points = [[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]]
    inside = polygon_mask(points, x1 - x0, y1 - y0, x0, y0)
    out = np.clip(np.rint(crop + delta * inside[..., None]), 0, 255).astype(np.uint8)
    if is_pil:
        img.paste(Image.fromarray(out), (x0, y0))
    else:
        img[y0:y1, x0:x1] = out
    return points
