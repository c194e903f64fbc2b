"""The query photo: full-resolution size from the header, pixels decoded lazily and only as needed.

The agent's tools and ``index search`` both read a query photo through :class:`QueryPhoto`, so
the same photo is embedded from the same pixels whichever way it is asked about.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PIL import Image

from index.imaging.budget import fitted_size
from index.imaging.decode import decode_image, read_header, to_rgb

logger = logging.getLogger(__name__)

PhotoSource = str | Path | bytes | Image.Image


class QueryPhoto:
    """A query photo given as a path, encoded bytes or a PIL image.

    The full-resolution size (after EXIF orientation) is known without decoding pixels;
    :meth:`decode` decodes a JPEG at the least DCT scale (1/8, 1/4, 1/2, 1) that gives the
    requested resolution and keeps the best decode so far for later calls.
    """

    def __init__(self, source: PhotoSource) -> None:
        self._lock = threading.Lock()
        self._decoded: tuple[Image.Image, float] | None = None
        self._views: dict[tuple[int, int], Image.Image] = {}  # downscaled views, by size
        if isinstance(source, Image.Image):
            self.source: Path | bytes | None = None
            image = to_rgb(source)
            self._decoded = (image, 1.0)
            self.size: tuple[int, int] = image.size
        elif isinstance(source, bytes):
            self.source = source
            self.size = read_header(source, "query photo").oriented_size
        else:
            self.source = Path(source)
            self.size = read_header(self.source).oriented_size
        self.decodes = 0  # how many times pixels were decoded (for tests and logs)

    @property
    def width(self) -> int:
        """Full-resolution width (EXIF-oriented)."""
        return self.size[0]

    @property
    def height(self) -> int:
        """Full-resolution height (EXIF-oriented)."""
        return self.size[1]

    @property
    def name(self) -> str:
        """A short name for logs and traces."""
        if isinstance(self.source, Path):
            return self.source.name
        return "query photo"

    def decode(self, min_scale: float = 1.0) -> tuple[Image.Image, float]:
        """The photo decoded at no less than ``min_scale`` of full resolution.

        Returns:
            The RGB image and its actual scale relative to full resolution.

        Raises:
            ImageReadError: If the photo cannot be decoded.
        """
        min_scale = min(1.0, max(min_scale, 1e-6))
        with self._lock:
            if self._decoded is not None and self._decoded[1] >= min_scale - 1e-9:
                return self._decoded
            if isinstance(self.source, (bytes, Path)):
                name = "query photo" if isinstance(self.source, bytes) else None
                image, scale = decode_image(self.source, min_scale=min_scale, name=name)
            else:  # a PIL source is always held at full scale
                assert self._decoded is not None
                return self._decoded
            # The decoded size can differ from an exact multiple by a pixel; use the width ratio.
            scale = image.width / self.width
            self.decodes += 1
            logger.debug("decoded %s at scale %.3f (%dx%d)", self.name, scale, *image.size)
            self._decoded = (image, scale)
            return image, scale

    def view(self, max_pixels: int | None = None, max_side: int | None = None) -> Image.Image:
        """The whole photo downscaled to a pixel budget and/or a longest side (never upscaled).

        Used for the query image sent to the model (``ModelConfig.query_max_pixels``) and for
        whole-photo search.
        """
        w, h = self.size
        target = fitted_size(w, h, max_pixels) if max_pixels else (w, h)
        if max_side and max(target) > max_side:
            side_scale = max_side / max(w, h)
            target = (max(1, round(w * side_scale)), max(1, round(h * side_scale)))
        key = target
        with self._lock:
            cached = self._views.get(key)
        if cached is not None:
            return cached
        # A JPEG decoded at 1/2, 1/4 or 1/8 scale that lands just inside the budget is used as
        # is: no resize at all (1000x750 from a 4000x3000 photo for a 1024x768 budget).
        for denominator in (8, 4, 2):
            size = (-(-w // denominator), -(-h // denominator))
            if 0.85 * target[0] <= size[0] <= target[0] and size[1] <= target[1]:
                image, _ = self.decode(1 / denominator)
                if image.size[0] <= target[0] and image.size[1] <= target[1]:
                    target = image.size
                break
        image, _ = self.decode(max(target[0] / w, target[1] / h))
        if image.size != target:
            # Bicubic after a 2x box reduction: indistinguishable here, 3-4x faster than Lanczos.
            image = image.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0)
        with self._lock:
            self._views[key] = image
        return image

    def crop(self, box: tuple[float, float, float, float], output_size: tuple[int, int]) -> tuple[Image.Image, float]:
        """Cut ``box`` (full-resolution pixels) out of the photo and resize it to ``output_size``.

        Decodes at the least scale giving ``output_size`` for that box.

        Returns:
            The crop and the scale the photo was decoded at.
        """
        x0, y0, x1, y1 = box
        need = max(output_size[0] / max(1e-6, x1 - x0), output_size[1] / max(1e-6, y1 - y0))
        image, scale = self.decode(min(1.0, need))
        sx, sy = image.width / self.width, image.height / self.height
        region = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
        return image.resize(output_size, Image.Resampling.LANCZOS, box=region, reducing_gap=3.0), scale
