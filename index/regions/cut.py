"""Decode a photo once and cut all its planned crops, at the least resolution they need."""

from __future__ import annotations

import hashlib
import time
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
    reduced: dict[int, tuple[Image.Image, tuple[float, float]]] = {
        1: (photo, (photo.width / record.width, photo.height / record.height))}
    for crop in crops:
        # Cut small outputs (the 1024 px whole-image node) from a box-reduced copy of the
        # photo: resampling 12 MP down to 1 MP directly costs several times more.
        factor = max(1, int(scale / needed_scale([crop]))) if needed_scale([crop]) > 0 else 1
        if factor not in reduced:
            small = photo.reduce(factor)
            reduced[factor] = (small, (small.width / record.width, small.height / record.height))
        source, source_scale = reduced[factor]
        image = cut_crop(source, crop.crop_box, crop.output_size, source_scale)
        out.append(RenderedCrop(crop, image, crop_file_name(crop, signature)))
    photo.close()
    if timings is not None:
        timings["decode"] = timings.get("decode", 0.0) + decoded - started
        timings["cut"] = timings.get("cut", 0.0) + time.perf_counter() - decoded
    if index_dir is not None:
        for rendered in out:
            save_crop(rendered, index_dir)
    return out
