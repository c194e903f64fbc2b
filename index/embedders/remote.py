"""Embeddings from an OpenAI-compatible ``/v1/embeddings`` server (vLLM ``--runner pooling``).

Each image or text is one chat-style request, the format vLLM accepts for multimodal embedding
models::

    {"model": ..., "encoding_format": "float", "add_generation_prompt": true,
     "messages": [{"role": "system", "content": [{"type": "text", "text": <instruction>}]},
                  {"role": "user", "content": [{"type": "image_url",
                                                "image_url": {"url": "data:image/jpeg;base64,..."}}]}]}

The messages mirror the local Qwen3-VL-Embedding recipe, so both backends embed alike. The
requests of one batch run concurrently. Connection errors, timeouts, HTTP 429 and 5xx, and
(once) a 200 that carries no embedding are retried under the project's one retry policy
(:mod:`index.retry`, the model client's too): jittered exponential backoff, ``Retry-After``
honoured up to :data:`~index.retry.DEFAULT_RETRY_AFTER_MAX_S`, at most ``max_retries`` retries;
then an :class:`EmbedderError` names the endpoint.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from PIL import Image

from index.embedders.base import VisualEmbedder
from index.embedders.config import EmbedderError
from index.embedders.qwen3_vl import normalise_instruction
from index.retry import DEFAULT_RETRY_AFTER_MAX_S, GiveUp, RetryPolicy, retry_after_seconds

logger = logging.getLogger(__name__)

#: Backoff before retry n (1-based): min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**(n-1)), jittered ±50 %.
_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 8.0
#: The longest Retry-After (429/503) honoured; a server asking for more is reported, not awaited.
_RETRY_AFTER_MAX_S = DEFAULT_RETRY_AFTER_MAX_S
_MAX_CONCURRENCY = 8
_JPEG_QUALITY = 95


def image_data_uri(image: Image.Image, max_pixels: int) -> str:
    """Encode an RGB image as a JPEG data URI, downscaled to at most ``max_pixels``.

    Args:
        image: The image.
        max_pixels: Pixel budget (the server would downscale to its own budget anyway).

    Returns:
        ``data:image/jpeg;base64,...``
    """
    if image.width * image.height > max_pixels:
        scale = math.sqrt(max_pixels / (image.width * image.height))
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image = image.resize(size, Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def parse_embedding(body: Any) -> np.ndarray:
    """The single embedding in a ``/v1/embeddings`` response body.

    Accepts ``data[i].embedding`` as a list of floats, a one-row nested list, or a base64 string
    of little-endian float32 (``encoding_format: base64``); and ``data[i]`` given directly as the
    list of floats.

    Args:
        body: The decoded JSON response.

    Returns:
        A 1-D float32 array.

    Raises:
        EmbedderError: If no embedding can be found.
    """
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data:
        raise EmbedderError(f"Unexpected embeddings response (no 'data' list): {str(body)[:200]}")
    items = sorted(data, key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)
    item = items[0]
    value = item.get("embedding") if isinstance(item, dict) else item
    if isinstance(value, str):
        vector = np.frombuffer(base64.b64decode(value), dtype="<f4")
    else:
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
            value = value[0]
        try:
            vector = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            vector = np.zeros(0, dtype=np.float32)
    if vector.ndim != 1 or vector.size == 0:
        raise EmbedderError(f"Unexpected embedding in response: {str(item)[:200]}")
    return vector.astype(np.float32)


class RemoteEmbedder(VisualEmbedder):
    """Client of an OpenAI-compatible embeddings endpoint serving a multimodal embedding model."""

    _client: Any = PrivateAttr(default=None)
    _url: str = PrivateAttr(default="")
    _native: int | None = PrivateAttr(default=None)
    _system: str = PrivateAttr(default="")

    @classmethod
    def class_name(cls) -> str:
        return "RemoteEmbedder"

    def connect(self) -> None:
        """Prepare the HTTP client (no request is sent until something is embedded)."""
        import httpx

        cfg = self.embedder_config
        self._url = f"{(cfg.api_base or '').rstrip('/')}/embeddings"
        self._system = normalise_instruction(cfg.instruction)
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(cfg.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(timeout=httpx.Timeout(cfg.timeout_s), headers=headers)
        self._fingerprint_parts = {
            "backend": "remote",
            "model": cfg.model,
            "instruction": self._system,
            "max_image_pixels": cfg.max_image_pixels,
        }
        logger.info("Remote embedder %s at %s", cfg.model, self._url)

    def close(self) -> None:
        """Close the HTTP connections."""
        if self._client is not None:
            self._client.close()

    def _native_dim(self) -> int:
        if self._native is None:
            self._encode_texts(["dimension probe"])
        assert self._native is not None
        return self._native

    def _payload(self, user_part: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": self.embedder_config.model,
            "encoding_format": "float",
            "add_generation_prompt": True,
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": self._system}]},
                {"role": "user", "content": [user_part]},
            ],
        }

    def retry_policy(self) -> RetryPolicy:
        """This endpoint's :class:`~index.retry.RetryPolicy` (``max_retries`` from the config)."""
        return RetryPolicy(
            max_retries=self.embedder_config.max_retries,
            backoff_s=_BACKOFF_BASE_S,
            backoff_max_s=_BACKOFF_CAP_S,
            retry_after_max_s=_RETRY_AFTER_MAX_S,
        )

    def _attempt(self, payload: dict[str, Any]) -> tuple[np.ndarray | None, str, str, float | None]:
        """One request: (vector, "", "", None), or (None, kind, problem, Retry-After) for a
        retryable failure. A refusal (4xx other than 429) raises :class:`EmbedderError`."""
        import httpx

        try:
            response = self._client.post(self._url, json=payload)
        except httpx.TransportError as exc:
            return None, "unreachable", f"{type(exc).__name__}: {exc}", None
        status = response.status_code
        if status == 429 or status >= 500:
            return None, "server", f"HTTP {status}: {response.text[:200]}", retry_after_seconds(response.headers)
        if status >= 400:
            raise EmbedderError(
                f"Embedding endpoint {self._url} rejected the request with HTTP {status}: {response.text[:300]}"
            )
        try:
            body = response.json()
        except ValueError:
            return None, "malformed", f"non-JSON reply: {response.text[:200]}", None
        try:
            return parse_embedding(body), "", "", None
        except EmbedderError as exc:
            return None, "malformed", str(exc), None

    def _post(self, payload: dict[str, Any]) -> np.ndarray:
        """The embedding of one request, retried under :meth:`retry_policy`."""
        state = self.retry_policy().start()
        while True:
            attempt = state.begin()
            vector, kind, problem, retry_after = self._attempt(payload)
            if vector is not None:
                return vector
            try:
                wait = state.after_failure(kind, retry_after)
            except GiveUp as stop:
                raise EmbedderError(self._give_up_message(stop, kind, problem)) from None
            logger.warning("Embedding request to %s failed (%s); attempt %d/%d, retrying in %.1fs",
                           self._url, problem, attempt, state.policy.max_attempts, wait)
            time.sleep(wait)

    def _give_up_message(self, stop: GiveUp, kind: str, problem: str) -> str:
        """The one line for a request given up (``stop`` says why; ``kind`` and ``problem`` are the
        last failure's)."""
        if stop.reason == "retry_after_too_long":
            return (f"Embedding endpoint {self._url} asks to retry after {stop.retry_after_s:g} s, more than "
                    f"{_RETRY_AFTER_MAX_S:g} s ({problem}); retry later or give the server more capacity.")
        if kind == "malformed":
            return (f"Embedding endpoint {self._url} answered {stop.attempts} time(s) with no embedding "
                    f"({problem}); is it an OpenAI-compatible /v1 embeddings endpoint?")
        return (f"Embedding endpoint {self._url} failed after {stop.attempts} attempt(s) ({problem}); "
                "check that the server is running (e.g. `vllm serve <model> --runner pooling`) and "
                "that api_base is right.")

    def _post_all(self, payloads: list[dict[str, Any]]) -> np.ndarray:
        workers = max(1, min(len(payloads), _MAX_CONCURRENCY))
        if workers == 1:
            vectors = [self._post(p) for p in payloads]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                vectors = list(pool.map(self._post, payloads))
        sizes = {v.size for v in vectors}
        if len(sizes) != 1 or (self._native is not None and sizes != {self._native}):
            raise EmbedderError(
                f"Embedding endpoint {self._url} returned vectors of sizes {sorted(sizes)}."
            )
        if self._native is None:
            self._native = sizes.pop()
            dim = self.embedder_config.dim
            if dim is not None and dim > self._native:
                raise EmbedderError(
                    f"dim={dim} exceeds the native dimension {self._native} of the model served at "
                    f"{self._url}; use a dim of at most {self._native}."
                )
        return np.stack(vectors)

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        budget = self.embedder_config.max_image_pixels
        return self._post_all(
            [
                self._payload(
                    {"type": "image_url", "image_url": {"url": image_data_uri(img, budget)}}
                )
                for img in images
            ]
        )

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        return self._post_all([self._payload({"type": "text", "text": t}) for t in texts])
