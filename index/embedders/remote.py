"""Embeddings from an OpenAI-compatible ``/v1/embeddings`` server (vLLM ``--runner pooling``).

Each image or text is one chat-style request, the format vLLM accepts for multimodal embedding
models::

    {"model": ..., "encoding_format": "float", "add_generation_prompt": true,
     "messages": [{"role": "system", "content": [{"type": "text", "text": <instruction>}]},
                  {"role": "user", "content": [{"type": "image_url",
                                                "image_url": {"url": "data:image/jpeg;base64,..."}}]}]}

The messages mirror the local Qwen3-VL-Embedding recipe, so both backends embed alike. The
requests of one batch run concurrently. Connection errors, timeouts, HTTP 429 and 5xx are
retried with exponential backoff; then an :class:`EmbedderError` names the endpoint.
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

logger = logging.getLogger(__name__)

#: Backoff before retry n (0-based) is min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**n).
_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 8.0
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

    def _post(self, payload: dict[str, Any]) -> np.ndarray:
        import httpx

        retries = self.embedder_config.max_retries
        problem = ""
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (attempt - 1)))
            try:
                response = self._client.post(self._url, json=payload)
                retryable = response.status_code == 429 or response.status_code >= 500
                if retryable:
                    problem = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.TransportError as exc:
                retryable, problem = True, f"{type(exc).__name__}: {exc}"
            if retryable:
                logger.warning("Embedding request to %s failed (%s); attempt %d/%d",
                               self._url, problem, attempt + 1, retries + 1)
                continue
            if response.status_code >= 400:
                raise EmbedderError(
                    f"Embedding endpoint {self._url} rejected the request with HTTP "
                    f"{response.status_code}: {response.text[:300]}"
                )
            try:
                body = response.json()
            except ValueError:
                raise EmbedderError(
                    f"Embedding endpoint {self._url} returned non-JSON: {response.text[:200]}"
                ) from None
            return parse_embedding(body)
        raise EmbedderError(
            f"Embedding endpoint {self._url} failed after {retries + 1} attempt(s) ({problem}); "
            "check that the server is running (e.g. `vllm serve <model> --runner pooling`) and "
            "that api_base is right."
        )

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
