"""Fixtures of the service tests: the fake model server (in this process, its requests recorded)
and the main ``agent serve`` in front of it (see :mod:`tests.agent.service.running`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.testing import FakeOpenAIServer
from agent.testing.scenarios import responder
from tests.agent.service.running import SERVICE_TOKEN, UPSTREAM_KEY, start_service


@pytest.fixture(scope="package")
def upstream():
    """The fake model server, wanting ``UPSTREAM_KEY``; answers as the ``agentic`` scenario."""
    with FakeOpenAIServer(api_key=UPSTREAM_KEY) as server:
        server.responder = responder("agentic")
        yield server


@pytest.fixture
def fake(upstream):
    """The upstream with no recorded requests left over, answering as ``agentic``."""
    upstream.reset()
    upstream.responder = responder("agentic")
    yield upstream
    upstream.reset()
    upstream.responder = responder("agentic")


@pytest.fixture(scope="package")
def service(upstream, synth_index_dir, tmp_path_factory):
    """The main service: refuses what it cannot answer, wants ``SERVICE_TOKEN``, photos up to 1 MB
    and 4 MP, 4 questions at once and 64 waiting."""
    svc = start_service(tmp_path_factory.mktemp("service"), upstream, synth_index_dir, token=SERVICE_TOKEN,
                        **{"service.max_upload_mb": 1, "dataset.max_image_pixels": 4_000_000,
                           "service.max_queue": 64})
    yield svc
    svc.stop()


@pytest.fixture
def photo(synth_dataset) -> Path:
    """The first photo of the synthetic dataset."""
    return sorted(Path(synth_dataset).glob("*.jpg"))[0]
