"""``DamageQueryEngine``: photo + question → tools → index → validated :class:`DamageReport`.

Three modes share everything but the middle: ``zero-shot`` (photo and question, one call),
``rag`` (the user's fixed flow: retrieve top-k similar examples, one call) and ``agentic``
(the model decides which tools to call, up to ``agent.max_tool_calls``).

The agentic loop runs over LlamaIndex's function-calling LLM API (``achat_with_tools`` on
``OpenAILike``) rather than ``FunctionAgent``, because FunctionAgent cannot serve this
deployment: it sends ``tool_choice: "auto"`` on every turn (vLLM without a tool parser rejects
it), takes a hermes ``<tool_call>`` text reply as the final answer, and drops the images a
tool returns. Here both protocols work, and retrieved images reach the model in a user message
right after the tool results. See docs/notes/llamaindex_agent_protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.llm import ModelClient, ModelRequestRejected, jpeg_bytes
from agent.prompts import Prompts, label_lines
from agent.report import AnswerError, DamageReport, answer_schema, parse_answer, to_findings
from agent.tool_protocol import (
    ToolRequest,
    has_hermes_call,
    is_tool_choice_rejection,
    parse_hermes,
    tool_response_text,
    tools_for_prompt,
)
from agent.trace import Trace, summarise_messages
from index.config import MODES, DomainConfig, apply_overrides, load_config

logger = logging.getLogger(__name__)


EventHandler = Callable[[str, dict[str, Any]], None]


class _LoopThread:
    """One event loop in a daemon thread, so synchronous calls share HTTP connections and work
    from inside a running loop (a notebook) as well."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True, name="damage-engine").start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


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
        self._loop_thread: _LoopThread | None = None
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
        """The vector index, opened on first use with the embedder its manifest records."""
        if self._index is None:
            from index.search import DamageIndex

            self._index = DamageIndex.open(self.index_dir, embedder_model=self.embedder_model, embedder=self._embedder)
        return self._index

    # ------------------------------------------------------------------ public API
    def query(self, image: Any, question: str, **kwargs: Any) -> DamageReport:
        """Answer ``question`` about ``image`` (a path, PIL image or bytes). See :meth:`aquery`."""
        if self._loop_thread is None:
            self._loop_thread = _LoopThread()
        return self._loop_thread.run(self.aquery(image, question, **kwargs))

    async def aquery(self, image: Any, question: str, *, mode: str | None = None, history: list[Any] | None = None,
                     exclude_images: list[str] | None = None, exclude_groups: list[str] | None = None,
                     on_event: EventHandler | None = None, send_photo: bool = True) -> DamageReport:
        """Answer ``question`` about ``image``.

        Args:
            image: The photo: a path, PIL image or encoded bytes.
            question: The user's question, in any language.
            mode: ``agentic``, ``rag`` or ``zero-shot`` (default: the config's).
            history: Earlier messages of a conversation (kept by :class:`ChatSession`).
            exclude_images: Image ids retrieval must never return (evaluation).
            exclude_groups: Vehicle groups retrieval must never return (evaluation).
            on_event: Called with ("tool_call" | "tool_result" | "model" | "protocol", data) as
                things happen, for a live display.
            send_photo: Attach the photo to this turn (a follow-up about the same photo in a
                conversation need not send it again).

        Returns:
            The report; a model answer that stays invalid after one repair gives a report with
            ``valid=False``, the error and the raw text.

        Raises:
            ModelEndpointError: If the endpoint cannot be reached or keeps failing.
        """
        from index.imaging.query_photo import QueryPhoto
        from tools.context import ToolContext

        mode = mode or self.config.agent.mode
        if mode not in MODES:
            raise ValueError(f"Unknown mode '{mode}'; use one of {', '.join(MODES)}.")
        started = time.perf_counter()
        photo = QueryPhoto(image)
        view = photo.view(max_pixels=self.config.model.query_max_pixels)
        trace = Trace(self.config.agent.traces_dir, question=question, mode=mode, model=self.config.model.model,
                      photo=photo.name, photo_size=list(photo.size))
        trace.event("photo", photo_copy=trace.save_image("query", view), sent_size=list(view.size))
        run = _Run(self, trace, mode, on_event or (lambda kind, data: None))
        ctx = None
        if mode != "zero-shot":
            ctx = ToolContext(index=self.index, photo=photo, taxonomy=self.taxonomy, model=self.config.model,
                              agent=self.config.agent, exclude_images=exclude_images or [],
                              exclude_groups=exclude_groups or [])
        from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock

        photo_blocks = [ImageBlock(image=jpeg_bytes(view), image_mimetype="image/jpeg")] if send_photo else []
        user = ChatMessage(role="user", blocks=[*photo_blocks, TextBlock(text=question)])
        messages = [ChatMessage(role="system", content=self._system_prompt(mode)), *(history or []), user]
        if mode == "rag":
            await run.retrieve_fixed(ctx, messages, question)
        if mode == "agentic":
            text = await run.agentic(ctx, messages)
        else:
            text = await run.final(messages)
        report = await run.report(text, messages, question, photo.size, ctx, started)
        trace.event("report", report=report.model_dump(mode="json"))
        if history is not None:
            history.extend(messages[len(history) + 1:])
            history.append(ChatMessage(role="assistant", content=report.model_dump_json(include={"damage_detected", "findings", "answer"})))
        return report

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


class _Run:
    """The state of one query: model calls, tool calls, usage and the trace."""

    def __init__(self, engine: DamageQueryEngine, trace: Trace, mode: str, emit: EventHandler) -> None:
        self.engine, self.trace, self.mode, self.emit = engine, trace, mode, emit
        self.client = engine.client
        self.cfg = engine.config
        self.model_seconds = 0.0
        self.tool_seconds = 0.0
        self.usage: dict[str, int] = {}
        self.tool_calls = 0
        self.steps = 0

    async def _call(self, messages: list[Any], tools: list[Any] | None = None, response_format: dict | None = None) -> Any:
        self.steps += 1
        response, call = await self.client.complete(messages, tools=tools, response_format=response_format)
        self.model_seconds += call.latency_s
        for key, value in call.usage.items():
            self.usage[key] = self.usage.get(key, 0) + value
        summary = summarise_messages(messages)
        self.trace.event("model_request", step=self.steps, messages=summary, tools=[t.metadata.name for t in tools or []],
                         response_format=bool(response_format), latency_s=round(call.latency_s, 4), usage=call.usage,
                         attempts=call.attempts, image_sizes=[s for m in summary for s in m.get("images", [])],
                         reply=(response.message.content or "")[:2000])
        self.emit("model", {"step": self.steps, "latency_s": call.latency_s})
        return response

    def _protocol(self, message: str) -> None:
        logger.info(message)
        self.trace.event("protocol", message=message)
        self.emit("protocol", {"message": message})

    async def final(self, messages: list[Any]) -> str:
        """One call for the final JSON answer, with a JSON schema when the server takes one."""
        if self.client.json_schema is not False:
            schema = {"type": "json_schema", "json_schema": {"name": "damage_report", "schema": answer_schema(self.engine.taxonomy)}}
            try:
                response = await self._call(messages, response_format=schema)
                if self.client.json_schema is None:
                    self.client.json_schema = True
                return response.message.content or ""
            except ModelRequestRejected as exc:
                if self.cfg.model.json_schema == "always":
                    raise
                self.client.json_schema = False
                self._protocol(f"server refused response_format ({exc}); extracting JSON from text instead")
        return (await self._call(messages)).message.content or ""

    async def retrieve_fixed(self, ctx: Any, messages: list[Any], question: str) -> None:
        """The rag mode's fixed retrieval: top-k similar examples (of the label the question names)."""
        from llama_index.core.base.llms.types import TextBlock

        mentioned = self.engine.taxonomy.mentions(question)
        arguments: dict[str, Any] = {"k": self.cfg.agent.k}
        if len(mentioned) == 1:
            arguments["label"] = mentioned[0].key
        result = self._run_tool(ctx, ToolRequest("search_similar_damage", arguments))
        user = messages[-1]
        intro = TextBlock(text=f"Labelled examples from the reference dataset most similar to this photo:\n{result.text}")
        user.blocks = [*user.blocks[:-1], intro, *result.user_message_blocks(), user.blocks[-1]]

    def _run_tool(self, ctx: Any, request: ToolRequest) -> Any:
        from tools import run_tool
        from tools.results import ToolResult

        self.tool_calls += 1
        self.emit("tool_call", {"name": request.name, "arguments": request.arguments})
        started = time.perf_counter()
        if request.error:
            result = ToolResult(text=f"Error: {request.error}. Write the call as <tool_call>{{\"name\": ..., \"arguments\": {{...}}}}</tool_call>.", error=True)
        else:
            result = run_tool(ctx, request.name, request.arguments)
        self.tool_seconds += time.perf_counter() - started
        self.trace.event("tool_call", name=request.name, arguments=request.arguments, error=result.error,
                         result_text=result.text, result=result.data, seconds=round(time.perf_counter() - started, 4))
        if result.images:
            self.trace.event("images_sent", images=[
                {**img.to_dict(), "path": self.trace.save_image(f"img{self.tool_calls}-{i}", img.image)}
                for i, img in enumerate(result.images)])
        self.emit("tool_result", {"name": request.name, "error": result.error, "text": result.text,
                                  "images": [img.caption for img in result.images]})
        return result

    def _hermes_system(self, messages: list[Any], tools: list[Any]) -> None:
        from llama_index.core.base.llms.types import ChatMessage

        tools_text = self.engine.prompts.render("hermes_tools", tools=tools_for_prompt(tools))
        messages[0] = ChatMessage(role="system", content=f"{messages[0].content}\n\n{tools_text}")

    async def agentic(self, ctx: Any, messages: list[Any]) -> str:
        """The tool loop; returns the model's final text."""
        from llama_index.core.base.llms.types import ChatMessage, TextBlock

        from tools import make_tools

        tools = make_tools(ctx)
        budget = self.cfg.agent.max_tool_calls
        if self.client.native_tools is False:
            self._hermes_system(messages, tools)
        while True:
            if self.tool_calls >= budget:
                messages.append(ChatMessage(role="user", content=self.engine.prompts.render("finalize")))
                return await self.final(messages)
            native = self.client.native_tools is not False
            try:
                response = await self._call(messages, tools=tools if native else None)
            except ModelRequestRejected as exc:
                if native and self.cfg.model.tool_protocol == "auto" and is_tool_choice_rejection(str(exc)):
                    self.client.native_tools = False
                    self._protocol(f"server cannot do native tool calls ({exc}); using Qwen's hermes <tool_call> format")
                    self._hermes_system(messages, tools)
                    continue
                raise
            text = response.message.content or ""
            requests: list[ToolRequest] = []
            if native:
                selections = self.client.llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
                requests = [ToolRequest(s.tool_name, dict(s.tool_kwargs), s.tool_id) for s in selections]
                if requests and self.client.native_tools is None:
                    self.client.native_tools = True
            hermes = not requests and has_hermes_call(text)
            if hermes:
                requests = parse_hermes(text)
                if native:
                    self._protocol("server returned tool calls as <tool_call> text; parsing them (no tool parser on the server)")
            if not requests:
                return text
            allowed, refused = requests[: budget - self.tool_calls], requests[budget - self.tool_calls:]
            results = [(r, self._run_tool(ctx, r)) for r in allowed]
            refusal = "Not run: the tool-call budget is used up; give your final answer."
            images = [block for _, result in results for block in result.user_message_blocks()]
            if hermes:
                messages.append(ChatMessage(role="assistant", content=text))
                texts = [(r.name, res.text) for r, res in results] + [(r.name, refusal) for r in refused]
                messages.append(ChatMessage(role="user", blocks=[TextBlock(text=tool_response_text(texts)), *images]))
            else:
                messages.append(response.message)
                for request, result in results:
                    messages.append(ChatMessage(role="tool", content=result.text,
                                                additional_kwargs={"tool_call_id": request.id}))
                for request in refused:
                    messages.append(ChatMessage(role="tool", content=refusal, additional_kwargs={"tool_call_id": request.id}))
                if images:
                    messages.append(ChatMessage(role="user", blocks=[
                        TextBlock(text="Images returned by the tool calls above (examples with their annotated region outlined):"),
                        *images]))

    async def report(self, text: str, messages: list[Any], question: str, size: tuple[int, int], ctx: Any,
                     started: float) -> DamageReport:
        """Validate the final text; ask once for a repair; never invent fields."""
        from llama_index.core.base.llms.types import ChatMessage

        error = None
        for attempt in range(2):
            try:
                answer = parse_answer(text, self.engine.taxonomy)
                break
            except AnswerError as exc:
                error = str(exc)
                self.trace.event("invalid_answer", attempt=attempt, error=error, text=text[:2000])
                if attempt == 1:
                    answer = None
                    break
                messages.append(ChatMessage(role="assistant", content=text))
                messages.append(ChatMessage(role="user", content=self.engine.prompts.render("repair", error=error)))
                text = await self.final(messages)
        shown = list(ctx.examples_used) if ctx is not None else []
        total = time.perf_counter() - started
        common = {
            "mode": self.mode, "model": self.cfg.model.model, "trace_id": self.trace.id, "question": question,
            "examples_used": shown, "tool_calls": self.tool_calls, "usage": self.usage,
            "timings": {"total_s": round(total, 4), "model_s": round(self.model_seconds, 4),
                        "tools_s": round(self.tool_seconds, 4), "overhead_s": round(total - self.model_seconds, 4),
                        "model_calls": self.steps},
        }
        if answer is None:
            return DamageReport(damage_detected=None, valid=False, error=f"invalid model answer after one repair: {error}",
                                raw_text=text, **common)
        return DamageReport(
            damage_detected=answer.damage_detected,
            findings=to_findings(answer, self.engine.taxonomy, size),
            answer=answer.answer,
            examples_cited=[i for i in answer.examples_used if i in shown],
            **common,
        )
