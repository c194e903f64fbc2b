"""The front door's replies in OpenAI's shapes: a ``chat.completion``, or its ``stream: true``
form as server-sent ``chat.completion.chunk`` events ending with ``data: [DONE]``.

The engine answers as a whole (its report is validated JSON), so a stream carries the answer
as one content chunk once the engine has finished; the role chunk, the finish chunk and (with
``stream_options.include_usage``) a usage chunk are as OpenAI sends them.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any


def completion_usage(usage: dict[str, int]) -> dict[str, int]:
    """OpenAI's usage object from the report's usage, summed over the engine's model calls."""
    prompt = int(usage.get("prompt_tokens", 0))
    completion = int(usage.get("completion_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": int(usage.get("total_tokens", prompt + completion))}


def chat_completion(content: str, *, model: str, trace_id: str, usage: dict[str, int]) -> dict[str, Any]:
    """A whole ``chat.completion``; ``trace_id`` is a non-standard key beside the standard ones."""
    return {
        "id": f"chatcmpl-{trace_id}", "object": "chat.completion", "created": int(time.time()), "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": completion_usage(usage), "trace_id": trace_id,
    }


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None, with_usage: bool) -> dict[str, Any]:
    chunk = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if with_usage:
        chunk["usage"] = None
    return chunk


def completion_chunks(content: str, *, model: str, trace_id: str, usage: dict[str, int],
                      include_usage: bool = False) -> list[dict[str, Any]]:
    """The chunks of one streamed answer: role, content, finish, then usage if asked for."""
    base = {"id": f"chatcmpl-{trace_id}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "system_fingerprint": None, "trace_id": trace_id}
    chunks = [_chunk(base, {"role": "assistant", "content": ""}, None, include_usage),
              _chunk(base, {"content": content}, None, include_usage),
              _chunk(base, {}, "stop", include_usage)]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion_usage(usage)})
    return chunks


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event (``data: ...`` and a blank line)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


async def event_stream(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    """The chunks as server-sent events, then ``data: [DONE]``."""
    for chunk in chunks:
        yield sse(chunk)
    yield sse("[DONE]")
