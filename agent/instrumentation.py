"""Tool calls of the agent loop as LlamaIndex instrumentation sees them: one TOOL span each.

The loop runs tools through :func:`tools.run_tool` (coercion, recording, never raising), not
through a LlamaIndex agent, so nothing would mark a call as a tool call for LlamaIndex's
instrumentation (``llama_index.core.instrumentation``) or for the span handlers plugged into
it, such as OpenInference's (Phoenix). :class:`LoopToolCall` is a LlamaIndex ``BaseTool`` whose
``call`` is a dispatcher span (``BaseTool`` is a ``DispatcherSpanMixin``, so the span is applied
to ``call`` by LlamaIndex itself) and emits LlamaIndex's ``AgentToolCallEvent`` inside it: the
same two signals a stock agent's tool call gives. OpenInference classifies a span by the
instance it was opened on (a ``BaseTool``: ``openinference.span.kind`` = ``TOOL``, with the
tool's name, description and parameter schema); the event carries the arguments the model sent.

The span's parent is whatever span is active in the calling context (the engine's query span,
``DamageQueryEngine._query``), so a query is one trace: the query span, its model calls
(``OpenAILike`` spans) and its tool calls (with the embedder spans inside them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.agent import AgentToolCallEvent
from llama_index.core.tools.types import AsyncBaseTool, ToolMetadata, ToolOutput

from tools.results import ToolResult

__all__ = ["LoopToolCall", "tool_metadata", "unknown_tool_metadata"]

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)


def unknown_tool_metadata(name: str) -> ToolMetadata:
    """Metadata for a call the model made to a tool that does not exist (or could not be read)."""
    return ToolMetadata(name=str(name) or "unnamed_tool",
                        description="Not a tool of this agent: the call was answered with an error.")


def tool_metadata(tools: list[Any]) -> dict[str, ToolMetadata]:
    """The metadata of LlamaIndex tools (:func:`tools.make_tools`), by tool name."""
    return {tool.metadata.get_name(): tool.metadata for tool in tools}


class LoopToolCall(AsyncBaseTool):
    """One tool of the agent loop, seen by LlamaIndex instrumentation as a tool (a TOOL span).

    Calling it runs ``run(arguments)`` (normally :func:`tools.run_tool` bound to the question's
    :class:`tools.ToolContext`) inside a dispatcher span opened on this ``BaseTool``, after
    emitting an ``AgentToolCallEvent`` with the arguments. The returned ``ToolOutput`` has the
    text the model reads as its content and the result's JSON-ready form
    (:meth:`tools.results.ToolResult.to_dict`: text, error, the images' captions and sizes, the
    ids and scores) as ``raw_output``, which is what a span handler records as the span's
    output; ``is_error`` mirrors the result's ``error``. The :class:`~tools.results.ToolResult`
    itself, with the images, is :attr:`result` (one instance per call).

    Args:
        metadata: The tool's name, description and schema (from :func:`tools.make_tools`).
        run: Runs one call; gets the model's arguments, returns the result, never raises.
    """

    def __init__(self, metadata: ToolMetadata, run: Callable[[dict[str, Any]], ToolResult]) -> None:
        self._metadata = metadata
        self._run = run
        self.result: ToolResult | None = None  # of the last call

    @property
    def metadata(self) -> ToolMetadata:
        """Name, description and parameter schema, as the model was shown them."""
        return self._metadata

    def call(self, arguments: dict[str, Any] | None = None) -> ToolOutput:
        """Run the call (a dispatcher span: LlamaIndex wraps ``call`` of every ``BaseTool``)."""
        arguments = arguments if arguments is not None else {}
        dispatcher.event(AgentToolCallEvent(arguments=json.dumps(arguments, ensure_ascii=False, default=str),
                                            tool=self._metadata))
        result = self.result = self._run(arguments)
        logger.debug("tool span %s: %s", self._metadata.get_name(), "error" if result.error else "ok")
        return ToolOutput(content=result.text, tool_name=self._metadata.get_name(), raw_input={"kwargs": arguments},
                          raw_output=result.to_dict(), is_error=result.error)

    def run(self, arguments: dict[str, Any] | None = None) -> ToolResult:
        """:meth:`call`, returning the :class:`~tools.results.ToolResult` (with its images)."""
        self.call(arguments)
        assert self.result is not None
        return self.result

    async def acall(self, arguments: dict[str, Any] | None = None) -> ToolOutput:
        """Same as :meth:`call`: the tools are synchronous (a FAISS search, a crop)."""
        return self.call(arguments)
