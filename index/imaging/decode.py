"""Reading images: headers without pixels, and decoding only as many pixels as needed.

Sizes, EXIF orientation and pixel mode come from the file header, and a truncated JPEG is
usually told by its missing end marker, so reading a dataset never decodes a 12 MP photo.
Decoding uses Pillow's DCT scaling (``Image.draft``) when the caller needs fewer pixels.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from index.errors import DamageRagError

logger = logging.getLogger(__name__)

EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}
Image.MAX_IMAGE_PIXELS = 250_000_000  # 12 MP photos are normal; keep Pillow's bomb guard above that
# Callers check sizes themselves (dataset.max_image_pixels); Pillow's warning would only be noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageReadError(DamageRagError):
    """An image that cannot be read; the message names the file and the cause."""


class ImageTooLargeError(ImageReadError):
    """An image whose header declares more pixels than the caller allows (never decoded)."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, without decoding pixels."""

    width: int  # as stored
    height: int
    orientation: int  # EXIF orientation tag, 1 when absent
    mode: str
    format: str
    truncated: bool  # the file ends before its end-of-image marker

    @property
    def oriented_size(self) -> tuple[int, int]:
        """(width, height) after applying the EXIF orientation."""
        if self.orientation in _SWAPS_AXES:
            return (self.height, self.width)
        return (self.width, self.height)


def _looks_truncated(data_tail: bytes, fmt: str) -> bool:
    if fmt == "JPEG":
        return b"\xff\xd9" not in data_tail
    if fmt == "PNG":
        return b"IEND" not in data_tail
    return False


def read_header(source: Path | bytes, name: str | None = None) -> ImageHeader:
    """Read size, orientation and mode from an image header.

    Args:
        source: A file path, or the encoded bytes of an image.
        name: The name to use in error messages (defaults to the path).

    Raises:
        ImageReadError: If the file is missing or is not an image Pillow can identify.
    """
    label = name or str(source if isinstance(source, Path) else "embedded image")
    try:
        if isinstance(source, bytes):
            handle = io.BytesIO(source)
            tail = source[-4096:]
        else:
            handle = open(source, "rb")  # noqa: SIM115 - closed below
            handle.seek(0, io.SEEK_END)
            handle.seek(max(0, handle.tell() - 4096))
            tail = handle.read()
            handle.seek(0)
        with handle, Image.open(handle) as img:
            orientation = 1
            try:
                orientation = int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
            except Exception:  # a broken EXIF block does not make the image unreadable
                logger.debug("unreadable EXIF in %s", label)
            fmt = img.format or ""
            return ImageHeader(
                width=img.width,
                height=img.height,
                orientation=orientation if 1 <= orientation <= 8 else 1,
                mode=img.mode,
                format=fmt,
                truncated=_looks_truncated(tail, fmt),
            )
    except FileNotFoundError:
        raise ImageReadError(f"{label}: file not found") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{label} declares {_declared_pixels(exc)}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{label}: not a readable image ({exc})") from None


def _declared_pixels(exc: Exception) -> str:
    """The pixel count in Pillow's bomb message, as people read it ("1600 MP")."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(found.group(1)) / 1e6:g} MP" if found else f"more than {Image.MAX_IMAGE_PIXELS * 2 / 1e6:g} MP"


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, the one conversion every reader uses.

    Deep grey images are scaled, not clipped: 16-bit modes by their full range (65535), 32-bit
    integer images likewise unless their values exceed it, float images by their maximum (or 1).
    Transparent pixels are composited on white; CMYK, palette and grey convert as usual.
    """
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        peak = float(arr.max()) if arr.size else 0.0
        if img.mode.startswith("I;16"):
            top = 65535.0
        elif img.mode == "I":
            top = 65535.0 if peak <= 65535 else peak
        else:
            top = max(peak, 1.0)
        scaled = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def embedded_image_bytes(annotation_path: Path, field: str = "imageData") -> bytes:
    """The image bytes carried base64-encoded inside a LabelMe annotation file.

    Raises:
        ImageReadError: If the file has no such field or it is not base64.
    """
    try:
        data = json.loads(annotation_path.read_text(encoding="utf-8"))[field]
        return base64.b64decode(data, validate=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ImageReadError(f"{annotation_path}: no readable embedded {field} ({exc})") from None


def decode_image(
    source: Path | bytes,
    *,
    embedded: bool = False,
    exif_transpose: bool = True,
    min_scale: float = 1.0,
    name: str | None = None,
    max_pixels: int | None = None,
) -> tuple[Image.Image, float]:
    """Decode an image to RGB, using reduced-scale JPEG decoding when allowed.

    The one decoder of the project: dataset photos, embedded LabelMe images and query photos
    (files or bytes) all go through it, so the same photo gives the same pixels everywhere.

    Args:
        source: The image file, the annotation file when ``embedded``, or encoded bytes.
        embedded: Read the pixels from the annotation's ``imageData``.
        exif_transpose: Apply the EXIF orientation (the frame LabelMe annotates in).
        min_scale: The least fraction of full resolution the caller needs; a JPEG is then
            decoded at 1/2, 1/4 or 1/8 scale when that stays at or above it (DCT scaling,
            several times faster than a full decode).
        name: How to name the image in error messages (default: the path).
        max_pixels: Refuse, before decoding, an image whose header declares more pixels.

    Returns:
        The RGB image and the scale factor of its pixels relative to the full-size image
        (1.0, 0.5, 0.25 or 0.125).

    Raises:
        ImageTooLargeError: If the image declares more than ``max_pixels`` (or Pillow's guard).
        ImageReadError: If the file is missing, corrupt or truncated.
    """
    if isinstance(source, bytes):
        label, handle = name or "image bytes", io.BytesIO(source)
    else:
        label = name or str(source)
        handle = io.BytesIO(embedded_image_bytes(source)) if embedded else source
    try:
        # Not a `with` block: closing would drop the decoded pixels we return. Pillow closes
        # the file itself once a single-frame image is loaded.
        img = Image.open(handle)
        if max_pixels is not None and img.width * img.height > max_pixels:
            img.close()
            raise ImageTooLargeError(f"{label} is {img.width}x{img.height}, more than {max_pixels / 1e6:g} MP")
        full_width = img.width
        if min_scale < 1.0 and img.format == "JPEG":
            img.draft("RGB", (max(1, int(img.width * min_scale)), max(1, int(img.height * min_scale))))
        img.load()
        scale = img.width / full_width
        if exif_transpose and int(img.getexif().get(EXIF_ORIENTATION, 1) or 1) != 1:
            img = ImageOps.exif_transpose(img)  # copies: only when there is something to rotate
        return to_rgb(img), scale
    except FileNotFoundError:
        raise ImageReadError(f"{label}: file not found") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{label} declares {_declared_pixels(exc)}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{label}: cannot decode ({exc})") from None
