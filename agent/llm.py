"""The connection to the vision-language model: LlamaIndex ``OpenAILike`` plus our own retries.

OpenAILike's built-in retries multiply (the openai client and LlamaIndex both retry, N·(N+1)
requests), so both are off and :func:`chat` retries connection errors, timeouts and 5xx with
exponential backoff, then raises one :class:`ModelEndpointError` naming the endpoint.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from index.config import ModelConfig
from index.errors import DamageRagError

logger = logging.getLogger(__name__)


class ModelEndpointError(DamageRagError, RuntimeError):
    """The model endpoint could not be reached or kept failing; the message names it."""

    exit_code = 1


class ModelRequestRejected(DamageRagError, RuntimeError):
    """The endpoint answered 4xx: the request itself is wrong for this server."""

    exit_code = 1

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ModelCall:
    """One model request as the trace records it."""

    latency_s: float
    usage: dict[str, int] = field(default_factory=dict)
    attempts: int = 1


class ModelClient:
    """The configured endpoint, with what we learned about the server during the session.

    ``native_tools`` / ``json_schema`` start as the config says ('auto': unknown) and are set
    the first time the server accepts or rejects them, so later calls go straight to what works.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._loop: Any = None
        self._llm: Any = None
        self.extra_body: dict[str, Any] = {"top_k": config.top_k} if config.top_k is not None else {}
        self.native_tools: bool | None = {"native": True, "hermes": False}.get(config.tool_protocol)
        self.json_schema: bool | None = {"always": True, "never": False}.get(config.json_schema)

    @property
    def llm(self) -> Any:
        """The ``OpenAILike`` of the current event loop (its HTTP pool cannot cross loops)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._llm is None or (loop is not None and loop is not self._loop):
            from llama_index.llms.openai_like import OpenAILike

            config = self.config
            self._llm = OpenAILike(
                model=config.model,
                api_base=config.api_base,
                api_key=os.environ.get(config.api_key_env) or "EMPTY",
                is_chat_model=True,
                is_function_calling_model=True,
                context_window=config.context_window,
                max_tokens=config.max_tokens,
                temperature=config.temperature,
                timeout=config.timeout_s,
                max_retries=0,
                additional_kwargs={"top_p": config.top_p, "presence_penalty": config.presence_penalty},
            )
            self._loop = loop
        return self._llm

    async def complete(
        self, messages: list[Any], tools: list[Any] | None = None, response_format: dict | None = None
    ) -> tuple[Any, ModelCall]:
        """One chat request (with native tools or a response format when given), retried."""
        kwargs: dict[str, Any] = {"extra_body": dict(self.extra_body)} if self.extra_body else {}
        if response_format is not None:
            kwargs["response_format"] = response_format
        llm = self.llm
        if tools:
            return await chat(self.config, lambda: llm.achat_with_tools(
                tools, chat_history=list(messages), tool_choice="auto", allow_parallel_tool_calls=True, **kwargs))
        return await chat(self.config, lambda: llm.achat(list(messages), **kwargs))


def usage_of(response: Any) -> dict[str, int]:
    """Token usage of a LlamaIndex chat response, when the server reported it."""
    raw = getattr(response, "raw", None)
    usage = getattr(raw, "usage", None) if raw is not None else None
    if usage is None and isinstance(raw, dict):
        usage = raw.get("usage")
    if usage is None:
        return {}
    get = usage.get if isinstance(usage, dict) else lambda k: getattr(usage, k, None)
    return {k: int(get(k)) for k in ("prompt_tokens", "completion_tokens", "total_tokens") if get(k) is not None}


async def chat(config: ModelConfig, call: Any) -> tuple[Any, ModelCall]:
    """Run ``call()`` (a coroutine factory doing one LlamaIndex chat request) with retries.

    Raises:
        ModelRequestRejected: On a 4xx answer (not retried).
        ModelEndpointError: When the endpoint stays unreachable, slow or failing.
    """
    import httpx
    import openai

    attempts = 0
    delay = config.retry_backoff_s
    while True:
        attempts += 1
        started = time.perf_counter()
        try:
            response = await call()
            return response, ModelCall(time.perf_counter() - started, usage_of(response), attempts)
        except openai.APIStatusError as exc:
            if exc.status_code < 500 and exc.status_code != 429:
                raise ModelRequestRejected(exc.status_code, _error_text(exc)) from None
            problem = f"HTTP {exc.status_code}: {_error_text(exc)}"
        except openai.APITimeoutError:
            problem = f"no reply within {config.timeout_s:g} s"
        except (openai.APIConnectionError, httpx.TransportError) as exc:
            problem = f"cannot connect ({exc.__cause__ or exc})"
        if attempts > config.max_retries:
            raise ModelEndpointError(
                f"The model endpoint {config.api_base} failed after {attempts} attempt(s): {problem}."
            )
        logger.info("model endpoint %s: %s; retrying in %.1fs", config.api_base, problem, delay)
        await asyncio.sleep(delay)
        delay *= 2


def _error_text(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error", {}).get("message") or body)
    return str(getattr(exc, "message", exc))


def jpeg_bytes(image: Image.Image, quality: int = 85) -> bytes:
    """JPEG encoding of an RGB image, for an ``ImageBlock``."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
