"""Damage-mark renderers for :mod:`index.synth.dataset` (polygon tracing lives in :mod:`index.synth.polygons`).

A mark is built in two steps. :func:`make_mark` samples its geometry (relative to its centre)
and returns a :class:`MarkSpec` whose ``draw`` callback renders it into a local crop as an
additive ``delta`` plus a boolean ``support`` (the mark's footprint). :func:`apply_mark` then
traces the outline of the support into a polygon (dilated by a margin, simplified), rasterises
that polygon and adds the delta only inside it: every pixel a mark changes lies inside its
annotation polygon by construction, and the polygon follows the mark's outline (a thin polygon
around a thin line, a tree around a branching crack).
"""

from __future__ import annotations

import colorsys
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from index.synth.polygons import clean_polygon, polygon_mask, trace_polygon

DrawFn = Callable[[np.ndarray, float, float], tuple[np.ndarray, np.ndarray]]

#: Mark style per vehicle-damage label (the user's taxonomy); other labels use a generic style.
LABEL_STYLES: dict[str, str] = {
    "1": "scratch",
    "2": "dent",
    "3": "peeling",
    "4": "large_scratch",
    "5": "crack",
    "6": "missing_piece",
    "7": "missing_accessory",
    "8": "misaligned",
}
#: Domain-neutral styles (stains, spot clusters, streaks, ring lesions) for other taxonomies.
GENERIC_STYLES: tuple[str, ...] = ("blob", "spots", "streak", "ring")


@dataclass(frozen=True)
class MarkSpec:
    """A sampled mark: ``radius`` is the half-size of the crop it needs around its centre,
    ``pad`` the polygon margin around its footprint (px), ``draw(crop, cx, cy)`` renders it."""

    style: str
    radius: float
    pad: float
    draw: DrawFn


# --------------------------------------------------------------------------- small helpers


def label_tint(label: str) -> tuple[float, float, float]:
    """A stable, mid-saturation RGB colour derived from a label name."""
    h = zlib.crc32(label.encode("utf-8"))
    hue = (h % 360) / 360.0
    sat = 0.45 + ((h >> 9) % 30) / 100.0
    val = 0.45 + ((h >> 17) % 30) / 100.0
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (r * 255.0, g * 255.0, b * 255.0)


def _rot(pts: np.ndarray, ang: float) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    return pts @ np.array([[c, s], [-s, c]])


def _polyline(length: float, angle: float, bend: float, jitter: float, n: int,
              rng: np.random.Generator) -> np.ndarray:
    """A gently curved line of ``n`` points centred on the origin."""
    t = np.linspace(-0.5, 0.5, n)
    x = t * length
    y = bend * length * (0.25 - t**2) + jitter * length * rng.normal(size=n)
    return _rot(np.stack([x, y], axis=1), angle)


def _blob(r: float, rng: np.random.Generator, n: int, rough: float, aspect: float = 1.0,
          angle: float = 0.0, jag: float = 0.0) -> np.ndarray:
    """An irregular closed outline: smooth radial wobble (``rough``) plus per-vertex ``jag``."""
    th = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    th = th + rng.uniform(-0.3, 0.3, n) * (2 * math.pi / n)
    wobble = np.zeros(n)
    for k in (2, 3, 5):
        wobble += rng.uniform(0.3, 1.0) / k * np.sin(k * th + rng.uniform(0, 2 * math.pi))
    rad = r * np.clip(1.0 + rough * wobble + jag * rng.uniform(-1, 1, n), 0.35, None)
    pts = np.stack([np.cos(th) * rad, np.sin(th) * rad * aspect], axis=1)
    return _rot(pts, angle)


def _walk(length: float, angle: float, steps: int, wiggle: float,
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


def _xy(pts: np.ndarray, cx: float, cy: float) -> list[tuple[float, float]]:
    return [(float(x + cx), float(y + cy)) for x, y in pts]


def _closed(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [*pts, pts[0]]


def _mask(h: int, w: int, paint: Callable[[ImageDraw.ImageDraw], None],
          blur: float = 0.0) -> np.ndarray:
    """Render ``paint`` into an 8-bit mask; returns float32 in [0, 1]."""
    im = Image.new("L", (w, h), 0)
    paint(ImageDraw.Draw(im))
    if blur > 0:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(im, dtype=np.float32) / 255.0


def value_noise(h: int, w: int, seed: int, cell: float) -> np.ndarray:
    """Smooth value noise in about [-1, 1] with features of about ``cell`` px."""
    rng = np.random.default_rng(seed)
    gh, gw = max(2, int(h / max(cell, 1.0)) + 2), max(2, int(w / max(cell, 1.0)) + 2)
    small = Image.fromarray(rng.uniform(-1, 1, (gh, gw)).astype(np.float32), mode="F")
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)


def _lum(a: np.ndarray) -> np.ndarray:
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def _mean_lum(crop: np.ndarray, where: np.ndarray) -> float:
    sel = crop[where]
    return float(_lum(sel).mean()) if sel.size else float(_lum(crop).mean())


def _grid(h: int, w: int, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return xx - cx, yy - cy


def _extent(*arrays: np.ndarray) -> float:
    return max(float(np.abs(a).max()) for a in arrays if a.size)


# --------------------------------------------------------------------------- vehicle marks


def _scratch(rng: np.random.Generator, s: float, size: float) -> MarkSpec:
    length = max(10.0, rng.uniform(20, 150) * s * size)
    width = max(1, round(rng.uniform(1.0, 2.6) * math.sqrt(s)))
    pts = _polyline(length, rng.uniform(0, math.pi), rng.uniform(-0.2, 0.2), 0.015,
                    max(3, int(length / 15) + 2), rng)
    strength = rng.uniform(0.7, 0.95)
    nseed = int(rng.integers(2**31))
    pad = max(2.0, 3.0 * math.sqrt(s)) + width / 2

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        p = _xy(pts, cx, cy)
        a = _mask(h, w, lambda d: d.line(p, fill=255, width=width, joint="curve"), blur=0.6)
        support = a > 0.03
        a = a * (0.6 + 0.4 * np.clip(value_noise(h, w, nseed, max(6.0, length / 8)) + 0.6, 0, 1))
        light_paint = _mean_lum(crop, support) > 160  # scratches show dark on white paint
        target = crop * 0.5 if light_paint else crop + (240.0 - crop) * 0.75
        return a[..., None] * strength * (target - crop), support

    return MarkSpec("scratch", _extent(pts) + width + pad + 2, pad, draw)


def _large_scratch(rng: np.random.Generator, s: float) -> MarkSpec:
    length = max(40.0, rng.uniform(300, 1200) * s)
    core = max(2, round(rng.uniform(4, 10) * math.sqrt(s)))
    halo = core + 2 * max(1, round(rng.uniform(1.5, 3.5) * math.sqrt(s)))
    pts = _polyline(length, rng.uniform(-0.6, 0.6) + rng.choice([0.0, math.pi / 2]),
                    rng.uniform(-0.12, 0.12), 0.004, 12, rng)
    core_rgb = np.array([(95, 96, 102), (178, 172, 160), (62, 62, 66)][rng.integers(3)],
                        dtype=np.float32)
    nseed = int(rng.integers(2**31))
    pad = max(3.0, 4.0 * math.sqrt(s))

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        p = _xy(pts, cx, cy)
        ha = _mask(h, w, lambda d: d.line(p, fill=255, width=halo, joint="curve"), blur=1.0)
        ca = _mask(h, w, lambda d: d.line(p, fill=255, width=core, joint="curve"), blur=0.6)
        support = ha > 0.03
        tex = value_noise(h, w, nseed, max(4.0, core * 3.0))
        dark_paint = _mean_lum(crop, support) < 170
        halo_col = crop + (245.0 - crop) * 0.6 if dark_paint else crop * 0.7
        out = crop + ha[..., None] * 0.8 * (halo_col - crop)
        core_col = core_rgb * (0.85 + 0.2 * tex)[..., None]
        out = out + ca[..., None] * (core_col - out)
        return out - crop, support

    return MarkSpec("large_scratch", _extent(pts) + halo + pad + 2, pad, draw)


def _dent(rng: np.random.Generator, s: float) -> MarkSpec:
    a = max(10.0, rng.uniform(80, 400) * s)
    b = a * rng.uniform(0.55, 1.0)
    phi = rng.uniform(0, math.pi)
    amp = rng.uniform(35, 60)
    hl = rng.uniform(30, 60)
    pad = max(3.0, 4.0 * math.sqrt(s))

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        dx, dy = _grid(h, w, cx, cy)
        u = (dx * math.cos(phi) + dy * math.sin(phi)) / a
        v = (-dx * math.sin(phi) + dy * math.cos(phi)) / b
        r2 = u * u + v * v
        f = np.clip(1.0 - r2, 0.0, 1.0)
        shade = amp * 2.0 * (dy / a) * f  # concave, lit from above: top wall dark, bottom light
        spec = hl * np.exp(-((u * 0.8) ** 2 + (v - 0.45) ** 2) / 0.05) * (r2 < 1)
        rim = -0.35 * amp * np.exp(-((np.sqrt(r2) - 0.95) ** 2) / 0.004)
        support = r2 < 1.06
        total = (shade + spec + rim) * support
        return np.repeat(total[..., None], 3, axis=2), support

    return MarkSpec("dent", a + pad + 3, pad, draw)


def _peeling(rng: np.random.Generator, s: float) -> MarkSpec:
    r = max(8.0, rng.uniform(50, 300) * s)
    main = _blob(r, rng, 48, 0.3, rng.uniform(0.5, 1.0), rng.uniform(0, math.pi), jag=0.12)
    sats: list[np.ndarray] = []
    centres: list[tuple[float, float]] = []
    for _ in range(int(rng.integers(0, 5))):
        th, dist = rng.uniform(0, 2 * math.pi), r * rng.uniform(0.9, 1.3)
        c = (dist * math.cos(th), dist * math.sin(th))
        centres.append(c)
        sats.append(_blob(r * rng.uniform(0.1, 0.3), rng, 16, 0.3, jag=0.2) + np.array(c))
    colour = np.array([(206, 205, 198), (206, 205, 198), (136, 136, 131), (142, 82, 46)]
                      [rng.integers(4)], dtype=np.float32)
    rim_w = max(1, round(2 * math.sqrt(s)))
    bridge_w = max(3, round(r * 0.15))
    nseed = int(rng.integers(2**31))
    pad = max(3.0, 4.0 * math.sqrt(s))

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        polys = [_xy(p, cx, cy) for p in [main, *sats]]

        def fill(d: ImageDraw.ImageDraw) -> None:
            for p in polys:
                d.polygon(p, fill=255)

        def outline(d: ImageDraw.ImageDraw) -> None:
            for p in polys:
                d.line(_closed(p), fill=255, width=rim_w)

        def bridges(d: ImageDraw.ImageDraw) -> None:
            for x, y in centres:
                d.line([(cx, cy), (cx + x, cy + y)], fill=255, width=bridge_w)

        m = _mask(h, w, fill, blur=0.5)
        rim = _mask(h, w, outline, blur=0.5)
        tex = value_noise(h, w, nseed, max(2.0, r / 20))
        col = colour * (1.0 + 0.05 * tex)[..., None]
        out = crop + m[..., None] * (col - crop)
        out = out + rim[..., None] * 0.8 * ((out + (250.0 - out) * 0.5) - out)
        support = (m > 0.03) | (rim > 0.03) | (_mask(h, w, bridges) > 0)
        return out - crop, support

    ext = _extent(main, *sats) if sats else _extent(main)
    return MarkSpec("peeling", ext + rim_w + pad + 3, pad, draw)


def _crack(rng: np.random.Generator, s: float) -> MarkSpec:
    length = max(30.0, rng.uniform(150, 700) * s)
    angle = rng.uniform(0, math.pi)
    main = _walk(length, angle, int(rng.integers(12, 21)), 0.55, rng)
    main = main - (main[0] + main[-1]) / 2
    width = max(1, round(rng.uniform(1.5, 3.0) * math.sqrt(s)))
    lines: list[tuple[np.ndarray, int]] = [(main, width)]
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(2, len(main) - 2))
        seg = main[i + 1] - main[i]
        local = math.atan2(seg[1], seg[0])
        br = _walk(length * rng.uniform(0.15, 0.35), local + rng.choice([-1, 1]) *
                   rng.uniform(0.5, 1.1), int(rng.integers(4, 8)), 0.5, rng)
        lines.append((br + main[i], max(1, width - 1)))
    pad = max(2.5, 3.5 * math.sqrt(s))

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]

        def paint(d: ImageDraw.ImageDraw) -> None:
            for pts, wd in lines:
                d.line(_xy(pts, cx, cy), fill=255, width=wd, joint="curve")

        a = _mask(h, w, paint, blur=0.5)
        target = np.array([22.0, 22.0, 24.0], dtype=np.float32)
        return a[..., None] * 0.92 * (target - crop), a > 0.03

    return MarkSpec("crack", _extent(*[p for p, _ in lines]) + width + pad + 3, pad, draw)


def _missing_piece(rng: np.random.Generator, s: float) -> MarkSpec:
    r = max(10.0, rng.uniform(60, 300) * s)
    pts = _blob(r, rng, int(rng.integers(12, 22)), 0.25, rng.uniform(0.55, 1.0),
                rng.uniform(0, math.pi), jag=0.25)
    rim_w = max(2, round(rng.uniform(2, 5) * math.sqrt(s)))
    rim_col = np.array([(172, 170, 162), (205, 205, 200)][rng.integers(2)], dtype=np.float32)
    nseed = int(rng.integers(2**31))
    pad = max(3.0, 4.0 * math.sqrt(s))

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        p = _xy(pts, cx, cy)
        m = _mask(h, w, lambda d: d.polygon(p, fill=255), blur=0.5)
        rim = _mask(h, w, lambda d: d.line(_closed(p), fill=255, width=rim_w), blur=0.5)
        _, dy = _grid(h, w, cx, cy)
        depth = np.clip((dy + r) / (2 * r), 0, 1)  # inner shadow under the upper edge
        hole = 10.0 + 30.0 * depth + 8.0 * value_noise(h, w, nseed, max(3.0, r / 5))
        out = crop + m[..., None] * (hole[..., None] - crop)
        out = out + rim[..., None] * 0.85 * (rim_col - out)
        return out - crop, (m > 0.03) | (rim > 0.03)

    return MarkSpec("missing_piece", _extent(pts) + rim_w + pad + 3, pad, draw)


def _superellipse(a: float, b: float, p: float, n: int = 48) -> np.ndarray:
    th = np.linspace(0, 2 * math.pi, n, endpoint=False)
    c, s_ = np.cos(th), np.sin(th)
    return np.stack([a * np.sign(c) * np.abs(c) ** (2 / p), b * np.sign(s_) * np.abs(s_) ** (2 / p)],
                    axis=1)


def _missing_accessory(rng: np.random.Generator, s: float) -> MarkSpec:
    bw = max(20.0, rng.uniform(150, 500) * s)
    bh = bw * rng.uniform(0.28, 0.6)
    ang = rng.uniform(-0.12, 0.12)
    shape = _rot(_superellipse(bw / 2, bh / 2, float(rng.choice([2.0, 4.0, 6.0]))), ang)
    k = int(rng.integers(2, 4))
    hx = np.linspace(-1, 1, k) * bw * rng.uniform(0.22, 0.33)
    holes = _rot(np.stack([hx, np.zeros(k)], axis=1), ang)
    hole_r = max(1.5, rng.uniform(4, 9) * s)
    glue_w = max(2, round(3 * math.sqrt(s)))
    nseed = int(rng.integers(2**31))
    pad = max(3.0, 4.0 * math.sqrt(s))

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        p = _xy(shape, cx, cy)
        m = _mask(h, w, lambda d: d.polygon(p, fill=255), blur=1.0)
        # paint the accessory protected from the sun: lighter, or a darker ghost on white paint
        lighter = _mean_lum(crop, m > 0.5) < 185
        area = crop + (255.0 - crop) * 0.22 + 6.0 if lighter else crop * 0.86
        out = crop + m[..., None] * (area - crop)
        glue = _mask(h, w, lambda d: d.line(_closed(p), fill=255, width=glue_w), blur=0.7)
        support = (m > 0.03) | (glue > 0.03)
        glue = glue * np.clip(value_noise(h, w, nseed, max(3.0, bw / 12)) * 2 + 0.8, 0, 1)
        out = out + glue[..., None] * 0.75 * (np.array([150.0, 140.0, 105.0]) - out)

        def screws(d: ImageDraw.ImageDraw, extra: float) -> None:
            for x, y in _xy(holes, cx, cy):
                rr = hole_r + extra
                d.ellipse([x - rr, y - rr, x + rr, y + rr], fill=255)

        ring = _mask(h, w, lambda d: screws(d, max(1.0, hole_r * 0.4)), blur=0.4)
        hole = _mask(h, w, lambda d: screws(d, 0.0), blur=0.4)
        out = out + ring[..., None] * 0.6 * (125.0 - out)
        out = out + hole[..., None] * (12.0 - out)
        return out - crop, support

    return MarkSpec("missing_accessory", _extent(shape) + glue_w + pad + 3, pad, draw)


def _misaligned(rng: np.random.Generator, s: float, angle: float | None) -> MarkSpec:
    length = max(40.0, rng.uniform(200, 800) * s)
    if angle is None:
        angle = float(rng.choice([0.0, math.pi / 2]))
    angle += rng.uniform(-0.04, 0.04)
    w0 = max(2.0, rng.uniform(4, 8) * math.sqrt(s))
    w1 = w0 * rng.uniform(1.8, 3.0)
    hw = max(2.0, rng.uniform(2, 4) * math.sqrt(s))
    sw = max(3.0, rng.uniform(8, 20) * math.sqrt(s))
    side = float(rng.choice([-1.0, 1.0]))
    pad = max(3.0, 4.0 * math.sqrt(s))

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        dx, dy = _grid(h, w, cx, cy)
        t = dx * math.cos(angle) + dy * math.sin(angle)
        nrm = (-dx * math.sin(angle) + dy * math.cos(angle)) * side
        along = np.clip(length / 2 - np.abs(t) + 0.5, 0, 1)
        half = (w0 + (w1 - w0) * np.clip(t / length + 0.5, 0, 1)) / 2
        gap = np.clip(half - np.abs(nrm) + 0.5, 0, 1) * along
        hi = ((nrm > half) & (nrm <= half + hw)) * along
        shadow_t = np.clip((-nrm - half) / sw, 0, 1)
        sh = ((nrm < -half) & (nrm >= -half - sw)) * along * (1 - shadow_t)
        out = crop + hi[..., None] * 0.6 * (250.0 - crop)
        out = out * (1 - 0.45 * sh[..., None])
        out = out + gap[..., None] * 0.95 * (np.array([18.0, 18.0, 20.0]) - out)
        support = (along > 0) & (nrm >= -half - sw) & (nrm <= half + hw)
        return out - crop, support

    ext = math.hypot(length / 2, w1 + hw + sw)
    return MarkSpec("misaligned", ext + pad + 3, pad, draw)


# --------------------------------------------------------------------------- generic marks


def _generic(style: str, rng: np.random.Generator, s: float,
             tint: tuple[float, float, float]) -> MarkSpec:
    col = np.array(tint, dtype=np.float32)
    nseed = int(rng.integers(2**31))
    pad = max(3.0, 4.0 * math.sqrt(s))
    if style == "spots":
        r = max(12.0, rng.uniform(60, 200) * s)
        k = int(rng.integers(4, 11))
        cs = rng.uniform(-1, 1, (k, 2)) * r * 0.8
        rs = np.maximum(2.0, rng.uniform(6, 30, k) * s)

        def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
            h, w = crop.shape[:2]

            def spots(d: ImageDraw.ImageDraw) -> None:
                for (x, y), rr in zip(cs, rs, strict=True):
                    d.ellipse([cx + x - rr, cy + y - rr, cx + x + rr, cy + y + rr], fill=255)

            def bridges(d: ImageDraw.ImageDraw) -> None:
                for x, y in cs:
                    d.line([(cx, cy), (cx + x, cy + y)], fill=255, width=max(2, round(r * 0.1)))

            m = _mask(h, w, spots, blur=0.8)
            out = crop + m[..., None] * 0.85 * (col * 0.55 - crop)
            return out - crop, (m > 0.03) | (_mask(h, w, bridges) > 0)

        return MarkSpec(style, r * 0.8 * math.sqrt(2) + float(rs.max()) + pad + 3, pad, draw)
    if style == "streak":
        length = max(20.0, rng.uniform(150, 600) * s)
        width = max(2, round(rng.uniform(6, 20) * math.sqrt(s)))
        pts = _polyline(length, rng.uniform(0, math.pi), rng.uniform(-0.2, 0.2), 0.01, 8, rng)

        def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
            h, w = crop.shape[:2]
            p = _xy(pts, cx, cy)
            m = _mask(h, w, lambda d: d.line(p, fill=255, width=width, joint="curve"),
                      blur=max(0.6, width * 0.3))
            tex = value_noise(h, w, nseed, max(4.0, width * 2.0))
            out = crop + (m * (0.6 + 0.2 * tex))[..., None] * (col - crop)
            return out - crop, m > 0.05

        return MarkSpec(style, _extent(pts) + width + pad + 3, pad, draw)
    if style == "ring":
        r = max(8.0, rng.uniform(30, 160) * s)

        def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
            h, w = crop.shape[:2]
            dx, dy = _grid(h, w, cx, cy)
            d = np.sqrt(dx * dx + dy * dy) / r
            ring = np.exp(-((d - 0.8) ** 2) / 0.012)
            centre = np.clip(1.0 - d / 0.7, 0, 1)
            halo = np.clip(1.0 - np.abs(d - 1.05) / 0.15, 0, 1) * 0.5
            out = crop + halo[..., None] * ((crop + (230.0 - crop) * 0.4) - crop)
            out = out + centre[..., None] * 0.7 * ((col + (225.0 - col) * 0.5) - out)
            out = out + ring[..., None] * 0.9 * (col * 0.45 - out)
            support = d < 1.2
            return (out - crop) * support[..., None], support

        return MarkSpec(style, r * 1.2 + pad + 3, pad, draw)
    # "blob" (default)
    r = max(10.0, rng.uniform(50, 280) * s)
    pts = _blob(r, rng, 40, 0.25, rng.uniform(0.55, 1.0), rng.uniform(0, math.pi), jag=0.04)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        p = _xy(pts, cx, cy)
        m = _mask(h, w, lambda d: d.polygon(p, fill=255), blur=max(0.6, r * 0.05))
        edge = _mask(h, w, lambda d: d.line(_closed(p), fill=255, width=max(1, round(r * 0.06))),
                     blur=0.8)
        tex = value_noise(h, w, nseed, max(3.0, r / 6))
        out = crop + m[..., None] * 0.8 * (col * (1.0 + 0.12 * tex)[..., None] - crop)
        out = out + edge[..., None] * 0.5 * (col * 0.5 - out)
        return out - crop, (m > 0.05) | (edge > 0.05)

    return MarkSpec("blob", _extent(pts) + pad + 3 + r * 0.1, pad, draw)


def make_mark(style: str, rng: np.random.Generator, scale: float, *, size: float = 1.0,
              angle: float | None = None, label: str = "") -> MarkSpec:
    """Sample a mark of ``style`` (a value of :data:`LABEL_STYLES` or :data:`GENERIC_STYLES`).

    ``scale`` is the image scale relative to a 4000×3000 photo (sizes are in pixels of that
    photo times ``scale``, with minimums so marks stay visible at 640×480); ``size`` shrinks
    scratches (used for clusters of small scratches); ``angle`` orients a misalignment along a
    panel gap; ``label`` seeds the colour of generic styles.
    """
    if style == "scratch":
        return _scratch(rng, scale, size)
    if style == "large_scratch":
        return _large_scratch(rng, scale)
    if style == "dent":
        return _dent(rng, scale)
    if style == "peeling":
        return _peeling(rng, scale)
    if style == "crack":
        return _crack(rng, scale)
    if style == "missing_piece":
        return _missing_piece(rng, scale)
    if style == "missing_accessory":
        return _missing_accessory(rng, scale)
    if style == "misaligned":
        return _misaligned(rng, scale, angle)
    return _generic(style, rng, scale, label_tint(label or style))


# --------------------------------------------------------------------------- applying


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
