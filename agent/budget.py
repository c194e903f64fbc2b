"""What a request costs the server: images and tokens as Qwen3-VL counts them.

Qwen3-VL cuts an image into 16 px patches and merges 2x2 of them, so it pays one visual token
per 32x32 px of the image as sent (plus two delimiters); text is estimated at four characters
per token (no tokenizer is loaded). The estimates are deliberately a little high: a request
composed within them fits the server's real limits.
"""

from __future__ import annotations

import math

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
