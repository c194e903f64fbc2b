"""The agent against a real local OpenAI-compatible server, scripted per test, and a real index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.llm import ModelEndpointError
from agent.testing import Reply
from agent.trace import list_traces, load_trace
from tests.fixtures.paths import REPO, VEHICLE_CONFIG

ANSWER = {
    "damage_detected": True,
    "findings": [{"label": "rayón", "location": "hood", "severity": "minor", "confidence": 0.9,
                  "bbox_2d": [100, 200, 300, 400], "evidence": "thin light line"}],
    "answer": "Sí, hay un arañazo en el capó.",
    "examples_used": [],
}


@pytest.fixture
def index_dir(synth_index_dir):
    return synth_index_dir


def test_agentic_run_sends_example_crops_as_images(fake, engine, photo):
    fake.script(Reply.tool_calls([("search_similar_damage", {"label": "rayones", "k": 2})]), Reply.json(ANSWER))
    report = engine.query(photo, "¿Tiene rayones en el capó?")
    first, second = fake.chat_requests
    assert {t["function"]["name"] for t in first.tools} == {"search_similar_damage", "get_label_examples", "get_label_definitions", "zoom"}
    assert len(first.image_parts()) == 1  # the query photo
    assert len(second.image_parts()) == 3  # query photo + 2 example crops after the tool result
    roles = [m["role"] for m in second.messages]
    assert roles[-2:] == ["tool", "user"] and "scratch" in second.messages[-2]["content"]
    assert report.valid and report.damage_detected and report.mode == "agentic" and report.tool_calls == 1
    assert report.findings[0].label.key == "scratch" and report.findings[0].label.id == "1"
    width, height = 800, 600
    assert report.findings[0].bbox_px == [round(0.1 * width), round(0.2 * height), round(0.3 * width), round(0.4 * height)]
    assert len(report.examples_used) == 2 and report.trace_id
    events = load_trace(engine.config.agent.traces_dir, report.trace_id)
    call = next(e for e in events if e["type"] == "tool_call")
    assert call["name"] == "search_similar_damage" and call["arguments"] == {"label": "rayones", "k": 2}
    assert any(e["type"] == "images_sent" and len(e["images"]) == 2 for e in events)
    assert events[-1]["type"] == "report"


def test_rag_mode_is_one_call_with_k_examples(fake, engine, photo):
    fake.script(Reply.json(ANSWER))
    report = engine.query(photo, "¿Tiene rayones?", mode="rag")
    (request,) = fake.chat_requests
    assert len(request.image_parts()) == 1 + engine.config.agent.k
    assert not request.tools and report.mode == "rag" and len(report.examples_used) == engine.config.agent.k
    assert request.body["response_format"]["type"] == "json_schema"


def test_zero_shot_sends_only_the_photo(fake, engine, photo):
    fake.script(Reply.json({**ANSWER, "damage_detected": False, "findings": []}))
    report = engine.query(photo, "Any damage?", mode="zero-shot")
    (request,) = fake.chat_requests
    assert len(request.image_parts()) == 1 and report.examples_used == [] and report.damage_detected is False


def test_hermes_fallback_when_server_rejects_auto_tool_choice(fake, engine, photo):
    fake.reject_auto_tool_choice()
    fake.script(Reply.hermes_tool_call("get_label_definitions", {"labels": ["crack"]}), Reply.json(ANSWER))
    report = engine.query(photo, "Is there a crack?")
    rejected, hermes_call, final = fake.chat_requests
    assert rejected.status == 400
    assert not hermes_call.tools and "<tools>" in hermes_call.messages[0]["content"]
    assert "<tool_response>" in json.dumps(final.messages[-1]) and "Crack" in json.dumps(final.messages[-1])
    assert report.valid and report.tool_calls == 1
    assert any(e["type"] == "protocol" for e in load_trace(engine.config.agent.traces_dir, report.trace_id))


def test_hermes_text_from_a_server_without_tool_parser(fake, engine, photo):
    fake.script(Reply.hermes_tool_call("zoom", {"region": [0, 0, 500, 500]}), Reply.json(ANSWER))
    report = engine.query(photo, "Look closer at the top left")
    assert report.valid and report.tool_calls == 1
    final = fake.chat_requests[-1]
    assert "<tool_response>" in json.dumps(final.messages[-1]) and len(final.image_parts()) == 2  # photo + zoom


def test_bad_tool_arguments_reach_the_model_as_an_error(fake, engine, photo):
    fake.script(Reply.tool_calls([("get_label_examples", {"label": "rust"})]), Reply.json(ANSWER))
    engine.query(photo, "show me rust")
    tool_message = fake.chat_requests[-1].messages[-1]
    assert tool_message["role"] == "tool" and "scratch" in tool_message["content"]  # lists valid labels


def test_tool_call_cap_forces_a_final_answer(fake, engine, photo):
    cap = engine.config.agent.max_tool_calls
    fake.script(*[Reply.tool_calls([("get_label_definitions", {})]) for _ in range(cap)], Reply.json(ANSWER))
    report = engine.query(photo, "anything?")
    assert report.tool_calls == cap and report.valid
    assert "used all your tool calls" in json.dumps(fake.chat_requests[-1].messages[-1])


def test_invalid_answer_is_repaired_once(fake, engine, photo):
    fake.script(Reply.text("The car has a scratch."), Reply.json(ANSWER))
    report = engine.query(photo, "¿Rayones?", mode="zero-shot")
    assert report.valid and len(fake.chat_requests) == 2
    assert "not a valid answer" in json.dumps(fake.chat_requests[-1].messages[-1])


def test_still_invalid_answer_gives_a_report_with_the_error(fake, engine, photo):
    fake.script(Reply.text("no json here"), Reply.json({"damage_detected": "maybe", "answer": 3}))
    report = engine.query(photo, "¿Rayones?", mode="zero-shot")
    assert not report.valid and report.damage_detected is None and report.findings == []
    assert "damage_detected" in report.error and report.raw_text


def test_unknown_label_in_answer_triggers_repair(fake, engine, photo):
    bad = {**ANSWER, "findings": [{**ANSWER["findings"][0], "label": "rust"}]}
    fake.script(Reply.json(bad), Reply.json(ANSWER))
    report = engine.query(photo, "damage?", mode="zero-shot")
    assert report.valid and "unknown labels" in json.dumps(fake.chat_requests[-1].messages[-1])


def test_response_format_refused_falls_back_to_text(fake, engine, photo):
    fake.when(lambda body: "response_format" in body, Reply.http_error(400, "response_format is not supported"), times=1)
    fake.script(Reply.text("```json\n" + json.dumps(ANSWER) + "\n```"))
    report = engine.query(photo, "damage?", mode="zero-shot")
    assert report.valid and "response_format" not in fake.chat_requests[-1].body


def test_retries_then_success(fake, engine, photo):
    fake.script(Reply.http_error(500, "busy"), Reply.json(ANSWER))
    assert engine.query(photo, "damage?", mode="zero-shot").valid
    assert [r.status for r in fake.chat_requests] == [500, 200]


def test_unreachable_endpoint_is_one_clear_error(engine, photo):
    engine.config.model.api_base = "http://127.0.0.1:9/v1"
    from agent.llm import ModelClient

    engine.client = ModelClient(engine.config.model)
    with pytest.raises(ModelEndpointError, match=r"127\.0\.0\.1:9/v1 failed after 2 attempt"):
        engine.query(photo, "damage?", mode="zero-shot")


def test_follow_up_questions_keep_the_conversation(fake, engine, photo):
    session = engine.session("zero-shot")
    session.attach(photo)
    fake.script(Reply.json(ANSWER), Reply.json({**ANSWER, "answer": "On the hood."}))
    session.ask("¿Tiene rayones?")
    second = session.ask("¿Dónde?")
    request = fake.chat_requests[-1]
    texts = json.dumps(request.messages, ensure_ascii=False)
    assert "¿Tiene rayones?" in texts and "¿Dónde?" in texts and second.answer == "On the hood."
    assert len(request.image_parts()) == 1  # the photo is not sent twice


def test_api_key_never_reaches_a_trace(fake, engine, photo, monkeypatch):
    monkeypatch.setenv("VLM_API_KEY", "sk-very-secret-123")
    from agent.llm import ModelClient

    engine.client = ModelClient(engine.config.model)
    fake.script(Reply.json(ANSWER))
    engine.query(photo, "damage?", mode="zero-shot")
    assert fake.chat_requests[-1].has_authorization
    for path in Path(engine.config.agent.traces_dir).rglob("*"):
        if path.is_file() and path.suffix == ".jsonl":
            assert "sk-very-secret-123" not in path.read_text()


def test_query_accepts_pil_and_bytes(fake, engine, photo):
    from PIL import Image

    fake.script(Reply.json(ANSWER), Reply.json(ANSWER))
    assert engine.query(Image.open(photo), "damage?", mode="zero-shot").valid
    assert engine.query(photo.read_bytes(), "damage?", mode="zero-shot").valid


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300, input=stdin)


def test_cli_ask_json_trace_show_and_html(fake, index_dir, photo, tmp_path):
    fake.script(Reply.tool_calls([("search_similar_damage", {"k": 2})]), Reply.json(ANSWER))
    traces = tmp_path / "traces"
    config = tmp_path / "c.yaml"
    config.write_text(VEHICLE_CONFIG.read_text() + f"\n  traces_dir: {traces}\n")
    result = _cli("ask", "--config", str(config), "--image", str(photo), "¿Tiene rayones en el capó?", "--json",
                  "--api-base", fake.base_url, "--model", "qwen", "--index", str(index_dir))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"damage_detected", "findings", "answer", "examples_used", "mode", "trace_id"} <= report.keys()
    assert report["findings"][0]["label"]["key"] == "scratch" and len(report["examples_used"]) == 2
    listed = json.loads(_cli("trace", "list", "--config", str(config), "--json").stdout)
    assert listed[0]["id"] == report["trace_id"] and listed[0]["tool_calls"] == 1
    shown = json.loads(_cli("trace", "show", report["trace_id"], "--config", str(config), "--json").stdout)
    call = next(e for e in shown["events"] if e["type"] == "tool_call")
    assert call["name"] == "search_similar_damage" and len(call["result"]["ids"]) == 2
    page = tmp_path / "trace.html"
    assert _cli("trace", "show", report["trace_id"], "--config", str(config), "--html", str(page)).returncode == 0
    assert page.read_text().count("data:image/jpeg;base64") >= 3  # photo + 2 crops


def test_cli_ask_unreachable_endpoint_exits_nonzero_with_one_line(photo, index_dir, tmp_path):
    result = _cli("ask", "--image", str(photo), "hola", "--json", "--mode", "zero-shot",
                  "--api-base", "http://127.0.0.1:9/v1", "--index", str(index_dir),
                  "--traces-dir", str(tmp_path / "traces"))  # never the repository's outputs/traces
    assert result.returncode == 1 and result.stdout == ""
    assert "127.0.0.1:9/v1" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_chat_scripted_session(fake, index_dir, photo, tmp_path):
    fake.script(Reply.tool_calls([("get_label_definitions", {"labels": ["scratch"]})]), Reply.json(ANSWER),
                Reply.json({**ANSWER, "answer": "En el capó."}))
    config = tmp_path / "c.yaml"
    config.write_text(VEHICLE_CONFIG.read_text() + f"\n  traces_dir: {tmp_path / 'traces'}\n")
    stdin = f"/photo {photo}\n¿Tiene rayones?\n¿Dónde?\n/quit\n"
    result = _cli("chat", "--config", str(config), "--api-base", fake.base_url, "--index", str(index_dir), stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert "get_label_definitions" in result.stderr and "En el capó." in result.stdout
    assert len(list_traces(tmp_path / "traces")) == 2
