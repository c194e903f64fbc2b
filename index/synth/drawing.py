"""Drawing primitives shared by the mark renderers and the background scenes.

:class:`MarkSpec` is what every mark factory returns. The rest are small pure helpers: outline
geometry around the origin (:func:`polyline`, :func:`wobbly_outline`, :func:`walk`), crop-local
coverage masks drawn with Pillow (:func:`lines_mask`, :func:`fill_mask`, …), value noise and
luminance. Pure numpy + Pillow.
"""

from __future__ import annotations

import colorsys
import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DrawFn = Callable[[np.ndarray, float, float], tuple[np.ndarray, np.ndarray]]
Points = list[tuple[float, float]]


@dataclass(frozen=True)
class MarkSpec:
    """A sampled mark: ``radius`` is the half-size of the crop it needs around its centre,
    ``pad`` the polygon margin around its footprint (px), ``draw(crop, cx, cy)`` renders it
    as ``(delta, support)``: an additive float delta and a boolean footprint."""

    style: str
    radius: float
    pad: float
    draw: DrawFn


# --------------------------------------------------------------------------- sampling


def new_seed(rng: np.random.Generator) -> int:
    """A fresh seed for :func:`value_noise` drawn from ``rng``."""
    return int(rng.integers(2**31))


def polygon_pad(s: float, k: float = 4.0) -> float:
    """The polygon margin of a mark at image scale ``s``: ``k·√s`` px, at least ``k - 1``."""
    return max(k - 1.0, k * math.sqrt(s))


def label_tint(label: str) -> tuple[float, float, float]:
    """A stable, mid-saturation RGB colour derived from a label name."""
    h = zlib.crc32(label.encode("utf-8"))
    hue = (h % 360) / 360.0
    sat = 0.45 + ((h >> 9) % 30) / 100.0
    val = 0.45 + ((h >> 17) % 30) / 100.0
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (r * 255.0, g * 255.0, b * 255.0)


# --------------------------------------------------------------------------- geometry


def rotate(pts: np.ndarray, ang: float) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    return pts @ np.array([[c, s], [-s, c]])


def polyline(length: float, angle: float, bend: float, jitter: float, n: int,
             rng: np.random.Generator) -> np.ndarray:
    """A gently curved line of ``n`` points centred on the origin."""
    t = np.linspace(-0.5, 0.5, n)
    x = t * length
    y = bend * length * (0.25 - t**2) + jitter * length * rng.normal(size=n)
    return rotate(np.stack([x, y], axis=1), angle)


def wobbly_outline(r: float, rng: np.random.Generator, n: int, rough: float,
                   aspect: float = 1.0, angle: float = 0.0, jag: float = 0.0) -> np.ndarray:
    """An irregular closed outline: smooth radial wobble (``rough``) plus per-vertex ``jag``."""
    th = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    th = th + rng.uniform(-0.3, 0.3, n) * (2 * math.pi / n)
    wobble = np.zeros(n)
    for k in (2, 3, 5):
        wobble += rng.uniform(0.3, 1.0) / k * np.sin(k * th + rng.uniform(0, 2 * math.pi))
    rad = r * np.clip(1.0 + rough * wobble + jag * rng.uniform(-1, 1, n), 0.35, None)
    pts = np.stack([np.cos(th) * rad, np.sin(th) * rad * aspect], axis=1)
    return rotate(pts, angle)


def superellipse(a: float, b: float, p: float, n: int = 48) -> np.ndarray:
    th = np.linspace(0, 2 * math.pi, n, endpoint=False)
    c, s_ = np.cos(th), np.sin(th)
    return np.stack([a * np.sign(c) * np.abs(c) ** (2 / p), b * np.sign(s_) * np.abs(s_) ** (2 / p)],
                    axis=1)


def walk(length: float, angle: float, steps: int, wiggle: float,
         rng: np.random.Generator) -> np.ndarray:
    """A jagged random walk of ``steps`` segments starting at the origin."""
    step = length / steps
    pts = [(0.0, 0.0)]
    a = angle
    for _ in range(steps):
        a = angle + 0.5 * (a - angle) + rng.uniform(-wiggle, wiggle)
        x, y = pts[-1]
        pts.append((x + step * math.cos(a), y + step * math.sin(a)))
    return np.array(pts)


def extent(*arrays: np.ndarray) -> float:
    """The largest absolute coordinate of some point arrays (a mark's reach from its centre)."""
    return max(float(np.abs(a).max()) for a in arrays if a.size)


def at(pts: np.ndarray, cx: float, cy: float) -> Points:
    """``pts`` (relative to a centre) moved to (``cx``, ``cy``), as Pillow coordinates."""
    return [(float(x + cx), float(y + cy)) for x, y in pts]


def closed(pts: Points) -> Points:
    return [*pts, pts[0]]


def grid(h: int, w: int, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel offsets ``(dx, dy)`` from (``cx``, ``cy``) over an ``h``×``w`` crop."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return xx - cx, yy - cy


# --------------------------------------------------------------------------- masks


def mask(h: int, w: int, paint: Callable[[ImageDraw.ImageDraw], None],
         blur: float = 0.0) -> np.ndarray:
    """Render ``paint`` into an 8-bit mask; returns float32 in [0, 1]."""
    im = Image.new("L", (w, h), 0)
    paint(ImageDraw.Draw(im))
    if blur > 0:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(im, dtype=np.float32) / 255.0


def lines_mask(h: int, w: int, lines: Iterable[tuple[Points, int]],
               blur: float = 0.0) -> np.ndarray:
    """Coverage of round-jointed polylines, each ``(points, width)``."""

    def paint(d: ImageDraw.ImageDraw) -> None:
        for pts, width in lines:
            d.line(pts, fill=255, width=width, joint="curve")

    return mask(h, w, paint, blur)


def fill_mask(h: int, w: int, polys: Iterable[Points], blur: float = 0.0) -> np.ndarray:
    """Coverage of filled polygons."""

    def paint(d: ImageDraw.ImageDraw) -> None:
        for p in polys:
            d.polygon(p, fill=255)

    return mask(h, w, paint, blur)


def outline_mask(h: int, w: int, polys: Iterable[Points], width: int,
                 blur: float = 0.0) -> np.ndarray:
    """Coverage of the closed outlines of polygons, ``width`` px wide."""

    def paint(d: ImageDraw.ImageDraw) -> None:
        for p in polys:
            d.line(closed(p), fill=255, width=width)

    return mask(h, w, paint, blur)


def bridges_mask(h: int, w: int, cx: float, cy: float, offsets: Iterable[Sequence[float]],
                 width: int) -> np.ndarray:
    """Straight bars from (``cx``, ``cy``) to each offset: they join the parts of a mark made
    of several pieces into one footprint, so it gets one polygon."""

    def paint(d: ImageDraw.ImageDraw) -> None:
        for x, y in offsets:
            d.line([(cx, cy), (cx + x, cy + y)], fill=255, width=width)

    return mask(h, w, paint)


def discs_mask(h: int, w: int, centres: Iterable[Sequence[float]], radii: Iterable[float],
               blur: float = 0.0) -> np.ndarray:
    """Coverage of filled circles, one radius per centre."""

    def paint(d: ImageDraw.ImageDraw) -> None:
        for (x, y), r in zip(centres, radii, strict=True):
            d.ellipse([x - r, y - r, x + r, y + r], fill=255)

    return mask(h, w, paint, blur)


def value_noise(h: int, w: int, seed: int, cell: float) -> np.ndarray:
    """Smooth value noise in about [-1, 1] with features of about ``cell`` px."""
    rng = np.random.default_rng(seed)
    gh, gw = max(2, int(h / max(cell, 1.0)) + 2), max(2, int(w / max(cell, 1.0)) + 2)
    small = Image.fromarray(rng.uniform(-1, 1, (gh, gw)).astype(np.float32), mode="F")
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)


# --------------------------------------------------------------------------- colour


def luminance(a: np.ndarray) -> np.ndarray:
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def mean_luminance(crop: np.ndarray, where: np.ndarray) -> float:
    """Mean luminance of ``crop`` where ``where`` holds (all of it when nothing does)."""
    sel = crop[where]
    return float(luminance(sel).mean()) if sel.size else float(luminance(crop).mean())
