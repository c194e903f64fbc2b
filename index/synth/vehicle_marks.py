"""The eight vehicle-damage marks of the user's taxonomy (labels "1".."8").

Each factory samples a mark's geometry and colours from ``rng`` at image scale ``s`` and
returns a :class:`~index.synth.drawing.MarkSpec`; :func:`index.synth.marks.make_mark` picks the
factory through :data:`VEHICLE_MARKS` (style per label in :data:`LABEL_STYLES`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from index.synth.drawing import (
    MarkSpec,
    at,
    bridges_mask,
    discs_mask,
    extent,
    fill_mask,
    grid,
    lines_mask,
    mean_luminance,
    new_seed,
    outline_mask,
    polygon_pad,
    polyline,
    rotate,
    superellipse,
    value_noise,
    walk,
    wobbly_outline,
)

#: A vehicle-mark factory: ``(rng, scale, size, angle)``, see :func:`index.synth.marks.make_mark`
#: (only the scratch uses ``size`` and only the misalignment ``angle``).
VehicleMark = Callable[[np.random.Generator, float, float, float | None], MarkSpec]

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


def scratch(rng: np.random.Generator, s: float, size: float = 1.0,
            angle: float | None = None) -> MarkSpec:
    length = max(10.0, rng.uniform(20, 150) * s * size)
    width = max(1, round(rng.uniform(1.0, 2.6) * math.sqrt(s)))
    pts = polyline(length, rng.uniform(0, math.pi), rng.uniform(-0.2, 0.2), 0.015,
                   max(3, int(length / 15) + 2), rng)
    strength = rng.uniform(0.7, 0.95)
    nseed = new_seed(rng)
    pad = polygon_pad(s, 3.0) + width / 2

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        a = lines_mask(h, w, [(at(pts, cx, cy), width)], blur=0.6)
        support = a > 0.03
        a = a * (0.6 + 0.4 * np.clip(value_noise(h, w, nseed, max(6.0, length / 8)) + 0.6, 0, 1))
        light_paint = mean_luminance(crop, support) > 160  # scratches show dark on white paint
        target = crop * 0.5 if light_paint else crop + (240.0 - crop) * 0.75
        return a[..., None] * strength * (target - crop), support

    return MarkSpec("scratch", extent(pts) + width + pad + 2, pad, draw)


def large_scratch(rng: np.random.Generator, s: float, size: float = 1.0,
                  angle: float | None = None) -> MarkSpec:
    length = max(40.0, rng.uniform(300, 1200) * s)
    core = max(2, round(rng.uniform(4, 10) * math.sqrt(s)))
    halo = core + 2 * max(1, round(rng.uniform(1.5, 3.5) * math.sqrt(s)))
    pts = polyline(length, rng.uniform(-0.6, 0.6) + rng.choice([0.0, math.pi / 2]),
                   rng.uniform(-0.12, 0.12), 0.004, 12, rng)
    core_rgb = np.array([(95, 96, 102), (178, 172, 160), (62, 62, 66)][rng.integers(3)],
                        dtype=np.float32)
    nseed = new_seed(rng)
    pad = polygon_pad(s)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        p = at(pts, cx, cy)
        ha = lines_mask(h, w, [(p, halo)], blur=1.0)
        ca = lines_mask(h, w, [(p, core)], blur=0.6)
        support = ha > 0.03
        tex = value_noise(h, w, nseed, max(4.0, core * 3.0))
        dark_paint = mean_luminance(crop, support) < 170
        halo_col = crop + (245.0 - crop) * 0.6 if dark_paint else crop * 0.7
        out = crop + ha[..., None] * 0.8 * (halo_col - crop)
        core_col = core_rgb * (0.85 + 0.2 * tex)[..., None]
        out = out + ca[..., None] * (core_col - out)
        return out - crop, support

    return MarkSpec("large_scratch", extent(pts) + halo + pad + 2, pad, draw)


def dent(rng: np.random.Generator, s: float, size: float = 1.0,
         angle: float | None = None) -> MarkSpec:
    a = max(10.0, rng.uniform(80, 400) * s)
    b = a * rng.uniform(0.55, 1.0)
    phi = rng.uniform(0, math.pi)
    amp = rng.uniform(35, 60)
    hl = rng.uniform(30, 60)
    pad = polygon_pad(s)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        dx, dy = grid(h, w, cx, cy)
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


def peeling(rng: np.random.Generator, s: float, size: float = 1.0,
            angle: float | None = None) -> MarkSpec:
    r = max(8.0, rng.uniform(50, 300) * s)
    main = wobbly_outline(r, rng, 48, 0.3, rng.uniform(0.5, 1.0), rng.uniform(0, math.pi),
                          jag=0.12)
    sats: list[np.ndarray] = []
    centres: list[tuple[float, float]] = []
    for _ in range(int(rng.integers(0, 5))):
        th, dist = rng.uniform(0, 2 * math.pi), r * rng.uniform(0.9, 1.3)
        c = (dist * math.cos(th), dist * math.sin(th))
        centres.append(c)
        sats.append(wobbly_outline(r * rng.uniform(0.1, 0.3), rng, 16, 0.3, jag=0.2)
                    + np.array(c))
    colour = np.array([(206, 205, 198), (206, 205, 198), (136, 136, 131), (142, 82, 46)]
                      [rng.integers(4)], dtype=np.float32)
    rim_w = max(1, round(2 * math.sqrt(s)))
    bridge_w = max(3, round(r * 0.15))
    nseed = new_seed(rng)
    pad = polygon_pad(s)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        polys = [at(p, cx, cy) for p in [main, *sats]]
        m = fill_mask(h, w, polys, blur=0.5)
        rim = outline_mask(h, w, polys, rim_w, blur=0.5)
        tex = value_noise(h, w, nseed, max(2.0, r / 20))
        col = colour * (1.0 + 0.05 * tex)[..., None]
        out = crop + m[..., None] * (col - crop)
        out = out + rim[..., None] * 0.8 * ((out + (250.0 - out) * 0.5) - out)
        support = (m > 0.03) | (rim > 0.03) | (bridges_mask(h, w, cx, cy, centres, bridge_w) > 0)
        return out - crop, support

    ext = extent(main, *sats) if sats else extent(main)
    return MarkSpec("peeling", ext + rim_w + pad + 3, pad, draw)


def crack(rng: np.random.Generator, s: float, size: float = 1.0,
          angle: float | None = None) -> MarkSpec:
    length = max(30.0, rng.uniform(150, 700) * s)
    heading = rng.uniform(0, math.pi)
    main = walk(length, heading, int(rng.integers(12, 21)), 0.55, rng)
    main = main - (main[0] + main[-1]) / 2
    width = max(1, round(rng.uniform(1.5, 3.0) * math.sqrt(s)))
    lines: list[tuple[np.ndarray, int]] = [(main, width)]
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(2, len(main) - 2))
        seg = main[i + 1] - main[i]
        local = math.atan2(seg[1], seg[0])
        br = walk(length * rng.uniform(0.15, 0.35), local + rng.choice([-1, 1]) *
                  rng.uniform(0.5, 1.1), int(rng.integers(4, 8)), 0.5, rng)
        lines.append((br + main[i], max(1, width - 1)))
    pad = polygon_pad(s, 3.5)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        a = lines_mask(h, w, [(at(pts, cx, cy), wd) for pts, wd in lines], blur=0.5)
        target = np.array([22.0, 22.0, 24.0], dtype=np.float32)
        return a[..., None] * 0.92 * (target - crop), a > 0.03

    return MarkSpec("crack", extent(*[p for p, _ in lines]) + width + pad + 3, pad, draw)


def missing_piece(rng: np.random.Generator, s: float, size: float = 1.0,
                  angle: float | None = None) -> MarkSpec:
    r = max(10.0, rng.uniform(60, 300) * s)
    pts = wobbly_outline(r, rng, int(rng.integers(12, 22)), 0.25, rng.uniform(0.55, 1.0),
                         rng.uniform(0, math.pi), jag=0.25)
    rim_w = max(2, round(rng.uniform(2, 5) * math.sqrt(s)))
    rim_col = np.array([(172, 170, 162), (205, 205, 200)][rng.integers(2)], dtype=np.float32)
    nseed = new_seed(rng)
    pad = polygon_pad(s)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        p = at(pts, cx, cy)
        m = fill_mask(h, w, [p], blur=0.5)
        rim = outline_mask(h, w, [p], rim_w, blur=0.5)
        _, dy = grid(h, w, cx, cy)
        depth = np.clip((dy + r) / (2 * r), 0, 1)  # inner shadow under the upper edge
        hole = 10.0 + 30.0 * depth + 8.0 * value_noise(h, w, nseed, max(3.0, r / 5))
        out = crop + m[..., None] * (hole[..., None] - crop)
        out = out + rim[..., None] * 0.85 * (rim_col - out)
        return out - crop, (m > 0.03) | (rim > 0.03)

    return MarkSpec("missing_piece", extent(pts) + rim_w + pad + 3, pad, draw)


def missing_accessory(rng: np.random.Generator, s: float, size: float = 1.0,
                      angle: float | None = None) -> MarkSpec:
    bw = max(20.0, rng.uniform(150, 500) * s)
    bh = bw * rng.uniform(0.28, 0.6)
    ang = rng.uniform(-0.12, 0.12)
    shape = rotate(superellipse(bw / 2, bh / 2, float(rng.choice([2.0, 4.0, 6.0]))), ang)
    k = int(rng.integers(2, 4))
    hx = np.linspace(-1, 1, k) * bw * rng.uniform(0.22, 0.33)
    holes = rotate(np.stack([hx, np.zeros(k)], axis=1), ang)
    hole_r = max(1.5, rng.uniform(4, 9) * s)
    glue_w = max(2, round(3 * math.sqrt(s)))
    nseed = new_seed(rng)
    pad = polygon_pad(s)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        p = at(shape, cx, cy)
        m = fill_mask(h, w, [p], blur=1.0)
        # paint the accessory protected from the sun: lighter, or a darker ghost on white paint
        lighter = mean_luminance(crop, m > 0.5) < 185
        area = crop + (255.0 - crop) * 0.22 + 6.0 if lighter else crop * 0.86
        out = crop + m[..., None] * (area - crop)
        glue = outline_mask(h, w, [p], glue_w, blur=0.7)
        support = (m > 0.03) | (glue > 0.03)
        glue = glue * np.clip(value_noise(h, w, nseed, max(3.0, bw / 12)) * 2 + 0.8, 0, 1)
        out = out + glue[..., None] * 0.75 * (np.array([150.0, 140.0, 105.0]) - out)
        screws = at(holes, cx, cy)
        ring_r = hole_r + max(1.0, hole_r * 0.4)
        ring = discs_mask(h, w, screws, [ring_r] * len(screws), blur=0.4)
        hole = discs_mask(h, w, screws, [hole_r] * len(screws), blur=0.4)
        out = out + ring[..., None] * 0.6 * (125.0 - out)
        out = out + hole[..., None] * (12.0 - out)
        return out - crop, support

    return MarkSpec("missing_accessory", extent(shape) + glue_w + pad + 3, pad, draw)


def misaligned(rng: np.random.Generator, s: float, size: float = 1.0,
               angle: float | None = None) -> MarkSpec:
    length = max(40.0, rng.uniform(200, 800) * s)
    if angle is None:
        angle = float(rng.choice([0.0, math.pi / 2]))
    angle += rng.uniform(-0.04, 0.04)
    w0 = max(2.0, rng.uniform(4, 8) * math.sqrt(s))
    w1 = w0 * rng.uniform(1.8, 3.0)
    hw = max(2.0, rng.uniform(2, 4) * math.sqrt(s))
    sw = max(3.0, rng.uniform(8, 20) * math.sqrt(s))
    side = float(rng.choice([-1.0, 1.0]))
    pad = polygon_pad(s)

    def draw(crop: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        h, w = crop.shape[:2]
        dx, dy = grid(h, w, cx, cy)
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


#: Factory per vehicle style (the values of :data:`LABEL_STYLES`).
VEHICLE_MARKS: dict[str, VehicleMark] = {
    "scratch": scratch,
    "large_scratch": large_scratch,
    "dent": dent,
    "peeling": peeling,
    "crack": crack,
    "missing_piece": missing_piece,
    "missing_accessory": missing_accessory,
    "misaligned": misaligned,
}
