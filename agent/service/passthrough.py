"""Chat requests the engine does not answer, sent on to the upstream model (``service.unsupported:
passthrough``): the body as the client sent it (a damage-rag model name replaced by
``model.model``), the upstream's own key, its answer back as it came, streamed or not.

The client's ``Authorization`` (the service's own token) never goes upstream, and the upstream
key never comes back: every answer is masked on the way out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import Response, StreamingResponse

from agent.endpoint_errors import mask_secrets
from agent.service.errors import ServiceError
from index.config import ModelConfig

logger = logging.getLogger(__name__)

#: Upstream response headers passed back (the others describe the upstream connection).
_KEPT_HEADERS = ("content-type", "retry-after", "x-request-id")


def _headers(config: ModelConfig) -> dict[str, str]:
    key = os.environ.get(config.api_key_env)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _masked(data: bytes, config: ModelConfig) -> bytes:
    key = os.environ.get(config.api_key_env)
    if not key or key.encode() not in data:
        return data
    return mask_secrets(data.decode("utf-8", "replace"), config.api_key_env).encode()


async def forward_chat(body: dict[str, Any], config: ModelConfig) -> Response:
    """POST ``body`` to ``{model.api_base}/chat/completions`` and answer with what the upstream said.

    Raises:
        ServiceError: 503 when the upstream is unreachable, 504 when it does not answer within
            ``model.timeout_s``.
    """
    import httpx

    url = config.api_base.rstrip("/") + "/chat/completions"
    client = httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 10.0)))
    try:
        request = client.build_request("POST", url, json=body, headers=_headers(config))
        upstream = await client.send(request, stream=True)
    except httpx.TimeoutException:
        await client.aclose()
        raise ServiceError(504, f"The model endpoint {config.api_base} did not answer the passed-through request "
                                f"within {config.timeout_s:g} s.", code="model_timeout") from None
    except httpx.HTTPError as exc:
        await client.aclose()
        raise ServiceError(503, f"The model endpoint {config.api_base} is unreachable for the passed-through "
                                f"request ({type(exc).__name__}: {exc}).", code="model_unreachable") from None
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in _KEPT_HEADERS}
    headers["X-Passthrough"] = "upstream"
    if "text/event-stream" in upstream.headers.get("content-type", ""):
        async def relay() -> AsyncIterator[bytes]:
            try:
                async for line in upstream.aiter_lines():
                    yield _masked(line.encode() + b"\n", config)
            except httpx.HTTPError as exc:
                logger.warning("the passed-through stream from %s broke off: %s", config.api_base, exc)
            finally:
                await upstream.aclose()
                await client.aclose()

        return StreamingResponse(relay(), status_code=upstream.status_code, headers=headers,
                                 media_type="text/event-stream")
    try:
        data = await upstream.aread()
    finally:
        await upstream.aclose()
        await client.aclose()
    return Response(_masked(data, config), status_code=upstream.status_code, headers=headers)
