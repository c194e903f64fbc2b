"""Cutting crops out of a decoded photo and drawing annotation outlines on them."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from index.imaging.geometry import Point

# One colour per label position, readable on car paint; cycled for bigger taxonomies.
PALETTE = [
    (255, 64, 64), (255, 170, 0), (60, 200, 255), (160, 90, 255),
    (0, 220, 120), (255, 80, 200), (240, 240, 60), (255, 255, 255),
]


def label_colour(index: int) -> tuple[int, int, int]:
    """A distinct outline colour for the label at ``index`` in the taxonomy."""
    return PALETTE[index % len(PALETTE)]


def cut_crop(
    photo: Image.Image,
    crop_box: Sequence[float],
    output_size: tuple[int, int],
    photo_scale: float | tuple[float, float] = 1.0,
) -> Image.Image:
    """Cut ``crop_box`` (full-resolution source pixels) out of a decoded photo and resize it.

    Args:
        photo: The decoded photo, possibly decoded or reduced at a smaller scale.
        crop_box: x0, y0, x1, y1 in full-resolution pixels.
        output_size: Width and height of the result.
        photo_scale: Size of ``photo`` relative to the full-resolution image, one factor or
            (x, y) when rounding made the two axes differ.
    """
    sx, sy = photo_scale if isinstance(photo_scale, tuple) else (photo_scale, photo_scale)
    x0, y0, x1, y1 = crop_box
    box = (max(0.0, x0 * sx), max(0.0, y0 * sy), min(photo.width, x1 * sx), min(photo.height, y1 * sy))
    return photo.resize(output_size, Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)


def draw_outlines(
    image: Image.Image,
    polygons: Sequence[Sequence[Point]],
    colours: Sequence[tuple[int, int, int]] | tuple[int, int, int] = (255, 64, 64),
    width: int | None = None,
) -> Image.Image:
    """Return a copy of ``image`` with each polygon's outline drawn (in image pixels)."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    line = width or max(2, round(max(out.size) / 160))
    for i, polygon in enumerate(polygons):
        colour = colours if isinstance(colours, tuple) and isinstance(colours[0], int) else colours[i % len(colours)]
        if len(polygon) >= 2:
            pts = [(float(x), float(y)) for x, y in polygon]
            draw.line([*pts, pts[0]], fill=colour, width=line, joint="curve")
    return out
