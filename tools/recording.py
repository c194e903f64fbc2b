"""The wrapper every tool goes through: never raise, always record the call on the context."""

from __future__ import annotations

import functools
import inspect
import logging
import re
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

_SEGMENT = r"[^\s'\"`()\[\]{}<>,;:|/\\]+"
# An absolute path (or one from the home folder): quoted, as exception messages quote them,
# spaces and all; or bare, POSIX (not the second slash of a URL, nor a ratio like 1/2) or Windows.
_QUOTED_PATH = re.compile(r"""(['"])(~?/[^'"\n]*|[A-Za-z]:\\[^'"\n]*)\1""")
_BARE_PATH = re.compile(rf"(?<![\w.~:/\\-])~?(?:/{_SEGMENT})+/?|\b[A-Za-z]:\\(?:{_SEGMENT}\\)*{_SEGMENT}")


def _last_part(path: str) -> str:
    parts = [part for part in re.split(r"[/\\]", path) if part and part != "~"]
    return parts[-1] if parts else path


def without_paths(text: str) -> str:
    """``text`` with every absolute filesystem path cut to its last part (the file name).

    What a tool says goes to the model, and an exception message or a stored value can hold a
    path of this machine; the model needs the file name at most.
    """
    text = _QUOTED_PATH.sub(lambda m: m.group(1) + _last_part(m.group(2)) + m.group(1), text)
    return _BARE_PATH.sub(lambda m: _last_part(m.group(0)), text)


def model_safe(result: ToolResult) -> ToolResult:
    """The result with no absolute path in what the model reads: its text and image captions."""
    result.text = without_paths(result.text)
    for image in result.images:
        image.caption = without_paths(image.caption)
    return result


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
    """An error result the model reads as ``text`` (absolute paths cut to file names)."""
    return ToolResult(text=without_paths(text), error=True, data={"tool": name, "arguments": jsonable(arguments or {})})


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
            record_result(ctx, name, arguments, model_safe(result), started)
            return result

        return wrapper

    return decorate
