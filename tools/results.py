"""What a tool hands back: text for the model, images for a following user message, trace data."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class ShownImage:
    """One image a tool shows the model (an example crop or a zoom), with its caption."""

    caption: str
    image: Image.Image = field(repr=False)
    node_id: str | None = None  # the index node an example image shows; None for a zoom

    def jpeg_bytes(self, quality: int = 90) -> bytes:
        """The image encoded as JPEG, as it goes to the model."""
        buffer = io.BytesIO()
        self.image.convert("RGB").save(buffer, "JPEG", quality=quality)
        return buffer.getvalue()

    def to_image_block(self, quality: int = 90) -> Any:
        """A LlamaIndex ``ImageBlock`` holding the JPEG bytes."""
        from llama_index.core.base.llms.types import ImageBlock

        return ImageBlock(image=self.jpeg_bytes(quality), image_mimetype="image/jpeg")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description for a trace (no pixels)."""
        return {"caption": self.caption, "node_id": self.node_id, "size": list(self.image.size)}


@dataclass
class ToolResult:
    """The outcome of one tool call.

    ``text`` is what the model reads in the tool message; ``images`` cannot travel in a tool
    message (LlamaIndex flattens tool content to text), so the agent sends them in a user
    message right after the tool results; ``data`` is JSON-ready, for the trace.
    """

    text: str
    images: list[ShownImage] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: bool = False

    def __str__(self) -> str:
        return self.text

    def to_blocks(self) -> list[Any]:
        """Text then images, as LlamaIndex content blocks (a ``ToolOutput``'s blocks)."""
        from llama_index.core.base.llms.types import TextBlock

        return [TextBlock(text=self.text), *(img.to_image_block() for img in self.images)]

    def user_message_blocks(self) -> list[Any]:
        """Caption and image blocks, in order, for the user message that follows the tool message.

        Each caption ends with a line break: a chat template joins text parts as they are.
        """
        from llama_index.core.base.llms.types import TextBlock

        blocks: list[Any] = []
        for img in self.images:
            blocks.append(TextBlock(text=f"\n{img.caption}\n"))
            blocks.append(img.to_image_block())
        return blocks

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for a trace."""
        return {
            "text": self.text,
            "error": self.error,
            "images": [img.to_dict() for img in self.images],
            "data": self.data,
        }


@dataclass
class ToolCallRecord:
    """One tool call as the trace keeps it."""

    tool: str
    arguments: dict[str, Any]  # as the model sent them (after JSON parsing)
    error: bool
    text: str
    data: dict[str, Any] = field(default_factory=dict)
    images: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "tool": self.tool,
            "arguments": self.arguments,
            "error": self.error,
            "text": self.text,
            "data": self.data,
            "images": self.images,
            "seconds": self.seconds,
        }
