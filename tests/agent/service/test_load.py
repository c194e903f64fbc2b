"""Many callers at once: 50 concurrent chat requests all answered with their own traces; a full
queue answered 503 at once; and the passthrough of what the engine does not answer."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from agent.testing import Reply
from agent.testing.scenarios import responder
from tests.agent.service.running import (
    UPSTREAM_KEY,
    data_uri,
    one_line_error,
    start_service,
    user_message,
)


def test_50_concurrent_requests_all_answered_with_their_own_traces(service, fake, photo):
    image = data_uri(photo)

    async def run() -> list[tuple[str, httpx.Response]]:
        client = openai.AsyncOpenAI(base_url=service.base_url, api_key=service.token, max_retries=0, timeout=300)

        async def one(n: int) -> tuple[str, httpx.Response]:
            question = f"Question {n}: is there damage on panel {n}?"
            raw = await client.chat.completions.with_raw_response.create(
                model="damage-rag:rag", messages=[user_message(question, image)],
                response_format={"type": "json_object"})
            return question, raw

        try:
            return await asyncio.gather(*(one(n) for n in range(50)))
        finally:
            await client.close()

    answered = asyncio.run(run())
    assert len(answered) == 50
    traces = set()
    with service.client() as http:
        for question, raw in answered:
            completion = raw.parse()
            report = json.loads(completion.choices[0].message.content)
            trace_id = raw.headers["x-trace-id"]
            assert report["trace_id"] == trace_id and report["question"] == question
            events = http.get(f"/v1/traces/{trace_id}").json()["events"]
            assert events[0]["question"] == question
            assert next(e for e in events if e["type"] == "report")["report"]["question"] == question
            traces.add(trace_id)
    assert len(traces) == 50
    assert len(fake.chat_requests) == 50  # one model call each in rag mode
    assert {r.messages[-1]["content"][-1]["text"] for r in fake.chat_requests} \
        == {question for question, _ in answered}


@pytest.fixture(scope="module")
def narrow(upstream, synth_index_dir, tmp_path_factory):
    """A service answering one question at a time with one waiting, passing through what it
    cannot answer, with no token of its own."""
    svc = start_service(tmp_path_factory.mktemp("narrow"), upstream, synth_index_dir,
                        **{"service.max_concurrent": 1, "service.max_queue": 1, "service.retry_after_s": 7,
                           "service.unsupported": "passthrough"})
    yield svc
    svc.stop()


def test_a_full_queue_is_a_503_with_retry_after(narrow, fake, photo):
    slow = responder("slow", delay_s=1.5)
    fake.responder = slow
    body = {"model": "damage-rag:zero-shot", "messages": [user_message("Any damage?", data_uri(photo))]}

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=narrow.url, timeout=60) as http:
            first = asyncio.create_task(http.post("/v1/chat/completions", json=body))
            await asyncio.sleep(0.3)
            second = asyncio.create_task(http.post("/v1/chat/completions", json=body))
            await asyncio.sleep(0.3)
            third = await http.post("/v1/chat/completions", json=body)
            return [await first, await second, third]

    first, second, third = asyncio.run(run())
    assert first.status_code == 200 and second.status_code == 200
    message = one_line_error(third, 503)
    assert "busy" in message and "service.max_queue 1" in message
    assert third.headers["retry-after"] == "7"
    assert len(fake.chat_requests) == 2  # the refused one never reached the model


def test_a_caller_that_hangs_up_frees_its_place(narrow, fake, photo):
    fake.responder = responder("slow", delay_s=1.5)
    body = {"model": "damage-rag:zero-shot", "messages": [user_message("Any damage?", data_uri(photo))]}

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=narrow.url, timeout=60) as http:
            with pytest.raises(httpx.TimeoutException):
                await http.post("/v1/chat/completions", json=body, timeout=0.5)  # hangs up, its question running
            await asyncio.sleep(0.5)  # the service notices within a quarter of a second
            first = asyncio.create_task(http.post("/v1/chat/completions", json=body))
            await asyncio.sleep(0.3)
            second = await http.post("/v1/chat/completions", json=body)  # would be the third: 503
            return [await first, second]

    first, second = asyncio.run(run())
    assert first.status_code == 200 and second.status_code == 200, second.text


def test_passthrough_sends_what_the_engine_cannot_answer_upstream(narrow, fake):
    fake.responder = lambda body: Reply.text("Hello from upstream.")
    client = openai.OpenAI(base_url=narrow.base_url, api_key="a-key-the-service-ignores", max_retries=0)
    completion = client.chat.completions.create(model="damage-rag", messages=[{"role": "user", "content": "Hi!"}],
                                                temperature=0.3)
    assert completion.choices[0].message.content == "Hello from upstream."
    (request,) = fake.chat_requests
    assert request.body["model"] == "qwen"  # a damage-rag name becomes the upstream's model
    assert request.body["messages"] == [{"role": "user", "content": "Hi!"}] and request.body["temperature"] == 0.3
    assert request.has_authorization and request.status == 200  # the upstream key, not the client's

    stream = client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "Hi!"}],
                                            stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from upstream."


def test_passthrough_masks_the_upstream_key_in_what_comes_back(narrow, fake):
    fake.responder = lambda body: Reply.http_error(400, f"bad request from key {UPSTREAM_KEY}")
    with httpx.Client(base_url=narrow.url, timeout=30) as http:
        response = http.post("/v1/chat/completions", json={"model": "qwen", "messages": [
            {"role": "user", "content": "Hi!"}]})
    assert response.status_code == 400 and UPSTREAM_KEY not in response.text and "***" in response.text


def test_passthrough_masks_the_upstream_key_in_the_kept_headers(narrow, fake):
    fake.responder = lambda body: Reply.http_error(429, "slow down", headers={
        "x-request-id": f"req-{UPSTREAM_KEY}", "retry-after": "2"})
    with httpx.Client(base_url=narrow.url, timeout=30) as http:
        response = http.post("/v1/chat/completions", json={"model": "qwen", "messages": [
            {"role": "user", "content": "Hi!"}]})
    assert response.status_code == 429 and response.headers["retry-after"] == "2"
    assert UPSTREAM_KEY not in str(response.headers) and response.headers["x-request-id"] == "req-***"


def test_passed_through_requests_take_a_place_in_the_queue(narrow, fake):
    fake.responder = lambda body: Reply.slow(1.0, Reply.text("Hello from upstream."))
    body = {"model": "qwen", "messages": [{"role": "user", "content": "Hi!"}]}

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=narrow.url, timeout=60) as http:
            first = asyncio.create_task(http.post("/v1/chat/completions", json=body))
            await asyncio.sleep(0.3)
            second = asyncio.create_task(http.post("/v1/chat/completions", json={**body, "stream": True}))
            await asyncio.sleep(0.3)
            third = await http.post("/v1/chat/completions", json=body)
            return [await first, await second, third]

    first, second, third = asyncio.run(run())
    assert first.status_code == 200 and second.status_code == 200, second.text
    assert "busy" in one_line_error(third, 503) and third.headers["retry-after"] == "7"
    assert len(fake.chat_requests) == 2  # the refused one never went upstream
    with httpx.Client(base_url=narrow.url, timeout=30) as http:  # every slot given back, the stream's too
        ready = http.get("/readyz").json()
    assert (ready["running"], ready["waiting"]) == (0, 0)


def test_passthrough_never_sends_an_image_url_upstream_by_default(narrow, fake, photo):
    with httpx.Client(base_url=narrow.url, timeout=30) as http:
        response = http.post("/v1/chat/completions", json={"model": "qwen", "messages": [
            user_message("What is this?", "http://169.254.169.254/latest/meta-data.png")]})
    assert "service.passthrough_image_urls" in one_line_error(response, 400)
    assert fake.chat_requests == []
