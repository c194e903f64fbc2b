"""``engine.as_query_engine()``: the engine as a LlamaIndex ``BaseQueryEngine``, against the fake server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.response.schema import Response
from llama_index.core.schema import ImageNode, QueryBundle
from llama_index.core.tools import QueryEngineTool
from llama_index.core.tools.types import ToolOutput

from agent.engine import DamageQueryEngine
from agent.query_engine import DEFAULT_QUESTION, MissingPhotoError, parse_query_text
from agent.report import DamageReport
from agent.testing import Reply
from agent.trace import load_trace

ANSWER = {"damage_detected": True, "findings": [{"label": "dent", "confidence": 0.8, "bbox_2d": [100, 100, 300, 300]}],
          "answer": "Sí: una abolladura en la puerta.", "examples_used": []}
SEARCH_THEN_LABEL = (Reply.tool_calls([("search_similar_damage", {"k": 2})]),
                     Reply.tool_calls([("get_label_examples", {"label": "dent", "k": 2})]))


def _question_sent(request) -> str:
    """The text of the user turn the question is in (the first user message)."""
    user = next(m for m in request.messages if m["role"] == "user")
    return "".join(part.get("text", "") for part in user["content"] if isinstance(part, dict))


def _expected_scores(engine: DamageQueryEngine, report: DamageReport) -> dict[str, float | None]:
    """Per example shown: the highest similarity a search gave it (None if only shown by label)."""
    scores: dict[str, float | None] = dict.fromkeys(report.examples_used)
    for event in load_trace(engine.config.agent.traces_dir, report.trace_id):
        if event["type"] == "tool_call" and event["name"] == "search_similar_damage":
            for hit in event["result"]["hits"]:
                scores[hit["id"]] = max(scores[hit["id"]] or float("-inf"), hit["similarity"])
    return scores


def test_the_view_is_a_llamaindex_query_engine(engine):
    view = engine.as_query_engine()
    assert isinstance(view, BaseQueryEngine)
    assert view._get_prompt_modules() == {} and view.get_prompts() == {}
    assert type(engine).__mro__[1:] == (object,)  # the engine itself is unchanged
    with pytest.raises(TypeError, match="sources"):
        engine.as_query_engine(sources=[])  # the view fills it itself


def test_query_bundle_gives_the_answer_the_examples_shown_and_the_report(fake, engine, photo, synth_index_dir):
    fake.script(*SEARCH_THEN_LABEL, Reply.json(ANSWER))
    response = engine.as_query_engine().query(QueryBundle(query_str="¿Hay abolladuras?", image_path=str(photo)))
    assert isinstance(response, Response) and response.response == ANSWER["answer"]
    report = response.metadata["report"]
    assert isinstance(report, DamageReport) and report.valid and response.metadata["trace_id"] == report.trace_id
    assert [n.node.node_id for n in response.source_nodes] == report.examples_used and len(report.examples_used) >= 3
    assert all(isinstance(n.node, ImageNode) for n in response.source_nodes)
    scores = _expected_scores(engine, report)
    assert {n.node.node_id: n.score for n in response.source_nodes} == scores
    assert any(s is None for s in scores.values()) and sum(s is not None for s in scores.values()) == 2
    for source in response.source_nodes:
        assert source.node.get_content()  # the example's description, for evaluators
        assert Path(source.node.image_path).is_file()  # the stored crop, inside the index
        assert Path(source.node.image_path).resolve().is_relative_to(Path(synth_index_dir).resolve())
    assert "¿Hay abolladuras?" in _question_sent(fake.chat_requests[0])
    assert len(fake.chat_requests[0].image_parts()) == 1  # the photo of the bundle


def test_rag_view_shows_k_searched_examples_best_first(fake, engine, photo):
    fake.script(Reply.json(ANSWER))
    response = engine.as_query_engine(mode="rag").query(QueryBundle(query_str="Any damage?", image_path=str(photo)))
    scores = [n.score for n in response.source_nodes]
    assert len(scores) == engine.config.agent.k and None not in scores and scores == sorted(scores, reverse=True)
    assert response.metadata["report"].mode == "rag"


def test_query_engine_tool_about_one_photo(fake, engine, photo):
    tool = QueryEngineTool.from_defaults(engine.as_query_engine(default_image=photo), name="inspect_photo",
                                         description="Answers a question about the customer's car photo.")
    fake.script(Reply.tool_calls([("search_similar_damage", {"k": 2})]), Reply.json(ANSWER))
    output = tool.call("¿Hay abolladuras?")
    assert isinstance(output, ToolOutput) and isinstance(output.raw_output, Response)
    assert output.content == ANSWER["answer"] and output.tool_name == "inspect_photo"
    assert [n.node.node_id for n in output.raw_output.source_nodes] == output.raw_output.metadata["report"].examples_used
    assert "¿Hay abolladuras?" in _question_sent(fake.chat_requests[0])


def test_query_engine_tool_with_the_photo_in_the_string(fake, engine, photo):
    tool = QueryEngineTool.from_defaults(engine.as_query_engine(mode="zero-shot"))
    fake.script(Reply.json(ANSWER), Reply.json(ANSWER))
    output = tool.call(input=f"{photo}: ¿Dónde está: la abolladura?")
    assert isinstance(output.raw_output, Response) and output.raw_output.metadata["report"].question == \
        "¿Dónde está: la abolladura?"
    photo_only = tool.call(str(photo))
    assert photo_only.raw_output.metadata["report"].question == DEFAULT_QUESTION
    assert all(len(r.image_parts()) == 1 for r in fake.chat_requests)


def test_a_function_agent_uses_the_view_through_a_query_engine_tool(fake, engine, photo):
    """A stock LlamaIndex agent, on the same fake server, asks the engine through the tool."""
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.llms.openai_like import OpenAILike

    tool = QueryEngineTool.from_defaults(engine.as_query_engine(default_image=photo), name="inspect_photo",
                                         description="Answers a question about the customer's car photo.")
    llm = OpenAILike(model="qwen", api_base=fake.base_url, api_key="x", is_chat_model=True,
                     is_function_calling_model=True, max_retries=0)
    agent = FunctionAgent(tools=[tool], llm=llm, system_prompt="You handle car insurance claims.")
    fake.script(Reply.tool_calls([("inspect_photo", {"input": "¿Hay abolladuras?"})]),
                Reply.tool_calls([("search_similar_damage", {"k": 2})]), Reply.json(ANSWER),
                Reply.text("The photo shows a dent on the door."))

    async def run() -> str:
        return str(await agent.run("Check the claim photo for dents."))

    assert asyncio.run(run()) == "The photo shows a dent on the door."
    agent_call, first, second, agent_final = fake.chat_requests
    assert [t["function"]["name"] for t in agent_call.tools] == ["inspect_photo"]
    assert "¿Hay abolladuras?" in _question_sent(first) and len(second.image_parts()) == 3
    assert agent_final.messages[-1] == {**agent_final.messages[-1], "role": "tool", "content": ANSWER["answer"]}


def test_aquery_works_and_a_string_query_needs_a_photo(fake, engine, photo):
    fake.script(*SEARCH_THEN_LABEL, Reply.json(ANSWER))
    view = engine.as_query_engine()
    response = asyncio.run(view.aquery(QueryBundle(query_str="¿Hay abolladuras?", image_path=str(photo))))
    assert response.response == ANSWER["answer"]
    assert [n.node.node_id for n in response.source_nodes] == response.metadata["report"].examples_used
    with pytest.raises(MissingPhotoError, match="image_path"):
        view.query("Is there a dent?")
    with pytest.raises(MissingPhotoError, match="not a file"):
        view.query("/nowhere/car.jpg: Is there a dent?")
    assert len(fake.chat_requests) == 3  # the photo-less queries never reached the model


def test_an_invalid_answer_says_so_in_the_response(fake, engine, photo):
    fake.script(Reply.text("no json"), Reply.text("still none"))
    response = engine.as_query_engine(mode="zero-shot").query(QueryBundle(query_str="damage?", image_path=str(photo)))
    report = response.metadata["report"]
    assert not report.valid and "no valid answer" in response.response and response.source_nodes == []


@pytest.mark.parametrize(("text", "expected"), [
    ("photos/car 1.jpg: ¿Hay rayones?", ("photos/car 1.jpg", "¿Hay rayones?")),
    (r"C:\fotos\coche.JPEG: Where: exactly?", (r"C:\fotos\coche.JPEG", "Where: exactly?")),
    ("/data/a.b.png", ("/data/a.b.png", "")),
    ("'/data/x.jpg' : dents?", ("/data/x.jpg", "dents?")),
    ("Is photo.jpg damaged?", (None, "Is photo.jpg damaged?")),
    ("Any damage?", (None, "Any damage?")),
])
def test_parse_query_text(text, expected):
    assert parse_query_text(text) == expected
