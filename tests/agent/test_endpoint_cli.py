"""The real endpoint through ``python -m agent`` as a user meets it: a vLLM-faithful fake server,
its limits and error bodies, and what the CLI does with each (exit code, one line, the trace)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agent.testing import FakeOpenAIServer, Reply
from agent.trace import list_traces
from index.config import apply_overrides, load_config
from tests.fixtures.paths import REPO, VEHICLE_CONFIG

ANSWER = {"damage_detected": True, "answer": "Sí, un arañazo.", "examples_used": [],
          "findings": [{"label": "scratch", "location": "door", "severity": "minor", "confidence": 0.8,
                        "bbox_2d": [100, 100, 300, 300], "evidence": "light line"}]}


@pytest.fixture
def index_dir(synth_index_dir):
    return synth_index_dir


@pytest.fixture
def photo(synth_dataset) -> Path:
    return sorted(Path(synth_dataset).glob("*.jpg"))[0]


def write_config(tmp_path: Path, server: FakeOpenAIServer, **overrides: object) -> Path:
    """The vehicle config pointed at ``server``, fast retries, traces in ``tmp_path``."""
    config = apply_overrides(load_config(VEHICLE_CONFIG), {
        "model.api_base": server.base_url, "model.model": "qwen", "model.max_retries": 1,
        "model.retry_backoff_s": 0.05, "model.timeout_s": 10, "agent.traces_dir": str(tmp_path / "traces"),
        **overrides,
    })
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    return path


def agent(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "250", **(env or {})}
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=full,
                          cwd=REPO, timeout=300, input=stdin)


def ask(config: Path, photo: Path, index_dir: Path, *extra: str, env: dict[str, str] | None = None):
    return agent("ask", "--config", str(config), "--image", str(photo), "¿Tiene rayones?", "--index", str(index_dir),
                 *extra, env=env)


def one_line(result: subprocess.CompletedProcess) -> str:
    """The CLI's failure: exit 1, nothing on stdout, one line on stderr, no traceback."""
    assert result.returncode == 1, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def images_per_request(server: FakeOpenAIServer) -> list[int]:
    return [sum(1 for m in r.body["messages"] if isinstance(m.get("content"), list)
                for part in m["content"] if part.get("type") == "image_url") for r in server.chat_requests]


def test_agentic_question_on_a_server_allowing_4_images_ends_valid(tmp_path, photo, index_dir):
    with FakeOpenAIServer.like_vllm(["qwen"], max_images_per_prompt=4) as server:
        server.script(Reply.tool_calls([("search_similar_damage", {"k": 3})]),
                      Reply.tool_calls([("get_label_examples", {"label": "scratch", "k": 3})]),
                      Reply.json(ANSWER))
        result = ask(write_config(tmp_path, server), photo, index_dir, "--mode", "agentic", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["valid"] and report["tool_calls"] == 2
        sent = images_per_request(server)
        refused = [i for i, r in enumerate(server.chat_requests) if r.status == 400]
        assert refused and all(n <= 4 for n in sent[refused[0] + 1:]), sent
    events = [json.loads(line) for line in next((tmp_path / "traces").glob("*.jsonl")).read_text().splitlines()]
    assert any(e["type"] == "budget" and any("image omitted" in o for o in e["omitted"]) for e in events)
    assert any(e["type"] == "protocol" and "At most 4 image(s)" in e["message"] for e in events)


def test_a_context_limit_is_learned_and_the_request_re_sent(tmp_path, photo, index_dir):
    with FakeOpenAIServer.like_vllm(["qwen"], max_model_len=3800, context_error_style="input_tokens") as server:
        server.script(Reply.tool_calls([("search_similar_damage", {"k": 10})]),
                      Reply.tool_calls([("get_label_examples", {"label": "dent", "k": 10})]), Reply.json(ANSWER))
        result = ask(write_config(tmp_path, server, **{"model.max_tokens": 100}), photo, index_dir, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["valid"]  # the third request is refused, then re-sent with fewer images
        statuses = [r.status for r in server.chat_requests]
        assert statuses[-1] == 200 and 400 in statuses, statuses


def test_a_context_too_small_for_the_photo_is_one_line_naming_the_limit(tmp_path, photo, index_dir):
    with FakeOpenAIServer.like_vllm(["qwen"], max_model_len=600) as server:
        line = one_line(ask(write_config(tmp_path, server, **{"model.max_tokens": 100}), photo, index_dir,
                            "--mode", "zero-shot", "--json"))
        assert server.base_url in line and "--max-model-len" in line


def test_unknown_model_names_the_served_ones_and_keeps_the_schema(tmp_path, photo, index_dir):
    with FakeOpenAIServer.like_vllm(["qwen3vl"]) as server:
        line = one_line(ask(write_config(tmp_path, server), photo, index_dir, "--mode", "zero-shot",
                            "--model", "qwen-7b"))
        assert len(server.chat_requests) == 1  # not re-sent without response_format
    assert "does not exist" in line and "It serves: qwen3vl" in line and "--model" in line
    (trace,) = list_traces(tmp_path / "traces")
    assert trace["status"] == "failed" and "does not exist" in trace["error"]
    shown = agent("trace", "show", trace["id"], "--config", str(tmp_path / "config.yaml"))
    assert shown.returncode == 0 and "FAILED (unknown_model)" in shown.stdout
    listed = agent("trace", "list", "--config", str(tmp_path / "config.yaml"))
    assert "failed" in listed.stdout


def test_a_bad_key_names_the_variable_and_a_key_echoed_by_the_server_is_masked(tmp_path, photo, index_dir):
    with FakeOpenAIServer(api_key="right-key-123") as server:
        line = one_line(ask(write_config(tmp_path, server), photo, index_dir, "--mode", "zero-shot",
                            env={"VLM_API_KEY": "wrong-key-456"}))
        assert "VLM_API_KEY" in line and "HTTP 401" in line
        server.reset()
        server.api_key = None
        server.script(Reply.http_error(400, "bad request from key wrong-key-456"))
        line = one_line(ask(write_config(tmp_path, server), photo, index_dir, "--mode", "zero-shot",
                            env={"VLM_API_KEY": "wrong-key-456"}))
    assert "wrong-key-456" not in line and "***" in line


@pytest.mark.parametrize("reply", [Reply.html_page(), Reply.empty_body(), Reply.truncated_json(), Reply.no_choices()],
                         ids=["html", "empty", "truncated", "no-choices"])
def test_a_200_that_is_no_chat_completion_is_retried_once_then_one_line(tmp_path, photo, index_dir, reply):
    with FakeOpenAIServer() as server:
        server.when(lambda body: True, reply)
        line = one_line(ask(write_config(tmp_path, server, **{"model.max_retries": 3}), photo, index_dir,
                            "--mode", "zero-shot"))
        assert len(server.chat_requests) == 2
        assert "not a chat" in line and server.base_url in line


def test_any_other_4xx_is_one_line_quoting_the_server(tmp_path, photo, index_dir):
    with FakeOpenAIServer() as server:
        server.script(Reply.http_error(400, "temperature must be non-negative [got -1]"))
        line = one_line(ask(write_config(tmp_path, server), photo, index_dir, "--mode", "zero-shot"))
    assert "HTTP 400" in line and "temperature must be non-negative [got -1]" in line


def test_retry_after_is_honoured_within_its_bound(tmp_path, photo, index_dir):
    with FakeOpenAIServer() as server:
        server.script(Reply.rate_limited(retry_after=1), Reply.json(ANSWER))
        started = time.monotonic()
        result = ask(write_config(tmp_path, server), photo, index_dir, "--mode", "zero-shot", "--json")
        assert result.returncode == 0, result.stderr
        gaps = [b.received_at - a.received_at for a, b in zip(server.chat_requests, server.chat_requests[1:], strict=False)]
        assert gaps and gaps[0] >= 1.0 and time.monotonic() - started < 60
        server.reset()
        server.script(Reply.rate_limited(retry_after=3600))
        line = one_line(ask(write_config(tmp_path, server), photo, index_dir, "--mode", "zero-shot"))
        assert len(server.chat_requests) == 1
    assert "3600" in line and "retry_after_max_s" in line


def test_a_trickling_reply_is_cut_at_the_whole_request_deadline(tmp_path, photo, index_dir):
    with FakeOpenAIServer() as server:
        server.when(lambda body: True, Reply.trickle(0.5, Reply.json(ANSWER)))
        started = time.monotonic()
        line = one_line(ask(write_config(tmp_path, server, **{"model.timeout_s": 2, "model.max_retries": 0}),
                            photo, index_dir, "--mode", "zero-shot"))
        assert time.monotonic() - started < 30
    assert "no whole reply within 2 s" in line


def test_chat_says_the_error_and_goes_on(tmp_path, photo, index_dir):
    with FakeOpenAIServer() as server:
        server.script(Reply.http_error(400, "bad [/] request"), Reply.json(ANSWER))
        stdin = f"/photo {photo}\n¿Tiene rayones?\n¿Y ahora?\n/quit\n"
        result = agent("chat", "--config", str(write_config(tmp_path, server)), "--mode", "zero-shot",
                       "--index", str(index_dir), stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert "bad [/] request" in result.stderr and "Sí, un arañazo." in result.stdout
    assert "Traceback" not in result.stderr


def test_a_thinking_model_and_brackets_in_its_answer(tmp_path, photo, index_dir):
    thought = "The user asks {about scratches}; the [door] looks fine.\n</think>\n\n"
    reply = {**ANSWER, "answer": "Hay un arañazo [/] en la puerta."}
    with FakeOpenAIServer() as server:
        server.script(Reply.text(thought + json.dumps(reply, ensure_ascii=False)))
        result = ask(write_config(tmp_path, server), photo, index_dir, "--mode", "zero-shot")
        assert len(server.chat_requests) == 1  # no repair request
    assert result.returncode == 0, result.stderr
    assert "Hay un arañazo [/] en la puerta." in result.stdout


def test_a_box_slightly_outside_is_repaired_without_a_new_request(tmp_path, photo, index_dir):
    finding = {**ANSWER["findings"][0], "bbox_2d": [1003, 10, 20, 5], "confidence": "94 %"}
    with FakeOpenAIServer() as server:
        server.script(Reply.json({**ANSWER, "findings": [finding]}))
        result = ask(write_config(tmp_path, server), photo, index_dir, "--mode", "zero-shot", "--json")
        assert len(server.chat_requests) == 1
    report = json.loads(result.stdout)
    assert report["valid"] and report["findings"][0]["bbox_2d"] == [20, 5, 1000, 10]
    assert report["findings"][0]["confidence"] == 0.94 and len(report["repairs"]) == 2


def test_a_photo_of_the_index_is_never_its_own_example(tmp_path, photo, index_dir):
    with FakeOpenAIServer() as server:
        server.script(Reply.json(ANSWER))
        result = ask(write_config(tmp_path, server), photo, index_dir, "--mode", "rag", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in next((tmp_path / "traces").glob("*.jsonl")).read_text().splitlines()]
    call = next(e for e in events if e["type"] == "tool_call")
    assert call["result"]["query_photo"]["in_index"] and call["result"]["query_photo"]["excluded"]
    own = set(call["result"]["query_photo"]["image_ids"])
    assert own and not any(hit["image_id"] in own for hit in call["result"]["hits"])


def test_hermes_turns_say_where_the_images_are_and_keep_text_parts_apart(tmp_path, photo, index_dir):
    with FakeOpenAIServer.like_vllm(["qwen"]) as server:
        server.reject_auto_tool_choice()
        server.script(Reply.text('<tool_call>\n{"name": "search_similar_damage", "arguments": {"k": 2}}\n</tool_call>'),
                      Reply.json(ANSWER))
        result = ask(write_config(tmp_path, server), photo, index_dir, "--mode", "agentic", "--json")
        assert result.returncode == 0, result.stderr
        last = server.chat_requests[-1].body["messages"]
    turn = next(m for m in reversed(last) if m["role"] == "user" and isinstance(m["content"], list))
    texts = [part["text"] for part in turn["content"] if part["type"] == "text"]
    assert "<tool_response>" in texts[0] and "shown after the tool results" in texts[0]
    assert all(text.endswith("\n") for text in texts) and sum(p["type"] == "image_url" for p in turn["content"]) == 2


def test_an_invalid_agentic_answer_is_asked_again_under_the_schema(tmp_path, photo, index_dir):
    with FakeOpenAIServer() as server:
        server.script(Reply.text("Looks like a scratch to me."), Reply.json(ANSWER))
        result = ask(write_config(tmp_path, server), photo, index_dir, "--mode", "agentic", "--json")
        bodies = [r.body for r in server.chat_requests]
    assert result.returncode == 0 and json.loads(result.stdout)["valid"]
    assert "response_format" not in bodies[0] and bodies[1]["response_format"]["type"] == "json_schema"
