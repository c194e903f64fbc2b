"""Which pixels to embed: plan the crops of a photo, cut them from one decode, draw a contact sheet.

Planning (:func:`plan_crops`) is pure geometry over the annotations: region crops around
each (merged) annotation with context, the whole photo, background and optional tiles, as
typed :class:`RegionCrop` records that become LlamaIndex ``ImageNode`` s. Cutting
(:func:`render_photo`) decodes each photo once, at the least JPEG scale its crops need.
"""

from index.regions.contact_sheet import render_contact_sheet
from index.regions.cut import (
    RenderedCrop,
    crop_file_name,
    needed_scale,
    pixel_signature,
    render_photo,
)
from index.regions.plan import RegionCrop, describe, merge_regions, plan_crops

__all__ = [
    "RegionCrop",
    "RenderedCrop",
    "crop_file_name",
    "describe",
    "merge_regions",
    "needed_scale",
    "pixel_signature",
    "plan_crops",
    "render_contact_sheet",
    "render_photo",
]
