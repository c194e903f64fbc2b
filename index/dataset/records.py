"""Plain typed records handed from dataset adapters to region planning and the build.

Adapters produce :class:`RawImage` (the annotation as the file says it); ingestion checks it
against the image header and the taxonomy and produces :class:`ImageRecord` (what the rest of
the pipeline trusts). Anything dropped or changed on the way is an :class:`Issue`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from index.imaging.geometry import Box, Point


@dataclass(frozen=True)
class Issue:
    """Something skipped or repaired, with the file it concerns and why."""

    file: str
    reason: str  # short stable code, e.g. "corrupt_image", "unknown_label"
    message: str  # one sentence for a person

    def to_dict(self) -> dict[str, str]:
        """The issue as a JSON-ready mapping."""
        return asdict(self)


@dataclass
class RawShape:
    """One annotated shape as the annotation file gives it."""

    label: str
    shape_type: str  # polygon, rectangle, circle, line, linestrip, point, points, mask, bbox
    points: list[Point]
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawImage:
    """One image's annotation as an adapter read it, before any checking."""

    annotation_path: Path
    image_path: Path | None  # None when the file named by the annotation is missing
    image_ref: str  # the name the annotation uses for its image (imagePath / file_name)
    declared_size: tuple[int, int] | None  # (width, height) the annotation claims
    shapes: list[RawShape]
    attributes: dict[str, Any] = field(default_factory=dict)  # image-level fields
    embedded_image: bytes | None = None  # pixels carried inside the annotation (LabelMe imageData)


@dataclass
class Region:
    """One annotated region, checked: a valid polygon inside the image with a known label."""

    label_id: str
    label_key: str
    label_name: str
    shape_type: str
    polygon: list[Point]  # in the pixel frame of the decoded, EXIF-oriented image
    bbox: Box
    area: float
    attributes: dict[str, Any] = field(default_factory=dict)  # piece, pixelated_type, group_id…


@dataclass
class ImageRecord:
    """One usable image with its checked regions and attributes."""

    image_id: str  # path relative to the dataset root; unique within the dataset
    image_path: Path  # where the pixels are (the annotation file itself when embedded)
    annotation_path: Path
    width: int  # of the image after EXIF orientation, the frame polygons live in
    height: int
    exif_transpose: bool  # apply EXIF orientation when decoding
    embedded: bool  # pixels are base64 inside the annotation file
    mode: str  # PIL mode of the stored pixels (RGB, L, CMYK, I;16, RGBA…)
    regions: list[Region]
    attributes: dict[str, Any] = field(default_factory=dict)  # zone, timestamp, flags…
    vehicle_group: str = ""

    @property
    def long_side(self) -> int:
        """The image's longer side in pixels."""
        return max(self.width, self.height)

    def label_keys(self) -> list[str]:
        """Keys of the labels present, each once, in order of first appearance."""
        return list(dict.fromkeys(r.label_key for r in self.regions))


def shorten(text: object, limit: int = 120) -> str:
    """User data quoted in a message, cut to ``limit`` characters (a 5,000-character path stays readable)."""
    value = str(text)
    return value if len(value) <= limit else f"{value[: limit // 2]}…{value[-(limit // 2):]} ({len(value)} characters)"


def issue_list(issues: list[Issue]) -> list[dict[str, str]]:
    """Issues as JSON-ready mappings."""
    return [issue.to_dict() for issue in issues]
