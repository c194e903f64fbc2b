"""Tool: a high-resolution crop of the query photo."""

# No `from __future__ import annotations`: the signature is shown to the model as written.

from index.imaging.budget import fitted_size
from tools.arguments import coerce_box
from tools.boxes import box_from_qwen
from tools.context import ToolContext
from tools.recording import tool_function
from tools.results import ShownImage, ToolResult

MIN_ZOOM_SIDE = 32  # below one Qwen3-VL token a crop is useless; small boxes are enlarged to this


def zoom_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """Output size of a zoom on a ``width`` x ``height`` pixel box.

    Native resolution when it fits ``max_pixels``, else downscaled into it; a box thinner than
    :data:`MIN_ZOOM_SIDE` is enlarged so its short side reaches it (still within budget).
    """
    out = fitted_size(width, height, max_pixels)
    if min(out) < MIN_ZOOM_SIDE:
        factor = MIN_ZOOM_SIDE / min(width, height)
        out = fitted_size(round(width * factor), round(height * factor), max_pixels)
    return out


@tool_function("zoom")
def zoom(ctx: ToolContext, region: list[int]) -> ToolResult:
    """Look closer at part of the query photo: returns a high-resolution crop of the box.

    Use it when a detail is too small to judge in the photo you were shown (fine scratches, cracks, gaps between panels). The crop is shown after the tool results. Boxes in later calls still refer to the whole photo, not to this crop.

    Args:
        region (list of 4 ints): box [x1, y1, x2, y2] in 0-1000 coordinates of the photo you were shown, e.g. [100, 450, 380, 700].
    """
    box = coerce_box(region, "region", required=True)
    assert box is not None
    photo = ctx.require_photo()
    x0, y0, x1, y1 = box_from_qwen(box, photo.width, photo.height)
    width, height = x1 - x0, y1 - y0
    out = zoom_size(width, height, ctx.model.zoom_max_pixels)
    image, decode_scale = photo.crop((x0, y0, x1, y1), out)
    scale = out[0] / width
    shown_scale = fitted_size(photo.width, photo.height, ctx.model.query_max_pixels)[0] / photo.width
    shown_box = [int(v) if float(v).is_integer() else v for v in box]
    text = (
        f"Zoom into region {shown_box} of the query photo: pixels ({x0}, {y0})-({x1}, {y1}) of the "
        f"{photo.width}x{photo.height} original, shown at {out[0]}x{out[1]} (scale {scale:.2f} of original "
        f"pixels, {scale / shown_scale:.1f}x the detail of the photo you were shown). "
        "The crop is shown after the tool results."
    )
    caption = f"Zoom · region {shown_box} · pixels ({x0}, {y0})-({x1}, {y1}) · scale {scale:.2f}"
    return ToolResult(
        text=text,
        images=[ShownImage(caption=caption, image=image)],
        data={
            "arguments": {"region": box},
            "box_px": [x0, y0, x1, y1],
            "size": list(out),
            "scale": round(scale, 4),
            "decode_scale": decode_scale,
        },
    )
