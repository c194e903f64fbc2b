"""The remote backend against the project's fake OpenAI-compatible server (agent.testing), a real
HTTP server on 127.0.0.1: what it sends, the response shapes it reads, truncation, retries, and
the errors that name the endpoint."""

from __future__ import annotations

import base64
import io
import socket
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from agent.testing import EMBEDDINGS_PATH, FakeOpenAIServer, Reply
from index.embedders import (
    DEFAULT_INSTRUCTION,
    EmbedderConfig,
    EmbedderError,
    VisualEmbedder,
    load_embedder,
)
from tests.fixtures.embedders import TEXTS, assert_unit_rows, sample_images

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("hf_offline"),
]

REMOTE_DIM = 16


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(embedding_dim=REMOTE_DIM) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from index.embedders import remote

    monkeypatch.setattr(remote, "_BACKOFF_BASE_S", 0.01)


def _remote(server: FakeOpenAIServer, **kwargs: object) -> VisualEmbedder:
    return load_embedder(
        EmbedderConfig(model="qwen3-vl-emb", backend="remote", api_base=server.base_url, **kwargs)
    )


def _sent_image(url: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def _assert_texts_sent_last(server: FakeOpenAIServer) -> None:
    """The last requests carried TEXTS, one text part each (sent concurrently: in any order)."""
    parts = [r.body["messages"][1]["content"][0] for r in server.requests[-len(TEXTS) :]]
    assert sorted(parts, key=str) == sorted(({"type": "text", "text": t} for t in TEXTS), key=str)


def test_remote_success(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_EMB_KEY", "sekret")
    embedder = _remote(server, api_key_env="MY_EMB_KEY", batch_size=2)
    images = sample_images()
    vectors = embedder.embed_images(images)
    assert_unit_rows(vectors, len(images), REMOTE_DIM)
    np.testing.assert_array_equal(vectors, embedder.embed_images(images))
    first = server.requests[0]
    assert first.path == EMBEDDINGS_PATH and first.status == 200
    request = first.body
    assert request["model"] == "qwen3-vl-emb" and request["encoding_format"] == "float"
    system, user = request["messages"]
    assert system["role"] == "system" and system["content"][0]["text"] == DEFAULT_INSTRUCTION
    part = user["content"][0]
    assert part["type"] == "image_url"
    assert part["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert _sent_image(part["image_url"]["url"]).mode == "RGB"
    assert first.has_authorization  # its value is checked in test_remote_sends_the_api_key
    # photos are downscaled to the pixel budget before upload
    _remote(server, max_image_pixels=4096).embed_images([Image.new("RGB", (400, 300), "blue")])
    url = server.last_request().body["messages"][1]["content"][0]["image_url"]["url"]
    sent = _sent_image(url)
    assert sent.width * sent.height <= 4096 and abs(sent.width / sent.height - 4 / 3) < 0.05
    texts = embedder.embed_texts(TEXTS)
    _assert_texts_sent_last(server)
    assert_unit_rows(texts, 3, REMOTE_DIM)
    info = embedder.info
    assert (info.family, info.dim, info.model_id) == (
        "qwen3_vl_embedding",
        REMOTE_DIM,
        "qwen3-vl-emb",
    )
    assert info.fingerprint == _remote(server).info.fingerprint
    assert info.fingerprint != _remote(server, dim=8).info.fingerprint
    np.testing.assert_allclose(embedder.get_query_embedding(TEXTS[0]), texts[0], atol=1e-6)


def test_remote_sends_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key from api_key_env goes out as a bearer token: a server started with --api-key
    (the fake behaves alike) answers, and without the key the 401 is not retried."""
    monkeypatch.setenv("MY_EMB_KEY", "sekret")
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with FakeOpenAIServer(embedding_dim=REMOTE_DIM, api_key="sekret") as server:
        vectors = _remote(server, api_key_env="MY_EMB_KEY").embed_texts(["a dent"])
        assert_unit_rows(vectors, 1, REMOTE_DIM)
        assert [r.status for r in server.requests] == [200]
        with pytest.raises(EmbedderError, match="HTTP 401"):
            _remote(server, api_key_env="NO_SUCH_KEY_VAR", max_retries=3).embed_texts(["a dent"])
        assert [r.status for r in server.requests] == [200, 401]


@pytest.mark.parametrize("encoding", ["base64", "nested"])
def test_remote_response_shapes_and_truncation(server: FakeOpenAIServer, encoding: str) -> None:
    """Servers that answer base64 (little-endian float32) or a one-row nested list, although the
    client asks for floats, are read alike."""
    reference = _remote(server).embed_texts(TEXTS)
    server.embedding_encoding = encoding  # type: ignore[assignment]
    np.testing.assert_allclose(_remote(server).embed_texts(TEXTS), reference, atol=1e-6)
    small = _remote(server, dim=8).embed_texts(TEXTS)
    assert_unit_rows(small, 3, 8)
    with pytest.raises(EmbedderError, match="native dimension 16"):
        _remote(server, dim=32).embed_texts(TEXTS)


def test_remote_retries_after_500(server: FakeOpenAIServer) -> None:
    server.script_embeddings(Reply.http_error(500, "busy"))
    vectors = _remote(server, max_retries=2).embed_texts(["a dent"])
    assert_unit_rows(vectors, 1, REMOTE_DIM)
    assert [r.status for r in server.requests] == [500, 200]
    server.script_embeddings(*[Reply.http_error(500, "busy")] * 5)
    with pytest.raises(EmbedderError, match="HTTP 500") as err:
        _remote(server, max_retries=1).embed_texts(["a dent"])
    assert f"127.0.0.1:{server.port}/v1/embeddings" in str(err.value)
    assert len(server.requests) == 4


def test_remote_client_error_is_not_retried(server: FakeOpenAIServer) -> None:
    server.script_embeddings(Reply.http_error(400, "busy"))
    with pytest.raises(EmbedderError, match="HTTP 400"):
        _remote(server, max_retries=3).embed_texts(["a dent"])
    assert len(server.requests) == 1


def test_remote_unreachable_names_endpoint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    embedder = load_embedder(
        EmbedderConfig(model="m", backend="remote", api_base=url, max_retries=1, timeout_s=2)
    )
    with pytest.raises(EmbedderError) as err:
        embedder.embed_images(sample_images()[:1])
    assert f"{url}/embeddings" in str(err.value) and "2 attempt" in str(err.value)
