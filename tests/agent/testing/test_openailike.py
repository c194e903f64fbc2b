"""LlamaIndex's OpenAILike against the fake server: what it sends (images, tools, extra
parameters) and how it reads native and text (Hermes) tool calls, streamed or not.

These pin down facts recorded in docs/notes/llamaindex_agent_protocol.md: if a library upgrade
changes them, they fail."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
from llama_index.core.tools import FunctionTool

from agent.testing import FakeOpenAIServer, Reply, decode_data_uri, image_parts
from tests.agent.testing.helpers import USER, add, jpeg_bytes, make_llm, png_bytes


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


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
