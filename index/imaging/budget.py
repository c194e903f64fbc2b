"""Pixel budgets: fit an image into a number of pixels (Qwen3-VL pays one token per 32x32 px)."""

from __future__ import annotations

import math

from PIL import Image


def fitted_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio and at most ``max_pixels`` pixels.

    Never larger than ``(width, height)``; each side at least 1.

    Raises:
        ValueError: If ``max_pixels`` is not positive.
    """
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    w, h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    while w * h > max_pixels and (w > 1 or h > 1):  # rounding guard for extreme aspect ratios
        if w >= h:
            w -= 1
        else:
            h -= 1
    return w, h


def fit_to_pixels(image: Image.Image, max_pixels: int) -> Image.Image:
    """``image`` downscaled (aspect kept, never upscaled) to at most ``max_pixels`` pixels.

    Returns the image itself when it already fits.
    """
    size = fitted_size(image.width, image.height, max_pixels)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
