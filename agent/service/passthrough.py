"""Chat requests the engine does not answer, sent on to the upstream model (``service.unsupported:
passthrough``): the body as the client sent it (a damage-rag model name replaced by
``model.model``), the upstream's own key, its answer back as it came, streamed or not.

The client's ``Authorization`` (the service's own token) never goes upstream, and the upstream
key never comes back: every answer, body and kept headers, is masked on the way out. A passed-
through request takes a slot of the service's gate like a question does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

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


def _kept_headers(upstream: Any, config: ModelConfig) -> dict[str, str]:
    """The upstream's headers a client may see (:data:`_KEPT_HEADERS`), the upstream key masked."""
    return {k: mask_secrets(v, config.api_key_env) for k, v in upstream.headers.items() if k.lower() in _KEPT_HEADERS}


async def forward_chat(body: dict[str, Any], config: ModelConfig, gate: Any = None) -> Response:
    """POST ``body`` to ``{model.api_base}/chat/completions`` and answer with what the upstream said.

    With ``gate`` (the service's :class:`agent.service.state.InferenceGate`), the request holds
    one of its slots until the upstream's answer has been relayed, streamed or not, so passed-
    through requests count against ``service.max_concurrent`` and ``service.max_queue`` too.

    Raises:
        ServiceError: 503 when the gate is full or the upstream unreachable, 504 when it does not
            answer within ``model.timeout_s``.
    """
    import httpx

    url = config.api_base.rstrip("/") + "/chat/completions"
    held = AsyncExitStack()  # the slot, the client and the upstream response, released once relayed
    if gate is not None:
        await held.enter_async_context(gate.slot())  # refused at once (503) when full
    try:
        client = httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 10.0)))
        held.push_async_callback(client.aclose)
        request = client.build_request("POST", url, json=body, headers=_headers(config))
        upstream = await client.send(request, stream=True)
        held.push_async_callback(upstream.aclose)
    except httpx.TimeoutException:
        await held.aclose()
        raise ServiceError(504, f"The model endpoint {config.api_base} did not answer the passed-through request "
                                f"within {config.timeout_s:g} s.", code="model_timeout") from None
    except httpx.HTTPError as exc:
        await held.aclose()
        raise ServiceError(503, f"The model endpoint {config.api_base} is unreachable for the passed-through "
                                f"request ({type(exc).__name__}: {exc}).", code="model_unreachable") from None
    except BaseException:
        await held.aclose()
        raise
    headers = _kept_headers(upstream, config)
    headers["X-Passthrough"] = "upstream"
    if "text/event-stream" in upstream.headers.get("content-type", ""):
        async def relay() -> AsyncIterator[bytes]:
            try:
                async for line in upstream.aiter_lines():
                    yield _masked(line.encode() + b"\n", config)
            except httpx.HTTPError as exc:
                logger.warning("the passed-through stream from %s broke off: %s", config.api_base, exc)
            finally:
                await held.aclose()

        return StreamingResponse(relay(), status_code=upstream.status_code, headers=headers,
                                 media_type="text/event-stream",
                                 background=BackgroundTask(held.aclose))  # a relay that never started
    async with held:
        data = await upstream.aread()
    return Response(_masked(data, config), status_code=upstream.status_code, headers=headers)
