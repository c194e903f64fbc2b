"""The remote embedder retries under the project's one policy (index.retry), like the model
client: Retry-After honoured up to its bound, jittered backoff, a malformed 200 retried once,
attempts bounded. Against the fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from agent.testing import FakeOpenAIServer, Reply
from index.embedders import EmbedderConfig, EmbedderError, VisualEmbedder, load_embedder
from tests.fixtures.embedders import assert_unit_rows

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.usefixtures("hf_offline")]

DIM = 16


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(embedding_dim=DIM) as srv:
        yield srv


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the embedder asks for, recorded instead of slept (only in the remote module)."""
    from index.embedders import remote

    seen: list[float] = []
    monkeypatch.setattr(remote, "time", SimpleNamespace(sleep=seen.append))
    return seen


def _remote(server: FakeOpenAIServer, **kwargs: object) -> VisualEmbedder:
    return load_embedder(EmbedderConfig(model="emb", backend="remote", api_base=server.base_url, **kwargs))


def test_retry_after_is_honoured(server: FakeOpenAIServer) -> None:
    server.script_embeddings(Reply.rate_limited(retry_after=1))
    assert_unit_rows(_remote(server, max_retries=2).embed_texts(["a dent"]), 1, DIM)
    first, second = server.requests
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 1.0


def test_a_retry_after_beyond_the_bound_gives_up_at_once(server: FakeOpenAIServer, waits: list[float]) -> None:
    server.script_embeddings(Reply.unavailable(retry_after=3600))
    with pytest.raises(EmbedderError, match="asks to retry after 3600 s, more than 30 s") as err:
        _remote(server, max_retries=5).embed_texts(["a dent"])
    assert len(server.requests) == 1 and waits == []
    assert f"127.0.0.1:{server.port}/v1/embeddings" in str(err.value)


def test_backoff_is_jittered_and_grows(server: FakeOpenAIServer, waits: list[float]) -> None:
    server.script_embeddings(*[Reply.http_error(503, "busy")] * 3)
    assert_unit_rows(_remote(server, max_retries=3).embed_texts(["a dent"]), 1, DIM)
    assert len(waits) == 3
    for wait, base in zip(waits, (0.5, 1.0, 2.0), strict=True):
        assert 0.5 * base <= wait <= 1.5 * base


@pytest.mark.parametrize("reply", [Reply.html_page(), Reply.raw(b'{"object": "list", "data": []}')],
                         ids=["html", "no-data"])
def test_a_malformed_200_is_retried_once(server: FakeOpenAIServer, waits: list[float], reply: Reply) -> None:
    server.script_embeddings(reply)
    assert_unit_rows(_remote(server, max_retries=3).embed_texts(["a dent"]), 1, DIM)
    assert len(server.requests) == 2
    server.reset()
    server.script_embeddings(reply, reply, reply)
    with pytest.raises(EmbedderError, match=r"answered 2 time\(s\) with no embedding"):
        _remote(server, max_retries=3).embed_texts(["a dent"])
    assert len(server.requests) == 2


def test_no_retries_means_one_request(server: FakeOpenAIServer, waits: list[float]) -> None:
    server.script_embeddings(Reply.http_error(500, "busy"))
    with pytest.raises(EmbedderError, match=r"failed after 1 attempt\(s\) \(HTTP 500"):
        _remote(server, max_retries=0).embed_texts(["a dent"])
    assert len(server.requests) == 1 and waits == []
