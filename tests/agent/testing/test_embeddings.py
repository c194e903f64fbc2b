"""The fake server's /v1/embeddings route with the openai client and raw HTTP: default,
scripted and responder vectors, float and base64 encodings, scripted errors, API keys."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import httpx
import openai
import pytest

from agent.testing import FakeOpenAIServer, Reply
from tests.agent.testing.helpers import make_client


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def test_embeddings_default_scripted_and_float(server: FakeOpenAIServer) -> None:
    client = make_client(server)
    # the openai client asks for base64 by default and decodes it
    default = client.embeddings.create(model="qwen", input=["a dent", "a scratch"])
    assert server.last_request().body["encoding_format"] == "base64"
    vecs = [d.embedding for d in default.data]
    assert len(vecs) == 2 and all(len(v) == 8 for v in vecs)
    assert abs(sum(x * x for x in vecs[0]) - 1.0) < 1e-5
    again = client.embeddings.create(model="qwen", input="a dent", encoding_format="float")
    assert again.data[0].embedding == pytest.approx(vecs[0], abs=1e-6)  # deterministic
    assert (
        len(client.embeddings.create(model="qwen", input="x", dimensions=4).data[0].embedding) == 4
    )

    server.script_embeddings([[1.0, 0.0], [0.0, 1.0]])
    scripted = client.embeddings.create(model="qwen", input=["p", "q"], encoding_format="float")
    assert [d.embedding for d in scripted.data] == [[1.0, 0.0], [0.0, 1.0]]

    server.embedding_responder = lambda body: [[0.5, 0.25, 0.125]]
    raw = httpx.post(
        f"{server.base_url}/embeddings",
        json={"model": "qwen", "input": "x", "encoding_format": "base64"},
    ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert struct.unpack("<3f", packed) == (0.5, 0.25, 0.125)


def test_embeddings_bad_requests_are_http_400(server: FakeOpenAIServer) -> None:
    url = f"{server.base_url}/embeddings"
    assert httpx.post(url, json={"model": "qwen"}).status_code == 400
    bad = httpx.post(url, json={"model": "qwen", "input": 5})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "'input' must be a string or a list"
    assert [r.status for r in server.requests] == [400, 400]


def test_embeddings_script_takes_error_and_drop_replies(server: FakeOpenAIServer) -> None:
    """Fail the next requests with a status (e.g. a busy server), then answer again."""
    url = f"{server.base_url}/embeddings"
    body = {"model": "qwen", "input": "a dent"}
    server.script_embeddings(
        Reply.http_error(503, "busy"), Reply.http_error(400, "too long"), [[1.0, 0.0]]
    )
    busy = httpx.post(url, json=body)
    assert busy.status_code == 503
    assert busy.json() == {
        "error": {"message": "busy", "type": "ServiceUnavailableError", "param": None, "code": 503}
    }
    assert httpx.post(url, json=body).status_code == 400
    assert httpx.post(url, json=body).json()["data"][0]["embedding"] == [1.0, 0.0]
    assert len(httpx.post(url, json=body).json()["data"][0]["embedding"]) == 8  # script used up
    first = server.requests[0]
    assert first.status == 503 and first.reply is not None and first.reply.label == "http_error_503"

    server.script_embeddings(Reply.drop_connection())
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(url, json=body)
    assert server.last_request().status == 0

    with pytest.raises(TypeError, match="script_embeddings"):
        server.script_embeddings(Reply.text("not an embedding"))


def test_embedding_responder_may_answer_with_an_error(server: FakeOpenAIServer) -> None:
    server.embedding_responder = lambda body: Reply.http_error(500, "out of memory")
    with pytest.raises(openai.InternalServerError, match="out of memory"):
        make_client(server).embeddings.create(model="qwen", input="x")
    server.embedding_responder = lambda body: Reply.text("wrong kind")
    answer = httpx.post(f"{server.base_url}/embeddings", json={"model": "qwen", "input": "x"})
    assert answer.status_code == 500 and "cannot answer an embeddings request" in answer.text


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("float", [0.5, 0.25]),
        ("base64", base64.b64encode(struct.pack("<2f", 0.5, 0.25)).decode()),
        ("nested", [[0.5, 0.25]]),
    ],
)
def test_embedding_encoding_overrides_the_request(
    server: FakeOpenAIServer, encoding: str, expected: object
) -> None:
    """Other OpenAI-compatible servers answer in other shapes, whatever the request asked."""
    server.embedding_responder = lambda body: [[0.5, 0.25]]
    server.embedding_encoding = encoding  # type: ignore[assignment]
    for asked in ("float", "base64"):
        raw = httpx.post(
            f"{server.base_url}/embeddings",
            json={"model": "qwen", "input": "x", "encoding_format": asked},
        ).json()
        assert raw["data"][0]["embedding"] == expected
    server.reset()
    assert server.embedding_encoding == "requested"


def test_api_key_like_vllm() -> None:
    """``api_key`` behaves like vLLM's --api-key: /v1 routes want the bearer token."""
    with FakeOpenAIServer(api_key="sk-test") as server:
        assert make_client(server).embeddings.create(model="qwen", input="x").data
        assert server.last_request().has_authorization
        assert server.last_request().headers["authorization"] == "<redacted>"
        wrong = openai.OpenAI(base_url=server.base_url, api_key="sk-other", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        anonymous = httpx.post(f"{server.base_url}/embeddings", json={"input": "x"})
        assert anonymous.status_code == 401 and anonymous.json() == {"error": "Unauthorized"}
        lower = httpx.get(f"{server.base_url}/models", headers={"Authorization": "bearer sk-test"})
        assert lower.status_code == 200
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert [r.status for r in server.requests] == [200, 401, 401, 200, 200]
