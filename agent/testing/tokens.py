"""Deterministic stand-ins for token counts: the ``usage`` of fake answers and the prompt length
the vLLM-faithful context check (:mod:`agent.testing.vllm`) compares with ``max_model_len``.

No tokenizer is loaded: the estimate is :mod:`agent.budget`'s (four characters per text token,
one visual token per 32x32 px plus two delimiters per image, four tokens per message), the same
one the agent budgets its requests with, so a request the agent composed within its budget is
one the fake accepts, and a test can compute exactly where the fake's limit lies.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from typing import Any

from agent.budget import IMAGE_DELIMITER_TOKENS, MESSAGE_OVERHEAD_TOKENS, image_tokens, text_tokens
from agent.testing.replies import Reply
from agent.testing.requests import decode_data_uri, image_size

__all__ = [
    "IMAGE_PLACEHOLDER_TOKENS",
    "UNKNOWN_IMAGE_TOKENS",
    "estimate_completion_tokens",
    "estimate_image_url_tokens",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
]

#: Tokens assumed for an image whose size cannot be read (remote URL, unknown format).
UNKNOWN_IMAGE_TOKENS = 256
#: Tokens of one image in the rendered prompt *before* vLLM expands it
#: (``<|vision_start|><|image_pad|><|vision_end|>``): the delimiters and one pad token.
IMAGE_PLACEHOLDER_TOKENS = IMAGE_DELIMITER_TOKENS + 1


def estimate_image_url_tokens(url: str) -> int:
    """Visual tokens of the image in an ``image_url`` (``agent.budget.image_tokens`` of its size
    as sent, read from a data URI's header; :data:`UNKNOWN_IMAGE_TOKENS` when unreadable)."""
    try:
        _, raw = decode_data_uri(url)
    except (ValueError, binascii.Error):
        return UNKNOWN_IMAGE_TOKENS
    size = image_size(raw)
    if size is None:
        return UNKNOWN_IMAGE_TOKENS
    return image_tokens(*size)


def estimate_text_tokens(text: str) -> int:
    """``agent.budget.text_tokens``: 4 characters per token, rounded up (0 for "")."""
    return text_tokens(text)


def estimate_prompt_tokens(body: Mapping[str, Any], *, expand_images: bool = True) -> int:
    """The prompt token count of a chat request: :data:`~agent.budget.MESSAGE_OVERHEAD_TOKENS`
    per message, text parts, tool calls and tool definitions by
    :func:`~agent.budget.text_tokens` (the latter two of their JSON), images by
    :func:`estimate_image_url_tokens` (at least 1).

    ``expand_images=False`` counts each image as its :data:`IMAGE_PLACEHOLDER_TOKENS` instead:
    the length vLLM's renderer checks before the multimodal processor expands the image pads.
    """
    total = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD_TOKENS
        content = message.get("content")
        if isinstance(content, str):
            total += text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    total += text_tokens(str(part.get("text", "")))
                elif part.get("type") == "image_url":
                    if not expand_images:
                        total += IMAGE_PLACEHOLDER_TOKENS
                        continue
                    url = str((part.get("image_url") or {}).get("url", ""))
                    total += estimate_image_url_tokens(url)
        for call in message.get("tool_calls") or []:
            total += text_tokens(json.dumps(call))
    if body.get("tools"):
        total += text_tokens(json.dumps(body["tools"]))
    return max(total, 1)


def estimate_completion_tokens(reply: Reply) -> int:
    """4 chars per token over content, reasoning and tool-call names/arguments (at least 1)."""
    text = (reply.content or "") + (reply.reasoning or "")
    text += "".join(c.name + c.arguments_json() for c in reply.calls)
    return max(text_tokens(text), 1)
