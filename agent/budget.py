"""What a request costs the server, and requests composed within the server's limits.

Qwen3-VL cuts an image into 16 px patches and merges 2x2 of them, so it pays one visual token
per 32x32 px of the image as sent (plus two delimiters); text is estimated at four characters
per token (no tokenizer is loaded). The estimates are deliberately a little high: a request
composed within them fits the server's real limits.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

#: Pixels per visual token along each side (patch 16, merged 2x2).
PIXELS_PER_TOKEN_SIDE = 32
#: Tokens of the vision start and end markers around each image.
IMAGE_DELIMITER_TOKENS = 2
#: Tokens a chat template adds per message (role markers).
MESSAGE_OVERHEAD_TOKENS = 4


def image_tokens(width: int, height: int) -> int:
    """Visual tokens of a ``width`` x ``height`` image as sent (one per 32x32 px, plus delimiters)."""
    side = PIXELS_PER_TOKEN_SIDE
    return max(1, math.ceil(width / side)) * max(1, math.ceil(height / side)) + IMAGE_DELIMITER_TOKENS


def text_tokens(text: str) -> int:
    """Estimated tokens of ``text``: four characters per token, rounded up."""
    return math.ceil(len(text) / 4)


def _image_size(block: Any) -> tuple[int, int] | None:
    """Width and height of a LlamaIndex ``ImageBlock`` (from its header; no decode)."""
    try:
        data = block.resolve_image().read()
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:  # an image we cannot measure counts as a large one below
        return None


#: Tokens assumed for an image whose size cannot be read.
UNKNOWN_IMAGE_TOKENS = 1024


def message_tokens(message: Any) -> int:
    """Estimated prompt tokens of one LlamaIndex ``ChatMessage`` (text, images, tool calls)."""
    from llama_index.core.base.llms.types import ImageBlock, TextBlock

    total = MESSAGE_OVERHEAD_TOKENS
    for block in message.blocks:
        if isinstance(block, TextBlock):
            total += text_tokens(block.text)
        elif isinstance(block, ImageBlock):
            size = _image_size(block)
            total += image_tokens(*size) if size else UNKNOWN_IMAGE_TOKENS
    calls = message.additional_kwargs.get("tool_calls")
    if calls:
        total += text_tokens(json.dumps(calls, default=str))
    return total


def request_tokens(messages: list[Any], tools: list[Any] | None = None) -> int:
    """Estimated prompt tokens of a whole request: its messages and its tool definitions."""
    total = sum(message_tokens(m) for m in messages)
    if tools:
        total += text_tokens(json.dumps([t.metadata.to_openai_tool() for t in tools], default=str))
    return total


def _count_images(messages: list[Any]) -> int:
    from llama_index.core.base.llms.types import ImageBlock

    return sum(isinstance(b, ImageBlock) for m in messages for b in m.blocks)


class BudgetExceeded(Exception):
    """Even the smallest request does not fit the limits (the caller names what to raise)."""

    def __init__(self, problem: str, limit: int, needed: int) -> None:
        super().__init__(f"{problem}: needs {needed}, limit {limit}")
        self.problem, self.limit, self.needed = problem, limit, needed


@dataclass
class Fitted:
    """A request composed within the budget: the messages to send and what was left out."""

    messages: list[Any]
    images: int
    tokens: int
    omitted: list[str] = field(default_factory=list)


class RequestBudget:
    """The server's limits as configured and as learned, and requests composed within them.

    ``max_images`` and ``max_tokens`` start from ``model.max_images`` and
    ``model.max_context_tokens`` (None: no limit, as vLLM's defaults) and tighten when the
    server refuses a request with its own limit (:meth:`learn`), for the rest of the session.
    """

    def __init__(self, max_images: int | None = None, max_tokens: int | None = None, reply_tokens: int = 0) -> None:
        self.max_images = max_images
        self.max_tokens = max_tokens
        self.reply_tokens = reply_tokens  # room kept for the answer inside a learned context length
        self.scale = 1.0  # the server's token count over ours, learned from a context refusal

    def learn_images(self, limit: int) -> bool:
        """The server allows ``limit`` images per request; True when that is news."""
        if self.max_images is not None and self.max_images <= limit:
            return False
        self.max_images = limit
        return True

    def learn_context(self, limit: int, server_tokens: int | None, our_tokens: int) -> bool:
        """The server's context is ``limit`` tokens and it counted ``server_tokens`` (None: more
        than ``limit``) for a request we estimated at ``our_tokens``; True when the budget tightened."""
        allowed = max(limit - self.reply_tokens, limit // 2)
        if not server_tokens:  # the server only says "more than the limit": a lower bound of its count
            server_tokens = limit + 1
        changed = self.max_tokens is None or allowed < self.max_tokens
        if server_tokens and our_tokens and server_tokens > our_tokens * self.scale:
            self.scale = server_tokens / our_tokens
            changed = True
        if changed:
            self.max_tokens = allowed if self.max_tokens is None else min(self.max_tokens, allowed)
        return changed

    def fit(self, messages: list[Any], *, keep: set[int], current: int, tools: list[Any] | None = None) -> Fitted:
        """``messages`` composed within the budget (the originals are not changed).

        Images are dropped oldest first and replaced by a line naming what was there, except
        those in ``keep`` (``id()`` of the query photo's blocks); if the request is still too
        long, the earlier conversation (``messages[1:current]``) goes as a whole.

        Raises:
            BudgetExceeded: If even the query photo, the system prompt and the current turn
                do not fit.
        """
        from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock

        images = _count_images(messages)
        if self.max_images is None and self.max_tokens is None:  # no limit known: nothing to count
            return Fitted(list(messages), images, 0)
        tokens = self._tokens(messages, tools)
        if self._fits(images, tokens):
            return Fitted(list(messages), images, tokens)
        out = [m.model_copy(update={"blocks": list(m.blocks)}) for m in messages]
        omitted: list[str] = []
        droppable = [(i, j) for i, m in enumerate(out) for j, b in enumerate(m.blocks)
                     if isinstance(b, ImageBlock) and id(messages[i].blocks[j]) not in keep]
        for i, j in droppable:  # oldest first
            if self._fits(images, tokens):
                break
            blocks = out[i].blocks
            caption = blocks[j - 1].text.strip().splitlines()[0] if j and isinstance(blocks[j - 1], TextBlock) else ""
            note = f"image omitted to fit the server's limits: {caption or 'an earlier image'}"
            blocks[j] = TextBlock(text=f"({note})\n")
            omitted.append(note)
            images -= 1
            tokens = self._tokens(out, tools)
        if not self._fits(images, tokens) and current > 1:
            # The conversation so far goes as a whole (dropping part of it could orphan a tool
            # result from its call); the system prompt and the current question stay.
            omitted.append(f"the {current - 1} message(s) of the earlier conversation")
            out = [out[0], ChatMessage(role="user", content="(The earlier conversation was left out to fit the "
                                                            "server's limits.)"), *out[current:]]
            images = _count_images(out)
            tokens = self._tokens(out, tools)
        if self.max_images is not None and images > self.max_images:
            raise BudgetExceeded("images", self.max_images, images)
        if self.max_tokens is not None and tokens > self.max_tokens:
            raise BudgetExceeded("tokens", self.max_tokens, tokens)
        return Fitted(out, images, tokens, omitted)

    def _tokens(self, messages: list[Any], tools: list[Any] | None) -> int:
        return int(request_tokens(messages, tools) * self.scale)

    def _fits(self, images: int, tokens: int) -> bool:
        return (self.max_images is None or images <= self.max_images) and (
            self.max_tokens is None or tokens <= self.max_tokens)
