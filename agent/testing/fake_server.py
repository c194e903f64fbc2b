"""A scriptable fake OpenAI-compatible server for tests and benchmarks.

Tests talk real HTTP to it (``openai`` client, LlamaIndex ``OpenAILike``), so every layer that
runs against a real vLLM runs here too: request serialisation, retries, timeouts, server-sent
events, error mapping. Standard library only: a ``ThreadingHTTPServer`` on ``127.0.0.1`` (port
0, i.e. any free port) served from a daemon thread.

Routes
    ``POST /v1/chat/completions``  non-streaming and ``"stream": true`` (server-sent events in the
    OpenAI chunk format, tool-call deltas, ``stream_options.include_usage``, final ``[DONE]``);
    ``GET /v1/models``; ``POST /v1/embeddings`` (deterministic vectors, or scripted ones, float
    or base64); ``GET /health``.

Which reply answers a chat request (first match wins)
    1. rules added with :meth:`FakeOpenAIServer.when` (persistent, do not consume the script);
    2. :attr:`FakeOpenAIServer.responder`, a ``callable(request_json) -> Reply | None`` (``None``
       falls through);
    3. the script (:meth:`FakeOpenAIServer.script`), one reply per request;
    4. nothing left: HTTP 500 saying the script is exhausted (with ``x-should-retry: false`` so
       the openai client does not retry it).

Usage::

    from agent.testing.fake_server import FakeOpenAIServer, Reply, image_parts
    from llama_index.llms.openai_like import OpenAILike

    with FakeOpenAIServer() as server:
        server.script(
            Reply.tool_calls([("search_examples", {"query": "dent on door"})]),
            Reply.text("A dent on the rear door, see example #3."),
        )
        llm = OpenAILike(model="qwen", api_base=server.base_url, api_key="x",
                         is_chat_model=True, is_function_calling_model=True, max_retries=0)
        ...  # run the agent
        first, second = server.chat_requests
        assert first.body["tool_choice"] == "auto"
        assert second.messages[-1]["role"] == "tool"
        assert image_parts(first)  # the query photo was sent as an image_url part

    # a vLLM started without --enable-auto-tool-choice: requests carrying tools get HTTP 400,
    # the others are answered from the script
    with FakeOpenAIServer() as server:
        server.reject_auto_tool_choice()
        server.script(Reply.hermes_tool_call("search_examples", {"query": "dent"}))
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import socket
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = [
    "AUTO_TOOL_CHOICE_ERROR",
    "FakeOpenAIServer",
    "RecordedRequest",
    "Reply",
    "ToolCallSpec",
    "decode_data_uri",
    "estimate_completion_tokens",
    "estimate_prompt_tokens",
    "has_tools",
    "image_parts",
    "image_size",
    "wants_auto_tool_choice",
]

logger = logging.getLogger(__name__)

#: vLLM's error text when a request asks for ``tool_choice: "auto"`` (explicitly, or implicitly by
#: sending ``tools``) and the server runs without ``--enable-auto-tool-choice --tool-call-parser``.
AUTO_TOOL_CHOICE_ERROR = (
    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
)

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MODELS_PATH = "/v1/models"

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

ReplyKind = Literal["message", "error", "drop"]
Predicate = Callable[[dict[str, Any]], bool]
Responder = Callable[[dict[str, Any]], "Reply | None"]
EmbeddingResponder = Callable[[dict[str, Any]], Sequence[Sequence[float]]]


# --------------------------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------------------------


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
    """What the server answers to one chat-completions request.

    Build with the class-method constructors (:meth:`text`, :meth:`tool_calls`,
    :meth:`hermes_tool_call`, :meth:`json`, :meth:`http_error`,
    :meth:`reject_auto_tool_choice`, :meth:`slow`, :meth:`drop_connection`) and refine with
    :meth:`with_usage`, :meth:`with_headers`, :meth:`with_stream_chunking`. Replies are
    immutable and may be reused (tool-call ids are generated per response).
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
            error_type=error_type or _ERROR_TYPES.get(status, "APIError"),
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
        return (
            self.kind == "error"
            and self.status == 400
            and self.error_message == AUTO_TOOL_CHOICE_ERROR
        )


# --------------------------------------------------------------------------------------------
# Request inspection helpers
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request the server received.

    ``headers`` has lower-case names; an ``authorization`` value is replaced by ``"<redacted>"``
    and :attr:`has_authorization` says whether one was present. ``body`` is the parsed JSON body
    (None for GET or an unparsable body). ``reply`` / ``status`` say how the server answered
    (``status`` 0 for a dropped connection).
    """

    index: int
    method: str
    path: str
    headers: dict[str, str]
    has_authorization: bool
    body: Any
    raw_size: int
    received_at: float
    reply: Reply | None = None
    status: int | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """``body["messages"]`` (empty list when absent)."""
        if isinstance(self.body, dict):
            return list(self.body.get("messages") or [])
        return []

    @property
    def tools(self) -> list[dict[str, Any]]:
        """``body["tools"]`` (empty list when absent)."""
        if isinstance(self.body, dict):
            return list(self.body.get("tools") or [])
        return []

    @property
    def tool_choice(self) -> Any:
        """``body.get("tool_choice")``."""
        return self.body.get("tool_choice") if isinstance(self.body, dict) else None

    @property
    def stream(self) -> bool:
        """Whether the request asked for server-sent events."""
        return bool(self.body.get("stream")) if isinstance(self.body, dict) else False

    def image_parts(self) -> list[dict[str, Any]]:
        """The ``image_url`` content parts of all messages, in order."""
        return image_parts(self)


def _body_of(request: RecordedRequest | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(request, RecordedRequest):
        return request.body if isinstance(request.body, dict) else {}
    return request


def image_parts(request: RecordedRequest | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``{"type": "image_url", "image_url": {...}}`` parts of all messages of a chat request
    (a :class:`RecordedRequest` or a request body), in message order."""
    parts: list[dict[str, Any]] = []
    for message in _body_of(request).get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            parts.extend(p for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    return parts


def decode_data_uri(url: str) -> tuple[str, bytes]:
    """Split a ``data:<mime>;base64,<data>`` URI into ``(mime, raw bytes)``."""
    if not url.startswith("data:") or "," not in url:
        raise ValueError(f"not a data URI: {url[:40]!r}")
    header, data = url[5:].split(",", 1)
    mime = header.split(";", 1)[0]
    if not header.endswith(";base64"):
        raise ValueError(f"data URI is not base64-encoded: {header!r}")
    return mime, base64.b64decode(data)


def has_tools(body: Mapping[str, Any]) -> bool:
    """True when the request carries a non-empty ``tools`` list."""
    return bool(body.get("tools"))


def wants_auto_tool_choice(body: Mapping[str, Any]) -> bool:
    """True for the requests a vLLM without ``--enable-auto-tool-choice`` rejects: ``tools``
    present and ``tool_choice`` absent (vLLM defaults it to ``"auto"`` then) or ``"auto"``.
    ``"none"``, ``"required"`` and a named function are accepted by such a server."""
    choice = body.get("tool_choice")
    if choice == "auto":
        return True
    return has_tools(body) and choice is None


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from a PNG, JPEG, GIF or WebP header; None if unrecognised."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if chunk == b"VP8L":
                b = data[21:25]
                w = 1 + (((b[1] & 0x3F) << 8) | b[0])
                h = 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
                return w, h
            return None
        if data[:2] == b"\xff\xd8":
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    i += 1
                    continue
                marker = data[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                    i += 1 if marker == 0xFF else 2
                    continue
                seg_len = struct.unpack(">H", data[i + 2 : i + 4])[0]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                    return int(w), int(h)
                i += 2 + seg_len
    except (struct.error, IndexError):
        return None
    return None


#: Tokens assumed for an image whose size cannot be read (remote URL, unknown format).
UNKNOWN_IMAGE_TOKENS = 256


def _image_tokens(url: str) -> int:
    """Qwen3-VL-style estimate: one visual token per 32x32 px, plus 2 delimiter tokens."""
    try:
        _, raw = decode_data_uri(url)
    except (ValueError, binascii.Error):
        return UNKNOWN_IMAGE_TOKENS
    size = image_size(raw)
    if size is None:
        return UNKNOWN_IMAGE_TOKENS
    w, h = size
    return max(1, math.ceil(w / 32)) * max(1, math.ceil(h / 32)) + 2


def _text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """A deterministic stand-in for the prompt token count of a chat request: 4 chars per text
    token, 4 tokens per message, images by pixel count (one token per 32x32 px, like Qwen3-VL
    with no server-side resizing), tool definitions by their JSON size."""
    total = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += 4
        content = message.get("content")
        if isinstance(content, str):
            total += _text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    total += _text_tokens(str(part.get("text", "")))
                elif part.get("type") == "image_url":
                    total += _image_tokens(str((part.get("image_url") or {}).get("url", "")))
        for call in message.get("tool_calls") or []:
            total += _text_tokens(json.dumps(call))
    if body.get("tools"):
        total += _text_tokens(json.dumps(body["tools"]))
    return max(total, 1)


def estimate_completion_tokens(reply: Reply) -> int:
    """4 chars per token over content, reasoning and tool-call names/arguments (at least 1)."""
    text = (reply.content or "") + (reply.reasoning or "")
    text += "".join(c.name + c.arguments_json() for c in reply.calls)
    return max(_text_tokens(text), 1)


def _default_embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit vector derived from sha256(text)."""
    values: list[float] = []
    counter = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vec = values[:dim]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _chunks(text: str, size: int) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


class _ClientGone(Exception):
    """The client closed the connection (e.g. after its own timeout)."""


@dataclass
class _Rule:
    predicate: Predicate
    reply: Reply | Callable[[dict[str, Any]], Reply]
    times: int | None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, fake: FakeOpenAIServer) -> None:
        self.fake = fake
        super().__init__((fake.host, fake.requested_port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log instead of printing a traceback; a client hanging up is routine here."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, _ClientGone)):
            logger.debug("connection from %s ended: %r", client_address, exc)
        else:
            logger.exception("fake OpenAI server: error while handling %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    # -- plumbing -----------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("fake-openai %s - %s", self.address_string(), format % args)

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError) as exc:
            raise _ClientGone(str(exc)) from exc

    def _send_json(self, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        payload = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self._write(payload)

    def _send_error_body(
        self,
        status: int,
        message: str,
        error_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        body = {
            "error": {
                "message": message,
                "type": error_type or _ERROR_TYPES.get(status, "APIError"),
                "param": None,
                "code": status,
            }
        }
        self._send_json(status, body, headers)

    def _drop(self) -> None:
        """Close the connection abruptly: no (further) bytes, no terminating chunk."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _record(self, raw: bytes) -> RecordedRequest:
        headers: dict[str, str] = {}
        has_auth = False
        for name, value in self.headers.items():
            key = name.lower()
            if key == "authorization":
                has_auth = True
                value = "<redacted>"
            headers[key] = value
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        path = self.path.split("?", 1)[0]
        return self.server.fake._record(
            method=self.command,
            path=path,
            headers=headers,
            has_authorization=has_auth,
            body=body,
            raw_size=len(raw),
        )

    # -- routes -------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        record = self._record(b"")
        fake = self.server.fake
        try:
            if record.path in (MODELS_PATH, MODELS_PATH + "/"):
                now = int(time.time())
                data = [
                    {
                        "id": m,
                        "object": "model",
                        "created": now,
                        "owned_by": "fake-openai",
                        "root": m,
                        "parent": None,
                        "max_model_len": fake.max_model_len,
                    }
                    for m in fake.model_ids
                ]
                record.status = 200
                self._send_json(200, {"object": "list", "data": data})
            elif record.path in ("/health", "/v1/health"):
                record.status = 200
                self._send_json(200, {})
            else:
                record.status = 404
                self._send_error_body(404, f"Not found: GET {record.path}")
        except _ClientGone:
            logger.debug("client went away during GET %s", record.path)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        raw = self._read_body()
        record = self._record(raw)
        try:
            if record.path == CHAT_PATH:
                self._chat(record)
            elif record.path == EMBEDDINGS_PATH:
                self._embeddings(record)
            else:
                record.status = 404
                self._send_error_body(404, f"Not found: POST {record.path}")
        except _ClientGone as exc:
            logger.debug("client went away during request #%d: %s", record.index, exc)
            self.close_connection = True

    # -- chat ---------------------------------------------------------------------------------

    def _chat(self, record: RecordedRequest) -> None:
        fake = self.server.fake
        body = record.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            record.status = 400
            self._send_error_body(400, "request body must be a JSON object with a 'messages' list")
            return

        reply = fake._select_reply(record)
        record.reply = reply
        if reply.delay > 0 and fake._stopping.wait(reply.delay):
            record.status = 0
            self._drop()
            return

        if reply.kind == "drop" and (reply.drop_after_chunks is None or not record.stream):
            logger.info("request #%d: dropping the connection", record.index)
            record.status = 0
            self._drop()
            return
        if reply.kind == "error":
            record.status = reply.status
            logger.info("request #%d: HTTP %d %s", record.index, reply.status, reply.error_message)
            self._send_error_body(
                reply.status, reply.error_message, reply.error_type, reply.headers
            )
            return

        record.status = 200
        if record.stream:
            self._chat_stream(record, reply)
        else:
            self._send_json(200, self._completion(record, reply), reply.headers)

    @staticmethod
    def _tool_call_ids(reply: Reply) -> list[str]:
        return [c.id or f"call_{uuid.uuid4().hex[:24]}" for c in reply.calls]

    @staticmethod
    def _usage(record: RecordedRequest, reply: Reply) -> dict[str, int]:
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = estimate_prompt_tokens(record.body)
        completion = reply.completion_tokens
        if completion is None:
            completion = estimate_completion_tokens(reply)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, record: RecordedRequest, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.content,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
                for call, call_id in zip(reply.calls, self._tool_call_ids(reply), strict=True)
            ],
        }
        if reply.reasoning is not None:
            message["reasoning_content"] = reply.reasoning
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or record.body.get("model") or self.server.fake.model_ids[0],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": self._usage(record, reply),
        }

    def _stream_events(self, record: RecordedRequest, reply: Reply) -> Iterator[dict[str, Any]]:
        """The ``chat.completion.chunk`` objects of one streamed answer, in order."""
        body = record.body
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model or body.get("model") or self.server.fake.model_ids[0],
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            obj = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                obj["usage"] = None
            return obj

        yield chunk({"role": "assistant", "content": ""})
        for piece in _chunks(reply.reasoning or "", reply.chunk_size):
            yield chunk({"reasoning_content": piece})
        for piece in _chunks(reply.content or "", reply.chunk_size):
            yield chunk({"content": piece})
        for index, (call, call_id) in enumerate(
            zip(reply.calls, self._tool_call_ids(reply), strict=True)
        ):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            for piece in _chunks(call.arguments_json(), reply.chunk_size):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, reply.finish_reason)
        if include_usage:
            yield {**base, "choices": [], "usage": self._usage(record, reply)}

    def _chat_stream(self, record: RecordedRequest, reply: Reply) -> None:
        fake = self.server.fake
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()

        def send_chunked(data: bytes) -> None:
            self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        for n, event in enumerate(self._stream_events(record, reply)):
            if reply.kind == "drop" and n >= (reply.drop_after_chunks or 0):
                logger.info("request #%d: dropping the stream after %d events", record.index, n)
                record.status = 0
                self._drop()
                return
            if n and reply.chunk_delay > 0 and fake._stopping.wait(reply.chunk_delay):
                self._drop()
                return
            send_chunked(b"data: " + json.dumps(event).encode() + b"\n\n")
        send_chunked(b"data: [DONE]\n\n")
        self._write(b"0\r\n\r\n")

    # -- embeddings ---------------------------------------------------------------------------

    def _embeddings(self, record: RecordedRequest) -> None:
        fake = self.server.fake
        body = record.body
        if not isinstance(body, dict) or ("input" not in body and "messages" not in body):
            record.status = 400
            self._send_error_body(
                400, "request body must be a JSON object with 'input' or 'messages'"
            )
            return
        inputs: list[str]
        if "messages" in body:  # vLLM's multimodal (chat-style) embedding request
            inputs = [json.dumps(body["messages"], sort_keys=True)]
        else:
            raw_input = body["input"]
            if isinstance(raw_input, str):
                inputs = [raw_input]
            elif (
                isinstance(raw_input, list)
                and raw_input
                and all(isinstance(x, int) for x in raw_input)
            ):
                inputs = [json.dumps(raw_input)]
            elif isinstance(raw_input, list):
                inputs = [x if isinstance(x, str) else json.dumps(x) for x in raw_input]
            else:
                record.status = 400
                self._send_error_body(400, "'input' must be a string or a list")
                return

        try:
            vectors = fake._embeddings_for(body, inputs)
        except Exception as exc:  # noqa: BLE001 - surfaced to the client as a 500
            logger.exception("embedding responder failed")
            record.status = 500
            self._send_error_body(500, f"FakeOpenAIServer: embedding responder raised {exc!r}")
            return

        b64 = body.get("encoding_format") == "base64"
        data = []
        for i, vec in enumerate(vectors):
            values: Any = [float(v) for v in vec]
            if b64:
                values = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            data.append({"object": "embedding", "index": i, "embedding": values})
        tokens = sum(_text_tokens(s) for s in inputs) or 1
        record.status = 200
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or fake.model_ids[0],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


class FakeOpenAIServer:
    """A scriptable OpenAI-compatible HTTP server on ``127.0.0.1``; see the module docstring.

    Args:
        model_ids: ids listed by ``GET /v1/models`` (the first is the default ``model``).
        embedding_dim: size of the default embedding vectors (``dimensions`` in a request wins).
        max_model_len: reported by ``GET /v1/models`` (vLLM extension).
        host: interface to bind; port 0 picks a free port.
    """

    def __init__(
        self,
        *,
        model_ids: Sequence[str] = ("qwen",),
        embedding_dim: int = 8,
        max_model_len: int = 32768,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not model_ids:
            raise ValueError("model_ids must not be empty")
        self.model_ids: list[str] = list(model_ids)
        self.embedding_dim = embedding_dim
        self.max_model_len = max_model_len
        self.host = host
        self.requested_port = port
        #: ``callable(request_json) -> Reply | None``; consulted before the script (after rules).
        self.responder: Responder | None = None
        #: ``callable(request_json) -> list of vectors`` for ``/v1/embeddings``.
        self.embedding_responder: EmbeddingResponder | None = None
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._embedding_script: deque[list[list[float]]] = deque()
        self._rules: list[_Rule] = []
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Bind and serve from a daemon thread. Returns ``self``."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-openai-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("fake OpenAI server listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections (including delayed replies) and free the port."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None
        logger.info("fake OpenAI server stopped")

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (raises if not started)."""
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass as ``api_base`` / ``base_url``."""
        return f"{self.url}/v1"

    # -- scripting ------------------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Append replies to the script; each chat request consumes one, in order."""
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"script() takes Reply objects, got {type(reply).__name__}")
        with self._lock:
            self._script.extend(replies)

    def when(
        self,
        predicate: Predicate,
        reply: Reply | Callable[[dict[str, Any]], Reply],
        *,
        times: int | None = None,
    ) -> None:
        """Answer every chat request for which ``predicate(request_json)`` is true with ``reply``
        (a Reply or ``callable(request_json) -> Reply``), without consuming the script. Rules are
        checked in the order added, before the responder; ``times`` limits how often one fires."""
        with self._lock:
            self._rules.append(_Rule(predicate, reply, times))

    def reject_auto_tool_choice(self) -> None:
        """Behave like a vLLM started without ``--enable-auto-tool-choice``: every request with
        tools (``tool_choice`` absent or ``"auto"``) gets the HTTP 400; other requests go on to the
        responder / script as usual."""
        self.when(wants_auto_tool_choice, Reply.reject_auto_tool_choice())

    def script_embeddings(self, *batches: Sequence[Sequence[float]]) -> None:
        """Append embedding answers; each ``/v1/embeddings`` request consumes one batch (one
        vector per input). When none is left, deterministic hash vectors are returned."""
        with self._lock:
            self._embedding_script.extend([list(map(float, v)) for v in b] for b in batches)

    @property
    def pending_replies(self) -> int:
        """How many scripted chat replies are not consumed yet."""
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget the script, rules, responders and recorded requests."""
        with self._lock:
            self._script.clear()
            self._embedding_script.clear()
            self._rules.clear()
            self._requests.clear()
            self.responder = None
            self.embedding_responder = None

    # -- recording ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (all routes), oldest first (a snapshot copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The ``POST /v1/chat/completions`` requests received so far."""
        return [r for r in self.requests if r.path == CHAT_PATH and r.method == "POST"]

    def last_request(self, path: str | None = None) -> RecordedRequest:
        """The most recent request (to ``path`` if given); raises LookupError if there is none."""
        for record in reversed(self.requests):
            if path is None or record.path == path:
                return record
        raise LookupError(f"no request received{f' on {path}' if path else ''}")

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests were received; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            reqs = self.requests
            if len(reqs) >= count:
                return reqs
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(reqs)} of {count} requests received after {timeout}s")
            time.sleep(0.01)

    # -- internals used by the handler ----------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _record(self, **kwargs: Any) -> RecordedRequest:
        with self._lock:
            record = RecordedRequest(index=len(self._requests), received_at=time.time(), **kwargs)
            self._requests.append(record)
        logger.debug("request #%d %s %s", record.index, record.method, record.path)
        return record

    def _select_reply(self, record: RecordedRequest) -> Reply:
        body: dict[str, Any] = record.body
        reply: Reply | None = None
        source = ""
        try:
            with self._lock:
                rules = list(self._rules)
            for rule in rules:
                if rule.predicate(body):
                    with self._lock:
                        if rule.times is not None:
                            rule.times -= 1
                            if rule.times <= 0:
                                self._rules = [r for r in self._rules if r is not rule]
                    reply = rule.reply if isinstance(rule.reply, Reply) else rule.reply(body)
                    source = "rule"
                    break
            if reply is None and self.responder is not None:
                reply = self.responder(body)
                source = "responder"
        except Exception as exc:  # noqa: BLE001 - a broken test hook becomes a visible 500
            logger.exception("rule/responder raised for request #%d", record.index)
            return Reply.http_error(
                500,
                f"FakeOpenAIServer: rule/responder raised {exc!r}",
                headers={"x-should-retry": "false"},
            )
        if reply is None:
            with self._lock:
                reply = self._script.popleft() if self._script else None
            source = "script"
        if reply is None:
            n_chat = sum(1 for r in self.requests if r.path == CHAT_PATH)
            message = (
                f"FakeOpenAIServer: script exhausted - no scripted reply left for chat request "
                f"number {n_chat} (request index {record.index}); script more replies or set a "
                "responder"
            )
            logger.warning(message)
            return Reply.http_error(500, message, headers={"x-should-retry": "false"})
        if not isinstance(reply, Reply):
            return Reply.http_error(
                500,
                f"FakeOpenAIServer: {source} returned {type(reply).__name__}, not a Reply",
                headers={"x-should-retry": "false"},
            )
        if reply.is_auto_tool_choice_rejection and not wants_auto_tool_choice(body):
            message = (
                "FakeOpenAIServer: a reject_auto_tool_choice reply was served to a request "
                "without tools / tool_choice 'auto' (vLLM would not reject it); use "
                "server.reject_auto_tool_choice() to reject only tool requests"
            )
            logger.warning(message)
            return Reply.http_error(500, message, headers={"x-should-retry": "false"})
        logger.debug("request #%d answered by %s: %s", record.index, source, reply.label)
        return reply

    def _embeddings_for(self, body: dict[str, Any], inputs: list[str]) -> list[list[float]]:
        if self.embedding_responder is not None:
            return [list(map(float, v)) for v in self.embedding_responder(body)]
        with self._lock:
            scripted = self._embedding_script.popleft() if self._embedding_script else None
        if scripted is not None:
            if len(scripted) != len(inputs):
                logger.warning(
                    "scripted embedding batch has %d vectors for %d inputs",
                    len(scripted),
                    len(inputs),
                )
            return scripted
        dim = int(body.get("dimensions") or self.embedding_dim)
        return [_default_embedding(text, dim) for text in inputs]
