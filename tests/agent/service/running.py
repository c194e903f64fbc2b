"""What the service tests share: the real ``python -m agent serve`` in a subprocess on a free
port, over the session's synthetic index, in front of the project's fake model server (in this
process, so its recorded requests can be read), called over real HTTP.

The fake upstream wants an API key (like vLLM's ``--api-key``) that the service reads from
``VLM_API_KEY``; the main service also wants its own bearer token (``DAMAGE_RAG_API_KEY``).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from agent.bench_service import ServiceProcess
from agent.testing import FakeOpenAIServer
from index.config import apply_overrides, load_config
from tests.fixtures.paths import REPO, VEHICLE_CONFIG

#: The model server's key: the service sends it upstream and must never show it.
UPSTREAM_KEY = "sk-upstream-secret-0123456789abcdef"
#: The main service's own bearer token.
SERVICE_TOKEN = "service-token-for-tests-42"


@dataclass
class Service:
    """A running ``agent serve``: its URL, process, traces folder and stderr file."""

    url: str
    running: ServiceProcess
    traces_dir: Path
    stderr: Path
    token: str | None

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=60, **kwargs)

    def stop(self) -> None:
        self.running.stop()


def start_service(tmp: Path, upstream: FakeOpenAIServer, index_dir: Path, *, token: str | None = None,
                  **overrides: object) -> Service:
    """``python -m agent serve --port 0`` with the vehicle config pointed at ``upstream``; returns once
    ``/readyz`` answers 200 (the index loaded, the upstream reachable)."""
    config = apply_overrides(load_config(VEHICLE_CONFIG), {
        "model.api_base": upstream.base_url, "model.model": "qwen", "model.max_retries": 1,
        "model.retry_backoff_s": 0.05, "model.timeout_s": 20, "agent.traces_dir": str(tmp / "traces"),
        **overrides,
    })
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "VLM_API_KEY": UPSTREAM_KEY}
    env.pop("DAMAGE_RAG_API_KEY", None)
    if token:
        env["DAMAGE_RAG_API_KEY"] = token
    stderr = tmp / "serve.stderr"
    running = ServiceProcess(path, index_dir, None, None, stderr, env=env).start(timeout=240)
    return Service(running.base_url, running, tmp / "traces", stderr, token)


def data_uri(path: Path) -> str:
    """A photo as the data URI an OpenAI client sends."""
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def user_message(question: str, *images: str) -> dict:
    """An OpenAI user message: the question and image parts."""
    return {"role": "user", "content": [{"type": "text", "text": question},
                                        *({"type": "image_url", "image_url": {"url": url}} for url in images)]}


def one_line_error(response: httpx.Response, status: int) -> str:
    """The service's refusal: ``status``, an OpenAI-style body, a message of one line."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "\n" not in error["message"] and error["message"].strip()
    assert "Traceback" not in response.text
    return error["message"]
