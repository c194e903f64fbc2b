"""The fake ``/v1/embeddings`` route's data: the inputs of a request (OpenAI ``input`` or vLLM's
chat-style ``messages``), deterministic default vectors, and the response body in the encoding
the request asked for (``float`` lists, or ``base64`` little-endian float32 as vLLM sends by
default on little-endian hosts)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from agent.testing.replies import Reply
from agent.testing.tokens import estimate_text_tokens

if TYPE_CHECKING:
    from agent.testing.server import FakeOpenAIServer

__all__ = [
    "EmbeddingEncoding",
    "default_embedding",
    "embedding_answer",
    "embedding_inputs",
    "embeddings_response",
]

logger = logging.getLogger(__name__)

#: How ``data[i].embedding`` is encoded. ``"requested"`` is what vLLM and the OpenAI API do: a
#: list of floats, or base64 when the request says ``"encoding_format": "base64"``. The others
#: ignore the request, to test that a client copes with other OpenAI-compatible servers:
#: ``"float"``, ``"base64"``, and ``"nested"``, a one-row list of lists (the shape llama.cpp's
#: native, non-OpenAI ``/embedding`` endpoint uses).
EmbeddingEncoding = Literal["requested", "float", "base64", "nested"]


def default_embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit vector derived from sha256(text)."""
    values: list[float] = []
    counter = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vec = values[:dim]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def embedding_inputs(body: Any) -> list[str]:
    """The texts one embeddings request embeds, one per expected vector.

    A string ``input`` is one text, a list of strings (or of token-id lists) one per item, a
    single token-id list one text; vLLM's chat-style ``messages`` (multimodal embedding models)
    are one text, their canonical JSON.

    Raises:
        ValueError: With the message of the HTTP 400 the request gets.
    """
    if not isinstance(body, dict) or ("input" not in body and "messages" not in body):
        raise ValueError("request body must be a JSON object with 'input' or 'messages'")
    if "messages" in body:  # vLLM's multimodal (chat-style) embedding request
        return [json.dumps(body["messages"], sort_keys=True)]
    raw_input = body["input"]
    if isinstance(raw_input, str):
        return [raw_input]
    if isinstance(raw_input, list) and raw_input and all(isinstance(x, int) for x in raw_input):
        return [json.dumps(raw_input)]
    if isinstance(raw_input, list):
        return [x if isinstance(x, str) else json.dumps(x) for x in raw_input]
    raise ValueError("'input' must be a string or a list")


def _encode(values: list[float], encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    if encoding == "nested":
        return [values]
    return values


def embeddings_response(
    body: Mapping[str, Any],
    inputs: Sequence[str],
    vectors: Sequence[Sequence[float]],
    *,
    model: str,
    encoding: EmbeddingEncoding = "requested",
) -> dict[str, Any]:
    """The ``{"object": "list", "data": [...], "model", "usage"}`` answer to one request.

    Args:
        body: The request's JSON body (its ``encoding_format`` counts for ``"requested"``).
        inputs: The request's texts (:func:`embedding_inputs`), for the usage estimate.
        vectors: One vector per input.
        model: Reported when the request names none.
        encoding: See :data:`EmbeddingEncoding`.
    """
    if encoding == "requested":
        encoding = "base64" if body.get("encoding_format") == "base64" else "float"
    data = [
        {"object": "embedding", "index": i, "embedding": _encode([float(v) for v in vec], encoding)}
        for i, vec in enumerate(vectors)
    ]
    tokens = sum(estimate_text_tokens(s) for s in inputs) or 1
    return {
        "object": "list",
        "data": data,
        "model": body.get("model") or model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def embedding_answer(
    server: FakeOpenAIServer, body: dict[str, Any], inputs: list[str]
) -> list[list[float]] | Reply:
    """What ``server`` answers one ``/v1/embeddings`` request with: its ``embedding_responder``'s
    answer, else the next scripted one, else :func:`default_embedding` of each input."""
    if server.embedding_responder is not None:
        answer = server.embedding_responder(body)
        if isinstance(answer, Reply):
            return answer
        return [list(map(float, v)) for v in answer]
    scripted = server._next_embedding_answer()
    if isinstance(scripted, Reply):
        return scripted
    if scripted is not None:
        if len(scripted) != len(inputs):
            logger.warning(
                "scripted embedding batch has %d vectors for %d inputs", len(scripted), len(inputs)
            )
        return scripted
    dim = int(body.get("dimensions") or server.embedding_dim)
    return [default_embedding(text, dim) for text in inputs]
