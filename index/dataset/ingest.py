"""Read a dataset into checked :class:`ImageRecord`s, naming every skip and repair.

Format-specific reading lives in :mod:`index.dataset.adapters`; everything that must hold for any
format lives here: the image header agrees with the annotation (EXIF orientation, rescaled
copies), labels belong to the taxonomy, polygons are polygons inside the image, flags and
attributes parsed from names, and photos grouped by vehicle.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from index.config import DatasetConfig, DomainConfig
from index.dataset.adapters import load_adapter
from index.dataset.adapters.base import inside_folder
from index.dataset.records import ImageRecord, Issue, RawImage, RawShape, Region, shorten
from index.imaging import geometry
from index.imaging.decode import ImageReadError, ImageTooLargeError, decode_image, read_header
from index.taxonomy import LabelTaxonomy

logger = logging.getLogger(__name__)

_AREA_SHAPES = {"polygon", "rectangle", "circle", "mask", "bbox"}
_LINE_SHAPES = {"line", "linestrip", "point", "points"}
_FARTHEST = 1e9  # pixels: a coordinate beyond this is corrupt, not an annotation


@dataclass
class DatasetScan:
    """The outcome of reading a dataset: usable records and everything set aside."""

    records: list[ImageRecord]
    skipped: list[Issue] = field(default_factory=list)
    repaired: list[Issue] = field(default_factory=list)
    annotation_items: int = 0
    seconds: float = 0.0


def read_dataset(
    config: DomainConfig,
    *,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> DatasetScan:
    """Read and check every annotated image of the configured dataset.

    Args:
        config: The domain configuration (dataset section and taxonomy are used).
        progress: Called with the number of items just read, for progress bars.
        total: Called once with the number of items to read.

    Returns:
        The records that passed, with skips and repairs. Nothing here decodes pixels unless
        ``config.dataset.verify_pixels`` is set.

    Raises:
        AdapterError: If the dataset folder or its format cannot be read at all.
    """
    started = time.perf_counter()
    adapter = load_adapter(config.dataset)
    if total:
        total(adapter.count())
    scan = DatasetScan(records=[])
    root = Path(config.dataset.root)
    for item in adapter.read(progress):
        if isinstance(item, Issue):
            scan.skipped.append(item)
            continue
        scan.annotation_items += 1
        record = check_image(item, root, config.dataset, config.taxonomy, scan)
        if record is not None:
            scan.records.append(record)
    assign_vehicle_groups(scan.records, config.dataset)
    scan.seconds = time.perf_counter() - started
    logger.info(
        "read %d images (%d skipped, %d repaired) in %.2fs",
        len(scan.records), len(scan.skipped), len(scan.repaired), scan.seconds,
    )
    return scan


def check_image(
    raw: RawImage, root: Path, dataset: DatasetConfig, taxonomy: LabelTaxonomy, scan: DatasetScan
) -> ImageRecord | None:
    """Turn one raw annotation into a record, or None; issues go into ``scan``."""
    ann = str(raw.annotation_path)
    flags = _flags(raw.attributes, dataset)
    if flags.get("incorrect") and dataset.exclude_incorrect:
        scan.skipped.append(Issue(ann, "marked_incorrect", f"{raw.annotation_path.name} is marked incorrect; excluded (dataset.exclude_incorrect)."))
        return None
    embedded = raw.image_path is None
    pixel_file = raw.annotation_path if embedded else raw.image_path
    assert pixel_file is not None
    if not dataset.allow_outside_root and not inside_folder(pixel_file, root):
        scan.skipped.append(Issue(ann, "outside_dataset", f"{raw.annotation_path.name} names image '{shorten(raw.image_ref)}', "
                                  f"which is outside the dataset folder {root}; skipped (dataset.allow_outside_root)."))
        return None
    shown = pixel_file.name if not embedded else f"{raw.annotation_path.name} (embedded imageData)"
    try:
        header = read_header(raw.embedded_image if embedded else pixel_file, name=shown)
        if header.width * header.height > dataset.max_image_pixels:
            raise ImageTooLargeError(f"{shown} is {header.width}x{header.height}")
        if header.truncated:
            scan.skipped.append(Issue(str(pixel_file), "truncated_image", f"{shown} is truncated (no end-of-image marker)."))
            return None
        if dataset.verify_pixels:
            decode_image(pixel_file, embedded=embedded, max_pixels=dataset.max_image_pixels)
    except ImageTooLargeError as exc:
        scan.skipped.append(Issue(str(pixel_file), "too_many_pixels", f"{exc}, more than dataset.max_image_pixels "
                                  f"({dataset.max_image_pixels / 1e6:g} MP); skipped without decoding."))
        return None
    except ImageReadError as exc:
        scan.skipped.append(Issue(str(pixel_file), "corrupt_image", f"{exc}."))
        return None
    if "_declared_size_error" in raw.attributes:
        scan.repaired.append(Issue(ann, "malformed_size", f"{raw.annotation_path.name}: {raw.attributes['_declared_size_error']}; "
                                   f"the image's own size ({header.width}x{header.height}) used."))
    frame = _resolve_frame(raw, header, shown, scan)
    if frame is None:
        return None
    width, height, transpose, scale = frame
    if header.mode not in ("RGB", "L"):
        scan.repaired.append(Issue(str(pixel_file), "converted_mode", f"{shown} is {header.mode}; converted to 8-bit RGB when decoded."))
    regions = []
    for index, shape in enumerate(raw.shapes):
        region = _check_shape(shape, index, raw.annotation_path, width, height, scale, dataset, taxonomy, scan)
        if region is not None:
            regions.append(region)
    image_id = _image_id(pixel_file, root, embedded)
    attributes = {**_parse_fields(raw, pixel_file, root, dataset), **flags}
    for key in ("root", "split"):
        if key in raw.attributes:
            attributes.setdefault(key, raw.attributes[key])
    if "flags" in raw.attributes:
        attributes["flags"] = raw.attributes["flags"]
    return ImageRecord(
        image_id=image_id,
        image_path=pixel_file,
        annotation_path=raw.annotation_path,
        width=width,
        height=height,
        exif_transpose=transpose,
        embedded=embedded,
        mode=header.mode,
        regions=regions,
        attributes=attributes,
    )


def _flags(attributes: dict[str, Any], dataset: DatasetConfig) -> dict[str, bool]:
    out = {}
    for canonical, source in dataset.flag_fields.items():
        value = attributes.get(source)
        if isinstance(value, str):
            value = value.strip().lower() in ("1", "true", "yes", "si", "sí")
        out[canonical] = bool(value)
    return out


def _resolve_frame(raw: RawImage, header, shown: str, scan: DatasetScan) -> tuple[int, int, bool, float] | None:
    """Which pixel frame the annotation lives in: (width, height, exif_transpose, scale)."""
    oriented = header.oriented_size
    stored = (header.width, header.height)
    declared = raw.declared_size
    if declared is None or declared == oriented:
        return (*oriented, True, 1.0)
    file = str(raw.annotation_path)
    if declared == stored:
        scan.repaired.append(Issue(file, "exif_ignored", f"{raw.annotation_path.name}: annotations match the stored {stored[0]}x{stored[1]} pixels of {shown}, not its EXIF-rotated frame; EXIF orientation not applied."))
        return (*stored, False, 1.0)
    for size, transpose in ((oriented, True), (stored, False)):
        sx, sy = size[0] / declared[0], size[1] / declared[1]
        if abs(sx - sy) <= 0.01 * max(sx, sy):
            scan.repaired.append(Issue(file, "rescaled", f"{raw.annotation_path.name} was drawn on a {declared[0]}x{declared[1]} copy of {shown} ({size[0]}x{size[1]}); polygons scaled by {sx:.4g}."))
            return (*size, transpose, sx)
    scan.skipped.append(Issue(file, "size_mismatch", f"{raw.annotation_path.name} says {declared[0]}x{declared[1]} but {shown} is {oriented[0]}x{oriented[1]}, a different shape; skipped."))
    return None


def _check_shape(
    shape: RawShape, index: int, ann_path: Path, width: int, height: int, scale: float,
    dataset: DatasetConfig, taxonomy: LabelTaxonomy, scan: DatasetScan,
) -> Region | None:
    file, where = str(ann_path), f"{ann_path.name} shape {index} (label '{shorten(shape.label, 60)}')"
    if "_error" in shape.attributes:
        scan.skipped.append(Issue(file, "malformed_shape", f"{where} has {shape.attributes['_error']}."))
        return None
    label = taxonomy.by_id(shape.label) or taxonomy.find(shape.label)
    if label is None:
        scan.skipped.append(Issue(file, "unknown_label", f"{where}: label not in the taxonomy ({', '.join(taxonomy.label_keys())})."))
        return None
    if not all(math.isfinite(v) and abs(v) <= _FARTHEST for point in shape.points for v in point):
        scan.skipped.append(Issue(file, "malformed_shape", f"{where} has a coordinate that is not a finite number "
                                  "of pixels (NaN, infinity or beyond 1e9)."))
        return None
    points = [(x * scale, y * scale) for x, y in shape.points]
    kind = shape.shape_type
    if kind in ("rectangle", "mask", "bbox") and len(points) == 2:
        polygon = geometry.rectangle_polygon(points[0], points[1])
    elif kind == "circle" and len(points) == 2:
        polygon = geometry.circle_polygon(points[0], points[1])
    elif kind in _LINE_SHAPES and points:
        polygon = geometry.ribbon_polygon(points, dataset.line_width * max(width, height) / 2)
    elif kind in _AREA_SHAPES:
        polygon = points
    else:
        scan.skipped.append(Issue(file, "unsupported_shape", f"{where} is a '{kind}' with {len(points)} points, which has no area we can crop."))
        return None
    if len(polygon) < 3:
        scan.skipped.append(Issue(file, "degenerate_polygon", f"{where} has {len(polygon)} points; a polygon needs 3."))
        return None
    if geometry.polygon_area(polygon) <= 0:
        scan.skipped.append(Issue(file, "zero_area", f"{where} has zero area."))
        return None
    x0, y0, x1, y1 = geometry.bounding_box(polygon)
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        clipped = geometry.clip_polygon(polygon, width, height)
        if len(clipped) < 3 or geometry.polygon_area(clipped) <= 0:
            scan.skipped.append(Issue(file, "outside_image", f"{where} lies outside the {width}x{height} image."))
            return None
        scan.repaired.append(Issue(file, "clipped_to_image", f"{where} had points outside the {width}x{height} image; clipped to it."))
        polygon = clipped
    polygon = [(round(x, 1), round(y, 1)) for x, y in polygon]
    return Region(
        label_id=label.id,
        label_key=label.key,
        label_name=label.name,
        shape_type=kind,
        polygon=polygon,
        bbox=geometry.bounding_box(polygon),
        area=geometry.polygon_area(polygon),
        attributes={k: v for k, v in shape.attributes.items() if not k.startswith("_")},
    )


def _image_id(pixel_file: Path, root: Path, embedded: bool) -> str:
    try:
        rel = pixel_file.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = pixel_file.as_posix()
    return f"{rel}#imageData" if embedded else rel


def _parse_fields(raw: RawImage, pixel_file: Path, root: Path, dataset: DatasetConfig) -> dict[str, Any]:
    sources = {
        "image_name": raw.image_ref.replace("\\", "/").rsplit("/", 1)[-1] or pixel_file.name,
        "annotation_name": raw.annotation_path.name,
        "image_path": _image_id(pixel_file, root, False),
    }
    out: dict[str, Any] = {}
    for spec in dataset.fields:
        text = sources.get(spec.source)
        if text is None:
            value = raw.attributes.get(spec.source)
            text = str(value) if value is not None else None
        if not text:
            continue
        match = re.search(spec.pattern, text)
        if match:
            for key, value in match.groupdict().items():
                if value is not None:
                    out.setdefault(key, value)
    return out


def _timestamp_seconds(value: Any, unit: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number / 1000.0 if unit == "ms" else number


def assign_vehicle_groups(records: list[ImageRecord], dataset: DatasetConfig) -> None:
    """Set ``vehicle_group`` on every record from the configured key and time window.

    Photos with one key are sorted by time; a gap longer than the window starts a new group.
    A key that cannot be filled (a missing attribute) makes the photo its own group.
    """
    spec = dataset.vehicle
    by_key: dict[str, list[tuple[float | None, ImageRecord]]] = {}
    for record in records:
        values = {"image_id": record.image_id, **{k: v for k, v in record.attributes.items()}}
        try:
            key = spec.key.format(**values)
        except (KeyError, IndexError, ValueError):
            key = record.image_id
        when = _timestamp_seconds(record.attributes.get(spec.time_field), spec.time_unit) if spec.time_field else None
        if when is not None:
            record.attributes["captured_at"] = datetime.fromtimestamp(when, tz=timezone.utc).isoformat()
        by_key.setdefault(key, []).append((when, record))
    for key, members in by_key.items():
        if spec.time_field is None:
            for _, record in members:
                record.vehicle_group = key
            continue
        members.sort(key=lambda m: (m[0] is None, m[0] or 0.0, m[1].image_id))
        group_index, previous = 0, None
        for when, record in members:
            if when is None:
                record.vehicle_group = f"{key}@{record.image_id}"
                continue
            if previous is not None and when - previous > spec.window_s:
                group_index += 1
            previous = when
            record.vehicle_group = f"{key}#{group_index}"
