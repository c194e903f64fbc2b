"""Synthetic labelled datasets for tests, benchmarks and newcomers who have no data yet.

:func:`synthesize_labelme` writes car-panel photos with the eight kinds of vehicle damage in
the user's exact LabelMe 4.6.0 layout and naming (one folder, one JPEG and one JSON per photo,
per-vehicle groups, the user's flags); :func:`synthesize_coco` writes a COCO dataset of a
neutral domain (textured surface, generic marks, some bbox-only annotations). Every pixel a mark
changes lies inside its polygon, and the same seed always gives the same files.

Modules, each with one job:

- :mod:`~index.synth.dataset`: what both writers share (checks, scale, JPEG, summary);
- :mod:`~index.synth.plan`: vehicles, names, flags and damages of each LabelMe photo;
- :mod:`~index.synth.labelme` and :mod:`~index.synth.coco`: drawing and writing each format;
- :mod:`~index.synth.scene`: the clean background (car close-up or neutral surface);
- :mod:`~index.synth.marks`: sampling a mark (generic styles) and drawing it with its polygon;
- :mod:`~index.synth.vehicle_marks`: the eight vehicle-damage marks;
- :mod:`~index.synth.drawing` and :mod:`~index.synth.polygons`: drawing and polygon helpers.

Only numpy and Pillow are needed.
"""

from index.synth.coco import synthesize_coco
from index.synth.dataset import JPEG_QUALITY, SynthSummary, parse_size
from index.synth.labelme import labelme_document, render_labelme_photo, synthesize_labelme
from index.synth.plan import DEFAULT_LABELS, Damage, PhotoPlan, plan_labelme
from index.synth.polygons import polygon_area, polygon_mask

__all__ = [
    "DEFAULT_LABELS",
    "JPEG_QUALITY",
    "Damage",
    "PhotoPlan",
    "SynthSummary",
    "labelme_document",
    "parse_size",
    "plan_labelme",
    "polygon_area",
    "polygon_mask",
    "render_labelme_photo",
    "synthesize_coco",
    "synthesize_labelme",
]
