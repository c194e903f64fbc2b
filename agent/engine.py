"""``DamageQueryEngine``: photo + question → tools → index → validated :class:`DamageReport`.

Three modes share everything but the middle: ``zero-shot`` (photo and question, one call),
``rag`` (the user's fixed flow: retrieve top-k similar examples, one call) and ``agentic``
(the model decides which tools to call, up to ``agent.max_tool_calls``).

This module is the facade (configuration, the index, sessions); one query's model/tool loop
is :class:`agent.loop.QueryRun`; :meth:`DamageQueryEngine.as_query_engine` is the LlamaIndex
``BaseQueryEngine`` view of it (:mod:`agent.query_engine`).

Instrumentation: each query is one LlamaIndex dispatcher span (``DamageQueryEngine._query``),
the parent of its model calls and tool calls (:mod:`agent.instrumentation`), so a span handler
such as OpenInference's sees one trace per query. A synchronous :meth:`DamageQueryEngine.query`
runs on the engine's event-loop thread with the caller's ``contextvars`` (LlamaIndex keeps the
active span there), so a span opened by the caller is the query span's parent.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.imports import LLAMA_INDEX, import_once
from agent.index_loading import IndexLoading
from agent.llm import ModelClient, jpeg_bytes
from agent.loop import EventHandler, QueryRun
from agent.prompts import Prompts, label_lines
from agent.report import DamageReport
from agent.trace import Trace, TraceWriteFailure
from index.config import MODES, DomainConfig, apply_overrides, load_config

try:  # what llama_index.core.instrumentation re-exports, without importing all of llama_index.core
    from llama_index_instrumentation import get_dispatcher
except ImportError:  # pragma: no cover - an older llama-index-core that has it built in
    from llama_index.core.instrumentation import get_dispatcher

if TYPE_CHECKING:
    from agent.query_engine import DamageQueryEngineView

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

#: How many unwritten traces the engine remembers (:meth:`DamageQueryEngine.trace_failure`).
_KEPT_TRACE_FAILURES = 256


class _LoopThread:
    """One event loop in a daemon thread, so synchronous calls share HTTP connections and work
    from inside a running loop (a notebook) as well."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True, name="damage-engine").start()

    def run(self, coro: Any) -> Any:
        """Run ``coro`` on the loop thread and wait for it, in a copy of the caller's context:
        the task is created inside it, so the caller's active LlamaIndex span (a contextvar)
        is the parent of the spans the coroutine opens."""
        context = contextvars.copy_context()
        return context.run(asyncio.run_coroutine_threadsafe, coro, self.loop).result()


class _QueryRequest:
    """What one query needs besides its question, photo name and mode. Kept out of the query
    span's arguments, which span handlers record: the photo as bytes or the images of a
    conversation would be recorded whole; its ``repr`` is what they record instead."""

    def __init__(self, photo: Any, history: list[Any] | None, exclude_images: list[str] | None,
                 exclude_groups: list[str] | None, on_event: EventHandler | None, send_photo: bool,
                 sources: list[Any] | None, started: float) -> None:
        self.started = started  # the query's clock starts before the photo is read
        self.photo, self.history, self.on_event, self.send_photo = photo, history, on_event, send_photo
        self.exclude_images, self.exclude_groups, self.sources = exclude_images, exclude_groups, sources

    def __repr__(self) -> str:
        return (f"QueryRequest(photo_size={list(self.photo.size)}, history={len(self.history or [])} messages, "
                f"exclude_images={len(self.exclude_images or [])}, exclude_groups={len(self.exclude_groups or [])}, "
                f"send_photo={self.send_photo})")


class DamageQueryEngine:
    """Answers questions about photos with a VLM and retrieved labelled examples.

    Example::

        engine = DamageQueryEngine.from_config("configs/vehicle_damage.yaml")
        report = engine.query("photo.jpg", "¿Tiene rayones en el capó?")
        print(report.answer, report.findings, report.trace_id)
    """

    def __init__(self, config: DomainConfig, *, index_dir: Path | None = None, embedder_model: str | None = None,
                 embedder: Any = None) -> None:
        self.config = config
        self.index_dir = Path(index_dir or config.index.dir)
        self.embedder_model = embedder_model
        self._embedder = embedder
        self._index: Any = None
        self._loading = IndexLoading(self._open_index, self.index_dir)
        self._loop_thread: _LoopThread | None = None
        self._lock = threading.Lock()  # the event-loop thread, started once
        self._trace_failures: OrderedDict[str, TraceWriteFailure] = OrderedDict()  # by trace id
        self._failures_lock = threading.Lock()
        self.client = ModelClient(config.model)
        self.prompts = Prompts.for_config(config)
        self.taxonomy = config.taxonomy

    @classmethod
    def from_config(cls, config: str | Path | DomainConfig, *, index_dir: str | Path | None = None,
                    embedder: str | None = None, api_base: str | None = None, model: str | None = None,
                    mode: str | None = None) -> DamageQueryEngine:
        """An engine from a domain YAML (or a loaded config), with the usual overrides."""
        loaded = config if isinstance(config, DomainConfig) else load_config(config)
        loaded = apply_overrides(loaded, {"model.api_base": api_base, "model.model": model, "agent.mode": mode})
        return cls(loaded, index_dir=Path(index_dir) if index_dir else None, embedder_model=embedder)

    @property
    def index(self) -> Any:
        """The vector index with the embedder its manifest records: opened on first use, or
        waited for when :meth:`start_loading` is opening it; raises that load's error (and the
        next use tries again)."""
        if self._index is None:
            self._index = self._loading.result()
        return self._index

    def start_loading(self) -> None:
        """Start opening the index and its embedder in a background thread, unless it is open
        or opening already (idempotent, thread-safe), so the work before the first search
        overlaps it. A query in the ``rag`` or ``agentic`` mode starts it itself as soon as it
        arrives; a command line or a service calls it at start-up. A failed load surfaces as
        its own error where the index is first needed (:attr:`index`)."""
        if self._index is None:
            self._loading.start()

    def _open_index(self) -> Any:
        import_once(LLAMA_INDEX)  # before the index's modules import it, maybe beside the query thread
        from index.search import DamageIndex

        return DamageIndex.open(self.index_dir, embedder_model=self.embedder_model, embedder=self._embedder)

    async def _index_for(self, trace: Trace, on_event: EventHandler) -> Any:
        """The index for a query, waited for without blocking the event loop; a wait is said
        (``on_event("waiting", {"message": ...})``, then ``"ready"``) and recorded in the trace."""
        if self._index is None:
            self.start_loading()
            if not self._loading.done():
                message = self._loading.description()
                on_event("waiting", {"what": "index", "message": message})
                started = time.perf_counter()
                await self._loading.wait()
                seconds = time.perf_counter() - started
                trace.event("index_wait", message=message, seconds=round(seconds, 3))
                on_event("ready", {"what": "index", "seconds": seconds})
            return self.index
        return self._index

    # ------------------------------------------------------------------ public API
    def query(self, image: Any, question: str, **kwargs: Any) -> DamageReport:
        """Answer ``question`` about ``image`` (a path, PIL image or bytes). See :meth:`aquery`."""
        if self._loop_thread is None:
            with self._lock:
                if self._loop_thread is None:
                    self._loop_thread = _LoopThread()
        return self._loop_thread.run(self.aquery(image, question, **kwargs))

    def as_query_engine(self, *, default_image: Any = None, mode: str | None = None,
                        default_question: str | None = None, **query_kwargs: Any) -> DamageQueryEngineView:
        """This engine as a LlamaIndex ``BaseQueryEngine`` (for a LlamaIndex app, a
        ``QueryEngineTool``, LlamaIndex's evaluators); see :class:`agent.query_engine.DamageQueryEngineView`.

        Args:
            default_image: The photo a query names none of (a path, PIL image or bytes).
            mode: ``agentic``, ``rag`` or ``zero-shot`` (default: the config's).
            default_question: The question of a query that is only a photo path.
            query_kwargs: Passed on to :meth:`aquery` (``exclude_images``, ``exclude_groups``, ``on_event``).
        """
        from agent.query_engine import DamageQueryEngineView

        return DamageQueryEngineView(self, default_image=default_image, mode=mode, default_question=default_question,
                                     **query_kwargs)

    async def aquery(self, image: Any, question: str, *, mode: str | None = None, history: list[Any] | None = None,
                     exclude_images: list[str] | None = None, exclude_groups: list[str] | None = None,
                     on_event: EventHandler | None = None, send_photo: bool = True,
                     sources: list[Any] | None = None) -> DamageReport:
        """Answer ``question`` about ``image``.

        Args:
            image: The photo: a path, PIL image or encoded bytes.
            question: The user's question, in any language.
            mode: ``agentic``, ``rag`` or ``zero-shot`` (default: the config's).
            history: Earlier messages of a conversation (kept by :class:`ChatSession`).
            exclude_images: Image ids retrieval must never return (evaluation).
            exclude_groups: Vehicle groups retrieval must never return (evaluation).
            on_event: Called with ("tool_call" | "tool_result" | "model" | "protocol" |
                "waiting" | "ready", data) as things happen, for a live display ("waiting": the
                query waits for the index to load, ``data["message"]`` says what it loads).
            send_photo: Attach the photo to this turn (a follow-up about the same photo in a
                conversation need not send it again).
            sources: Extended with the examples shown to the model, as LlamaIndex
                ``NodeWithScore`` of their ``ImageNode`` (score: the similarity a search gave,
                None for examples shown by label); in ``report.examples_used`` order.

        Returns:
            The report; a model answer that stays invalid after one repair gives a report with
            ``valid=False``, the error and the raw text. A trace that cannot be written costs
            nothing but the trace: :meth:`trace_failure` of ``report.trace_id`` says why.

        Raises:
            ModelEndpointError: If the endpoint cannot be reached or keeps failing.
        """
        from index.imaging.query_photo import QueryPhoto

        mode = mode or self.config.agent.mode
        if mode not in MODES:
            raise ValueError(f"Unknown mode '{mode}'; use one of {', '.join(MODES)}.")
        started = time.perf_counter()
        photo = QueryPhoto(image)
        request = _QueryRequest(photo, history, exclude_images, exclude_groups, on_event, send_photo, sources,
                                started)
        return await self._query(question, photo.name, mode, request)

    @dispatcher.span
    async def _query(self, question: str, photo_name: str, mode: str, request: _QueryRequest) -> DamageReport:
        """One query: the root span of its model and tool calls (the arguments are what span
        handlers record as its input; the report is its output)."""
        started = request.started
        if mode != "zero-shot":  # while the photo is decoded and the request composed; in this span
            self.start_loading()
        photo, history = request.photo, request.history
        view = photo.view(max_pixels=self.config.model.query_max_pixels)
        trace = Trace(self.config.agent.traces_dir, question=question, mode=mode, model=self.config.model.model,
                      photo=photo_name, photo_size=list(photo.size))
        trace.event("photo", photo_copy=trace.save_image("query", view), sent_size=list(view.size))
        try:
            report, messages, ctx = await self._answer(
                photo, view, question, mode, trace, started, history=history, exclude_images=request.exclude_images,
                exclude_groups=request.exclude_groups, on_event=request.on_event, send_photo=request.send_photo)
        except Exception as exc:
            problem = getattr(exc, "problem", None)
            trace.event("error", problem=problem.value if problem is not None else type(exc).__name__,
                        message=str(exc), seconds=round(time.perf_counter() - started, 3))
            self._remember_trace(trace)
            raise
        trace.event("report", report=report.model_dump(mode="json"))
        self._remember_trace(trace)
        if request.sources is not None and ctx is not None:
            from agent.query_engine import shown_examples

            request.sources.extend(shown_examples(ctx))
        if history is not None:
            from llama_index.core.base.llms.types import ChatMessage

            history.extend(messages[len(history) + 1:])
            history.append(ChatMessage(role="assistant", content=report.model_dump_json(include={"damage_detected", "findings", "answer"})))
        return report

    async def _answer(self, photo: Any, view: Any, question: str, mode: str, trace: Trace, started: float, *,
                      history: list[Any] | None, exclude_images: list[str] | None, exclude_groups: list[str] | None,
                      on_event: EventHandler | None, send_photo: bool) -> tuple[DamageReport, list[Any], Any]:
        """Compose the messages, run the mode's loop and validate the answer; returns the report,
        the messages and the tool context (None in zero-shot)."""
        import_once(LLAMA_INDEX)  # maybe beside the thread loading the index
        from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock

        photo_blocks = [ImageBlock(image=jpeg_bytes(view), image_mimetype="image/jpeg")] if send_photo else []
        user = ChatMessage(role="user", blocks=[*photo_blocks, TextBlock(text=question)])
        earlier = list(history or [])
        messages = [ChatMessage(role="system", content=self._system_prompt(mode)), *earlier, user]
        keep = {id(b) for b in photo_blocks} or _photo_of_conversation(earlier)
        emit = on_event or (lambda kind, data: None)
        run = QueryRun(self, trace, mode, emit, keep=keep, current=len(earlier) + 1)
        ctx = None
        if mode != "zero-shot":  # the tools (and the index's search module): not imported for zero-shot
            from tools.context import ToolContext

            # rag searches first; agentic's first model call needs no index: it is waited for
            # before the first tool runs, so the load overlaps the model's first reply
            index = await self._index_for(trace, emit) if mode == "rag" else None
            ctx = ToolContext(index=index, photo=photo, taxonomy=self.taxonomy, model=self.config.model,
                              agent=self.config.agent, exclude_images=exclude_images or [],
                              exclude_groups=exclude_groups or [])
        if mode == "rag":
            await run.retrieve_fixed(ctx, messages, question)
        if mode == "agentic":
            text = await run.agentic(ctx, messages, index=lambda: self._index_for(trace, emit))
        else:
            text = await run.final(messages)
        return await run.report(text, messages, question, photo.size, ctx, started), messages, ctx

    def trace_failure(self, trace_id: str) -> TraceWriteFailure | None:
        """Why the trace of a recent query (``report.trace_id``) could not be written; None when
        it was (or is too old to be remembered). The answer never depends on its trace."""
        with self._failures_lock:
            return self._trace_failures.get(trace_id)

    def _remember_trace(self, trace: Trace) -> None:
        """Keep why ``trace`` could not be written, for :meth:`trace_failure` (the newest only)."""
        if trace.failure is None:
            return
        with self._failures_lock:
            self._trace_failures[trace.id] = trace.failure
            while len(self._trace_failures) > _KEPT_TRACE_FAILURES:
                self._trace_failures.popitem(last=False)

    def session(self, mode: str | None = None) -> ChatSession:
        """A conversation: follow-up questions keep the earlier turns."""
        return ChatSession(self, mode)

    def _system_prompt(self, mode: str) -> str:
        cfg, p = self.config, self.prompts
        instructions = p.render(f"mode_{mode.replace('-', '_')}", max_tool_calls=cfg.agent.max_tool_calls) \
            if mode == "agentic" else p.render(f"mode_{mode.replace('-', '_')}")
        return p.render(
            "system", subject=cfg.subject, description=cfg.description,
            labels=label_lines(self.taxonomy), mode_instructions=instructions,
            answer_format=p.render("answer_format", subject=cfg.subject),
        )


def _photo_of_conversation(history: list[Any]) -> set[int]:
    """``id()`` of the photo a follow-up question is about: the newest user turn that opened with one."""
    from llama_index.core.base.llms.types import ImageBlock

    for message in reversed(history):
        if message.role.value == "user" and message.blocks and isinstance(message.blocks[0], ImageBlock):
            return {id(message.blocks[0])}
    return set()


class ChatSession:
    """An ongoing conversation about one or more photos."""

    def __init__(self, engine: DamageQueryEngine, mode: str | None = None) -> None:
        self.engine = engine
        self.mode = mode
        self.history: list[Any] = []
        self.photo: Any = None
        self._photo_sent = False

    def attach(self, image: Any) -> None:
        """Set the photo the next questions are about."""
        self.photo = image
        self._photo_sent = False

    def ask(self, question: str, on_event: EventHandler | None = None) -> DamageReport:
        """Ask about the attached photo, keeping the conversation so far."""
        if self.photo is None:
            raise ValueError("Attach a photo first.")
        report = self.engine.query(self.photo, question, mode=self.mode, history=self.history, on_event=on_event,
                                   send_photo=not self._photo_sent)
        self._photo_sent = True
        return report
