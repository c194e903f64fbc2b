"""Fixtures of the engine tests: one fake VLM server per module, reset around each test, and an
engine over the session's synthetic index that talks to it (its traces under ``tmp_path``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.engine import DamageQueryEngine
from agent.testing import FakeOpenAIServer
from index.config import apply_overrides


@pytest.fixture(scope="module")
def server():
    """The fake OpenAI-compatible server, started once per test module."""
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def fake(server):
    """The module's server with no scripted replies or recorded requests left over."""
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def index_dir(synth_index_dir) -> Path:
    """The index the engine opens (a module may override it)."""
    return synth_index_dir


@pytest.fixture
def engine(fake, index_dir, tmp_path, vehicle_config) -> DamageQueryEngine:
    """An engine on ``index_dir`` asking ``fake``, with quick retries and its traces in ``tmp_path``."""
    config = apply_overrides(vehicle_config, {
        "model.api_base": fake.base_url, "model.model": "qwen", "model.max_retries": 1,
        "model.retry_backoff_s": 0.01, "model.timeout_s": 5, "agent.traces_dir": str(tmp_path / "traces"),
    })
    return DamageQueryEngine(config, index_dir=index_dir)


@pytest.fixture
def photo(synth_dataset) -> Path:
    """The first photo of the synthetic dataset."""
    return sorted(Path(synth_dataset).glob("*.jpg"))[0]
