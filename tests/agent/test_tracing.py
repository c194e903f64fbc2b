"""One query is one trace: OpenInference's LlamaIndex instrumentation over the real engine.

The VLM is the local fake server; the spans go to an in-memory OpenTelemetry exporter. Before
the query span and the tool spans existed, one agentic query with two tool calls gave 9
separate traces (every model call and embedder call its own root) and no TOOL span.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.llm import ModelEndpointError
from agent.testing import Reply

pytest.importorskip("openinference.instrumentation.llama_index")
pytest.importorskip("opentelemetry.sdk.trace")

from openinference.instrumentation.llama_index import LlamaIndexInstrumentor  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

ANSWER = {"damage_detected": True, "findings": [{"label": "dent", "confidence": 0.8, "bbox_2d": [100, 100, 300, 300]}],
          "answer": "A dent on the door.", "examples_used": []}
KIND = "openinference.span.kind"
TWO_TOOL_CALLS = (Reply.tool_calls([("search_similar_damage", {"k": 2})]),
                  Reply.tool_calls([("get_label_examples", {"label": "dent", "k": 2})]))


@pytest.fixture
def exporter():
    """OpenInference's LlamaIndex instrumentation into an in-memory exporter; undone afterwards."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentor = LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield memory
    instrumentor.uninstrument()
    provider.shutdown()


def _traces(exporter) -> dict[int, list]:
    out: dict[int, list] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.context.trace_id, []).append(span)
    return out


def _of_kind(spans, kind: str) -> list:
    return [s for s in spans if s.attributes.get(KIND) == kind]


def _ancestors(span, by_id: dict) -> list:
    chain = []
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


def test_agentic_query_with_two_tool_calls_is_one_trace(fake, engine, photo, exporter):
    fake.script(*TWO_TOOL_CALLS, Reply.json(ANSWER))
    report = engine.query(photo, "Any damage?")
    assert report.valid and report.tool_calls == 2

    traces = _traces(exporter)
    assert len(traces) == 1
    (spans,) = traces.values()
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["DamageQueryEngine._query"]
    root = roots[0]
    assert json.loads(root.attributes["input.value"])["question"] == "Any damage?"
    assert json.loads(root.attributes["output.value"])["trace_id"] == report.trace_id

    tools = _of_kind(spans, "TOOL")
    assert sorted(t.attributes["tool.name"] for t in tools) == ["get_label_examples", "search_similar_damage"]
    assert all(t.parent.span_id == root.context.span_id for t in tools)
    search = next(t for t in tools if t.attributes["tool.name"] == "search_similar_damage")
    assert json.loads(search.attributes["input.value"]) == {"arguments": {"k": 2}}
    assert len(json.loads(search.attributes["output.value"])["raw_output"]["data"]["ids"]) == 2

    by_id = {s.context.span_id: s for s in spans}
    llm = _of_kind(spans, "LLM")
    assert llm and all(root in _ancestors(s, by_id) for s in llm)
    assert any("llm.token_count.prompt" in s.attributes for s in llm)  # usage reaches the spans
    embeddings = _of_kind(spans, "EMBEDDING")
    assert any(search in _ancestors(s, by_id) for s in embeddings)  # the search embeds inside its tool span


def test_two_queries_are_two_traces(fake, engine, photo, exporter):
    fake.script(*TWO_TOOL_CALLS, Reply.json(ANSWER), Reply.tool_calls([("get_label_definitions", {})]),
                Reply.json(ANSWER))
    engine.query(photo, "Any damage?")
    engine.query(photo, "And now?")
    traces = _traces(exporter)
    assert len(traces) == 2
    for spans in traces.values():
        assert len([s for s in spans if s.parent is None]) == 1
    assert sorted(len(_of_kind(spans, "TOOL")) for spans in traces.values()) == [1, 2]


def test_async_query_is_one_trace(fake, engine, photo, exporter):
    fake.script(*TWO_TOOL_CALLS, Reply.json(ANSWER))
    asyncio.run(engine.aquery(photo, "Any damage?"))
    (spans,) = _traces(exporter).values()
    assert len([s for s in spans if s.parent is None]) == 1 and len(_of_kind(spans, "TOOL")) == 2


def test_a_span_of_the_caller_is_the_parent_across_the_loop_thread(fake, engine, photo, exporter):
    """engine.query runs on the engine's own thread; the caller's span still contains it."""
    from llama_index.core.schema import QueryBundle

    fake.script(*TWO_TOOL_CALLS, Reply.json(ANSWER))
    engine.as_query_engine().query(QueryBundle(query_str="Any damage?", image_path=str(photo)))
    (spans,) = _traces(exporter).values()
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["DamageQueryEngineView.query"]
    by_id = {s.context.span_id: s for s in spans}
    engine_span = next(s for s in spans if s.name == "DamageQueryEngine._query")
    assert roots[0] in _ancestors(engine_span, by_id) and len(_of_kind(spans, "TOOL")) == 2


def test_hermes_tool_calls_and_rag_retrieval_are_tool_spans(fake, engine, photo, exporter):
    fake.reject_auto_tool_choice()
    fake.script(Reply.hermes_tool_call("get_label_definitions", {"labels": ["dent"]}),
                Reply.hermes_tool_call("rust_detector", {}), Reply.json(ANSWER), Reply.json(ANSWER))
    engine.query(photo, "Is there a dent?")
    engine.query(photo, "Is there a dent?", mode="rag")
    hermes, rag = sorted(_traces(exporter).values(), key=lambda spans: min(s.start_time for s in spans))
    names = [s.attributes["tool.name"] for s in _of_kind(hermes, "TOOL")]
    assert names == ["get_label_definitions", "rust_detector"]  # an unknown tool is a (failed) call too
    (retrieval,) = _of_kind(rag, "TOOL")
    assert retrieval.attributes["tool.name"] == "search_similar_damage"


def test_a_failed_query_is_one_trace_ending_in_error(fake, engine, photo, exporter):
    fake.script(Reply.http_error(500, "busy"), Reply.http_error(500, "busy"))
    with pytest.raises(ModelEndpointError):
        engine.query(photo, "damage?", mode="zero-shot")
    (spans,) = _traces(exporter).values()
    (root,) = [s for s in spans if s.parent is None]
    assert root.name == "DamageQueryEngine._query" and root.status.status_code.name == "ERROR"


def test_tool_calls_emit_llamaindex_tool_events_inside_their_spans(fake, engine, photo):
    """Without OpenInference: LlamaIndex's own instrumentation sees the tool calls."""
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.agent import AgentToolCallEvent
    from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler

    class Events(BaseEventHandler):
        seen: list = []

        def handle(self, event, **kwargs):
            if isinstance(event, AgentToolCallEvent):
                self.seen.append(event)

    events, spans = Events(seen=[]), SimpleSpanHandler()
    root = get_dispatcher()
    root.add_event_handler(events)
    root.add_span_handler(spans)
    try:
        fake.script(*TWO_TOOL_CALLS, Reply.json(ANSWER))
        engine.query(photo, "Any damage?")
    finally:
        root.event_handlers.remove(events)
        root.span_handlers.remove(spans)
    assert [e.tool.name for e in events.seen] == ["search_similar_damage", "get_label_examples"]
    assert json.loads(events.seen[1].arguments) == {"label": "dent", "k": 2}
    tool_spans = {s.id_: s for s in spans.completed_spans if s.id_.startswith("LoopToolCall.call-")}
    assert {e.span_id for e in events.seen} == set(tool_spans)
    query_span = next(s for s in spans.completed_spans if s.id_.startswith("DamageQueryEngine._query-"))
    assert {s.parent_id for s in tool_spans.values()} == {query_span.id_}
