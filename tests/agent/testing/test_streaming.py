"""Streamed chat answers (server-sent events) as the openai client and raw HTTP see them: chunk
format, usage chunk, tool-call deltas."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from agent.testing import FakeOpenAIServer, Reply
from tests.agent.testing.helpers import make_client, raw_sse


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def test_streaming_text_with_usage_openai_client(server: FakeOpenAIServer) -> None:
    content = "The rear door shows a shallow dent of about 5 cm."
    server.script(Reply.text(content).with_stream_chunking(chunk_size=5))
    stream = make_client(server).chat.completions.create(
        model="qwen",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 10
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert server.last_request().stream


def test_streaming_raw_sse_format(server: FakeOpenAIServer) -> None:
    server.script(Reply.tool_calls([("add", {"a": 1, "b": 2})]))
    payloads = raw_sse(
        server,
        {"model": "qwen", "messages": [{"role": "user", "content": "x"}], "stream": True},
    )
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert "usage" not in chunks[0]  # only with stream_options.include_usage
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    first_call = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert first_call["index"] == 0 and first_call["type"] == "function"
    assert first_call["id"].startswith("call_")
    assert first_call["function"] == {"name": "add", "arguments": ""}
    args = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-1]
    )
    assert json.loads(args) == {"a": 1, "b": 2}
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }


def test_streaming_tool_call_deltas_openai_client(server: FakeOpenAIServer) -> None:
    server.script(
        Reply.tool_calls([("add", {"a": 1, "b": 2}), ("find_examples", {"query": "dent"})])
    )
    stream = make_client(server).chat.completions.create(
        model="qwen", messages=[{"role": "user", "content": "x"}], stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += tc.id or ""
            entry["name"] += (tc.function.name if tc.function else None) or ""
            entry["arguments"] += (tc.function.arguments if tc.function else None) or ""
    assert [calls[i]["name"] for i in sorted(calls)] == ["add", "find_examples"]
    assert json.loads(calls[1]["arguments"]) == {"query": "dent"}
    assert calls[0]["id"] != calls[1]["id"]
