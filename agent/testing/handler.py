"""The HTTP layer of the fake server: a ``ThreadingHTTPServer`` whose handler routes each request,
records it on the :class:`FakeOpenAIServer` that owns it, asks that server which reply to send
and writes it (JSON, chunked server-sent events, an error, a raw body, or a dropped connection),
at once, late, or trickled a byte at a time."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from agent.testing.completions import completion, stream_events
from agent.testing.embeddings import embedding_answer, embedding_inputs, embeddings_response
from agent.testing.replies import Reply, error_body
from agent.testing.requests import CHAT_PATH, EMBEDDINGS_PATH, MODELS_PATH, RecordedRequest
from agent.testing.vllm import model_list

if TYPE_CHECKING:
    from agent.testing.server import FakeOpenAIServer

__all__ = ["FakeHTTPServer"]

logger = logging.getLogger(__name__)


class _ClientGone(Exception):
    """The client closed the connection (e.g. after its own timeout)."""


class FakeHTTPServer(ThreadingHTTPServer):
    """The HTTP server behind one started :class:`FakeOpenAIServer` (daemon handler threads)."""

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


def _bearer_token_ok(header: str | None, api_key: str) -> bool:
    """vLLM's ``--api-key`` check: ``Authorization: Bearer <key>``, scheme in any case."""
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and token == api_key


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHTTPServer

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

    def _write(self, data: bytes, trickle: float = 0.0) -> None:
        """Send ``data``; with ``trickle`` > 0 one byte every ``trickle`` seconds (cut short,
        connection dropped, when the server stops)."""
        try:
            if trickle <= 0:
                self.wfile.write(data)
                self.wfile.flush()
                return
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                if self.server.fake._stopping.wait(trickle):
                    raise _ClientGone("server stopping")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError) as exc:
            raise _ClientGone(str(exc)) from exc

    def _send_bytes(
        self,
        status: int,
        payload: bytes,
        content_type: str = "application/json",
        headers: Iterable[tuple[str, str]] = (),
        trickle: float = 0.0,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if trickle > 0:
            self.wfile.flush()
        self._write(payload, trickle)

    def _send_json(
        self,
        status: int,
        obj: Any,
        headers: Iterable[tuple[str, str]] = (),
        trickle: float = 0.0,
    ) -> None:
        self._send_bytes(status, json.dumps(obj).encode(), "application/json", headers, trickle)

    def _send_error_body(
        self,
        status: int,
        message: str,
        error_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        *,
        param: str | None = None,
        trickle: float = 0.0,
    ) -> None:
        legacy = self.server.fake.legacy_error_body
        body = error_body(status, message, error_type, param, legacy=legacy)
        self._send_json(status, body, headers, trickle)

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

    def _authorized(self, record: RecordedRequest) -> bool:
        """Like vLLM started with ``--api-key``: a ``/v1`` request without the key gets HTTP 401
        ``{"error": "Unauthorized"}`` (answered here); other paths are open."""
        api_key = self.server.fake.api_key
        if api_key is None or not record.path.startswith("/v1"):
            return True
        if _bearer_token_ok(self.headers.get("Authorization"), api_key):
            return True
        logger.info("request #%d: HTTP 401 (no or wrong API key)", record.index)
        record.status = 401
        self._send_json(401, {"error": "Unauthorized"})
        return False

    def _serve_failure(self, record: RecordedRequest, reply: Reply, *, streaming: bool) -> bool:
        """Wait out ``reply.delay``, then send its error or raw body, or drop the connection.
        Returns whether the request is answered (False: ``reply`` is a message, a stream cut
        later on, or a truncated completion asked of a route that has none)."""
        if reply.delay > 0 and self.server.fake._stopping.wait(reply.delay):
            record.status = 0
            self._drop()
            return True
        if reply.kind == "drop" and (reply.drop_after_chunks is None or not streaming):
            logger.info("request #%d: dropping the connection", record.index)
            record.status = 0
            self._drop()
            return True
        if reply.kind == "error":
            record.status = reply.status
            logger.info("request #%d: HTTP %d %s", record.index, reply.status, reply.error_message)
            self._send_error_body(
                reply.status,
                reply.error_message,
                reply.error_type,
                reply.headers,
                param=reply.error_param,
                trickle=reply.trickle_interval,
            )
            return True
        if reply.kind == "raw":
            if reply.raw_body is None and record.path != CHAT_PATH:
                return False
            full = b""
            if reply.raw_body is None:
                full = json.dumps(completion(record.body, reply, self.server.fake.model_ids[0]))
                full = full.encode()
            record.status = reply.status
            logger.info("request #%d: HTTP %d raw %s", record.index, reply.status, reply.label)
            self._send_bytes(
                reply.status,
                reply.raw_payload(full),
                reply.content_type,
                reply.headers,
                reply.trickle_interval,
            )
            return True
        return False

    # -- routes -------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        record = self._record(b"")
        fake = self.server.fake
        try:
            if not self._authorized(record):
                return
            if record.path in (MODELS_PATH, MODELS_PATH + "/"):
                body = model_list(
                    fake.listed_model_names,
                    root=fake.model_path,
                    max_model_len=fake.max_model_len or 32768,
                )
                record.status = 200
                self._send_json(200, body)
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
            if not self._authorized(record):
                return
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
        if self._serve_failure(record, reply, streaming=record.stream):
            return
        record.status = 200
        if record.stream:
            self._chat_stream(record, reply)
        else:
            answer = completion(body, reply, fake.model_ids[0])
            self._send_json(200, answer, reply.headers, reply.trickle_interval)

    def _chat_stream(self, record: RecordedRequest, reply: Reply) -> None:
        fake = self.server.fake
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        trickle = reply.trickle_interval

        def send_chunked(data: bytes) -> None:
            self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n", trickle)

        events = stream_events(record.body, reply, fake.model_ids[0])
        for n, event in enumerate(events):
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
        self._write(b"0\r\n\r\n", trickle)

    # -- embeddings ---------------------------------------------------------------------------

    def _embeddings(self, record: RecordedRequest) -> None:
        fake = self.server.fake
        body = record.body
        try:
            inputs = embedding_inputs(body)
        except ValueError as exc:
            record.status = 400
            self._send_error_body(400, str(exc))
            return

        try:
            answer = embedding_answer(fake, body, inputs)
        except Exception as exc:  # noqa: BLE001 - surfaced to the client as a 500
            logger.exception("embedding responder failed")
            record.status = 500
            self._send_error_body(500, f"FakeOpenAIServer: embedding responder raised {exc!r}")
            return
        if isinstance(answer, Reply):
            record.reply = answer
            if not self._serve_failure(record, answer, streaming=False):
                record.status = 500
                self._send_error_body(
                    500,
                    f"FakeOpenAIServer: a {answer.label or answer.kind!r} reply cannot answer an "
                    "embeddings request; script vectors, an http_error, a raw body or a "
                    "drop_connection",
                    headers=[("x-should-retry", "false")],
                )
            return

        record.status = 200
        self._send_json(
            200,
            embeddings_response(
                body, inputs, answer, model=fake.model_ids[0], encoding=fake.embedding_encoding
            ),
        )
