"""The fake server's chat route and bookkeeping, with the openai client and raw HTTP: replies,
usage, recorded requests, models and health, lifecycle."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from agent.testing import FakeOpenAIServer, Reply, estimate_prompt_tokens, image_size
from tests.agent.testing.helpers import jpeg_bytes, make_client, png_bytes


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def test_lifecycle_and_base_url() -> None:
    srv = FakeOpenAIServer()
    with pytest.raises(RuntimeError):
        _ = srv.base_url
    srv.start()
    try:
        assert srv.base_url == f"http://127.0.0.1:{srv.port}/v1"
        assert srv.port > 0
    finally:
        srv.stop()
    with pytest.raises(RuntimeError):
        _ = srv.base_url
    srv.stop()  # idempotent


def test_plain_chat_openai_client(server: FakeOpenAIServer) -> None:
    server.script(Reply.text("hello there"))
    resp = make_client(server).chat.completions.create(
        model="qwen", messages=[{"role": "user", "content": "hi"}]
    )
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == "hello there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "qwen"
    assert resp.usage is not None and resp.usage.prompt_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens

    rec = server.last_request()
    assert rec.method == "POST" and rec.path == "/v1/chat/completions"
    assert rec.has_authorization and rec.headers["authorization"] == "<redacted>"
    assert "sk-test" not in json.dumps(rec.headers)
    assert rec.body["messages"] == [{"role": "user", "content": "hi"}]
    assert rec.status == 200 and rec.reply is not None and rec.reply.label == "text"
    assert server.pending_replies == 0


def test_usage_override_and_estimate(server: FakeOpenAIServer) -> None:
    server.script(Reply.text("x").with_usage(prompt_tokens=1234, completion_tokens=7))
    resp = make_client(server).chat.completions.create(
        model="qwen", messages=[{"role": "user", "content": "hi"}]
    )
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (1234, 7)
    assert resp.usage.total_tokens == 1241

    # default estimate: a 1024x768 image costs 32*24 visual tokens (+2), like Qwen3-VL
    url = "data:image/png;base64," + base64.b64encode(png_bytes(1024, 768)).decode()
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
        ]
    }
    assert estimate_prompt_tokens(body) == 4 + 768 + 2


def test_image_size_headers() -> None:
    assert image_size(png_bytes(64, 48)) == (64, 48)
    assert image_size(jpeg_bytes(100, 60)) == (100, 60)
    buf = io.BytesIO()
    Image.new("RGB", (33, 17)).save(buf, format="GIF")
    assert image_size(buf.getvalue()) == (33, 17)
    assert image_size(b"not an image") is None


def test_models_and_health(server: FakeOpenAIServer) -> None:
    models = make_client(server).models.list()
    assert [m.id for m in models.data] == ["qwen"]
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert server.last_request().path == "/health"
    assert server.chat_requests == []


def test_unknown_route_is_404(server: FakeOpenAIServer) -> None:
    with pytest.raises(openai.NotFoundError):
        make_client(server).completions.create(model="qwen", prompt="x")


def test_non_streaming_tool_calls_and_reasoning(server: FakeOpenAIServer) -> None:
    server.script(
        Reply.tool_calls([("add", {"a": 1, "b": 2})]),
        Reply.text("4", reasoning="2+2 is 4"),
        Reply.tool_calls([("add", '{"a": 1, "b":')]),  # malformed arguments, sent verbatim
    )
    client = make_client(server)
    msgs: Any = [{"role": "user", "content": "x"}]
    first = client.chat.completions.create(model="qwen", messages=msgs)
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "add" and json.loads(call.function.arguments) == {"a": 1, "b": 2}
    second = client.chat.completions.create(model="qwen", messages=msgs)
    assert second.choices[0].message.reasoning_content == "2+2 is 4"  # type: ignore[attr-defined]
    third = client.chat.completions.create(model="qwen", messages=msgs)
    assert third.choices[0].message.tool_calls[0].function.arguments == '{"a": 1, "b":'


def test_hermes_and_json_replies(server: FakeOpenAIServer) -> None:
    server.script(Reply.hermes_tool_call("add", {"a": 1, "b": 2}), Reply.json({"label": "dent"}))
    client = make_client(server)
    msgs: Any = [{"role": "user", "content": "x"}]
    hermes = client.chat.completions.create(model="qwen", messages=msgs).choices[0]
    assert hermes.message.tool_calls == []
    assert hermes.finish_reason == "stop"
    assert (
        hermes.message.content
        == '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
    )
    as_json = client.chat.completions.create(model="qwen", messages=msgs).choices[0]
    assert json.loads(as_json.message.content or "") == {"label": "dent"}


def test_reset_clears_everything(server: FakeOpenAIServer) -> None:
    server.script(Reply.text("a"))
    server.when(lambda b: True, Reply.text("b"))
    server.responder = lambda b: None
    httpx.get(f"{server.base_url}/models")
    server.reset()
    assert server.requests == [] and server.pending_replies == 0 and server.responder is None
    with pytest.raises(LookupError):
        server.last_request()
