"""What the fake server answers: :class:`Reply` (one answer to one request) and
:class:`ToolCallSpec` (one native tool call in it), plus the OpenAI error body vLLM sends with an
HTTP error (:func:`error_body`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AUTO_TOOL_CHOICE_ERROR",
    "Reply",
    "ReplyKind",
    "ToolCallSpec",
    "error_body",
    "error_type_for",
]

#: vLLM's error text when a request asks for ``tool_choice: "auto"`` (explicitly, or implicitly by
#: sending ``tools``) and the server runs without ``--enable-auto-tool-choice --tool-call-parser``.
AUTO_TOOL_CHOICE_ERROR = (
    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
)

_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "RequestTimeoutError",
    409: "ConflictError",
    413: "RequestEntityTooLargeError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}

#: ``"message"`` answers with a completion, ``"error"`` with an HTTP error, ``"drop"`` closes the
#: connection.
ReplyKind = Literal["message", "error", "drop"]


def error_type_for(status: int) -> str:
    """The ``error.type`` vLLM reports for an HTTP status (``"APIError"`` when unlisted)."""
    return _ERROR_TYPES.get(status, "APIError")


def error_body(status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
    """The OpenAI error body vLLM sends:
    ``{"error": {"message", "type", "param": null, "code": status}}``."""
    return {
        "error": {
            "message": message,
            "type": error_type or error_type_for(status),
            "param": None,
            "code": status,
        }
    }


@dataclass(frozen=True)
class ToolCallSpec:
    """One native tool call in a reply.

    ``arguments`` is a mapping (serialised with ``json.dumps``) or a raw string sent verbatim,
    e.g. to simulate a model emitting malformed JSON. ``id`` is generated per response when None.
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        """The ``function.arguments`` string as it goes on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request.

    Build with the class-method constructors (:meth:`text`, :meth:`tool_calls`,
    :meth:`hermes_tool_call`, :meth:`json`, :meth:`http_error`,
    :meth:`reject_auto_tool_choice`, :meth:`slow`, :meth:`drop_connection`) and refine with
    :meth:`with_usage`, :meth:`with_headers`, :meth:`with_stream_chunking`. Replies are
    immutable and may be reused (tool-call ids are generated per response). Chat requests take
    any reply; ``/v1/embeddings`` requests take the error and dropped-connection ones (see
    :meth:`FakeOpenAIServer.script_embeddings`).
    """

    kind: ReplyKind = "message"
    content: str | None = None
    calls: tuple[ToolCallSpec, ...] = ()
    reasoning: str | None = None
    finish_reason: str = "stop"
    status: int = 200
    error_message: str = ""
    error_type: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    drop_after_chunks: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    chunk_size: int = 16
    chunk_delay: float = 0.0
    model: str | None = None
    label: str = ""

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def text(
        cls, content: str, *, reasoning: str | None = None, finish_reason: str = "stop"
    ) -> Reply:
        """A plain assistant message. ``reasoning`` is sent as ``reasoning_content`` (what vLLM's
        reasoning parser produces for Thinking models)."""
        return cls(content=content, reasoning=reasoning, finish_reason=finish_reason, label="text")

    @classmethod
    def tool_calls(
        cls,
        calls: Iterable[tuple[str, Mapping[str, Any] | str] | ToolCallSpec],
        *,
        content: str | None = None,
    ) -> Reply:
        """Native OpenAI ``tool_calls`` (what vLLM returns with ``--tool-call-parser``):
        ids ``call_<hex>`` generated per response, ``finish_reason="tool_calls"``."""
        specs = tuple(c if isinstance(c, ToolCallSpec) else ToolCallSpec(c[0], c[1]) for c in calls)
        if not specs:
            raise ValueError("Reply.tool_calls needs at least one call")
        return cls(content=content, calls=specs, finish_reason="tool_calls", label="tool_calls")

    @classmethod
    def hermes_tool_call(cls, name: str, arguments: Mapping[str, Any]) -> Reply:
        """A tool call left as text, as vLLM returns it when no tool parser runs:
        ``content = '<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>'``,
        ``tool_calls`` empty, ``finish_reason="stop"``."""
        payload = json.dumps({"name": name, "arguments": dict(arguments)}, ensure_ascii=False)
        return cls(content=f"<tool_call>\n{payload}\n</tool_call>", label="hermes_tool_call")

    @classmethod
    def json(cls, obj: Any) -> Reply:
        """An assistant message whose content is ``json.dumps(obj)``."""
        return cls(content=json.dumps(obj, ensure_ascii=False), label="json")

    @classmethod
    def http_error(
        cls,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """An HTTP error with an OpenAI error body
        ``{"error": {"message", "type", "param": null, "code": status}}`` (vLLM's format)."""
        if status < 400:
            raise ValueError(f"http_error needs a 4xx/5xx status, got {status}")
        return cls(
            kind="error",
            status=status,
            error_message=message,
            error_type=error_type or error_type_for(status),
            headers=tuple((headers or {}).items()),
            label=f"http_error_{status}",
        )

    @classmethod
    def reject_auto_tool_choice(cls) -> Reply:
        """vLLM's HTTP 400 for a request with tools / ``tool_choice: "auto"`` when the server runs
        without ``--enable-auto-tool-choice --tool-call-parser``.

        vLLM only rejects such requests: served (from the script or a responder) to a request that
        carries no tools, this reply is a scripting mistake and the server answers HTTP 500 saying
        so. To reject every tool request and answer the others from the script, use
        :meth:`FakeOpenAIServer.reject_auto_tool_choice`.
        """
        return dataclasses.replace(
            cls.http_error(400, AUTO_TOOL_CHOICE_ERROR), label="reject_auto_tool_choice"
        )

    @classmethod
    def slow(cls, seconds: float, reply: Reply) -> Reply:
        """``reply``, sent after ``seconds`` (nothing, not even headers, is sent before)."""
        return dataclasses.replace(reply, delay=reply.delay + float(seconds))

    @classmethod
    def drop_connection(cls, after_chunks: int | None = None) -> Reply:
        """Close the socket without an answer. With ``after_chunks=n`` a streaming request first
        receives ``n`` SSE events of a text answer and is then cut mid-stream (no ``[DONE]``, no
        final chunk); a non-streaming request is always dropped before any byte."""
        return cls(
            kind="drop",
            content="This answer is cut off " * 8,
            drop_after_chunks=after_chunks,
            label="drop_connection",
        )

    # -- modifiers ----------------------------------------------------------------------------

    def with_usage(
        self, prompt_tokens: int | None = None, completion_tokens: int | None = None
    ) -> Reply:
        """Report these token counts instead of the estimates computed from the request."""
        return dataclasses.replace(
            self, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )

    def with_headers(self, headers: Mapping[str, str]) -> Reply:
        """Add response headers (e.g. ``{"retry-after-ms": "10"}`` to make client retries fast)."""
        return dataclasses.replace(self, headers=self.headers + tuple(headers.items()))

    def with_stream_chunking(self, chunk_size: int = 16, chunk_delay: float = 0.0) -> Reply:
        """When streamed: characters of content/arguments per SSE event, and pause between events
        (to measure time to first token in benchmarks)."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        return dataclasses.replace(self, chunk_size=chunk_size, chunk_delay=chunk_delay)

    def with_model(self, model: str) -> Reply:
        """Report this ``model`` in the response (default: the request's ``model``)."""
        return dataclasses.replace(self, model=model)

    @property
    def is_auto_tool_choice_rejection(self) -> bool:
        """Whether this is vLLM's HTTP 400 for tools without ``--enable-auto-tool-choice``."""
        return (
            self.kind == "error"
            and self.status == 400
            and self.error_message == AUTO_TOOL_CHOICE_ERROR
        )
