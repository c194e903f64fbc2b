"""Deterministic stand-ins for token counts, reported in the ``usage`` of fake answers: no
tokenizer, 4 characters per text token, images by pixel count like Qwen3-VL."""

from __future__ import annotations

import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

from agent.testing.replies import Reply
from agent.testing.requests import decode_data_uri, image_size

__all__ = [
    "UNKNOWN_IMAGE_TOKENS",
    "estimate_completion_tokens",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
]

#: Tokens assumed for an image whose size cannot be read (remote URL, unknown format).
UNKNOWN_IMAGE_TOKENS = 256


def _image_tokens(url: str) -> int:
    """Qwen3-VL-style estimate: one visual token per 32x32 px, plus 2 delimiter tokens."""
    try:
        _, raw = decode_data_uri(url)
    except (ValueError, binascii.Error):
        return UNKNOWN_IMAGE_TOKENS
    size = image_size(raw)
    if size is None:
        return UNKNOWN_IMAGE_TOKENS
    w, h = size
    return max(1, math.ceil(w / 32)) * max(1, math.ceil(h / 32)) + 2


def estimate_text_tokens(text: str) -> int:
    """4 characters per token, rounded up (0 for an empty string)."""
    return math.ceil(len(text) / 4)


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """A deterministic stand-in for the prompt token count of a chat request: 4 chars per text
    token, 4 tokens per message, images by pixel count (one token per 32x32 px, like Qwen3-VL
    with no server-side resizing), tool definitions by their JSON size."""
    total = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += 4
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    total += estimate_text_tokens(str(part.get("text", "")))
                elif part.get("type") == "image_url":
                    total += _image_tokens(str((part.get("image_url") or {}).get("url", "")))
        for call in message.get("tool_calls") or []:
            total += estimate_text_tokens(json.dumps(call))
    if body.get("tools"):
        total += estimate_text_tokens(json.dumps(body["tools"]))
    return max(total, 1)


def estimate_completion_tokens(reply: Reply) -> int:
    """4 chars per token over content, reasoning and tool-call names/arguments (at least 1)."""
    text = (reply.content or "") + (reply.reasoning or "")
    text += "".join(c.name + c.arguments_json() for c in reply.calls)
    return max(estimate_text_tokens(text), 1)
