"""FakeOpenAIServer: a scriptable OpenAI-compatible HTTP server on ``127.0.0.1`` (see the package
docstring for its routes and a usage example).

Which reply answers a chat request (first match wins)
    0. the vLLM-faithful limits (:func:`~agent.testing.vllm.vllm_refusal`): unknown model,
       ``max_tokens`` above ``max_model_len``, too many images, too long a prompt;
    1. rules added with :meth:`FakeOpenAIServer.when` (persistent, do not consume the script);
    2. :attr:`FakeOpenAIServer.responder`, a ``callable(request_json) -> Reply | None`` (``None``
       falls through);
    3. the script (:meth:`FakeOpenAIServer.script`), one reply per request;
    4. nothing left: HTTP 500 saying the script is exhausted (with ``x-should-retry: false`` so
       the openai client does not retry it).

Which answer an embeddings request gets (first match wins)
    1. :attr:`FakeOpenAIServer.embedding_responder`, a ``callable(request_json)`` returning the
       vectors or an error / dropped-connection :class:`Reply`;
    2. the embeddings script (:meth:`FakeOpenAIServer.script_embeddings`): one batch of vectors,
       or one such reply (e.g. ``Reply.http_error(503, "busy")``), per request;
    3. deterministic unit vectors derived from sha256 of each input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.testing.embeddings import EmbeddingEncoding
from agent.testing.handler import FakeHTTPServer
from agent.testing.replies import Reply
from agent.testing.requests import CHAT_PATH, RecordedRequest, wants_auto_tool_choice
from agent.testing.vllm import ContextErrorStyle, vllm_refusal

__all__ = ["EmbeddingResponder", "FakeOpenAIServer", "Predicate", "Responder"]

logger = logging.getLogger(__name__)

#: ``predicate(request_json) -> bool`` selecting the chat requests a rule answers.
Predicate = Callable[[dict[str, Any]], bool]
#: ``responder(request_json) -> Reply | None`` answering chat requests (None falls through).
Responder = Callable[[dict[str, Any]], "Reply | None"]
#: ``responder(request_json) -> vectors | Reply`` answering ``/v1/embeddings`` requests.
EmbeddingResponder = Callable[[dict[str, Any]], "Sequence[Sequence[float]] | Reply"]


@dataclass
class _Rule:
    predicate: Predicate
    reply: Reply | Callable[[dict[str, Any]], Reply]
    times: int | None


class FakeOpenAIServer:
    """A scriptable OpenAI-compatible HTTP server on ``127.0.0.1`` (see the package docstring).

    Args:
        model_ids: ids listed by ``GET /v1/models`` (the first is the default ``model``) when
            ``served_model_names`` is not set.
        embedding_dim: size of the default embedding vectors (``dimensions`` in a request wins).
        host: interface to bind; port 0 picks a free port.
        api_key: like vLLM's ``--api-key``: ``/v1`` requests without
            ``Authorization: Bearer <api_key>`` get HTTP 401 ``{"error": "Unauthorized"}``
            (``/health`` stays open). None (default): no check.

    vLLM-faithful options (attributes too, settable any time; :meth:`like_vllm` sets them as a
    real server has them; messages and their vLLM source in :mod:`agent.testing.vllm`):
    ``max_model_len`` (``--max-model-len``; a prompt estimate, ``agent.budget``'s, that reaches
    it or a bigger ``max_tokens`` gets vLLM's 400; None: not enforced, 32768 reported by
    ``/v1/models``), ``max_images_per_prompt`` (``--limit-mm-per-prompt``; None: vLLM's 999),
    ``served_model_names`` (``--served-model-name``; other models get vLLM's 404, ``/v1/models``
    lists these, answers report the first; None: any model), ``context_error_style``
    (:data:`~agent.testing.vllm.ContextErrorStyle`), ``legacy_error_body`` (older servers' flat
    ``{"object": "error", ...}`` error bodies), ``model_path`` (``root`` in ``/v1/models``).
    """

    def __init__(
        self,
        *,
        model_ids: Sequence[str] = ("qwen",),
        embedding_dim: int = 8,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        max_model_len: int | None = None,
        max_images_per_prompt: int | None = None,
        served_model_names: Sequence[str] | None = None,
        context_error_style: ContextErrorStyle = "auto",
        legacy_error_body: bool = False,
        model_path: str | None = None,
    ) -> None:
        if not model_ids:
            raise ValueError("model_ids must not be empty")
        if served_model_names is not None and not served_model_names:
            raise ValueError("served_model_names must not be empty (None accepts any model)")
        self.model_ids: list[str] = list(model_ids)
        self.embedding_dim = embedding_dim
        self.max_model_len = max_model_len
        self.max_images_per_prompt = max_images_per_prompt
        self.served_model_names = None if served_model_names is None else list(served_model_names)
        self.context_error_style: ContextErrorStyle = context_error_style
        self.legacy_error_body = legacy_error_body
        self.model_path = model_path
        self.host = host
        self.requested_port = port
        #: The key ``/v1`` requests must send as a bearer token (None: none needed).
        self.api_key = api_key
        #: ``callable(request_json) -> Reply | None``; consulted before the script (after rules).
        self.responder: Responder | None = None
        #: ``callable(request_json) -> vectors | Reply`` for ``/v1/embeddings``.
        self.embedding_responder: EmbeddingResponder | None = None
        #: How embeddings are encoded in answers; see :data:`EmbeddingEncoding`.
        self.embedding_encoding: EmbeddingEncoding = "requested"
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._embedding_script: deque[list[list[float]] | Reply] = deque()
        self._rules: list[_Rule] = []
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def like_vllm(
        cls,
        served_model_names: Sequence[str] = ("qwen",),
        *,
        max_model_len: int = 32768,
        **options: Any,
    ) -> FakeOpenAIServer:
        """A server that answers like ``vllm serve MODEL --served-model-name ...
        --max-model-len 32768``: unknown models are 404, long prompts, big ``max_tokens`` and
        over 999 images are 400, with vLLM 0.33's exact bodies. ``options`` are the other
        constructor keywords (``max_images_per_prompt=16``, ``api_key=...``, ...)."""
        names = list(served_model_names)
        return cls(
            model_ids=names, served_model_names=names, max_model_len=max_model_len, **options
        )

    @property
    def listed_model_names(self) -> list[str]:
        """What ``GET /v1/models`` lists: ``served_model_names``, else ``model_ids``."""
        return list(self.served_model_names or self.model_ids)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Bind and serve from a daemon thread. Returns ``self``."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = FakeHTTPServer(self)
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

    def script_embeddings(self, *answers: Sequence[Sequence[float]] | Reply) -> None:
        """Append embedding answers; each ``/v1/embeddings`` request consumes one: a batch of
        vectors (one per input), or an error / dropped-connection :class:`Reply` (e.g.
        ``Reply.http_error(503, "busy")``, also wrapped in :meth:`Reply.slow`). When none is
        left, deterministic hash vectors are returned."""
        items: list[list[list[float]] | Reply] = []
        for answer in answers:
            if isinstance(answer, Reply):
                if answer.kind == "message":
                    raise TypeError(
                        "script_embeddings() takes vector batches or http_error / "
                        f"drop_connection replies, not a {answer.label or 'message'} reply"
                    )
                items.append(answer)
            else:
                items.append([list(map(float, v)) for v in answer])
        with self._lock:
            self._embedding_script.extend(items)

    @property
    def pending_replies(self) -> int:
        """How many scripted chat replies are not consumed yet."""
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget the scripts, rules, responders, embedding encoding and recorded requests."""
        with self._lock:
            self._script.clear()
            self._embedding_script.clear()
            self._rules.clear()
            self._requests.clear()
            self.responder = None
            self.embedding_responder = None
            self.embedding_encoding = "requested"

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
        reply = self._select(record)
        names = self.served_model_names
        if names and reply.model is None and reply.kind in ("message", "raw"):
            reply = dataclasses.replace(reply, model=names[0])
        return reply

    def _select(self, record: RecordedRequest) -> Reply:
        body: dict[str, Any] = record.body
        refusal = vllm_refusal(self, body)
        if refusal is not None:
            logger.info("request #%d refused like vLLM: %s", record.index, refusal.label)
            return refusal
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

    def _next_embedding_answer(self) -> list[list[float]] | Reply | None:
        """Pop the next scripted embeddings answer (None when the script is empty)."""
        with self._lock:
            return self._embedding_script.popleft() if self._embedding_script else None
