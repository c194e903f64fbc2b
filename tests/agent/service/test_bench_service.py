"""``python -m agent bench --service`` in small: a few requests through the real service and the
in-process baseline, every check passing; and the checks catching a reply or a trace that
belongs to another request."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from agent.bench_service import (
    Outcome,
    _check_trace,
    echo_responder,
    format_service_table,
    percentile,
    run_service_benchmark,
    tag,
)


@pytest.mark.slow
def test_a_few_requests_through_the_service_beside_the_engine_in_process(tmp_path):
    result = run_service_benchmark(requests=4, concurrency=2, sequential=2, workdir=tmp_path,
                                   photo_size=(800, 600))
    checks = result["checks"]
    assert checks["pass"], checks["problems"]
    assert checks["sent"] == checks["answered"] == checks["own_answer_and_trace"] == checks["distinct_trace_ids"] == 6
    for key in ("load", "one_at_a_time"):
        figures = result[key]
        for row in ("service", "inspect", "chat", "in_process", "service_minus_engine"):
            assert figures[row]["p50_ms"] > 0 and figures[row]["p95_ms"] >= figures[row]["p50_ms"], (key, row)
    assert result["load"]["service"]["throughput_rps"] > 0 and result["load"]["in_process"]["throughput_rps"] > 0
    table = format_service_table(result)
    assert "in-process engine (baseline)" in table and "service minus engine's own time" in table
    assert table.splitlines()[-1].endswith("PASS")
    assert (tmp_path / "service.log").is_file() and list((tmp_path / "traces").glob("*.jsonl"))


def _client(events_by_trace: dict[str, list[dict]]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        trace_id = request.url.path.rsplit("/", 1)[-1]
        if trace_id not in events_by_trace:
            return httpx.Response(404, json={"error": {"message": "no such trace"}})
        return httpx.Response(200, json={"id": trace_id, "events": events_by_trace[trace_id]})

    return httpx.AsyncClient(base_url="http://service", transport=httpx.MockTransport(answer))


def _events(number: int, total_s: float = 0.2) -> list[dict]:
    return [{"type": "query", "question": f"¿daños? {tag(number)}"},
            {"type": "report", "report": {"answer": f"un arañazo {tag(number)}", "timings": {"total_s": total_s}}}]


def _checked(outcome: Outcome, traces: dict[str, list[dict]]) -> Outcome:
    async def run() -> None:
        async with _client(traces) as client:
            await _check_trace(client, outcome)

    asyncio.run(run())
    return outcome


def test_a_reply_or_a_trace_of_another_request_is_caught():
    traces = {"t-7": _events(7, 0.25), "t-8": _events(8)}
    good = _checked(Outcome(7, "inspect", 0.4, 200, answer=f"un arañazo {tag(7)}", trace_id="t-7"), traces)
    assert good.problems == [] and good.engine_s == 0.25
    wrong_answer = _checked(Outcome(7, "chat", 0.4, 200, answer=f"un arañazo {tag(8)}", trace_id="t-7"), traces)
    assert wrong_answer.problems == [f"answer without its tag {tag(7)}: 'un arañazo {tag(8)}'"]
    wrong_trace = _checked(Outcome(7, "chat", 0.4, 200, answer=f"x {tag(7)}", trace_id="t-8"), traces)
    assert wrong_trace.problems == ["trace t-8 is another request's"]
    no_trace = _checked(Outcome(7, "chat", 0.4, 200, answer=f"x {tag(7)}", trace_id="t-9"), traces)
    assert no_trace.problems == ["trace t-9: HTTP 404"]


def test_the_fake_model_echoes_the_tag_of_the_question_it_was_asked():
    question = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}},
                                            {"type": "text", "text": f"¿Qué daños? {tag(12)}"}]}
    first = echo_responder({"messages": [question], "tools": [{"type": "function"}]})
    assert [call.name for call in first.calls] == ["search_similar_damage"]
    final = echo_responder({"messages": [question, {"role": "tool", "content": "hits"}], "tools": [{}]})
    assert tag(12) in final.content and tag(13) not in final.content


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0 and percentile(values, 95) == 19.0 and percentile(values, 100) == 20.0
    assert percentile([3.0], 95) == 3.0
