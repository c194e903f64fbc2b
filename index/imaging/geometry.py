"""Small planar geometry on polygons and boxes, in pixels. No image access."""

from __future__ import annotations

import math
from collections.abc import Sequence

#: A point (x, y) in source pixels.
Point = tuple[float, float]
#: A box (x0, y0, x1, y1) in source pixels.
Box = tuple[float, float, float, float]


def polygon_area(points: Sequence[Point]) -> float:
    """Area of a simple polygon (shoelace formula); 0 for fewer than 3 points."""
    if len(points) < 3:
        return 0.0
    total = 0.0
    for (x0, y0), (x1, y1) in zip(points, [*points[1:], points[0]], strict=True):
        total += x0 * y1 - x1 * y0
    return abs(total) / 2.0


def bounding_box(points: Sequence[Point]) -> Box:
    """Axis-aligned box (x0, y0, x1, y1) of some points."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def union_box(boxes: Sequence[Box]) -> Box:
    """The smallest box holding all ``boxes``."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def box_gap(a: Box, b: Box) -> float:
    """Euclidean distance between two boxes; 0 when they touch or overlap."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return math.hypot(dx, dy)


def boxes_intersect(a: Box, b: Box) -> bool:
    """Whether two boxes overlap with positive area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def expand_box(box: Box, by: float) -> Box:
    """The box grown by ``by`` pixels on every side."""
    return (box[0] - by, box[1] - by, box[2] + by, box[3] + by)


def clip_polygon(points: Sequence[Point], width: float, height: float) -> list[Point]:
    """Clip a polygon to the rectangle [0, width] x [0, height] (Sutherland–Hodgman).

    Returns:
        The clipped polygon; empty when nothing of it lies inside.
    """

    def clip(poly: list[Point], inside, intersect) -> list[Point]:
        out: list[Point] = []
        for i, current in enumerate(poly):
            previous = poly[i - 1]
            if inside(current):
                if not inside(previous):
                    out.append(intersect(previous, current))
                out.append(current)
            elif inside(previous):
                out.append(intersect(previous, current))
        return out

    def at_x(x: float):
        return lambda p, q: (x, p[1] + (q[1] - p[1]) * (x - p[0]) / (q[0] - p[0]))

    def at_y(y: float):
        return lambda p, q: (p[0] + (q[0] - p[0]) * (y - p[1]) / (q[1] - p[1]), y)

    poly = [(float(x), float(y)) for x, y in points]
    for inside, intersect in (
        (lambda p: p[0] >= 0, at_x(0.0)),
        (lambda p: p[0] <= width, at_x(float(width))),
        (lambda p: p[1] >= 0, at_y(0.0)),
        (lambda p: p[1] <= height, at_y(float(height))),
    ):
        if not poly:
            break
        poly = clip(poly, inside, intersect)
    return poly


def rectangle_polygon(a: Point, b: Point) -> list[Point]:
    """The 4-corner polygon of the rectangle with opposite corners ``a`` and ``b``."""
    x0, x1 = sorted((a[0], b[0]))
    y0, y1 = sorted((a[1], b[1]))
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def circle_polygon(center: Point, edge: Point, sides: int = 24) -> list[Point]:
    """A regular polygon approximating the circle through ``edge`` around ``center``."""
    radius = math.dist(center, edge)
    return [
        (center[0] + radius * math.cos(2 * math.pi * i / sides),
         center[1] + radius * math.sin(2 * math.pi * i / sides))
        for i in range(sides)
    ]


def ribbon_polygon(points: Sequence[Point], half_width: float) -> list[Point]:
    """A polygon of width ``2 * half_width`` around a polyline (or a square around a point).

    Each vertex is offset along the normal of its neighbouring segments: out along one side,
    back along the other. Good for the thin strokes annotators draw as lines.
    """
    pts = [(float(x), float(y)) for x, y in points]
    pts = [p for i, p in enumerate(pts) if i == 0 or p != pts[i - 1]]
    if len(pts) == 1:
        (x, y), h = pts[0], half_width
        return [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]
    normals: list[Point] = []
    for i in range(len(pts)):
        a = pts[max(i - 1, 0)]
        b = pts[min(i + 1, len(pts) - 1)]
        dx, dy = b[0] - a[0], b[1] - a[1]
        length = math.hypot(dx, dy) or 1.0
        normals.append((-dy / length, dx / length))
    left = [(p[0] + n[0] * half_width, p[1] + n[1] * half_width) for p, n in zip(pts, normals, strict=True)]
    right = [(p[0] - n[0] * half_width, p[1] - n[1] * half_width) for p, n in zip(pts, normals, strict=True)]
    return left + right[::-1]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
