"""What the fake server received: :class:`RecordedRequest`, one per request, and helpers that
inspect a chat request, recorded or given as its JSON body (its image parts, data URIs, tools,
whether vLLM would treat it as asking for automatic tool choice, the size of a sent image)."""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.testing.replies import Reply

__all__ = [
    "CHAT_PATH",
    "EMBEDDINGS_PATH",
    "MODELS_PATH",
    "RecordedRequest",
    "decode_data_uri",
    "has_tools",
    "image_parts",
    "image_size",
    "wants_auto_tool_choice",
]

#: The routes the server answers (besides ``GET /health``).
CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MODELS_PATH = "/v1/models"


@dataclass
class RecordedRequest:
    """One request the server received.

    ``headers`` has lower-case names; an ``authorization`` value is replaced by ``"<redacted>"``
    and :attr:`has_authorization` says whether one was present. ``body`` is the parsed JSON body
    (None for GET or an unparsable body). ``reply`` / ``status`` say how the server answered
    (``status`` 0 for a dropped connection).
    """

    index: int
    method: str
    path: str
    headers: dict[str, str]
    has_authorization: bool
    body: Any
    raw_size: int
    received_at: float
    reply: Reply | None = None
    status: int | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """``body["messages"]`` (empty list when absent)."""
        if isinstance(self.body, dict):
            return list(self.body.get("messages") or [])
        return []

    @property
    def tools(self) -> list[dict[str, Any]]:
        """``body["tools"]`` (empty list when absent)."""
        if isinstance(self.body, dict):
            return list(self.body.get("tools") or [])
        return []

    @property
    def tool_choice(self) -> Any:
        """``body.get("tool_choice")``."""
        return self.body.get("tool_choice") if isinstance(self.body, dict) else None

    @property
    def stream(self) -> bool:
        """Whether the request asked for server-sent events."""
        return bool(self.body.get("stream")) if isinstance(self.body, dict) else False

    def image_parts(self) -> list[dict[str, Any]]:
        """The ``image_url`` content parts of all messages, in order."""
        return image_parts(self)


def _body_of(request: RecordedRequest | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(request, RecordedRequest):
        return request.body if isinstance(request.body, dict) else {}
    return request


def image_parts(request: RecordedRequest | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``{"type": "image_url", "image_url": {...}}`` parts of all messages of a chat request
    (a :class:`RecordedRequest` or a request body), in message order."""
    parts: list[dict[str, Any]] = []
    for message in _body_of(request).get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            parts.extend(p for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    return parts


def decode_data_uri(url: str) -> tuple[str, bytes]:
    """Split a ``data:<mime>;base64,<data>`` URI into ``(mime, raw bytes)``."""
    if not url.startswith("data:") or "," not in url:
        raise ValueError(f"not a data URI: {url[:40]!r}")
    header, data = url[5:].split(",", 1)
    mime = header.split(";", 1)[0]
    if not header.endswith(";base64"):
        raise ValueError(f"data URI is not base64-encoded: {header!r}")
    return mime, base64.b64decode(data)


def has_tools(body: Mapping[str, Any]) -> bool:
    """True when the request carries a non-empty ``tools`` list."""
    return bool(body.get("tools"))


def wants_auto_tool_choice(body: Mapping[str, Any]) -> bool:
    """True for the requests a vLLM without ``--enable-auto-tool-choice`` rejects: ``tools``
    present and ``tool_choice`` absent (vLLM defaults it to ``"auto"`` then) or ``"auto"``.
    ``"none"``, ``"required"`` and a named function are accepted by such a server."""
    choice = body.get("tool_choice")
    if choice == "auto":
        return True
    return has_tools(body) and choice is None


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from a PNG, JPEG, GIF or WebP header; None if unrecognised."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if chunk == b"VP8L":
                b = data[21:25]
                w = 1 + (((b[1] & 0x3F) << 8) | b[0])
                h = 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
                return w, h
            return None
        if data[:2] == b"\xff\xd8":
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    i += 1
                    continue
                marker = data[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                    i += 1 if marker == 0xFF else 2
                    continue
                seg_len = struct.unpack(">H", data[i + 2 : i + 4])[0]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                    return int(w), int(h)
                i += 2 + seg_len
    except (struct.error, IndexError):
        return None
    return None
