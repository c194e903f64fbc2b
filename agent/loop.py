"""One query's model/tool loop: the fixed retrieval (rag), the tool loop (agentic), the final answer.

The agentic loop runs over LlamaIndex's function-calling LLM API (``achat_with_tools`` on
``OpenAILike``) rather than ``FunctionAgent``, because FunctionAgent cannot serve this
deployment: it sends ``tool_choice: "auto"`` on every turn (vLLM without a tool parser rejects
it), takes a hermes ``<tool_call>`` text reply as the final answer, and drops the images a
tool returns. Here both protocols work, and retrieved images reach the model in a user message
right after the tool results. See docs/notes/llamaindex_agent_protocol.md.

Every tool call, either protocol's and the rag mode's fixed retrieval alike, runs as a LlamaIndex
tool call (:class:`agent.instrumentation.LoopToolCall`): a TOOL span inside the query's span.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from agent.budget import BudgetExceeded, request_tokens
from agent.endpoint_errors import ModelEndpointError, ModelRequestRejected, Problem
from agent.llm import budget_line
from agent.report import AnswerError, DamageReport, answer_schema, parse_answer, to_findings
from agent.tool_protocol import (
    ToolRequest,
    has_hermes_call,
    parse_hermes,
    tool_response_text,
    tools_for_prompt,
)
from agent.trace import Trace, summarise_messages

if TYPE_CHECKING:
    from agent.engine import DamageQueryEngine

logger = logging.getLogger(__name__)

#: ``on_event(kind, data)``: "tool_call" | "tool_result" | "model" | "protocol" | "waiting" | "ready",
#: for a live display.
EventHandler = Callable[[str, dict[str, Any]], None]
#: Learn-a-limit-and-re-send rounds per request (images, then tokens, then a tighter token count).
_MAX_LIMIT_ROUNDS = 4


class QueryRun:
    """The state of one query: model calls, tool calls, usage and the trace."""

    def __init__(self, engine: DamageQueryEngine, trace: Trace, mode: str, emit: EventHandler, *,
                 keep: set[int] | None = None, current: int = 1) -> None:
        self.engine, self.trace, self.mode, self.emit = engine, trace, mode, emit
        self.client = engine.client
        self.cfg = engine.config
        self.keep = keep or set()  # id() of the query photo's image blocks: always sent
        self.current = current  # index of this question's user message (before it: the conversation)
        self.model_seconds = 0.0
        self.tool_seconds = 0.0
        self.usage: dict[str, int] = {}
        self.tool_calls = 0
        self.steps = 0
        self._tool_metadata: dict[str, Any] = {}  # ToolMetadata by name, for the tool spans

    async def _call(self, messages: list[Any], tools: list[Any] | None = None, response_format: dict | None = None) -> Any:
        """One model request, composed within the server's limits; a refusal that states a
        limit is learned (for the session) and the request re-sent within it."""
        budget = self.client.budget
        for _ in range(_MAX_LIMIT_ROUNDS):
            try:
                fitted = budget.fit(messages, keep=self.keep, current=self.current, tools=tools)
            except BudgetExceeded as exc:
                raise ModelEndpointError(budget_line(self.cfg.model, exc)) from None
            if fitted.omitted:
                self.trace.event("budget", images=fitted.images, tokens=fitted.tokens, omitted=fitted.omitted,
                                 max_images=budget.max_images, max_tokens=budget.max_tokens)
            self.steps += 1
            try:
                response, call = await self.client.complete(fitted.messages, tools=tools, response_format=response_format)
                break
            except ModelRequestRejected as exc:
                answer = exc.answer
                learned = False
                if answer is not None and answer.problem is Problem.IMAGE_LIMIT and answer.limit:
                    learned = budget.learn_images(answer.limit)
                elif answer is not None and answer.problem is Problem.CONTEXT_LIMIT and answer.limit:
                    learned = budget.learn_context(answer.limit, answer.prompt_tokens,
                                                   request_tokens(fitted.messages, tools))
                if not learned:
                    raise
                self._protocol(f"learned the server's limit ({answer.message}); composing requests within "
                               f"{budget.max_images or 'any'} image(s) and about {budget.max_tokens or 'any'} tokens")
        else:
            raise ModelEndpointError(f"The model endpoint {self.cfg.model.api_base} kept refusing requests composed "
                                     "within the limits it stated; set model.max_images / model.max_context_tokens.")
        self.model_seconds += call.latency_s
        for key, value in call.usage.items():
            self.usage[key] = self.usage.get(key, 0) + value
        summary = summarise_messages(fitted.messages)
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
                if self.cfg.model.json_schema == "always" or exc.problem is not Problem.SCHEMA:
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
        intro = TextBlock(text=f"\nLabelled examples from the reference dataset most similar to this photo:\n{result.text}\n")
        user.blocks = [*user.blocks[:-1], intro, *result.user_message_blocks(), user.blocks[-1]]

    def _run_tool(self, ctx: Any, request: ToolRequest) -> Any:
        """Run one tool call as a LlamaIndex tool call (a TOOL span); record and announce it."""
        from agent.instrumentation import LoopToolCall, tool_metadata, unknown_tool_metadata
        from tools import make_tools, run_tool
        from tools.results import ToolResult

        self.tool_calls += 1
        self.emit("tool_call", {"name": request.name, "arguments": request.arguments})
        started = time.perf_counter()
        if not self._tool_metadata:
            self._tool_metadata = tool_metadata(make_tools(ctx))
        metadata = self._tool_metadata.get(request.name) or unknown_tool_metadata(request.name)

        def run(arguments: dict[str, Any]) -> ToolResult:
            if request.error:
                return ToolResult(text=f"Error: {request.error}. Write the call as <tool_call>{{\"name\": ..., \"arguments\": {{...}}}}</tool_call>.", error=True)
            return run_tool(ctx, request.name, arguments)

        result = LoopToolCall(metadata, run).run(request.arguments)
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

    async def agentic(self, ctx: Any, messages: list[Any],
                      index: Callable[[], Awaitable[Any]] | None = None) -> str:
        """The tool loop; returns the model's final text. ``index``: awaited for the index
        before the first tool runs when ``ctx.index`` is None (it may still be loading)."""
        from llama_index.core.base.llms.types import ChatMessage, TextBlock

        from agent.instrumentation import tool_metadata
        from tools import make_tools

        tools = make_tools(ctx)
        self._tool_metadata = tool_metadata(tools)
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
                if native and self.cfg.model.tool_protocol == "auto" and exc.problem is Problem.TOOL_CHOICE:
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
            if ctx.index is None and index is not None:
                ctx.index = await index()
            results = [(r, self._run_tool(ctx, r)) for r in allowed]
            refusal = "Not run: the tool-call budget is used up; give your final answer."
            images = [block for _, result in results for block in result.user_message_blocks()]
            if hermes:
                messages.append(ChatMessage(role="assistant", content=text))
                texts = [(r.name, res.text) for r, res in results] + [(r.name, refusal) for r in refused]
                messages.append(ChatMessage(role="user", blocks=[TextBlock(text=tool_response_text(texts) + "\n"), *images]))
            else:
                messages.append(response.message)
                for request, result in results:
                    messages.append(ChatMessage(role="tool", content=result.text,
                                                additional_kwargs={"tool_call_id": request.id}))
                for request in refused:
                    messages.append(ChatMessage(role="tool", content=refusal, additional_kwargs={"tool_call_id": request.id}))
                if images:
                    messages.append(ChatMessage(role="user", blocks=[
                        TextBlock(text="Images returned by the tool calls above (examples with their annotated region outlined):\n"),
                        *images]))

    async def report(self, text: str, messages: list[Any], question: str, size: tuple[int, int], ctx: Any,
                     started: float) -> DamageReport:
        """Validate the final text; ask once for a repair; never invent fields."""
        from llama_index.core.base.llms.types import ChatMessage

        error = None
        for attempt in range(2):
            try:
                answer = parse_answer(text, self.engine.taxonomy)
                if answer.repairs:  # unambiguous fixes, made here rather than by another request
                    self.trace.event("answer_repair", repairs=list(answer.repairs))
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
            repairs=list(answer.repairs),
            **common,
        )
