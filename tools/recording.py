"""The wrapper every tool goes through: never raise, always record the call on the context."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from index.imaging.decode import ImageReadError
from index.taxonomy import UnknownLabelError
from tools.arguments import ArgumentError
from tools.boxes import BoxError
from tools.context import ToolContext, ToolUnavailableError
from tools.results import ToolCallRecord, ToolResult

logger = logging.getLogger(__name__)

# Errors whose message is written for the model: shown as they are.
ACTIONABLE_ERRORS = (ArgumentError, BoxError, UnknownLabelError, ToolUnavailableError)


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of an argument value (tuples to lists, numpy to Python, others to str)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def record_result(ctx: ToolContext, name: str, arguments: dict[str, Any], result: ToolResult, started: float) -> None:
    """Append the call and its result to ``ctx.calls``."""
    result.data.setdefault("tool", name)
    ctx.record(
        ToolCallRecord(
            tool=name,
            arguments=jsonable(arguments),
            error=result.error,
            text=result.text,
            data=result.data,
            images=[img.to_dict() for img in result.images],
            seconds=round(time.perf_counter() - started, 4),
        )
    )


def error_result(name: str, text: str, arguments: dict[str, Any] | None = None) -> ToolResult:
    """An error result the model reads as ``text``."""
    return ToolResult(text=text, error=True, data={"tool": name, "arguments": jsonable(arguments or {})})


def accepted_parameters(fn: Callable[..., Any]) -> list[str]:
    """The parameters the model may fill (all but the bound context)."""
    return [p for p in inspect.signature(fn).parameters if p != "ctx"]


def tool_function(name: str) -> Callable[[Callable[..., ToolResult]], Callable[..., ToolResult]]:
    """Decorate a tool implementation ``fn(ctx, ...) -> ToolResult``.

    The decorated function keeps its signature and docstring (the model-facing description),
    turns argument and runtime errors into ``ToolResult(error=True)`` with an actionable text,
    and records every call on ``ctx.calls``.
    """

    def decorate(fn: Callable[..., ToolResult]) -> Callable[..., ToolResult]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> ToolResult:
            started = time.perf_counter()
            ctx = kwargs["ctx"] if "ctx" in kwargs else (args[0] if args else None)
            if not isinstance(ctx, ToolContext):
                raise TypeError(f"{name} needs a ToolContext as its first argument (ctx)")
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                given = {k: v for k, v in kwargs.items() if k != "ctx"}
                accepted = accepted_parameters(fn)
                unknown = sorted(set(given) - set(accepted))
                result = error_result(
                    name,
                    f"{name} got arguments it does not take ({', '.join(unknown) or 'positional values'}); "
                    f"it accepts only: {', '.join(accepted)}.",
                    given,
                )
                record_result(ctx, name, given, result, started)
                return result
            arguments = {k: v for k, v in bound.arguments.items() if k != "ctx"}
            try:
                result = fn(*bound.args, **bound.kwargs)
            except ACTIONABLE_ERRORS as exc:
                result = error_result(name, str(exc), arguments)
            except ImageReadError as exc:
                logger.warning("%s: %s", name, exc)
                result = error_result(
                    name, f"The query photo could not be read ({exc}); answer from the photo you were shown.", arguments
                )
            except Exception as exc:  # a tool never raises into the agent loop
                logger.exception("tool %s failed", name)
                result = error_result(
                    name,
                    f"{name} failed ({type(exc).__name__}: {exc}); try other arguments or continue without it.",
                    arguments,
                )
            record_result(ctx, name, arguments, result, started)
            return result

        return wrapper

    return decorate
