"""Helpers shared by the tests of agent.testing: clients configured like the project's, tiny
images, tools for the agents, and raw HTTP access to the fake server."""

from __future__ import annotations

import http.client
import io
import json
import socket
from typing import Any

import openai
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
from llama_index.llms.openai_like import OpenAILike
from PIL import Image

from agent.testing import FakeOpenAIServer

USER = [ChatMessage(role="user", content="hi")]


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
    """The openai client on the fake server; no retries unless a test asks for them."""
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", **kwargs)


def png_bytes(width: int = 64, height: int = 48, color: str = "red") -> bytes:
    """A plain PNG."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(width: int = 100, height: int = 60) -> bytes:
    """A plain JPEG."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "blue").save(buf, format="JPEG")
    return buf.getvalue()


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
    """A port nothing listens on (free when checked)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
