"""Decode a photo once and cut all its planned crops, at the least resolution they need."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from index.dataset.records import ImageRecord, Issue
from index.files import atomic_write
from index.imaging.decode import ImageReadError, decode_image
from index.imaging.drawing import cut_crop
from index.regions.plan import RegionCrop

_SAMPLE = 64 * 1024


@dataclass
class RenderedCrop:
    """A planned crop with its pixels, and where the build stores it."""

    crop: RegionCrop
    image: Image.Image
    relative_path: str  # crop JPEG path relative to the index directory


def needed_scale(crops: list[RegionCrop]) -> float:
    """The least fraction of full resolution that gives every crop its output pixels."""
    scale = 0.0
    for crop in crops:
        x0, y0, x1, y1 = crop.crop_box
        scale = max(scale, crop.output_size[0] / max(1, x1 - x0), crop.output_size[1] / max(1, y1 - y0))
    return min(1.0, scale)


def pixel_signature(record: ImageRecord) -> str:
    """A cheap content hash of the photo: its size plus its first and last 64 KiB.

    Reading whole 12 MP files to hash them would cost as much as decoding them; a replaced or
    re-exported photo changes its size, header or tail.
    """
    return file_signature(record.image_path)


def file_signature(path: str | Path) -> str:
    """:func:`pixel_signature` of any file: one open, at most two 64 KiB reads."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(0)
        head = handle.read(_SAMPLE)
        tail = b""
        if size > _SAMPLE:
            handle.seek(max(_SAMPLE, size - _SAMPLE))
            tail = handle.read(_SAMPLE)
    return _signature(size, head, tail)


def bytes_signature(data: bytes) -> str:
    """:func:`pixel_signature` of a photo given as encoded bytes (equal to that of its file)."""
    size = len(data)
    return _signature(size, data[:_SAMPLE], data[max(_SAMPLE, size - _SAMPLE):] if size > _SAMPLE else b"")


def _signature(size: int, head: bytes, tail: bytes) -> str:
    digest = hashlib.sha1()
    digest.update(str(size).encode())
    digest.update(head)
    digest.update(tail)
    return digest.hexdigest()


def crop_file_name(crop: RegionCrop, signature: str) -> str:
    """Stored crop path: content-addressed, so a rebuild never overwrites a live crop."""
    return f"crops/{crop.node_id}_{signature[:8]}.jpg"


def save_crop(rendered: RenderedCrop, index_dir: Path) -> None:
    """Write one rendered crop as its JPEG under ``index_dir`` (atomically), unless it is there."""
    target = index_dir / rendered.relative_path
    if not target.exists():
        atomic_write(target, lambda tmp: rendered.image.save(tmp, "JPEG", quality=90))


_Source = tuple[Image.Image, tuple[float, float], tuple[int, int]]


def _reduced_sources(
    photo: Image.Image, crops: list[RegionCrop], scale: float, full_size: tuple[int, int],
) -> Callable[[RegionCrop], _Source]:
    """For each crop, the pixels to cut it from: the photo itself or a box-reduced copy.

    Small outputs (the 1024 px whole-image node) are cut from ``photo.reduce(k)``: resampling
    12 MP down to 1 MP directly costs several times more. A factor wanted by crops covering
    at least half the photo reduces the whole photo once, shared by them; otherwise each crop
    reduces only its own box (plus a margin for the resampling filter), on the same k-pixel
    grid as the whole-photo reduction, so its pixels are the same either way.

    Returns:
        A function giving a crop's source image, its scale relative to full resolution
        (x, y) and the offset (in source pixels) of its top-left corner.
    """
    full_w, full_h = full_size
    sx1, sy1 = photo.width / full_w, photo.height / full_h

    def factor_of(crop: RegionCrop) -> int:
        need = needed_scale([crop])
        return max(1, int(scale / need)) if need > 0 else 1

    covered: dict[int, float] = {}
    for crop in crops:
        x0, y0, x1, y1 = crop.crop_box
        covered[factor_of(crop)] = covered.get(factor_of(crop), 0.0) + (x1 - x0) * (y1 - y0)
    whole: dict[int, _Source] = {1: (photo, (sx1, sy1), (0, 0))}

    def source(crop: RegionCrop) -> _Source:
        factor = factor_of(crop)
        if factor in whole:
            return whole[factor]
        if covered[factor] >= 0.5 * full_w * full_h:
            small = photo.reduce(factor)
            whole[factor] = (small, (small.width / full_w, small.height / full_h), (0, 0))
            return whole[factor]
        # The reduced grid's size and scale are those of photo.reduce(factor), whole.
        rw, rh = -(-photo.width // factor), -(-photo.height // factor)
        rsx, rsy = rw / full_w, rh / full_h
        x0, y0, x1, y1 = crop.crop_box
        ratio = max((x1 - x0) * rsx / crop.output_size[0], (y1 - y0) * rsy / crop.output_size[1])
        margin = 2 + math.ceil(ratio)
        a0, b0 = max(0, int(x0 * rsx) - margin), max(0, int(y0 * rsy) - margin)
        a1, b1 = min(rw, math.ceil(x1 * rsx) + margin), min(rh, math.ceil(y1 * rsy) + margin)
        box = (a0 * factor, b0 * factor, min(photo.width, a1 * factor), min(photo.height, b1 * factor))
        return photo.reduce(factor, box=box), (rsx, rsy), (a0, b0)

    return source


def _cut(source: Image.Image, crop: RegionCrop, source_scale: tuple[float, float], offset: tuple[int, int]) -> Image.Image:
    """:func:`cut_crop` from a source whose top-left corner is ``offset`` pixels into the reduced photo."""
    if offset == (0, 0):
        return cut_crop(source, crop.crop_box, crop.output_size, source_scale)
    sx, sy = source_scale
    ox, oy = offset
    x0, y0, x1, y1 = crop.crop_box
    box = (max(0.0, x0 * sx) - ox, max(0.0, y0 * sy) - oy, x1 * sx - ox, y1 * sy - oy)
    box = (box[0], box[1], min(source.width, box[2]), min(source.height, box[3]))
    return source.resize(crop.output_size, Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)


def render_photo(
    record: ImageRecord, crops: list[RegionCrop], signature: str, index_dir: Path | None = None,
    timings: dict[str, float] | None = None,
) -> list[RenderedCrop] | Issue:
    """Decode ``record``'s photo once and cut (and optionally store) all its crops.

    Args:
        record: The image.
        crops: Its planned crops.
        signature: The image's signature (names the stored crop files).
        index_dir: When given, each crop is written as a JPEG under ``index_dir/crops``
            (:func:`save_crop`; a build writes them in a thread of its own instead).
        timings: When given, the seconds spent decoding and cutting are added to its
            ``"decode"`` and ``"cut"`` entries.

    Returns:
        The rendered crops, or an issue naming the file when it cannot be decoded.
    """
    started = time.perf_counter()
    try:
        photo, scale = decode_image(
            record.image_path, embedded=record.embedded, exif_transpose=record.exif_transpose,
            min_scale=needed_scale(crops),
        )
    except ImageReadError as exc:
        return Issue(str(record.image_path), "corrupt_image", f"{exc}.")
    decoded = time.perf_counter()
    out = []
    sources = _reduced_sources(photo, crops, scale, (record.width, record.height))
    for crop in crops:
        source, source_scale, offset = sources(crop)
        image = _cut(source, crop, source_scale, offset)
        out.append(RenderedCrop(crop, image, crop_file_name(crop, signature)))
    photo.close()
    if timings is not None:
        timings["decode"] = timings.get("decode", 0.0) + decoded - started
        timings["cut"] = timings.get("cut", 0.0) + time.perf_counter() - decoded
    if index_dir is not None:
        for rendered in out:
            save_crop(rendered, index_dir)
    return out
