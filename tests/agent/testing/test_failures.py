"""Retries, dropped connections, slow replies and timeouts, as the openai client and OpenAILike
see them (real sockets on 127.0.0.1, nothing mocked)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from llama_index.llms.openai_like import OpenAILike

from agent.testing import FakeOpenAIServer, Reply
from tests.agent.testing.helpers import USER, free_port, make_client, make_llm


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def test_slow_reply_and_stop_cuts_it_short() -> None:
    srv = FakeOpenAIServer().start()
    srv.script(Reply.slow(30, Reply.text("never")))
    client = make_client(srv, timeout=20)
    t0 = time.monotonic()

    def stop_soon() -> None:
        srv.wait_for_requests(1)
        srv.stop()

    threading.Thread(target=stop_soon, daemon=True).start()
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "x"}])
    assert time.monotonic() - t0 < 5


FAST_500 = Reply.http_error(500, "engine error").with_headers({"retry-after-ms": "1"})


@pytest.mark.parametrize(("max_retries", "expected_requests"), [(0, 1), (1, 2), (2, 6)])
def test_500_retries_multiply(
    server: FakeOpenAIServer, max_retries: int, expected_requests: int
) -> None:
    """openai client retries max_retries times, and LlamaIndex's tenacity wrapper re-runs that
    whole call max_retries times: (max_retries + 1) * max_retries requests for max_retries >= 1."""
    server.responder = lambda body: FAST_500
    with pytest.raises(openai.InternalServerError):
        make_llm(server, max_retries=max_retries).chat(USER)
    assert len(server.chat_requests) == expected_requests


def test_500_streaming_is_retried_by_the_client_only(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: FAST_500
    with pytest.raises(openai.InternalServerError):
        list(make_llm(server, max_retries=2).stream_chat(USER))
    assert len(server.chat_requests) == 3


def test_transient_500_is_recovered(server: FakeOpenAIServer) -> None:
    server.script(FAST_500, Reply.text("recovered"))
    assert make_llm(server, max_retries=1).chat(USER).message.content == "recovered"
    assert [r.status for r in server.chat_requests] == [500, 200]


@pytest.mark.parametrize(("max_retries", "expected_requests"), [(0, 1), (1, 2)])
def test_dropped_connection(
    server: FakeOpenAIServer, max_retries: int, expected_requests: int
) -> None:
    server.responder = lambda body: Reply.drop_connection()
    with pytest.raises(openai.APIConnectionError) as info:
        make_llm(server, max_retries=max_retries).chat(USER)
    assert type(info.value) is openai.APIConnectionError
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)
    assert len(server.chat_requests) == expected_requests
    assert {r.status for r in server.chat_requests} == {0}


def test_drop_mid_stream_raises_raw_httpx_error_without_retry(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: Reply.drop_connection(after_chunks=2)
    llm = make_llm(server, max_retries=2)
    got: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        for r in llm.stream_chat(USER):
            got.append(r.delta or "")
    assert got  # some text arrived before the cut
    assert not issubclass(httpx.RemoteProtocolError, openai.OpenAIError)  # not wrapped
    assert len(server.chat_requests) == 1


def test_slow_reply_vs_client_timeout(server: FakeOpenAIServer) -> None:
    server.script(Reply.slow(1.0, Reply.text("late")), Reply.slow(0.2, Reply.text("in time")))
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError) as info:
        asyncio.run(make_llm(server, timeout=0.3).achat(USER))
    assert isinstance(info.value, openai.APIConnectionError)  # APITimeoutError subclasses it
    assert time.monotonic() - t0 < 0.9
    assert make_llm(server, timeout=2.0).chat(USER).message.content == "in time"


def test_timeout_is_per_read_not_total_for_streams(server: FakeOpenAIServer) -> None:
    """httpx applies the timeout to each socket read: a stream whose events keep coming never
    times out, whatever its total duration (bound the total yourself, e.g. asyncio.wait_for)."""
    content = "x" * 6
    server.script(Reply.text(content).with_stream_chunking(chunk_size=1, chunk_delay=0.08))
    t0 = time.monotonic()
    deltas = [r.delta for r in make_llm(server, timeout=0.3).stream_chat(USER)]
    assert "".join(d or "" for d in deltas) == content
    assert time.monotonic() - t0 > 0.4  # longer than the timeout in total


def test_connection_refused() -> None:
    llm = OpenAILike(
        model="qwen",
        api_base=f"http://127.0.0.1:{free_port()}/v1",
        api_key="x",
        is_chat_model=True,
        is_function_calling_model=True,
        max_retries=0,
    )
    with pytest.raises(openai.APIConnectionError) as info:
        llm.chat(USER)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
