"""Pixels: headers without decoding, one decoder for paths and bytes, the query photo, budgets, drawing.

Every image the project reads goes through :func:`decode_image` (reduced-scale JPEG decoding
when fewer pixels are needed, EXIF orientation, :func:`to_rgb` for any mode), so one photo
gives the same pixels in the build, in ``index search`` and in the agent's tools. Geometry
(:mod:`index.imaging.geometry`: points, boxes, polygons) is plain Python.
"""

from index.imaging.budget import fit_to_pixels, fitted_size
from index.imaging.decode import (
    ImageHeader,
    ImageReadError,
    decode_image,
    embedded_image_bytes,
    read_header,
    to_rgb,
)
from index.imaging.drawing import cut_crop, draw_outlines, label_colour
from index.imaging.geometry import Box, Point, box_iou, polygon_area
from index.imaging.query_photo import PhotoSource, QueryPhoto

__all__ = [
    "Box",
    "ImageHeader",
    "ImageReadError",
    "PhotoSource",
    "Point",
    "QueryPhoto",
    "box_iou",
    "cut_crop",
    "decode_image",
    "draw_outlines",
    "embedded_image_bytes",
    "fit_to_pixels",
    "fitted_size",
    "label_colour",
    "polygon_area",
    "read_header",
    "to_rgb",
]
