"""Merge nearby annotations of one label into groups, in near-linear time.

The rule (that of :func:`index.regions.plan.merge_regions`): groups start as one region each;
two groups of one label merge when the gap between their union boxes
(:func:`~index.imaging.geometry.box_gap`) is at most ``limit`` and the longer side of their
joint box stays within ``max_side``; merging repeats until no two groups could still merge.

The first version rescanned every pair after every merge: about cubic, 2,000 marks in one
photo took minutes and 200,000 never finished. Here, per label:

- each group's box is held in grid cells about its own size (:class:`_Levels`, grids of
  doubling cell sizes), so the groups near a rectangle are found by looking at a few cells;
- seeds are taken in input order and grow in passes: a pass takes the groups within reach of
  the seed's box as it was when the pass began, in order of their first region, and merges
  each one that still fits under the cap; the next pass looks only in the strips the box
  grew into; a pass that merges nothing ends the seed.

Both parts of the rule are monotone: a grown box is never farther from anything and its joint
box with anything is never smaller. So a merge refused for the cap is refused for good (and
not retried), and a group that stopped growing need not look again: whatever later grows
next to it is a seed, and looks. At the end no two groups could still merge.

When the cap does not bind, the result is the one fixpoint of the rule, whatever the order of
the merges (the pairwise version made the same groups). When it binds, which merges win
depends on the order; here it is deterministic: seeds by input index, candidates by their
group's first region. Groups come out ordered by their first region, the regions of a group
in input order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from index.dataset.records import Region
from index.imaging.geometry import Box

#: At most this many cells of the finest grid along the groups' extent (keys stay small).
MAX_CELLS_ALONG = 2**20

#: A cell range: first and last column, first and last row (inclusive).
Span = tuple[int, int, int, int]


def merge_region_groups(regions: Sequence[Region], limit: float, max_side: float) -> list[list[Region]]:
    """Group nearby regions of one label; see :func:`merge_boxes` for the rule and the order."""
    groups = merge_boxes([r.bbox for r in regions], [r.label_key for r in regions], limit, max_side)
    return [[regions[i] for i in group] for group in groups]


def merge_boxes(boxes: Sequence[Box], keys: Sequence[str], limit: float, max_side: float) -> list[list[int]]:
    """Merge boxes of one key that lie within ``limit`` of each other, under the ``max_side`` cap.

    Args:
        boxes: One box (x0, y0, x1, y1) per region.
        keys: The label key of each box; only boxes of one key merge.
        limit: Largest gap between two groups' union boxes that still merges them; 0 or less
            merges nothing.
        max_side: Largest longer side of a merged group's union box.

    Returns:
        Groups of indices into ``boxes``, ordered by their first index, ascending within a group.
    """
    if limit <= 0:
        return [[i] for i in range(len(boxes))]
    by_key: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_key.setdefault(key, []).append(i)
    groups: list[list[int]] = []
    for indices in by_key.values():
        local = _merge_one_label([boxes[i] for i in indices], limit, max_side)
        groups.extend([indices[j] for j in group] for group in local)
    groups.sort(key=lambda group: group[0])
    return groups


class _Levels:
    """Grids of doubling cell sizes, holding group ids by the cells their boxes overlap.

    A box lives in the finest level whose cell is at least its longer side, so it overlaps
    about 2 x 2 cells there, and a cell holds only boxes about its own size: a large box is
    not registered in many small cells, and small boxes do not crowd a large cell.
    """

    def __init__(self, base: float, origin: tuple[float, float], far: tuple[float, float], top: float) -> None:
        self.ox, self.oy = origin
        self.size = [base]  # cell side of each level
        while self.size[-1] < top:
            self.size.append(self.size[-1] * 2)
        self.nx = [math.floor((far[0] - self.ox) / c) + 1 for c in self.size]
        self.ny = [math.floor((far[1] - self.oy) / c) + 1 for c in self.size]
        self.offset = [0]  # cell keys: offset of the level + column * ny + row
        for nx, ny in zip(self.nx, self.ny, strict=True):
            self.offset.append(self.offset[-1] + nx * ny)
        self.cells: defaultdict[int, set[int]] = defaultdict(set)
        self.used = [0] * len(self.size)  # boxes held per level
        self.where: dict[int, tuple[int, int, int, int, int]] = {}  # id -> level and cells

    def span(self, level: int, x0: float, y0: float, x1: float, y1: float) -> Span:
        """The cells of a level a rectangle overlaps, clipped to the grid (maybe none)."""
        c, ox, oy = self.size[level], self.ox, self.oy
        return (max(0, math.floor((x0 - ox) / c)), max(0, math.floor((y0 - oy) / c)),
                min(self.nx[level] - 1, math.floor((x1 - ox) / c)),
                min(self.ny[level] - 1, math.floor((y1 - oy) / c)))

    def add_all(self, items: list[int], box: tuple[list[float], ...]) -> None:
        """Register ``items`` with their boxes (inside the grid's rectangle), all at once.

        The same arithmetic as :meth:`add`, on arrays; that matters, as a box must be found
        in exactly the cells a scan of it computes.
        """
        ids = np.array(items, dtype=np.int64)
        x0, y0, x1, y1 = (np.array(side, dtype=np.float64)[ids] for side in box)
        level = np.searchsorted(np.array(self.size), np.maximum(x1 - x0, y1 - y0), side="left")
        size = np.array(self.size)[level]
        cx0, cy0 = np.floor((x0 - self.ox) / size).astype(np.int64), np.floor((y0 - self.oy) / size).astype(np.int64)
        cx1, cy1 = np.floor((x1 - self.ox) / size).astype(np.int64), np.floor((y1 - self.oy) / size).astype(np.int64)
        ny, offset = np.array(self.ny)[level], np.array(self.offset[:-1])[level]
        keys, held = [], []
        for dx in range(int((cx1 - cx0).max()) + 1):
            for dy in range(int((cy1 - cy0).max()) + 1):
                inside = (cx0 + dx <= cx1) & (cy0 + dy <= cy1)
                keys.append((offset + (cx0 + dx) * ny + cy0 + dy)[inside])
                held.append(ids[inside])
        key, item = np.concatenate(keys), np.concatenate(held)
        order = np.argsort(key, kind="stable")
        key, item = key[order], item[order]
        cuts = np.flatnonzero(np.diff(key)) + 1
        for k, group in zip(key[np.r_[0, cuts]].tolist(), np.split(item, cuts), strict=True):
            self.cells[k].update(group.tolist())
        self.where.update(zip(items, zip(level.tolist(), cx0.tolist(), cy0.tolist(), cx1.tolist(),
                                         cy1.tolist(), strict=True), strict=True))
        for lv, count in zip(*np.unique(level, return_counts=True), strict=True):
            self.used[int(lv)] += int(count)

    def add(self, item: int, x0: float, y0: float, x1: float, y1: float) -> None:
        """Register ``item`` with its box (which lies inside the grid's rectangle)."""
        side = max(x1 - x0, y1 - y0)
        level = 0
        while self.size[level] < side:
            level += 1
        c, ox, oy = self.size[level], self.ox, self.oy
        span = (math.floor((x0 - ox) / c), math.floor((y0 - oy) / c), math.floor((x1 - ox) / c), math.floor((y1 - oy) / c))
        self.where[item] = (level, *span)
        self.used[level] += 1
        cells, ny, offset = self.cells, self.ny[level], self.offset[level]
        for cx in range(span[0], span[2] + 1):
            for key in range(offset + cx * ny + span[1], offset + cx * ny + span[3] + 1):
                cells[key].add(item)

    def remove(self, item: int) -> None:
        """Unregister ``item``."""
        level, cx0, cy0, cx1, cy1 = self.where.pop(item)
        self.used[level] -= 1
        cells, ny, offset = self.cells, self.ny[level], self.offset[level]
        for cx in range(cx0, cx1 + 1):
            for key in range(offset + cx * ny + cy0, offset + cx * ny + cy1 + 1):
                cells[key].discard(item)

    def collect(self, x0: float, y0: float, x1: float, y1: float, into: set[int]) -> None:
        """Add to ``into`` the ids of the boxes that may meet a rectangle (a superset)."""
        cells = self.cells
        for level, used in enumerate(self.used):
            if not used:
                continue
            span, ny, offset = self.span(level, x0, y0, x1, y1), self.ny[level], self.offset[level]
            for cx in range(span[0], span[2] + 1):
                for key in range(offset + cx * ny + span[1], offset + cx * ny + span[3] + 1):
                    held = cells.get(key)
                    if held:
                        into.update(held)


def _merge_one_label(boxes: list[Box], limit: float, max_side: float) -> list[list[int]]:
    """The groups of one label's boxes (indices into ``boxes``), ordered by their first index."""
    n = len(boxes)
    x0 = [float(b[0]) for b in boxes]
    y0 = [float(b[1]) for b in boxes]
    x1 = [float(b[2]) for b in boxes]
    y1 = [float(b[3]) for b in boxes]
    sides = [max(x1[i] - x0[i], y1[i] - y0[i]) for i in range(n)]
    # A box longer than the cap can never merge: any joint box holding it is longer still.
    seeds = [i for i in range(n) if sides[i] <= max_side]
    if len(seeds) < 2:
        return [[i] for i in range(n)]
    nxt, alive = _merge_seeds(seeds, (x0, y0, x1, y1), limit, max_side)
    groups = []
    for i in range(n):
        if not alive[i]:
            continue
        group, j = [i], nxt[i]
        while j >= 0:
            group.append(j)
            j = nxt[j]
        group.sort()
        groups.append(group)
    groups.sort(key=lambda group: group[0])
    return groups


def _merge_seeds(seeds: list[int], box: tuple[list[float], ...], limit: float,
                 max_side: float) -> tuple[list[int], bytearray]:
    """Merge the groups of the regions ``seeds`` (those that may merge at all).

    Slot ``i`` starts as the group of region ``i`` alone; ``box`` ends holding each surviving
    group's union box. Returns the groups as chains, the region after each one in its group
    (-1 at a chain's end), and whether each slot still holds a group (its chain starts there)
    or was absorbed into another.
    """
    x0, y0, x1, y1 = box
    n = len(x0)
    origin = (min(x0[i] for i in seeds), min(y0[i] for i in seeds))
    far = (max(x1[i] for i in seeds), max(y1[i] for i in seeds))
    extent = max(far[0] - origin[0], far[1] - origin[1])  # no box, merged or not, is longer
    grid = _Levels(min(max(limit, extent / MAX_CELLS_ALONG), extent) or 1.0, origin, far, min(max_side, extent))
    # Reach of a scan: the limit, plus a hair for rounding in the scanned rectangles (and
    # never past the groups' rectangle, whatever the limit).
    scale = max(abs(origin[0]), abs(origin[1]), abs(far[0]), abs(far[1]))
    reach = min(limit + 1e-9 * (limit + scale), 2 * extent + 1.0)
    grid.add_all(seeds, box)
    nxt = [-1] * n  # the chains of the groups' regions
    alive = bytearray(b"\x01") * n
    tail = list(range(n))  # last region of each slot's chain
    head = list(range(n))  # first region of each slot's group
    table = _Table(box, head, limit, max_side)
    hypot = math.hypot
    for s in seeds:
        if not alive[s]:
            continue  # absorbed by an earlier seed
        bx0, by0, bx1, by1 = x0[s], y0[s], x1[s], y1[s]
        refused: set[int] = set()  # refused for the cap: refused for good, as the box only grows
        scan = [(bx0 - reach, by0 - reach, bx1 + reach, by1 + reach)]
        while True:
            start = (bx0, by0, bx1, by1)
            found: set[int] = set()
            for rect in scan:
                grid.collect(*rect, found)
            found.discard(s)
            found -= refused
            for y in table.reachable(found, start, refused):
                ax0, ay0, ax1, ay1 = x0[y], y0[y], x1[y], y1[y]
                # geometry.box_gap and union_box, spelt out: this loop is the hot one
                jx0, ix0 = (ax0, bx0) if ax0 < bx0 else (bx0, ax0)
                ix1, jx1 = (ax1, bx1) if ax1 < bx1 else (bx1, ax1)
                jy0, iy0 = (ay0, by0) if ay0 < by0 else (by0, ay0)
                iy1, jy1 = (ay1, by1) if ay1 < by1 else (by1, ay1)
                dx, dy = ix0 - ix1, iy0 - iy1
                if hypot(dx if dx > 0.0 else 0.0, dy if dy > 0.0 else 0.0) > limit:
                    continue  # a hair beyond: the table's test has a tolerance, this one none
                if jx1 - jx0 > max_side or jy1 - jy0 > max_side:
                    refused.add(y)
                    continue
                bx0, by0, bx1, by1 = jx0, jy0, jx1, jy1
                grid.remove(y)
                nxt[tail[s]] = y  # y's chain goes on after s's
                tail[s] = tail[y]
                alive[y] = 0
                if head[y] < head[s]:
                    head[s] = head[y]
            if (bx0, by0, bx1, by1) == start:
                break
            scan = _grown_strips(start, (bx0, by0, bx1, by1), reach)
        if (bx0, by0, bx1, by1) != (x0[s], y0[s], x1[s], y1[s]):
            x0[s], y0[s], x1[s], y1[s] = bx0, by0, bx1, by1
            grid.remove(s)
            grid.add(s, bx0, by0, bx1, by1)
        table.update(s, (bx0, by0, bx1, by1), head[s])
    return nxt, alive


class _Table:
    """The groups' boxes and first regions as arrays, to screen a pass's candidates at once."""

    def __init__(self, box: tuple[list[float], ...], head: list[int], limit: float, max_side: float) -> None:
        self.x0, self.y0, self.x1, self.y1 = (np.array(side, dtype=np.float64) for side in box)
        self.head = np.array(head, dtype=np.int64)
        self.limit = limit * (1 + 1e-9)  # a hair over: the exact test follows, per candidate
        self.max_side = max_side

    def update(self, slot: int, box: Box, head: int) -> None:
        """A seed's group is done growing: store its union box and first region."""
        self.x0[slot], self.y0[slot], self.x1[slot], self.y1[slot] = box
        self.head[slot] = head

    def reachable(self, found: set[int], box: Box, refused: set[int]) -> list[int]:
        """The groups of ``found`` within reach of ``box`` and within the cap, by first region.

        Those beyond the cap go into ``refused``: a box that grows only makes that worse.
        """
        if not found:
            return []
        ids = np.fromiter(found, dtype=np.int64, count=len(found))
        gx0, gy0, gx1, gy1 = self.x0[ids], self.y0[ids], self.x1[ids], self.y1[ids]
        over = ((np.maximum(gx1, box[2]) - np.minimum(gx0, box[0]) > self.max_side)
                | (np.maximum(gy1, box[3]) - np.minimum(gy0, box[1]) > self.max_side))
        if over.any():
            refused.update(ids[over].tolist())
        dx = np.maximum(np.maximum(gx0, box[0]) - np.minimum(gx1, box[2]), 0.0)
        dy = np.maximum(np.maximum(gy0, box[1]) - np.minimum(gy1, box[3]), 0.0)
        keep = ids[~over & (np.hypot(dx, dy) <= self.limit)]
        return keep[np.argsort(self.head[keep], kind="stable")].tolist()


def _grown_strips(before: Box, after: Box, reach: float) -> list[Box]:
    """Rectangles that meet every group within reach of ``after`` but not of ``before``.

    Such a group lies wholly beyond a side of ``before`` that moved outwards (only there did
    the gap shrink), and within ``reach`` of ``after``: one strip per side that moved.
    """
    ox0, oy0, ox1, oy1 = after[0] - reach, after[1] - reach, after[2] + reach, after[3] + reach
    strips = []
    if after[2] > before[2]:
        strips.append((before[2], oy0, ox1, oy1))
    if after[0] < before[0]:
        strips.append((ox0, oy0, before[0], oy1))
    if after[3] > before[3]:
        strips.append((ox0, before[3], ox1, oy1))
    if after[1] < before[1]:
        strips.append((ox0, oy0, ox1, before[1]))
    return strips
