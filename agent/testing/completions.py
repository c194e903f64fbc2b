"""The JSON a chat-completions request is answered with, in the format vLLM and the OpenAI API
use: one ``chat.completion`` object, or the ``chat.completion.chunk`` events of a streamed answer
(role, reasoning, content, tool-call deltas, finish reason, then usage when
``stream_options.include_usage`` is set)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from agent.testing.replies import Reply
from agent.testing.tokens import estimate_completion_tokens, estimate_prompt_tokens

__all__ = ["completion", "stream_events", "usage"]


def usage(body: Mapping[str, Any], reply: Reply) -> dict[str, int]:
    """The ``usage`` object: the reply's token counts, else estimates from request and reply."""
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = estimate_prompt_tokens(body)
    completion_tokens = reply.completion_tokens
    if completion_tokens is None:
        completion_tokens = estimate_completion_tokens(reply)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def _tool_call_ids(reply: Reply) -> list[str]:
    return [c.id or f"call_{uuid.uuid4().hex[:24]}" for c in reply.calls]


def _chunks(text: str, size: int) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]


def _model(body: Mapping[str, Any], reply: Reply, default_model: str) -> str:
    return reply.model or body.get("model") or default_model


def completion(body: Mapping[str, Any], reply: Reply, default_model: str) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` answering ``body`` with ``reply``.

    Args:
        body: The request's JSON body.
        reply: The message reply to send.
        default_model: Reported when neither the reply nor the request names a model.
    """
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.content,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for call, call_id in zip(reply.calls, _tool_call_ids(reply), strict=True)
        ],
    }
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _model(body, reply, default_model),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": usage(body, reply),
    }


def stream_events(
    body: Mapping[str, Any], reply: Reply, default_model: str
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of one streamed answer, in order (the ``[DONE]``
    sentinel is not included). Arguments as for :func:`completion`."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": _model(body, reply, default_model),
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        obj = {
            **base,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            obj["usage"] = None
        return obj

    yield chunk({"role": "assistant", "content": ""})
    for piece in _chunks(reply.reasoning or "", reply.chunk_size):
        yield chunk({"reasoning_content": piece})
    for piece in _chunks(reply.content or "", reply.chunk_size):
        yield chunk({"content": piece})
    for index, (call, call_id) in enumerate(zip(reply.calls, _tool_call_ids(reply), strict=True)):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        for piece in _chunks(call.arguments_json(), reply.chunk_size):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, reply.finish_reason)
    if include_usage:
        yield {**base, "choices": [], "usage": usage(body, reply)}
