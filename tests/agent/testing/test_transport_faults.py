"""Transport faults over real HTTP: ``Retry-After`` 429 / 503, a body trickled a byte at a time,
and 200 answers whose body is not a completion (HTML, empty, truncated JSON, no choices): their
status, headers and exact bytes, and what the openai client makes of them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from agent.testing import HTML_PAGE, QUEUE_FULL_ERROR, FakeOpenAIServer, Reply
from tests.agent.testing.helpers import make_client, raw_sse

BODY: dict[str, Any] = {"model": "qwen", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def post(server: FakeOpenAIServer, body: dict[str, Any] = BODY, **kw: Any) -> httpx.Response:
    kw.setdefault("timeout", 5)
    return httpx.post(f"{server.base_url}/chat/completions", json=body, **kw)


# -- Retry-After ------------------------------------------------------------------------------


def test_429_with_retry_after(server: FakeOpenAIServer) -> None:
    server.script(Reply.rate_limited(retry_after=7))
    resp = post(server)
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "7"
    assert resp.json() == {
        "error": {
            "message": "Rate limit exceeded",
            "type": "RateLimitError",
            "param": None,
            "code": 429,
        }
    }


def test_503_with_retry_after_has_vllms_queue_full_body(server: FakeOpenAIServer) -> None:
    server.script(Reply.unavailable(retry_after=3), Reply.unavailable(retry_after=None))
    resp = post(server)
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "3"
    assert resp.json() == {
        "error": {
            "message": QUEUE_FULL_ERROR,
            "type": "Service Unavailable",
            "param": None,
            "code": 503,
        }
    }
    assert QUEUE_FULL_ERROR == (
        "The engine is currently busy and cannot accept new requests. Please try again later "
        "or on a different instance."
    )
    assert "retry-after" not in post(server).headers  # as vLLM itself sends it


def test_openai_client_waits_retry_after_before_retrying(server: FakeOpenAIServer) -> None:
    server.script(Reply.rate_limited(retry_after=1), Reply.text("after the wait"))
    t0 = time.monotonic()
    resp = make_client(server, max_retries=1).chat.completions.create(**BODY)
    assert resp.choices[0].message.content == "after the wait"
    assert time.monotonic() - t0 >= 0.9
    assert [r.status for r in server.chat_requests] == [429, 200]


def test_503_without_retries_is_internal_server_error(server: FakeOpenAIServer) -> None:
    server.script(Reply.unavailable())
    with pytest.raises(openai.InternalServerError) as info:
        make_client(server).chat.completions.create(**BODY)
    assert info.value.status_code == 503
    assert info.value.response.headers["retry-after"] == "1"


# -- a trickled body --------------------------------------------------------------------------


def test_trickle_outlasts_a_per_read_timeout(server: FakeOpenAIServer) -> None:
    """httpx's timeout bounds each read: a body that keeps coming is read whole."""
    server.script(Reply.trickle(0.02, Reply.no_choices()))
    t0 = time.monotonic()
    resp = post(server, timeout=0.2)
    assert time.monotonic() - t0 >= 0.25  # 15 bytes, one every 20 ms: longer than the timeout
    assert resp.status_code == 200
    assert resp.content == b'{"choices": []}'
    assert resp.headers["content-length"] == "15"


def test_trickle_is_cut_by_a_whole_request_deadline(server: FakeOpenAIServer) -> None:
    server.script(Reply.trickle(0.05, Reply.text("a long answer that takes seconds to arrive")))

    async def call() -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:
            await asyncio.wait_for(
                client.post(f"{server.base_url}/chat/completions", json=BODY), timeout=0.3
            )

    t0 = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(call())
    assert time.monotonic() - t0 < 1.0
    (record,) = server.chat_requests
    assert record.status == 200  # headers were sent at once; the body was cut short


def test_trickled_stream_keeps_its_framing(server: FakeOpenAIServer) -> None:
    server.script(Reply.trickle(0.0005, Reply.text("ok")))
    events = raw_sse(server, {**BODY, "stream": True})
    assert events[-1] == "[DONE]"
    assert "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1])


def test_trickled_error_body(server: FakeOpenAIServer) -> None:
    server.script(Reply.trickle(0.001, Reply.http_error(400, "bad")))
    resp = post(server, timeout=0.5)
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "bad"


# -- 200s that are not a completion -----------------------------------------------------------


def test_html_page(server: FakeOpenAIServer) -> None:
    server.script(Reply.html_page(), Reply.html_page())
    resp = post(server)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert resp.text == HTML_PAGE
    assert resp.headers["content-length"] == str(len(HTML_PAGE.encode()))
    # the openai client does not raise: it hands back the page as a str
    answer = make_client(server).chat.completions.create(**BODY)
    assert answer == HTML_PAGE  # type: ignore[comparison-overlap]


def test_html_page_to_a_streaming_request(server: FakeOpenAIServer) -> None:
    server.script(Reply.html_page())
    resp = post(server, {**BODY, "stream": True})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.text == HTML_PAGE


def test_empty_body(server: FakeOpenAIServer) -> None:
    server.script(Reply.empty_body(), Reply.empty_body())
    resp = post(server)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["content-length"] == "0"
    assert resp.content == b""
    # the openai client lets the raw JSON error through (not an openai.APIError)
    with pytest.raises(json.JSONDecodeError):
        make_client(server).chat.completions.create(**BODY)


def test_truncated_json(server: FakeOpenAIServer) -> None:
    server.script(Reply.truncated_json(keep_bytes=40), Reply.truncated_json())
    resp = post(server)
    assert resp.status_code == 200
    assert resp.headers["content-length"] == "40"
    assert resp.content.startswith(b'{"id": "chatcmpl-') and len(resp.content) == 40
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.content)
    with pytest.raises(json.JSONDecodeError):  # default: half of the completion
        make_client(server).chat.completions.create(**BODY)
    assert [r.reply.label for r in server.chat_requests if r.reply] == ["truncated_json"] * 2


def test_no_choices(server: FakeOpenAIServer) -> None:
    server.script(Reply.no_choices(), Reply.no_choices())
    resp = post(server)
    assert resp.status_code == 200
    assert resp.json() == {"choices": []}
    answer = make_client(server).chat.completions.create(**BODY)
    assert answer.choices == []  # parsed without complaint: the caller must check


def test_raw_body_with_any_status(server: FakeOpenAIServer) -> None:
    server.script(Reply.raw("upstream connect error", status=502, content_type="text/plain"))
    resp = post(server)
    assert (resp.status_code, resp.text) == (502, "upstream connect error")
    assert resp.headers["content-type"] == "text/plain"


def test_raw_replies_to_embeddings(server: FakeOpenAIServer) -> None:
    server.script_embeddings(Reply.html_page(), Reply.truncated_json())
    url = f"{server.base_url}/embeddings"
    first = httpx.post(url, json={"input": "x"}, timeout=5)
    assert (first.status_code, first.text) == (200, HTML_PAGE)
    second = httpx.post(url, json={"input": "x"}, timeout=5)
    assert second.status_code == 500  # there is no completion to truncate
    assert "cannot answer an embeddings request" in second.json()["error"]["message"]


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        Reply.trickle(0, Reply.text("x"))
    with pytest.raises(ValueError):
        Reply.truncated_json(keep_bytes=-1)
    with pytest.raises(ValueError):
        FakeOpenAIServer(served_model_names=[])
