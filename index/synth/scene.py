"""Clean backgrounds for the synthetic photos: a car-panel close-up and a neutral surface.

Scenes are drawn at a reduced working resolution (long side at most 1024 px) and upscaled
bilinearly, which keeps a 4000×3000 background to a few tens of milliseconds; damage marks are
drawn afterwards at full resolution by :mod:`index.synth.marks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from index.synth.drawing import new_seed, value_noise

#: Body colours (RGB) and how often they occur.
BODY_COLOURS: tuple[tuple[tuple[int, int, int], float], ...] = (
    ((236, 236, 233), 0.24),  # white
    ((188, 190, 194), 0.18),  # silver
    ((108, 110, 115), 0.14),  # grey
    ((26, 26, 29), 0.14),  # black
    ((32, 62, 128), 0.10),  # blue
    ((168, 26, 32), 0.09),  # red
    ((40, 72, 52), 0.04),  # dark green
    ((198, 184, 150), 0.04),  # beige
    ((96, 22, 30), 0.03),  # dark red
)
ENVIRONMENTS: tuple[str, ...] = ("sunny", "overcast", "garage")
#: Which part of the car each zone (1–9) shows: a guess that only shapes the synthetic scene.
ZONE_VIEWS: dict[int, str] = {1: "front", 2: "wheel", 3: "side", 4: "wheel", 5: "rear",
                              6: "wheel", 7: "side", 8: "wheel", 9: "top"}
MAX_WORK = 1024

Segment = tuple[float, float, float, float]


@dataclass
class Scene:
    """A rendered clean background.

    ``image`` is the full-resolution RGB image; ``placeable`` marks, at working resolution,
    the painted body where damage can be drawn; ``gaps`` are panel-gap segments
    ``(x0, y0, x1, y1)`` in full-resolution pixels (where a misaligned part shows).
    """

    image: Image.Image
    placeable: np.ndarray
    gaps: list[Segment] = field(default_factory=list)

    def is_placeable(self, x: float, y: float) -> bool:
        """Whether full-resolution point (x, y) lies on the painted body."""
        wid, hgt = self.image.size
        ph, pw = self.placeable.shape
        i, j = int(y * ph / hgt), int(x * pw / wid)
        return 0 <= i < ph and 0 <= j < pw and bool(self.placeable[i, j])


def work_size(size: tuple[int, int]) -> tuple[int, int]:
    """Working (drawing) resolution for a full-resolution ``(width, height)``."""
    f = max(1, math.ceil(max(size) / MAX_WORK))
    return max(1, math.ceil(size[0] / f)), max(1, math.ceil(size[1] / f))


def _upscale(low: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    grain = rng.normal(0.0, 1.6, low.shape[:2]).astype(np.float32)
    im = Image.fromarray(np.clip(low + grain[..., None], 0, 255).astype(np.uint8))
    return im if im.size == size else im.resize(size, Image.Resampling.BILINEAR)


def _lerp(a: tuple[float, ...], b: tuple[float, ...], t: np.ndarray) -> np.ndarray:
    a_, b_ = np.array(a, dtype=np.float32), np.array(b, dtype=np.float32)
    return a_ + (b_ - a_) * t[..., None]


def _background(env: str, w: int, h: int, horizon: float, rng: np.random.Generator) -> np.ndarray:
    v = np.linspace(0, 1, h, dtype=np.float32)[:, None]  # gradients vary by row only
    top = np.clip(v / max(horizon, 1e-3), 0, 1)
    bottom = np.clip((v - horizon) / max(1 - horizon, 1e-3), 0, 1)
    mott = value_noise(h, w, new_seed(rng), max(8.0, w / 14))
    if env == "garage":
        upper = _lerp((178, 172, 162), (150, 146, 138), top)
        lower = _lerp((146, 144, 138), (112, 110, 106), bottom)
    elif env == "overcast":
        upper = _lerp((196, 200, 206), (226, 228, 230), top)
        lower = _lerp((104, 104, 106), (78, 78, 80), bottom)
    else:
        upper = _lerp((102, 148, 206), (212, 224, 236), top)
        lower = _lerp((92, 91, 94), (66, 66, 69), bottom)
    return np.where((v < horizon)[..., None], upper, lower) + (mott * 7.0)[..., None]


def _body_shading(base: tuple[int, int, int], w: int, h: int, refl_v: float, diagonal: bool,
                  rng: np.random.Generator) -> np.ndarray:
    u = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    v = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    light = 0.8 + 0.32 * (1 - v) ** 1.5 - 0.14 * ((u - rng.uniform(0.3, 0.7)) * 2) ** 2
    coord = (v + 0.55 * u) / 1.55 if diagonal else v
    band = np.exp(-(((coord - refl_v) / rng.uniform(0.04, 0.09)) ** 2))
    mott = value_noise(h, w, new_seed(rng), max(8.0, w / 6))
    lum = sum(base) / 3
    refl_amp = 70.0 if lum < 80 else (40.0 if lum < 170 else 18.0)
    col = np.array(base, dtype=np.float32) * (light * (1 + 0.025 * mott))[..., None]
    return col + (band * refl_amp)[..., None] * np.array([0.92, 0.97, 1.0], dtype=np.float32)


def render_car_scene(size: tuple[int, int], rng: np.random.Generator, zone: int,
                     body_rgb: tuple[int, int, int], env: str) -> Scene:
    """A close-up of a car body for ``zone`` (1–9), with ground/sky or a garage behind."""
    wid, hgt = size
    w, h = work_size(size)
    view = ZONE_VIEWS.get(zone, "side")
    sx, sy = wid / w, hgt / h
    horizon = rng.uniform(0.3, 0.55)
    img = _background(env, w, h, horizon, rng)

    def P(x: float, y: float) -> tuple[float, float]:  # normalised -> working px
        return (x * w, y * h)

    # silhouette: top and bottom edges of the painted body, gently curved
    if view == "top":
        y_top, y_bot = -0.05, 1.05
    elif view in ("front", "rear"):
        y_top, y_bot = rng.uniform(0.0, 0.1), rng.uniform(0.84, 0.93)
    else:
        y_top, y_bot = rng.uniform(0.04, 0.16), rng.uniform(0.82, 0.94)
    curv_t, curv_b = rng.uniform(-0.06, 0.06), rng.uniform(-0.04, 0.04)
    xs = np.linspace(-0.02, 1.02, 24)
    top_edge = [P(x, y_top + curv_t * (2 * x - 1) ** 2) for x in xs]
    bot_edge = [P(x, y_bot - curv_b * (2 * x - 1) ** 2) for x in xs[::-1]]
    body_poly = top_edge + bot_edge
    mask_im = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask_im).polygon(body_poly, fill=255)
    body_mask = np.asarray(mask_im, dtype=np.float32) / 255.0

    body = _body_shading(body_rgb, w, h, rng.uniform(0.15, 0.45), view == "top", rng)
    v = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    shadow = 1 - 0.5 * np.exp(-(((v - y_bot) / 0.05) ** 2)) * (v > y_bot - 0.01)
    img = img * shadow[..., None]
    img = img * (1 - body_mask[..., None]) + body * body_mask[..., None]
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(pil)
    keep = Image.new("L", (w, h), 0)  # placeable body
    kd = ImageDraw.Draw(keep)
    kd.polygon(body_poly, fill=255)
    base = np.array(body_rgb, dtype=np.float32)
    dark = tuple(int(c) for c in base * 0.22)
    light = tuple(int(min(255, c * 1.12 + 22)) for c in base)
    lw = max(1, round(w / 700))
    gaps: list[Segment] = []

    def gap(x0: float, y0: float, x1: float, y1: float) -> None:
        a, b = P(x0, y0), P(x1, y1)
        d.line([a, b], fill=dark, width=lw)
        d.line([(a[0] + lw, a[1] + lw), (b[0] + lw, b[1] + lw)], fill=light, width=1)
        gaps.append((a[0] * sx, a[1] * sy, b[0] * sx, b[1] * sy))

    def blocked(poly: list[tuple[float, float]], fill: tuple[int, int, int]) -> None:
        d.polygon(poly, fill=fill)
        kd.polygon(poly, fill=0)

    def crease(y: float) -> None:
        d.line([P(0, y), P(1, y + rng.uniform(-0.02, 0.02))], fill=light, width=lw)
        d.line([P(0, y + 2 / h), P(1, y + 2 / h)], fill=tuple(int(c * 0.8) for c in base), width=1)

    def handle(x: float, y: float) -> None:
        box = [P(x, y), P(x + 0.09, y + 0.028)]
        d.rounded_rectangle(box, radius=max(1, h // 120), fill=tuple(int(c * 0.7) for c in base))
        d.line([P(x + 0.005, y + 0.004), P(x + 0.085, y + 0.004)], fill=light, width=lw)

    def glass(poly: list[tuple[float, float]]) -> None:
        blocked(poly, (34, 39, 47))
        xs_, ys_ = [p[0] for p in poly], [p[1] for p in poly]
        x0, x1, y0, y1 = min(xs_), max(xs_), min(ys_), max(ys_)
        k = rng.uniform(0.2, 0.6)
        refl = [(x0 + k * (x1 - x0), y0), (x0 + (k + 0.18) * (x1 - x0), y0),
                (x0 + (k + 0.05) * (x1 - x0), y1), (x0 + (k - 0.13) * (x1 - x0), y1)]
        rim = Image.new("L", (w, h), 0)
        ImageDraw.Draw(rim).polygon(poly, fill=255)
        band = Image.new("L", (w, h), 0)
        ImageDraw.Draw(band).polygon(refl, fill=60)
        band = Image.fromarray(np.minimum(np.asarray(band), np.asarray(rim)))
        pil.paste((170, 180, 190), (0, 0), band)

    def wheel(cx: float, cy: float, r: float) -> None:
        c = P(cx, cy)
        rp = r * h
        for rr, col in ((1.12, (14, 14, 16)), (1.0, (33, 33, 35)), (0.62, (172, 174, 178)),
                        (0.5, (120, 122, 126))):
            box = [c[0] - rr * rp, c[1] - rr * rp, c[0] + rr * rp, c[1] + rr * rp]
            d.ellipse(box, fill=col)
            if rr == 1.12:
                kd.ellipse(box, fill=0)
        for k in range(5):
            a = 2 * math.pi * k / 5 + rng.uniform(0, 0.5)
            pts = [(c[0] + 0.12 * rp * math.cos(a + da), c[1] + 0.12 * rp * math.sin(a + da))
                   for da in (-0.5, 0.5)]
            pts += [(c[0] + 0.5 * rp * math.cos(a + da), c[1] + 0.5 * rp * math.sin(a + da))
                    for da in (0.3, -0.3)]
            d.polygon(pts, fill=(40, 40, 44))
        d.ellipse([c[0] - 0.12 * rp, c[1] - 0.12 * rp, c[0] + 0.12 * rp, c[1] + 0.12 * rp],
                  fill=(150, 152, 156))

    if view == "side":
        belt = rng.uniform(0.3, 0.42)
        glass([P(-0.02, y_top + 0.03), P(1.02, y_top + 0.03), P(1.02, belt), P(-0.02, belt)])
        for gx in (rng.uniform(0.25, 0.42), rng.uniform(0.7, 0.9)):
            slant = rng.uniform(-0.03, 0.03)
            blocked([P(gx - 0.02, y_top), P(gx + 0.02, y_top), P(gx + 0.02 + slant, belt),
                     P(gx - 0.02 + slant, belt)], (22, 22, 24))
            gap(gx + slant, belt, gx + slant * 2, y_bot - 0.02)
            handle(gx + 0.05, belt + rng.uniform(0.05, 0.09))
        crease(rng.uniform(0.5, 0.62))
        blocked([P(-0.02, y_bot - 0.05), P(1.02, y_bot - 0.05), P(1.02, y_bot + 0.01),
                 P(-0.02, y_bot + 0.01)], (38, 38, 40))
    elif view == "wheel":
        cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.3)
        cy = y_bot + rng.uniform(-0.12, 0.02)
        gx = cx + rng.choice([-1, 1]) * rng.uniform(0.38, 0.46)
        gap(gx, y_top, gx + rng.uniform(-0.03, 0.03), y_bot)
        if rng.random() < 0.5:
            glass([P(-0.02, y_top - 0.05), P(0.6, y_top - 0.05), P(0.5, y_top + 0.12),
                   P(-0.02, y_top + 0.12)])
        crease(rng.uniform(0.3, 0.45))
        wheel(cx, cy, r)
    elif view in ("front", "rear"):
        hood = rng.uniform(0.14, 0.24)
        gap(-0.02, hood, 1.02, hood + rng.uniform(-0.01, 0.01))
        lamp = (205, 208, 214) if view == "front" else (150, 22, 28)
        ly0, ly1 = hood + 0.03, hood + rng.uniform(0.16, 0.24)
        for x0, x1 in ((0.0, rng.uniform(0.2, 0.3)), (rng.uniform(0.7, 0.8), 1.0)):
            inner = x1 if x0 == 0.0 else x0
            blocked([P(x0 - 0.02, ly0), P(inner, ly0), P(inner + (0.04 if x0 else -0.04), ly1),
                     P(x0 - 0.02 if x0 == 0.0 else 1.02, ly1)], lamp)
            d.line([P(min(x0, inner) + 0.03, ly0 + 0.03), P(max(x0, inner) - 0.03, ly0 + 0.03)],
                   fill=(235, 235, 235), width=lw)
        bump = rng.uniform(0.45, 0.56)
        gap(-0.02, bump, 1.02, bump + rng.uniform(-0.01, 0.01))
        if view == "front":
            blocked([P(0.35, hood + 0.05), P(0.65, hood + 0.05), P(0.62, hood + 0.22),
                     P(0.38, hood + 0.22)], (24, 24, 27))
            for k in range(1, 5):
                yy = hood + 0.05 + 0.034 * k
                d.line([P(0.37, yy), P(0.63, yy)], fill=(70, 70, 74), width=lw)
        else:
            blocked([P(0.39, 0.62), P(0.61, 0.62), P(0.61, 0.72), P(0.39, 0.72)], (232, 232, 228))
            d.rectangle([P(0.40, 0.63), P(0.60, 0.71)], outline=(40, 40, 40), width=lw)
        blocked([P(0.2, y_bot - 0.1), P(0.8, y_bot - 0.1), P(0.78, y_bot - 0.04),
                 P(0.22, y_bot - 0.04)], (30, 30, 33))
    else:  # top: hood or roof
        if rng.random() < 0.6:
            ws = rng.uniform(0.06, 0.18)
            glass([P(-0.02, -0.02), P(1.02, -0.02), P(1.02, ws), P(-0.02, ws + 0.03)])
            gap(-0.02, ws + 0.05, 1.02, ws + 0.02)
        for gx in (rng.uniform(0.03, 0.12), rng.uniform(0.88, 0.97)):
            gap(gx, 0.0, gx + rng.uniform(-0.04, 0.04), 1.0)

    pil_arr = np.asarray(pil, dtype=np.float32)
    placeable = np.asarray(keep, dtype=np.uint8) > 127
    return Scene(_upscale(pil_arr, size, rng), placeable, gaps)


NEUTRAL_BASES: tuple[tuple[int, int, int], ...] = (
    (44, 92, 62), (72, 118, 52), (150, 150, 146), (200, 190, 166), (62, 66, 78), (182, 160, 120),
)


def render_neutral_scene(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A domain-neutral textured surface (board, leaf, fabric, metal…): gradient, mottling,
    faint straight structures and a few raised rectangles, as a full-resolution RGB image."""
    w, h = work_size(size)
    base = np.array(NEUTRAL_BASES[int(rng.integers(len(NEUTRAL_BASES)))], dtype=np.float32)
    u = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    v = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    gx, gy = rng.uniform(-0.12, 0.12, 2)
    light = 1.0 + gx * u + gy * v - 0.12 * (u * u + v * v)
    mott = (value_noise(h, w, new_seed(rng), max(8.0, w / 8))
            + 0.5 * value_noise(h, w, new_seed(rng), max(4.0, w / 40)))
    img = base * (light * (1 + 0.05 * mott))[..., None]
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(pil)
    lw = max(1, round(w / 500))
    ang = rng.uniform(0, math.pi)
    for _ in range(int(rng.integers(3, 9))):
        c = rng.uniform(0, 1, 2) * (w, h)
        dx, dy = math.cos(ang) * w, math.sin(ang) * w
        shade = float(rng.choice([0.82, 1.15]))
        d.line([(c[0] - dx, c[1] - dy), (c[0] + dx, c[1] + dy)],
               fill=tuple(int(min(255, x * shade)) for x in base), width=lw)
    for _ in range(int(rng.integers(0, 5))):
        x, y = rng.uniform(0, 0.9) * w, rng.uniform(0, 0.9) * h
        bw, bh = rng.uniform(0.03, 0.1) * w, rng.uniform(0.03, 0.1) * h
        d.rectangle([x, y, x + bw, y + bh], fill=tuple(int(min(255, c * 1.25 + 10)) for c in base),
                    outline=tuple(int(c * 0.6) for c in base), width=lw)
    return _upscale(np.asarray(pil, dtype=np.float32), size, rng)
