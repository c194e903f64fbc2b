"""What the fake server answers: :class:`Reply` (one answer to one request) and
:class:`ToolCallSpec` (one native tool call in it), plus the OpenAI error body vLLM sends with an
HTTP error (:func:`error_body`), in vLLM 0.33's shape or older servers' flat one.

Besides model answers and HTTP errors a reply can be a transport fault: a dropped connection, a
late or trickled body (:meth:`Reply.slow`, :meth:`Reply.trickle`), a ``Retry-After`` 429 / 503
(:meth:`Reply.rate_limited`, :meth:`Reply.unavailable`), or a 200 whose body is not a completion
(:meth:`Reply.raw`, :meth:`Reply.html_page`, :meth:`Reply.empty_body`,
:meth:`Reply.truncated_json`, :meth:`Reply.no_choices`): what a proxy, a gateway or a
misconfigured ``api_base`` puts between the agent and vLLM."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AUTO_TOOL_CHOICE_ERROR",
    "HTML_PAGE",
    "QUEUE_FULL_ERROR",
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

#: vLLM's 503 when ``--max-num-queued-reqs`` is reached: ``QueueOverflowError`` in
#: ``vllm/exceptions.py``, reported by ``create_error_response``
#: (``vllm/entrypoints/serve/exception_handling/error_response.py``) with ``type`` the HTTP phrase
#: ``"Service Unavailable"`` (it is a ``GracefulHTTPError``). vLLM sends no ``Retry-After``.
QUEUE_FULL_ERROR = (
    "The engine is currently busy and cannot accept new requests. "
    "Please try again later or on a different instance."
)

#: The body of :meth:`Reply.html_page`: what a web UI or a login page behind a wrong
#: ``api_base`` answers with ``200 OK``.
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
    '<body><h1>Sign in</h1><form method="post"></form></body></html>\n'
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
#: connection, ``"raw"`` sends a body that is not a completion (see :meth:`Reply.raw`).
ReplyKind = Literal["message", "error", "drop", "raw"]


def error_type_for(status: int) -> str:
    """The ``error.type`` vLLM reports for an HTTP status (``"APIError"`` when unlisted)."""
    return _ERROR_TYPES.get(status, "APIError")


def error_body(
    status: int,
    message: str,
    error_type: str | None = None,
    param: str | None = None,
    *,
    legacy: bool = False,
) -> dict[str, Any]:
    """The error body vLLM sends with an HTTP error.

    vLLM 0.33 (``ErrorResponse`` / ``ErrorInfo`` in ``vllm/entrypoints/serve/engine/protocol.py``,
    built by ``create_error_response``): ``{"error": {"message", "type", "param", "code"}}``.
    ``legacy=True``: older servers' flat ``ErrorResponse`` (``object: str = "error"`` beside the
    same fields): ``{"object": "error", "message", "type", "param", "code"}``.
    """
    info = {
        "message": message,
        "type": error_type or error_type_for(status),
        "param": param,
        "code": status,
    }
    return {"object": "error", **info} if legacy else {"error": info}


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
    :meth:`hermes_tool_call`, :meth:`json`, :meth:`http_error`, :meth:`rate_limited`,
    :meth:`unavailable`, :meth:`reject_auto_tool_choice`, :meth:`slow`, :meth:`trickle`,
    :meth:`drop_connection`, :meth:`raw`, :meth:`html_page`, :meth:`empty_body`,
    :meth:`truncated_json`, :meth:`no_choices`) and refine with :meth:`with_usage`,
    :meth:`with_headers`, :meth:`with_stream_chunking`. Replies are immutable and may be reused
    (tool-call ids are generated per response). Chat requests take any reply; ``/v1/embeddings``
    requests take the error, dropped-connection and raw ones (see
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
    error_param: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    trickle_interval: float = 0.0
    raw_body: bytes | None = None
    content_type: str = "application/json"
    truncate_at: int | None = None
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
        param: str | None = None,
    ) -> Reply:
        """An HTTP error with vLLM's error body
        ``{"error": {"message", "type", "param", "code": status}}`` (see :func:`error_body`)."""
        if status < 400:
            raise ValueError(f"http_error needs a 4xx/5xx status, got {status}")
        return cls(
            kind="error",
            status=status,
            error_message=message,
            error_type=error_type or error_type_for(status),
            error_param=param,
            headers=tuple((headers or {}).items()),
            label=f"http_error_{status}",
        )

    @classmethod
    def rate_limited(
        cls, retry_after: int | str | None = 1, message: str = "Rate limit exceeded"
    ) -> Reply:
        """HTTP 429 with ``Retry-After: <retry_after>`` (seconds, or an HTTP date; None: no
        header): what a rate-limiting gateway in front of vLLM answers. vLLM itself never
        answers 429 and never sends ``Retry-After``."""
        reply = cls.http_error(429, message, headers=_retry_after(retry_after))
        return dataclasses.replace(reply, label="rate_limited")

    @classmethod
    def unavailable(
        cls, retry_after: int | str | None = 1, message: str = QUEUE_FULL_ERROR
    ) -> Reply:
        """HTTP 503 with vLLM's queue-full body (:data:`QUEUE_FULL_ERROR`, ``type`` ``"Service
        Unavailable"``) and ``Retry-After: <retry_after>`` (None: no header, as vLLM sends it;
        a gateway or load balancer adds one)."""
        reply = cls.http_error(
            503, message, error_type="Service Unavailable", headers=_retry_after(retry_after)
        )
        return dataclasses.replace(reply, label="unavailable")

    @classmethod
    def raw(
        cls,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send ``body`` verbatim (``str`` as UTF-8) with this status and ``Content-Type``, to
        streaming and non-streaming requests alike (no SSE framing): a broken proxy, a web page,
        a server that is not vLLM."""
        data = body.encode() if isinstance(body, str) else bytes(body)
        return cls(
            kind="raw",
            status=status,
            raw_body=data,
            content_type=content_type,
            headers=tuple((headers or {}).items()),
            label="raw",
        )

    @classmethod
    def html_page(cls, page: str = HTML_PAGE, *, status: int = 200) -> Reply:
        """``200 OK`` with an HTML page (``text/html; charset=utf-8``), as a web UI or a login
        page answers when ``api_base`` points at it instead of vLLM."""
        reply = cls.raw(page, status=status, content_type="text/html; charset=utf-8")
        return dataclasses.replace(reply, label="html_page")

    @classmethod
    def empty_body(cls, *, status: int = 200) -> Reply:
        """``200 OK``, ``Content-Type: application/json``, ``Content-Length: 0``."""
        return dataclasses.replace(cls.raw(b"", status=status), label="empty_body")

    @classmethod
    def no_choices(cls) -> Reply:
        """``200 OK`` with the JSON body ``{"choices": []}`` (no message to read)."""
        return dataclasses.replace(cls.raw(b'{"choices": []}'), label="no_choices")

    @classmethod
    def truncated_json(cls, keep_bytes: int | None = None, content: str = "cut short") -> Reply:
        """``200 OK`` whose JSON body is the completion of ``Reply.text(content)`` cut after
        ``keep_bytes`` bytes (default: half of it), with a ``Content-Length`` that matches the
        cut body, so the HTTP exchange is complete and only the JSON is broken (a proxy that
        truncated it). Sent as one JSON body to streaming requests too."""
        if keep_bytes is not None and keep_bytes < 0:
            raise ValueError("keep_bytes must be >= 0")
        return cls(kind="raw", content=content, truncate_at=keep_bytes, label="truncated_json")

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
    def trickle(cls, interval: float, reply: Reply) -> Reply:
        """``reply`` with its body sent one byte every ``interval`` seconds after prompt headers
        (status line and headers at once; a stream's framing trickles too). httpx's ``timeout``
        bounds each read, not the whole request, so only a whole-request deadline (e.g.
        ``asyncio.wait_for``) cuts such an answer short."""
        if interval <= 0:
            raise ValueError("trickle interval must be > 0")
        return dataclasses.replace(reply, trickle_interval=float(interval))

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

    def raw_payload(self, completion_body: bytes) -> bytes:
        """The bytes a ``"raw"`` reply sends: :attr:`raw_body`, or ``completion_body`` (the JSON
        completion the server built for this reply) cut at :attr:`truncate_at` (default half)."""
        if self.raw_body is not None:
            return self.raw_body
        keep = len(completion_body) // 2 if self.truncate_at is None else self.truncate_at
        return completion_body[:keep]

    @property
    def is_auto_tool_choice_rejection(self) -> bool:
        """Whether this is vLLM's HTTP 400 for tools without ``--enable-auto-tool-choice``."""
        return (
            self.kind == "error"
            and self.status == 400
            and self.error_message == AUTO_TOOL_CHOICE_ERROR
        )


def _retry_after(value: int | str | None) -> dict[str, str]:
    return {} if value is None else {"Retry-After": str(value)}
