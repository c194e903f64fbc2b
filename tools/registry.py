"""The tool set: LlamaIndex ``FunctionTool``s for the schemas, and one entry point to run a call.

:func:`run_tool` is the single path every call takes (our own agent loop, a hermes text
tool call, or LlamaIndex's ``FunctionAgent`` through :func:`make_tools`): it parses and
checks the model's arguments and records the call on the context; it never raises.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from tools.arguments import ArgumentError, parse_arguments
from tools.boxes import BOX_HELP
from tools.context import ToolContext
from tools.definitions import get_label_definitions
from tools.label_examples import get_label_examples
from tools.recording import accepted_parameters, error_result, jsonable, record_result
from tools.results import ToolResult
from tools.search_similar import search_similar_damage
from tools.zoom_tool import zoom

logger = logging.getLogger(__name__)

TOOLS: dict[str, Callable[..., ToolResult]] = {
    "search_similar_damage": search_similar_damage,
    "get_label_examples": get_label_examples,
    "get_label_definitions": get_label_definitions,
    "zoom": zoom,
}
TOOL_NAMES = list(TOOLS)

_PARAMETER_HELP = {
    "region": BOX_HELP,
    "label": 'a damage label such as "scratch" or "dent"',
    "labels": 'a list of labels such as ["scratch", "dent"]',
    "k": "a whole number of examples from 1 to 10",
}


def tool_description(name: str) -> str:
    """The model-facing description: the signature without ``ctx`` and the docstring."""
    fn = TOOLS[name]
    signature = inspect.signature(fn)
    params = [p for p in signature.parameters.values() if p.name != "ctx"]
    shown = signature.replace(parameters=params, return_annotation=inspect.Signature.empty)
    return f"{name}{shown}\n{inspect.cleandoc(fn.__doc__ or '')}".strip()


def _required(fn: Callable[..., Any]) -> list[str]:
    return [
        p.name for p in inspect.signature(fn).parameters.values()
        if p.name != "ctx" and p.default is inspect.Parameter.empty
    ]


def run_tool(ctx: ToolContext, name: str, arguments: dict[str, Any] | str | None = None) -> ToolResult:
    """Run one tool call as the model made it, never raising.

    Arguments may be a dict or a JSON string; numbers may be strings and a box may be text
    ("[1,2,3,4]"). A missing ``k`` takes ``ctx.agent.k``. An unknown tool, an unknown or
    missing argument or an invalid value gives ``ToolResult(error=True)`` whose text tells the
    model how to correct the call. The call is recorded on ``ctx.calls``.

    Args:
        ctx: The tool context of the question.
        name: The tool name the model chose.
        arguments: The arguments the model sent.
    """
    started = time.perf_counter()
    raw = arguments if isinstance(arguments, dict) else {"_raw": jsonable(arguments)}
    fn = TOOLS.get(str(name))
    if fn is None:
        result = error_result(
            str(name), f"There is no tool named {name!r}; the tools are: {', '.join(TOOL_NAMES)}.", raw
        )
        record_result(ctx, str(name), raw, result, started)
        return result
    try:
        args = parse_arguments(arguments)
    except ArgumentError as exc:
        result = error_result(name, str(exc), raw)
        record_result(ctx, name, raw, result, started)
        return result
    accepted = accepted_parameters(fn)
    unknown = [key for key in args if key not in accepted]
    missing = [key for key in _required(fn) if key not in args]
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"does not take {', '.join(repr(u) for u in unknown)}")
        if missing:
            problems.append("needs " + "; ".join(f"{m} ({_PARAMETER_HELP.get(m, 'required')})" for m in missing))
        result = error_result(
            name, f"{name} {' and '.join(problems)}; it accepts only: {', '.join(accepted)}.", args
        )
        record_result(ctx, name, args, result, started)
        return result
    if "k" in accepted and "k" not in args:
        args["k"] = min(ctx.agent.k, 10)
    return fn(ctx, **args)


def _tool_output(name: str, result: ToolResult) -> Any:
    from llama_index.core.tools.types import ToolOutput

    return ToolOutput(
        blocks=result.to_blocks(),
        tool_name=name,
        raw_input={"kwargs": result.data.get("arguments", {})},
        raw_output=result,
        is_error=result.error,
    )


def _bound_call(ctx: ToolContext, name: str) -> Callable[..., ToolResult]:
    def call(**kwargs: Any) -> ToolResult:
        return run_tool(ctx, name, kwargs)

    call.__name__ = name
    return call


def make_tools(ctx: ToolContext) -> list[Any]:
    """The four tools as LlamaIndex ``FunctionTool``s bound to ``ctx``.

    Their schemas (``tool.metadata.to_openai_tool()``) show only the model's own arguments;
    calling one goes through :func:`run_tool`, so coercion and recording are the same as in
    our own loop. The ``ToolOutput`` has the text block then the image blocks, ``raw_output``
    is the :class:`ToolResult` and ``is_error`` mirrors its ``error``.
    """
    from llama_index.core.tools import FunctionTool

    tools = []
    for name, fn in TOOLS.items():
        described = FunctionTool.from_defaults(
            fn=fn, name=name, description=tool_description(name), partial_params={"ctx": ctx}
        )

        tools.append(
            FunctionTool(
                fn=_bound_call(ctx, name),
                metadata=described.metadata,
                callback=lambda result, _name=name: _tool_output(_name, result),
            )
        )
    return tools


def tool_specs(ctx: ToolContext) -> list[dict[str, Any]]:
    """The OpenAI ``tools`` array (``{"type": "function", "function": {...}}`` each)."""
    return [tool.metadata.to_openai_tool() for tool in make_tools(ctx)]
