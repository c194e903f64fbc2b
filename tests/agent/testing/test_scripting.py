"""Which reply answers a chat request: the script, responders, rules, and the vLLM-without-tool-
parser mode (reject_auto_tool_choice)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from agent.testing import AUTO_TOOL_CHOICE_ERROR, FakeOpenAIServer, Reply, wants_auto_tool_choice
from tests.agent.testing.helpers import make_client


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


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
