"""Photos as they arrive: a bounded request body, base64 or data URIs decoded, and the bytes
checked as an image (Pillow reads the header only) before anything else sees them.

A request value never becomes a file path: uploads stay bytes in memory, and URLs are never
fetched (an ``http(s)`` image is refused, or passed through by the front door).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from agent.service.errors import ServiceError, error_response

_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,",
                       re.IGNORECASE)
#: Room for the form fields, the JSON around the photo and base64's 4/3, beyond the photo itself.
_BODY_OVERHEAD = 1 << 20


def body_limit(max_upload_mb: float) -> int:
    """The largest request body accepted, in bytes: the photo's limit as base64, plus 1 MB."""
    return int(max_upload_mb * 1e6 * 4 / 3) + _BODY_OVERHEAD


class BodyTooLarge(ServiceError):
    """The request body is over the limit (raised while it is read)."""


class BodyLimit:
    """ASGI middleware: a POST body over ``limit`` bytes is refused with 413, by its
    ``Content-Length`` before it is read, or as soon as the bytes read pass the limit."""

    def __init__(self, app: Any, limit: int, max_upload_mb: float) -> None:
        self.app, self.limit, self.max_upload_mb = app, limit, max_upload_mb

    def _message(self, size: int | None) -> str:
        said = f"{size / 1e6:.1f} MB" if size is not None else f"more than {self.limit / 1e6:.1f} MB"
        return (f"The request body is {said}; service.max_upload_mb allows photos of {self.max_upload_mb:g} MB "
                f"(a body of {self.limit / 1e6:.1f} MB with base64 and form fields): send a smaller photo.")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await error_response(413, self._message(int(length)), code="upload_too_large")(scope, receive, send)
            return
        seen = 0

        async def bounded() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(413, self._message(None), code="upload_too_large")
            return message

        await self.app(scope, bounded, send)


def decode_image_field(value: str, what: str = "image") -> bytes:
    """The bytes of a JSON image field: a ``data:image/...;base64,`` URI or bare base64.

    Raises:
        ServiceError: 400 for an http(s) URL (never fetched) or text that is not base64.
    """
    text = value.strip()
    if re.match(r"^(https?|ftp|file)://", text, re.IGNORECASE):
        raise ServiceError(400, f"The {what} is a URL; the service never fetches URLs: send the photo itself "
                                "(multipart 'photo', or base64 / a data:image/...;base64, URI).",
                           code="image_url_not_supported", param=what)
    match = _DATA_URI.match(text)
    if match:
        if not match.group("b64"):
            raise ServiceError(400, f"The {what} data URI is not base64 (write data:image/jpeg;base64,...).",
                               code="invalid_image", param=what)
        text = text[match.end():]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:  # base64 broken into lines (MIME style): the slow path, only when needed
        return base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError(400, f"The {what} is neither base64 nor a data:image/...;base64, URI.",
                           code="invalid_image", param=what) from None


def upload_limits(config: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`check_photo` for the service: ``service.max_upload_mb``, and
    the lower of ``service.max_upload_pixels`` and ``dataset.max_image_pixels`` with its key."""
    service, dataset = config.service, config.dataset
    if dataset.max_image_pixels < service.max_upload_pixels:
        pixels, setting = dataset.max_image_pixels, "dataset.max_image_pixels"
    else:
        pixels, setting = service.max_upload_pixels, "service.max_upload_pixels"
    return {"max_upload_mb": service.max_upload_mb, "max_pixels": pixels, "pixels_setting": setting}


def check_photo(data: bytes, *, max_upload_mb: float, max_pixels: int, what: str = "photo",
                pixels_setting: str = "dataset.max_image_pixels") -> None:
    """Refuse, in one line, bytes that are too big, not an image, or an image of too many pixels.

    Raises:
        ServiceError: 413 over ``max_upload_mb``; 400 when empty, truncated or over ``max_pixels``
            (the setting named ``pixels_setting``); 415 when Pillow cannot identify an image.
    """
    from index.imaging.decode import ImageReadError, ImageTooLargeError, read_header

    if not data:
        raise ServiceError(400, f"The {what} is empty.", code="invalid_image", param=what)
    if len(data) > max_upload_mb * 1e6:
        raise ServiceError(413, f"The {what} is {len(data) / 1e6:.1f} MB; service.max_upload_mb allows "
                                f"{max_upload_mb:g} MB.", code="upload_too_large", param=what)
    try:
        header = read_header(data, f"The {what}")
    except ImageTooLargeError as exc:
        raise ServiceError(400, f"{exc}; at most {max_pixels / 1e6:g} MP are read ({pixels_setting}).",
                           code="image_too_large", param=what) from None
    except ImageReadError:
        raise ServiceError(415, f"The {what} is not an image the service can read (JPEG, PNG, WebP, TIFF, BMP...).",
                           code="not_an_image", param=what) from None
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise ServiceError(400, f"The {what} is {header.width}x{header.height} ({pixels / 1e6:.1f} MP); "
                                f"{pixels_setting} allows {max_pixels / 1e6:g} MP.",
                           code="image_too_large", param=what)
    if header.truncated:
        raise ServiceError(400, f"The {what} ({header.format}) is truncated: its data ends before the image does.",
                           code="invalid_image", param=what)
