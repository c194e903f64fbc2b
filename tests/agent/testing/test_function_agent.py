"""LlamaIndex's FunctionAgent against the fake server: tool round trips, tool errors and images,
a subclass hook that forwards tool images, the own-loop recipe, and how failures surface.

These pin down facts recorded in docs/notes/llamaindex_agent_protocol.md: if a library upgrade
changes them, they fail."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from llama_index.core.agent.workflow import AgentStream, FunctionAgent, ToolCall, ToolCallResult
from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context
from llama_index.llms.openai_like import OpenAILike
from workflows.events import WorkflowFailedEvent

from agent.testing import FakeOpenAIServer, Reply, decode_data_uri, image_parts
from tests.agent.testing.helpers import (
    add,
    broken_index,
    find_examples,
    make_llm,
    png_bytes,
    run_agent,
)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


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
