"""Showing retrieved examples: the stored crop with its annotation outlined, captioned, in budget.

Only the small crop JPEG the index stored is read, never the 12 MP source photo.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PIL import Image

from index.imaging.budget import fit_to_pixels
from index.imaging.decode import to_rgb
from index.imaging.drawing import draw_outlines
from index.search import Hit
from tools.context import ToolContext
from tools.results import ShownImage

logger = logging.getLogger(__name__)


def _polygon_key(polygon: list[list[float]]) -> tuple[tuple[float, float], ...]:
    return tuple((round(float(x), 2), round(float(y), 2)) for x, y in polygon)


def photo_annotations(ctx: ToolContext, image_id: str | None) -> list[tuple[list[list[float]], str | None]]:
    """Every annotated polygon of one photo with its label key, from the photo's region nodes.

    Reads node metadata only (one filtered look-up), never the photo.
    """
    if image_id is None:
        return []
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

    siblings = ctx.index.store.get_nodes(
        filters=MetadataFilters(filters=[
            MetadataFilter(key="image_id", value=image_id),
            MetadataFilter(key="kind", value="region"),
        ])
    )
    out: list[tuple[list[list[float]], str | None]] = []
    for node in sorted(siblings, key=lambda n: n.node_id):
        for polygon in node.metadata.get("polygons") or []:
            out.append((polygon, node.metadata.get("label")))
    return out


def polygon_labels(ctx: ToolContext, metadata: dict[str, Any]) -> list[str | None]:
    """The label key of each polygon of a node, aligned with ``metadata['polygons']``.

    Region nodes hold one label. A whole-image node with several labels does not record which
    polygon is which, so its photo's region nodes (one label each) are looked up by polygon;
    a polygon found nowhere gets None.
    """
    polygons = metadata.get("polygons") or []
    per_polygon = metadata.get("polygon_labels")
    if isinstance(per_polygon, list) and len(per_polygon) == len(polygons):
        return list(per_polygon)
    if metadata.get("label"):
        return [metadata["label"]] * len(polygons)
    labels = metadata.get("labels") or []
    if len(labels) == 1:
        return [labels[0]] * len(polygons)
    if not polygons:
        return []
    table = {_polygon_key(p): label for p, label in photo_annotations(ctx, metadata.get("image_id"))}
    return [table.get(_polygon_key(p)) for p in polygons]


def annotations_in_crop(ctx: ToolContext, metadata: dict[str, Any]) -> list[tuple[list[list[float]], str | None]]:
    """The polygons to outline on a node's crop, with their label keys.

    The node's own polygons, plus, for a crop (not a whole image), the photo's other annotated
    polygons that reach into the crop: a neighbouring scratch left unmarked would read as
    undamaged paint.
    """
    own = list(zip(metadata.get("polygons") or [], polygon_labels(ctx, metadata), strict=True))
    if metadata.get("kind") == "image" or not metadata.get("crop_box"):
        return own
    x0, y0, x1, y1 = metadata["crop_box"]
    seen = {_polygon_key(p) for p, _ in own}
    for polygon, label in photo_annotations(ctx, metadata.get("image_id")):
        key = _polygon_key(polygon)
        if key in seen or not polygon:
            continue
        xs, ys = [pt[0] for pt in polygon], [pt[1] for pt in polygon]
        if max(xs) > x0 and min(xs) < x1 and max(ys) > y0 and min(ys) < y1:
            own.append((polygon, label))
            seen.add(key)
    return own


def polygons_in_image(
    polygons: list[list[list[float]]], crop_box: list[int], size: tuple[int, int]
) -> list[list[tuple[float, float]]]:
    """Polygons (source pixels) mapped into an image of ``size`` showing ``crop_box``.

    ``(x - crop_x0) * width / crop_width``, as :meth:`index.regions.plan.RegionCrop.polygons_in_crop`.
    """
    x0, y0, x1, y1 = crop_box
    sx = size[0] / max(1, x1 - x0)
    sy = size[1] / max(1, y1 - y0)
    return [[((x - x0) * sx, (y - y0) * sy) for x, y in polygon] for polygon in polygons]


def format_size(area_fraction: float) -> str:
    """'0.98% of photo' style size."""
    return f"{area_fraction * 100:.2g}% of photo"


def label_text(hit: Hit) -> str:
    """The hit's label key, or its keys joined by '+', or 'no damage'."""
    if hit.label:
        return hit.label
    return "+".join(hit.labels) if hit.labels else "no damage"


def _fields(hit: Hit, number: int, with_similarity: bool) -> list[str]:
    parts = [f"Example {number}", f"id {hit.id}", label_text(hit)]
    if with_similarity:
        parts.append(f"similarity {hit.similarity:.2f}")
    parts.append(f"zone {hit.zone}" if hit.zone else "zone unknown")
    parts.append(format_size(hit.area_fraction))
    return parts


def example_line(hit: Hit, number: int, with_similarity: bool = True) -> str:
    """One text line for the model: number, id, label, similarity, zone, size, description."""
    return " · ".join(_fields(hit, number, with_similarity)) + f" — {hit.description}"


def _stored_crop(hit: Hit) -> Image.Image | None:
    """The hit's stored crop as RGB, or None (logged by node id and file name, never the full
    path) when it has none, is missing or is not a readable image. ``hit.crop_path`` is already
    confined to the index directory (:meth:`index.search.DamageIndex.search`)."""
    if not hit.crop_path:
        logger.debug("example %s has no stored crop; shown as text only", hit.id)
        return None
    path = Path(hit.crop_path)
    if not path.is_file():
        logger.warning("example %s: its stored crop %s is missing; shown as text only", hit.id, path.name)
        return None
    try:
        with Image.open(path) as stored:
            stored.load()
            return to_rgb(stored)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        logger.warning("example %s: its stored crop %s is not a readable image (%s); shown as text only",
                       hit.id, path.name, type(exc).__name__)
        return None


def render_example(
    ctx: ToolContext, hit: Hit, number: int, with_similarity: bool = True
) -> tuple[ShownImage | None, list[str]]:
    """The stored crop of ``hit`` with the annotations in it outlined in their labels' colours.

    Downscaled to ``ctx.model.example_max_pixels`` first, then outlined (lines stay crisp).

    Returns:
        The image (None, logged, when the crop file is missing or unreadable) and the label keys
        outlined.
    """
    crop = _stored_crop(hit)
    if crop is None:
        return None, []
    shown = fit_to_pixels(crop, ctx.model.example_max_pixels)
    metadata = hit.metadata
    drawn: list[str] = []
    annotations = annotations_in_crop(ctx, metadata) if metadata.get("crop_box") else []
    if annotations:
        polygons = polygons_in_image([p for p, _ in annotations], metadata["crop_box"], shown.size)
        shown = draw_outlines(shown, polygons, [ctx.colour_of(label) for _, label in annotations])
        drawn = [label for _, label in annotations if label]
    caption = " · ".join(_fields(hit, number, with_similarity))
    return ShownImage(caption=caption, image=shown, node_id=hit.id), list(dict.fromkeys(drawn))


def present_examples(
    ctx: ToolContext, hits: list[Hit], with_similarity: bool = True
) -> tuple[list[str], list[ShownImage], str]:
    """Text lines, images and the outline-colour legend for hits; records ``ctx.examples_used``."""
    numbers = ctx.use_examples([hit.id for hit in hits])
    lines, images, drawn = [], [], []
    for hit, number in zip(hits, numbers, strict=True):
        line = example_line(hit, number, with_similarity)
        shown, labels = render_example(ctx, hit, number, with_similarity)
        if shown is None:
            line += " (image unavailable)"
        else:
            images.append(shown)
            drawn.extend(labels)
        lines.append(line)
    return lines, images, outline_legend(ctx, list(dict.fromkeys(drawn)))


_COLOUR_NAMES = {
    (255, 64, 64): "red", (255, 170, 0): "orange", (60, 200, 255): "light blue", (160, 90, 255): "purple",
    (0, 220, 120): "green", (255, 80, 200): "pink", (240, 240, 60): "yellow", (255, 255, 255): "white",
}


def outline_legend(ctx: ToolContext, label_keys: list[str]) -> str:
    """'Outlines: scratch red, dent orange.' for the labels outlined on the images."""
    if not label_keys:
        return ""
    named = []
    for key in label_keys:
        colour = ctx.colour_of(key)
        named.append(f"{key} {_COLOUR_NAMES.get(colour, 'rgb' + str(colour))}")
    return "Outlines: " + ", ".join(named) + "."
