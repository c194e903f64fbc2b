"""Tool-call protocols: native ``tool_calls``, or Qwen's hermes ``<tool_call>`` text.

vLLM parses Qwen's tool calls only when started with ``--enable-auto-tool-choice
--tool-call-parser hermes``; without them it rejects ``tool_choice: "auto"`` (HTTP 400) or, with
no parser, returns the call as text in ``content``. Both are real deployments: in the hermes
protocol the tools are described in the system prompt, calls are parsed from the text, and
results go back as ``<tool_response>`` in a user turn, exactly as Qwen's chat template does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


@dataclass
class ToolRequest:
    """One tool call the model asked for."""

    name: str
    arguments: dict[str, Any]
    id: str = ""
    error: str | None = None  # the call could not be parsed; tell the model
    raw: dict[str, Any] = field(default_factory=dict)


def parse_hermes(text: str) -> list[ToolRequest]:
    """The ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks in ``text``."""
    calls = []
    for i, match in enumerate(_TOOL_CALL.finditer(text or "")):
        body = match.group(1).strip()
        try:
            data = json.loads(body)
            name = str(data["name"])
            arguments = data.get("arguments") or data.get("parameters") or {}
            if isinstance(arguments, str):
                arguments = json.loads(arguments)
            calls.append(ToolRequest(name, dict(arguments), id=f"hermes-{i}"))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            calls.append(ToolRequest("?", {}, id=f"hermes-{i}", error=f"unparseable tool call {body[:200]!r} ({exc})"))
    return calls


def has_hermes_call(text: str | None) -> bool:
    """Whether the text carries a hermes tool call."""
    return bool(text) and "<tool_call>" in text


def tools_for_prompt(tools: list[Any]) -> str:
    """The tools' OpenAI schemas, one JSON per line, for the hermes system prompt."""
    return "\n".join(json.dumps(tool.metadata.to_openai_tool(), ensure_ascii=False) for tool in tools)


def tool_response_text(results: list[tuple[str, str]]) -> str:
    """Tool results as Qwen's template renders them in a user turn."""
    return "\n".join(f"<tool_response>\n{text}\n</tool_response>" for _, text in results)
