"""The model client's timeouts: ``model.timeout_s`` bounds the whole reply, a short connect
timeout bounds the TCP connection, so an endpoint that never accepts the connection fails in
seconds (as unreachable), not after the reply's deadline. No network: the endpoint is a local
socket whose accept queue is full, so the kernel leaves further connections hanging."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from llama_index.core.base.llms.types import ChatMessage

from agent import llm
from agent.endpoint_errors import ModelEndpointError, Problem
from index.config import ModelConfig


@pytest.fixture
def hanging_endpoint() -> Iterator[str]:
    """A base URL whose TCP connections hang: a listener with a backlog of 0 that never
    accepts, its one queue slot taken by a first connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    first = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        first.close()
        listener.close()


def test_the_connect_timeout_is_short_and_the_reply_keeps_its_deadline():
    timeout = llm.request_timeout(ModelConfig(timeout_s=120))
    assert (timeout.connect, timeout.read, timeout.write) == (llm.CONNECT_TIMEOUT_S, 120, 120)
    assert llm.request_timeout(ModelConfig(timeout_s=2)).connect == 2  # never more than the whole deadline


def test_the_client_the_requests_go_through_carries_the_timeouts():
    client = llm.ModelClient(ModelConfig(timeout_s=90)).llm._get_aclient()
    assert client.timeout.connect == llm.CONNECT_TIMEOUT_S
    assert client.timeout.read == 90
    assert client.max_retries == 0  # retries are agent.llm.chat's, not the openai client's


def test_an_endpoint_that_never_accepts_fails_at_connect_as_unreachable(hanging_endpoint, monkeypatch):
    monkeypatch.setattr(llm, "CONNECT_TIMEOUT_S", 0.3)
    config = ModelConfig(api_base=hanging_endpoint, timeout_s=30, max_retries=0)
    client = llm.ModelClient(config)

    with pytest.raises(ModelEndpointError) as caught:
        asyncio.run(client.complete([ChatMessage(role="user", content="hello")]))
    # With the connect timeout equal to timeout_s this took 30 s and said "no whole reply".
    assert caught.value.problem is Problem.UNREACHABLE
    assert "no connection within 0.3 s" in str(caught.value)
    assert hanging_endpoint in str(caught.value)
