"""Tests of agent.testing.fake_server, and of how the openai client, LlamaIndex's OpenAILike and its
FunctionAgent behave against it (real HTTP on 127.0.0.1, nothing mocked).

The tests under "LlamaIndex protocol findings" pin down the facts recorded in
docs/notes/llamaindex_agent_protocol.md: if a library upgrade changes them, these fail.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from llama_index.core.agent.workflow import (
    AgentStream,
    FunctionAgent,
    ToolCall,
    ToolCallResult,
)
from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context
from llama_index.llms.openai_like import OpenAILike
from PIL import Image
from workflows.events import WorkflowFailedEvent

from agent.testing.fake_server import (
    AUTO_TOOL_CHOICE_ERROR,
    FakeOpenAIServer,
    Reply,
    decode_data_uri,
    estimate_prompt_tokens,
    image_parts,
    image_size,
    wants_auto_tool_choice,
)

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def make_llm(server: FakeOpenAIServer, **kwargs: Any) -> OpenAILike:
    """OpenAILike as the project configures it; no retries unless a test asks for them."""
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 10.0)
    return OpenAILike(
        model="qwen",
        api_base=server.base_url,
        api_key="x",
        is_chat_model=True,
        is_function_calling_model=True,
        **kwargs,
    )


def make_client(server: FakeOpenAIServer, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", **kwargs)


def png_bytes(width: int = 64, height: int = 48, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(width: int = 100, height: int = 60) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "blue").save(buf, format="JPEG")
    return buf.getvalue()


USER = [ChatMessage(role="user", content="hi")]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def find_examples(query: str) -> list[TextBlock | ImageBlock]:
    """Find labelled examples of similar damage."""
    return [
        TextBlock(text=f"1 example for {query!r}: dent, rear door"),
        ImageBlock(image=png_bytes(32, 32, "green"), image_mimetype="image/png"),
    ]


def broken_index(query: str) -> str:
    """A retrieval tool whose index is down."""
    raise RuntimeError("index offline")


async def run_agent(agent: FunctionAgent, user_msg: Any) -> tuple[Any, list[Any]]:
    """Run to completion, collecting the streamed events."""
    handler = agent.run(user_msg=user_msg)
    events = [ev async for ev in handler.stream_events()]
    return await handler, events


def raw_sse(server: FakeOpenAIServer, body: dict[str, Any]) -> list[str]:
    """POST a streaming request with http.client and return the raw SSE ``data:`` payloads."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("text/event-stream")
    text = resp.read().decode()
    conn.close()
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    return [e[len("data: ") :] for e in events]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# the server itself (openai client and raw HTTP)
# ---------------------------------------------------------------------------------------------


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


def test_script_exhausted_is_http_500_without_client_retry(server: FakeOpenAIServer) -> None:
    with pytest.raises(openai.InternalServerError, match="script exhausted"):
        make_client(server, max_retries=3).chat.completions.create(
            model="qwen", messages=[{"role": "user", "content": "x"}]
        )
    assert len(server.requests) == 1  # x-should-retry: false


def test_responder_precedence_and_fallthrough(server: FakeOpenAIServer) -> None:
    server.script(Reply.text("from script"))
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> Reply | None:
        seen.append(body)
        if body["messages"][-1]["content"] == "dynamic":
            return Reply.text(f"echo {len(body['messages'])}")
        return None  # fall through to the script

    server.responder = responder
    client = make_client(server)
    r1 = client.chat.completions.create(
        model="qwen", messages=[{"role": "user", "content": "dynamic"}]
    )
    r2 = client.chat.completions.create(
        model="qwen", messages=[{"role": "user", "content": "other"}]
    )
    assert r1.choices[0].message.content == "echo 1"
    assert r2.choices[0].message.content == "from script"
    assert len(seen) == 2

    server.responder = lambda body: 42  # type: ignore[assignment,return-value]
    with pytest.raises(openai.InternalServerError, match="not a Reply"):
        client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "x"}])


def test_rules_with_times(server: FakeOpenAIServer) -> None:
    server.when(lambda b: "tools" in b, Reply.text("tool rule"), times=1)
    server.script(Reply.text("scripted"))
    client = make_client(server)
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    msgs: Any = [{"role": "user", "content": "x"}]
    assert (
        client.chat.completions.create(model="qwen", messages=msgs, tools=tools)
        .choices[0]
        .message.content
        == "tool rule"
    )
    assert (
        client.chat.completions.create(model="qwen", messages=msgs, tools=tools)
        .choices[0]
        .message.content
        == "scripted"
    )


def test_reject_auto_tool_choice_only_on_tool_requests(server: FakeOpenAIServer) -> None:
    """A vLLM without --enable-auto-tool-choice: tool requests fail, the rest is scripted."""
    server.reject_auto_tool_choice()
    server.script(Reply.text("plain answer"), Reply.text("forced tool"))
    client = make_client(server)
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    msgs: Any = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="qwen", messages=msgs, tools=tools)
    assert info.value.status_code == 400
    assert info.value.body == {
        "message": AUTO_TOOL_CHOICE_ERROR,
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    assert (
        client.chat.completions.create(model="qwen", messages=msgs).choices[0].message.content
        == "plain answer"
    )
    # vLLM accepts tools with tool_choice "required" / named even without a parser
    forced = client.chat.completions.create(
        model="qwen", messages=msgs, tools=tools, tool_choice="required"
    )
    assert forced.choices[0].message.content == "forced tool"
    assert server.pending_replies == 0
    assert [r.status for r in server.chat_requests] == [400, 200, 200]

    assert wants_auto_tool_choice({"tools": tools})
    assert wants_auto_tool_choice({"tools": tools, "tool_choice": "auto"})
    assert not wants_auto_tool_choice({"tools": tools, "tool_choice": "none"})
    assert not wants_auto_tool_choice({"messages": []})


def test_scripted_reject_reply_on_request_without_tools_is_a_loud_error(
    server: FakeOpenAIServer,
) -> None:
    server.script(Reply.reject_auto_tool_choice())
    with pytest.raises(openai.InternalServerError, match="without tools"):
        make_client(server).chat.completions.create(
            model="qwen", messages=[{"role": "user", "content": "x"}]
        )


def test_embeddings_default_scripted_and_float(server: FakeOpenAIServer) -> None:
    client = make_client(server)
    # the openai client asks for base64 by default and decodes it
    default = client.embeddings.create(model="qwen", input=["a dent", "a scratch"])
    assert server.last_request().body["encoding_format"] == "base64"
    vecs = [d.embedding for d in default.data]
    assert len(vecs) == 2 and all(len(v) == 8 for v in vecs)
    assert abs(sum(x * x for x in vecs[0]) - 1.0) < 1e-5
    again = client.embeddings.create(model="qwen", input="a dent", encoding_format="float")
    assert again.data[0].embedding == pytest.approx(vecs[0], abs=1e-6)  # deterministic
    assert (
        len(client.embeddings.create(model="qwen", input="x", dimensions=4).data[0].embedding) == 4
    )

    server.script_embeddings([[1.0, 0.0], [0.0, 1.0]])
    scripted = client.embeddings.create(model="qwen", input=["p", "q"], encoding_format="float")
    assert [d.embedding for d in scripted.data] == [[1.0, 0.0], [0.0, 1.0]]

    server.embedding_responder = lambda body: [[0.5, 0.25, 0.125]]
    raw = httpx.post(
        f"{server.base_url}/embeddings",
        json={"model": "qwen", "input": "x", "encoding_format": "base64"},
    ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert struct.unpack("<3f", packed) == (0.5, 0.25, 0.125)


def test_reset_clears_everything(server: FakeOpenAIServer) -> None:
    server.script(Reply.text("a"))
    server.when(lambda b: True, Reply.text("b"))
    server.responder = lambda b: None
    httpx.get(f"{server.base_url}/models")
    server.reset()
    assert server.requests == [] and server.pending_replies == 0 and server.responder is None
    with pytest.raises(LookupError):
        server.last_request()


def test_slow_reply_and_stop_cuts_it_short() -> None:
    srv = FakeOpenAIServer().start()
    srv.script(Reply.slow(30, Reply.text("never")))
    client = make_client(srv, timeout=20)
    t0 = time.monotonic()

    def stop_soon() -> None:
        srv.wait_for_requests(1)
        srv.stop()

    threading.Thread(target=stop_soon, daemon=True).start()
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "x"}])
    assert time.monotonic() - t0 < 5


# ---------------------------------------------------------------------------------------------
# OpenAILike against the server
# ---------------------------------------------------------------------------------------------


def test_openailike_plain_chat_sync_and_async(server: FakeOpenAIServer) -> None:
    server.script(Reply.text("sync answer"), Reply.text("async answer"))
    llm = make_llm(server)
    assert llm.chat(USER).message.content == "sync answer"
    resp = asyncio.run(llm.achat(USER))
    assert resp.message.content == "async answer"
    assert resp.additional_kwargs["prompt_tokens"] > 0  # usage is surfaced here
    body = server.last_request().body
    assert body["model"] == "qwen" and body["stream"] is False and body["temperature"] == 0.1
    assert "tools" not in body


def test_image_block_arrives_as_data_uri_image_url_part(server: FakeOpenAIServer) -> None:
    server.script(Reply.text("a red square"))
    img = png_bytes(64, 48)
    msg = ChatMessage(
        role="user",
        blocks=[ImageBlock(image=img, image_mimetype="image/png"), TextBlock(text="What is this?")],
    )
    make_llm(server).chat([msg])
    rec = server.last_request()
    content = rec.messages[0]["content"]
    assert [p["type"] for p in content] == ["image_url", "text"]
    parts = image_parts(rec)
    assert parts == rec.image_parts() and len(parts) == 1
    mime, raw = decode_data_uri(parts[0]["image_url"]["url"])
    assert mime == "image/png" and raw == img  # bytes unchanged
    assert "detail" not in parts[0]["image_url"]
    assert content[1] == {"type": "text", "text": "What is this?"}


def test_image_block_mimetype_is_guessed_from_bytes(server: FakeOpenAIServer) -> None:
    server.script(Reply.text("ok"))
    make_llm(server).chat([ChatMessage(role="user", blocks=[ImageBlock(image=jpeg_bytes())])])
    url = image_parts(server.last_request())[0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")


def test_native_tool_call_parsed_by_get_tool_calls_from_response(server: FakeOpenAIServer) -> None:
    server.script(Reply.tool_calls([("add", {"a": 2, "b": 3})]))
    llm = make_llm(server)
    resp = llm.chat_with_tools([FunctionTool.from_defaults(add)], chat_history=list(USER))
    (sel,) = llm.get_tool_calls_from_response(resp)
    assert sel.tool_name == "add" and sel.tool_kwargs == {"a": 2, "b": 3}
    assert sel.tool_id.startswith("call_")

    body = server.last_request().body
    assert body["tool_choice"] == "auto"
    assert body["parallel_tool_calls"] is False  # chat_with_tools default
    (tool,) = body["tools"]
    assert tool["type"] == "function" and tool["function"]["name"] == "add"
    assert tool["function"]["strict"] is False
    assert tool["function"]["parameters"]["additionalProperties"] is False
    assert tool["function"]["parameters"]["required"] == ["a", "b"]


def test_hermes_tool_call_is_not_parsed_by_llamaindex(server: FakeOpenAIServer) -> None:
    server.script(Reply.hermes_tool_call("add", {"a": 2, "b": 3}))
    llm = make_llm(server)
    resp = llm.chat_with_tools([FunctionTool.from_defaults(add)], chat_history=list(USER))
    assert llm.get_tool_calls_from_response(resp, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="Expected at least one tool call"):
        llm.get_tool_calls_from_response(resp)
    assert (resp.message.content or "").startswith("<tool_call>\n")


def test_openailike_streaming_text_and_tool_call(server: FakeOpenAIServer) -> None:
    server.script(
        Reply.text("streamed answer text").with_stream_chunking(chunk_size=4),
        Reply.tool_calls([("add", {"a": 2, "b": 3})]).with_stream_chunking(chunk_size=3),
    )
    llm = make_llm(server)
    deltas = [r.delta for r in llm.stream_chat(USER)]
    assert "".join(d or "" for d in deltas) == "streamed answer text"

    async def stream_tools() -> Any:
        gen = await llm.astream_chat_with_tools(
            [FunctionTool.from_defaults(add)], chat_history=list(USER)
        )
        responses = [r async for r in gen]
        return responses[-1]

    last = asyncio.run(stream_tools())
    (sel,) = llm.get_tool_calls_from_response(last)
    assert sel.tool_name == "add" and sel.tool_kwargs == {"a": 2, "b": 3}
    assert server.last_request().stream


def test_additional_kwargs_response_format_and_extra_body(server: FakeOpenAIServer) -> None:
    server.script(Reply.json({"ok": True}), Reply.text("streamed"), Reply.text("per call"))
    llm = make_llm(
        server,
        additional_kwargs={
            "response_format": {"type": "json_object"},
            "top_p": 0.8,
            "presence_penalty": 1.5,
            "stream_options": {"include_usage": True},
            "extra_body": {"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}},
        },
    )
    llm.chat(USER)
    body = server.last_request().body
    assert body["response_format"] == {"type": "json_object"}
    assert (body["top_p"], body["presence_penalty"]) == (0.8, 1.5)
    assert body["top_k"] == 20  # extra_body is merged into the top level of the JSON body
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "extra_body" not in body
    assert "stream_options" not in body  # dropped for non-streaming calls...
    last = list(llm.stream_chat(USER))[-1]
    assert server.last_request().body["stream_options"] == {"include_usage": True}  # ...kept here
    assert last.additional_kwargs["completion_tokens"] > 0

    # per-call kwargs reach the body too, but additional_kwargs win on conflicts
    plain = make_llm(server)
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    plain.chat(USER, response_format=schema, extra_body={"top_k": 5})
    body = server.last_request().body
    assert body["response_format"] == schema and body["top_k"] == 5
    server.script(Reply.text("conflict"))
    llm.chat(USER, response_format=schema, extra_body={"top_k": 5})
    body = server.last_request().body
    assert body["response_format"] == {"type": "json_object"} and body["top_k"] == 20

    with pytest.raises(TypeError, match="top_k"):  # vLLM-only params must go in extra_body
        make_llm(server, additional_kwargs={"top_k": 20}).chat(USER)


# ---------------------------------------------------------------------------------------------
# FunctionAgent against the server
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
def test_function_agent_tool_round_trip(server: FakeOpenAIServer, streaming: bool) -> None:
    server.script(Reply.tool_calls([("add", {"a": 2, "b": 3})]), Reply.text("The sum is 5."))
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(add)],
        llm=make_llm(server),
        system_prompt="You are terse.",
        streaming=streaming,
    )
    result, events = asyncio.run(run_agent(agent, "What is 2+3?"))
    assert str(result) == "The sum is 5."

    calls = [e for e in events if isinstance(e, ToolCall) and not isinstance(e, ToolCallResult)]
    results = [e for e in events if isinstance(e, ToolCallResult)]
    assert [(c.tool_name, c.tool_kwargs) for c in calls] == [("add", {"a": 2, "b": 3})]
    assert [r.tool_output.content for r in results] == ["5"]
    assert results[0].tool_id == calls[0].tool_id
    assert bool([e for e in events if isinstance(e, AgentStream)]) is streaming

    first, second = server.chat_requests
    for rec in (first, second):
        assert rec.body["stream"] is streaming  # FunctionAgent streams unless streaming=False
        assert rec.tool_choice == "auto"
        assert rec.body["parallel_tool_calls"] is True
        assert [t["function"]["name"] for t in rec.tools] == ["add"]
    assert [m["role"] for m in first.messages] == ["system", "user"]
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "tool"]
    assistant, tool_msg = second.messages[2], second.messages[3]
    assert assistant["content"] is None
    assert assistant["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": '{"a": 2, "b": 3}',
    }
    assert tool_msg == {"role": "tool", "content": "5", "tool_call_id": calls[0].tool_id}


def test_function_agent_tool_error_and_tool_images(server: FakeOpenAIServer) -> None:
    """A raising tool -> str(exception) as tool content; ImageBlocks of a tool never reach the model."""
    server.script(
        Reply.tool_calls(
            [("broken_index", {"query": "dent"}), ("find_examples", {"query": "dent"})]
        ),
        Reply.text("done"),
    )
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(broken_index), FunctionTool.from_defaults(find_examples)],
        llm=make_llm(server),
        streaming=False,
    )
    _, events = asyncio.run(run_agent(agent, "go"))
    results = {e.tool_name: e.tool_output for e in events if isinstance(e, ToolCallResult)}
    assert results["broken_index"].is_error and results["broken_index"].content == "index offline"
    assert isinstance(results["broken_index"].exception, RuntimeError)
    assert [type(b).__name__ for b in results["find_examples"].blocks] == [
        "TextBlock",
        "ImageBlock",
    ]

    second = server.chat_requests[1]
    tool_msgs = [m for m in second.messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_msgs] == [
        "index offline",
        "1 example for 'dent': dent, rear door",
    ]
    assert image_parts(second) == []  # the tool's image was silently dropped


class ImageForwardingAgent(FunctionAgent):
    """FunctionAgent that re-sends images returned by tools in a following *user* message."""

    async def handle_tool_call_results(
        self, ctx: Context, results: list[ToolCallResult], memory: Any
    ) -> None:
        await super().handle_tool_call_results(ctx, results, memory)
        images = [
            block
            for r in results
            if not r.tool_output.is_error
            for block in r.tool_output.blocks
            if isinstance(block, ImageBlock)
        ]
        if images:
            scratchpad = await ctx.store.get(self.scratchpad_key, default=[])
            scratchpad.append(
                ChatMessage(
                    role="user",
                    blocks=[TextBlock(text="Images returned by the tools above:"), *images],
                )
            )
            await ctx.store.set(self.scratchpad_key, scratchpad)


@pytest.mark.parametrize("streaming", [False, True])
def test_subclass_hook_injects_user_message_with_tool_images(
    server: FakeOpenAIServer, streaming: bool
) -> None:
    server.script(
        Reply.tool_calls([("find_examples", {"query": "dent"})]), Reply.text("Looks like a dent.")
    )
    query = png_bytes(80, 60, "white")
    agent = ImageForwardingAgent(
        tools=[FunctionTool.from_defaults(find_examples)], llm=make_llm(server), streaming=streaming
    )
    user = ChatMessage(
        role="user",
        blocks=[
            ImageBlock(image=query, image_mimetype="image/png"),
            TextBlock(text="What damage?"),
        ],
    )
    result, _ = asyncio.run(run_agent(agent, user))
    assert str(result) == "Looks like a dent."

    second = server.chat_requests[1]
    assert [m["role"] for m in second.messages] == ["user", "assistant", "tool", "user"]
    injected = second.messages[-1]["content"]
    assert [p["type"] for p in injected] == ["text", "image_url"]
    sent = [decode_data_uri(p["image_url"]["url"])[1] for p in image_parts(second)]
    assert sent == [query, png_bytes(32, 32, "green")]  # history images are re-sent every turn


HERMES_RE = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


async def own_loop(llm: OpenAILike, tools: list[FunctionTool], user: ChatMessage) -> str:
    """The recipe recommended in docs/notes/llamaindex_agent_protocol.md, reduced to its core."""
    by_name = {t.metadata.name: t for t in tools}
    messages: list[ChatMessage] = [user]
    for _ in range(5):
        resp = await llm.achat_with_tools(tools, chat_history=list(messages))
        calls = [
            (c.tool_id, c.tool_name, c.tool_kwargs)
            for c in llm.get_tool_calls_from_response(resp, error_on_no_tool_call=False)
        ]
        if not calls:  # no parser on the server: the call is text in `content`
            calls = [
                (f"hermes_{i}", d["name"], d.get("arguments", {}))
                for i, d in enumerate(
                    json.loads(m) for m in HERMES_RE.findall(resp.message.content or "")
                )
            ]
        if not calls:
            return resp.message.content or ""
        messages.append(resp.message)
        images: list[ImageBlock] = []
        for call_id, name, kwargs in calls:
            out = await by_name[name].acall(**kwargs)
            images += [b for b in out.blocks if isinstance(b, ImageBlock)]
            messages.append(
                ChatMessage(
                    role="tool", content=out.content, additional_kwargs={"tool_call_id": call_id}
                )
            )
        if images:
            messages.append(
                ChatMessage(role="user", blocks=[TextBlock(text="Retrieved images:"), *images])
            )
    raise RuntimeError("too many steps")


@pytest.mark.parametrize("native", [True, False])
def test_own_loop_recipe(server: FakeOpenAIServer, native: bool) -> None:
    first = (
        Reply.tool_calls([("find_examples", {"query": "dent"})])
        if native
        else Reply.hermes_tool_call("find_examples", {"query": "dent"})
    )
    server.script(first, Reply.text("A dent."))
    user = ChatMessage(role="user", content="What damage?")
    answer = asyncio.run(
        own_loop(make_llm(server), [FunctionTool.from_defaults(find_examples)], user)
    )
    assert answer == "A dent."
    second = server.chat_requests[1]
    assert [m["role"] for m in second.messages] == ["user", "assistant", "tool", "user"]
    assistant, tool_msg = second.messages[1], second.messages[2]
    if native:
        assert assistant["content"] is None
        assert tool_msg["tool_call_id"] == assistant["tool_calls"][0]["id"]
    else:  # the <tool_call> text is re-sent as the assistant content, as Qwen's template expects
        assert assistant["content"].startswith("<tool_call>") and "tool_calls" not in assistant
    assert tool_msg["content"] == "1 example for 'dent': dent, rear door"
    assert len(image_parts(second)) == 1


def test_function_agent_takes_hermes_text_as_final_answer(server: FakeOpenAIServer) -> None:
    """Without a tool parser, FunctionAgent silently 'answers' with the <tool_call> text."""
    server.script(Reply.hermes_tool_call("add", {"a": 2, "b": 3}))
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(add)], llm=make_llm(server), streaming=False
    )
    result, events = asyncio.run(run_agent(agent, "2+3?"))
    assert str(result).startswith("<tool_call>")
    assert not [e for e in events if isinstance(e, ToolCallResult)]
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize("streaming", [False, True])
def test_function_agent_400_on_tools_surfaces_bad_request(
    server: FakeOpenAIServer, streaming: bool
) -> None:
    """stream_events() ends with a WorkflowFailedEvent; awaiting the handler re-raises the
    original openai exception (not wrapped)."""
    server.reject_auto_tool_choice()
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(add)], llm=make_llm(server), streaming=streaming
    )

    async def go() -> list[Any]:
        handler = agent.run(user_msg="2+3?")
        events = [ev async for ev in handler.stream_events()]
        with pytest.raises(openai.BadRequestError, match="enable-auto-tool-choice"):
            await handler
        return events

    events = asyncio.run(go())
    assert isinstance(events[-1], WorkflowFailedEvent)
    assert events[-1].step_name == "run_agent_step"
    assert len(server.chat_requests) == 1  # 400 is never retried


def test_function_agent_500_surfaces_internal_server_error(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: Reply.http_error(500, "engine dead")
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(add)], llm=make_llm(server), streaming=False
    )
    with pytest.raises(openai.InternalServerError, match="engine dead"):
        asyncio.run(run_agent(agent, "2+3?"))


# ---------------------------------------------------------------------------------------------
# retries, dropped connections, timeouts (OpenAILike)
# ---------------------------------------------------------------------------------------------

FAST_500 = Reply.http_error(500, "engine error").with_headers({"retry-after-ms": "1"})


@pytest.mark.parametrize(("max_retries", "expected_requests"), [(0, 1), (1, 2), (2, 6)])
def test_500_retries_multiply(
    server: FakeOpenAIServer, max_retries: int, expected_requests: int
) -> None:
    """openai client retries max_retries times, and LlamaIndex's tenacity wrapper re-runs that
    whole call max_retries times: (max_retries + 1) * max_retries requests for max_retries >= 1."""
    server.responder = lambda body: FAST_500
    with pytest.raises(openai.InternalServerError):
        make_llm(server, max_retries=max_retries).chat(USER)
    assert len(server.chat_requests) == expected_requests


def test_500_streaming_is_retried_by_the_client_only(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: FAST_500
    with pytest.raises(openai.InternalServerError):
        list(make_llm(server, max_retries=2).stream_chat(USER))
    assert len(server.chat_requests) == 3


def test_transient_500_is_recovered(server: FakeOpenAIServer) -> None:
    server.script(FAST_500, Reply.text("recovered"))
    assert make_llm(server, max_retries=1).chat(USER).message.content == "recovered"
    assert [r.status for r in server.chat_requests] == [500, 200]


@pytest.mark.parametrize(("max_retries", "expected_requests"), [(0, 1), (1, 2)])
def test_dropped_connection(
    server: FakeOpenAIServer, max_retries: int, expected_requests: int
) -> None:
    server.responder = lambda body: Reply.drop_connection()
    with pytest.raises(openai.APIConnectionError) as info:
        make_llm(server, max_retries=max_retries).chat(USER)
    assert type(info.value) is openai.APIConnectionError
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)
    assert len(server.chat_requests) == expected_requests
    assert {r.status for r in server.chat_requests} == {0}


def test_drop_mid_stream_raises_raw_httpx_error_without_retry(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: Reply.drop_connection(after_chunks=2)
    llm = make_llm(server, max_retries=2)
    got: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        for r in llm.stream_chat(USER):
            got.append(r.delta or "")
    assert got  # some text arrived before the cut
    assert not issubclass(httpx.RemoteProtocolError, openai.OpenAIError)  # not wrapped
    assert len(server.chat_requests) == 1


def test_slow_reply_vs_client_timeout(server: FakeOpenAIServer) -> None:
    server.script(Reply.slow(1.0, Reply.text("late")), Reply.slow(0.2, Reply.text("in time")))
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError) as info:
        asyncio.run(make_llm(server, timeout=0.3).achat(USER))
    assert isinstance(info.value, openai.APIConnectionError)  # APITimeoutError subclasses it
    assert time.monotonic() - t0 < 0.9
    assert make_llm(server, timeout=2.0).chat(USER).message.content == "in time"


def test_timeout_is_per_read_not_total_for_streams(server: FakeOpenAIServer) -> None:
    """httpx applies the timeout to each socket read: a stream whose events keep coming never
    times out, whatever its total duration (bound the total yourself, e.g. asyncio.wait_for)."""
    content = "x" * 6
    server.script(Reply.text(content).with_stream_chunking(chunk_size=1, chunk_delay=0.08))
    t0 = time.monotonic()
    deltas = [r.delta for r in make_llm(server, timeout=0.3).stream_chat(USER)]
    assert "".join(d or "" for d in deltas) == content
    assert time.monotonic() - t0 > 0.4  # longer than the timeout in total


def test_connection_refused() -> None:
    llm = OpenAILike(
        model="qwen",
        api_base=f"http://127.0.0.1:{free_port()}/v1",
        api_key="x",
        is_chat_model=True,
        is_function_calling_model=True,
        max_retries=0,
    )
    with pytest.raises(openai.APIConnectionError) as info:
        llm.chat(USER)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
