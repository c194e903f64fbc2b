"""What the LabelMe and COCO writers share: argument checks, image scale, label spreading,
JPEG output and the :class:`SynthSummary` they return."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

JPEG_QUALITY = 85
MIN_SIDE = 64


@dataclass
class SynthSummary:
    """What a synthesis run wrote.

    ``label_counts`` counts shapes (LabelMe) or annotations (COCO) per label, every requested
    label included; ``vehicles`` gives, for LabelMe, the vehicle index of each image.
    """

    out_dir: Path
    images: list[Path]
    annotation_files: list[Path]
    label_counts: dict[str, int]
    seconds: float
    vehicles: list[int] = field(default_factory=list)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / len(self.images) if self.images else 0.0


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"4000x3000"`` (also ``X`` or ``×``, spaces allowed) into ``(width, height)``."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"invalid size {text!r}: expected WIDTHxHEIGHT, e.g. '4000x3000'")
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0:
        raise ValueError(f"invalid size {text!r}: width and height must be positive")
    return w, h


def check_request(n: int, size: tuple[int, int], labels: Sequence[str], what: str) -> None:
    """Raise ``ValueError`` unless ``n``, ``size`` and ``labels`` (called ``what``) are usable."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if len(size) != 2 or min(size) < MIN_SIDE:
        raise ValueError(f"size must be (width, height) with both >= {MIN_SIDE}, got {size}")
    if not labels:
        raise ValueError(f"{what} must not be empty")
    if len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
        raise ValueError(f"{what} must be distinct non-empty strings, got {list(labels)}")


def image_scale(size: tuple[int, int]) -> float:
    """Image scale relative to the user's 4000×3000 photos."""
    return math.sqrt(size[0] * size[1] / 12e6)


def spread_labels(n: int, labels: Sequence[str], rng: np.random.Generator
                  ) -> tuple[set[int], Iterator[str]]:
    """Choose which of ``n`` images stay unmarked and the primary label of the others.

    About 10 % stay unmarked, but never so many that a label could go missing; the primaries
    cover every label once per cycle, in shuffled order, so every label appears when
    ``n >= len(labels)``. Returns (indices of the unmarked images, primaries in image order).
    """
    n_empty = min(round(0.1 * n), max(0, n - len(labels)))
    empty = set(rng.choice(n, n_empty, replace=False).tolist()) if n_empty else set()
    count = n - n_empty
    primaries: list[str] = []
    while len(primaries) < count:
        primaries += [labels[i] for i in rng.permutation(len(labels))]
    return empty, iter(primaries[:count])


def save_jpeg(image: Image.Image, path: Path) -> None:
    image.save(path, "JPEG", quality=JPEG_QUALITY)
