"""The connection to the vision-language model: LlamaIndex ``OpenAILike`` plus the error contract.

OpenAILike's built-in retries multiply (the openai client and LlamaIndex both retry, N·(N+1)
requests), so both are off and :func:`chat` runs each request under one deadline
(``model.timeout_s`` for the whole reply), classifies every failure
(:mod:`agent.endpoint_errors`) and retries what is worth retrying — 5xx, 429 within
``Retry-After``, a malformed reply once, a dropped connection — under the project's one retry
policy (:mod:`index.retry`, shared with the remote embedder: bounded attempts, jittered
exponential backoff, ``Retry-After`` honoured up to ``model.retry_after_max_s``). Anything else
is raised as :class:`ModelRequestRejected` (the caller may recover) or
:class:`ModelEndpointError`, one line naming the endpoint, quoting the server with secrets
masked, and saying what to change.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from agent.budget import BudgetExceeded, RequestBudget
from agent.endpoint_errors import (
    RETRYABLE,
    ModelEndpointError,
    ModelRequestRejected,
    Problem,
    ServerAnswer,
    classify,
    mask_secrets,
)
from agent.imports import MODEL_CLIENT, import_once, settle_httpx2
from index.config import ModelConfig
from index.retry import GiveUp, RetryPolicy, retry_after_seconds

__all__ = ["CONNECT_TIMEOUT_S", "ModelCall", "ModelClient", "ModelEndpointError", "ModelRequestRejected", "chat",
           "jpeg_bytes", "preload_client", "request_timeout"]

logger = logging.getLogger(__name__)

#: Longest wait for the TCP connection of a model request, in seconds (never more than
#: ``model.timeout_s``): an endpoint that does not accept the connection fails in seconds, not
#: after the whole reply's deadline.
CONNECT_TIMEOUT_S = 5.0


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
        self.budget = RequestBudget(config.max_images, config.max_context_tokens, reply_tokens=config.max_tokens)

    @property
    def llm(self) -> Any:
        """The ``OpenAILike`` of the current event loop (its HTTP pool cannot cross loops)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._llm is None or (loop is not None and loop is not self._loop):
            import_once(MODEL_CLIENT)  # maybe beside a preload_client() or index-loading thread
            settle_httpx2()
            import openai
            from llama_index.llms.openai_like import OpenAILike

            config = self.config
            api_key = os.environ.get(config.api_key_env) or "EMPTY"
            # OpenAILike passes one float timeout to the openai client, which makes it the connect
            # timeout too (120 s by default); our own client carries a short connect timeout.
            client = openai.AsyncOpenAI(api_key=api_key, base_url=config.api_base, max_retries=0,
                                        timeout=request_timeout(config))
            self._llm = OpenAILike(
                model=config.model,
                api_base=config.api_base,
                api_key=api_key,
                is_chat_model=True,
                is_function_calling_model=True,
                context_window=config.context_window,
                max_tokens=config.max_tokens,
                temperature=config.temperature,
                timeout=config.timeout_s,
                max_retries=0,
                additional_kwargs={"top_p": config.top_p, "presence_penalty": config.presence_penalty},
                async_openai_client=client,
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


_preloading: list[threading.Thread] = []  # at most one preload thread per process
_preloading_lock = threading.Lock()


def preload_client() -> None:
    """Import the model client's libraries (LlamaIndex, OpenAILike, the openai client's chat
    resources: about 2 s of imports on a loaded 2-core machine) in a background thread, once per
    process, so a first question asked later does not wait for them (an interactive session
    calls it while the user types)."""
    with _preloading_lock:
        if not _preloading:
            thread = threading.Thread(target=import_once, args=(MODEL_CLIENT,), daemon=True,
                                      name="damage-client-import")
            thread.start()
            _preloading.append(thread)


def request_timeout(config: ModelConfig) -> Any:
    """The ``httpx.Timeout`` of a model request: ``model.timeout_s`` to read, write and wait for a
    pooled connection, :data:`CONNECT_TIMEOUT_S` (at most ``timeout_s``) to connect."""
    import httpx

    return httpx.Timeout(config.timeout_s, connect=min(CONNECT_TIMEOUT_S, config.timeout_s))


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


def retry_policy(config: ModelConfig) -> RetryPolicy:
    """The model endpoint's :class:`~index.retry.RetryPolicy`, from ``model.*`` settings."""
    return RetryPolicy(
        max_retries=config.max_retries,
        backoff_s=config.retry_backoff_s,
        retry_after_max_s=config.retry_after_max_s,
        max_retries_of={Problem.MALFORMED.value: 1},
    )


async def chat(config: ModelConfig, call: Any) -> tuple[Any, ModelCall]:
    """Run ``call()`` (a coroutine factory doing one LlamaIndex chat request) under the contract.

    Raises:
        ModelRequestRejected: The server refused the request (4xx); ``.answer`` says why.
        ModelEndpointError: The endpoint stayed unreachable, slow, failing or malformed.
    """
    import httpx
    import openai

    state = retry_policy(config).start()
    while True:
        attempts = state.begin()
        started = time.perf_counter()
        try:
            response = await asyncio.wait_for(call(), timeout=config.timeout_s)
            _check_reply(response)
            return response, ModelCall(time.perf_counter() - started, usage_of(response), attempts)
        except openai.APIStatusError as exc:
            answer = classify(exc.status_code, error_text(exc), _retry_after(exc))
        except (asyncio.TimeoutError, openai.APITimeoutError) as exc:
            if isinstance(exc.__cause__, httpx.ConnectTimeout):
                connect = min(CONNECT_TIMEOUT_S, config.timeout_s)
                answer = ServerAnswer(Problem.UNREACHABLE, None, f"cannot connect (no connection within {connect:g} s)")
            else:
                answer = ServerAnswer(Problem.TIMEOUT, None, f"no whole reply within {config.timeout_s:g} s")
        except (openai.APIConnectionError, httpx.TransportError) as exc:
            answer = ServerAnswer(Problem.UNREACHABLE, None, f"cannot connect ({exc.__cause__ or exc})")
        except (openai.APIResponseValidationError, ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
            logger.debug("malformed reply from %s", config.api_base, exc_info=True)
            answer = ServerAnswer(Problem.MALFORMED, 200, f"{type(exc).__name__}: {exc}")
        if answer.problem not in RETRYABLE:
            raise ModelRequestRejected(await describe(config, answer, attempts), answer)
        try:
            wait = state.after_failure(answer.problem.value, answer.retry_after_s)
        except GiveUp as stop:
            raise ModelEndpointError(await describe(config, answer, stop.attempts), answer) from None
        logger.info("model endpoint %s: %s; retrying in %.1fs (attempt %d of %d)", config.api_base,
                    answer.message, wait, attempts + 1, state.policy.max_attempts)
        await asyncio.sleep(wait)


def _check_reply(response: Any) -> None:
    """Raise ``ValueError`` unless ``response`` is a chat reply (a 200 can carry HTML or nothing)."""
    message = getattr(response, "message", None)
    if message is None or not hasattr(message, "content"):
        raise ValueError(f"no chat message in the reply ({type(response).__name__})")


def _retry_after(exc: Any) -> float | None:
    """The wait an error response asks for (``Retry-After`` in seconds or as a date,
    ``retry-after-ms``), in seconds; None if it asks for none."""
    return retry_after_seconds(getattr(getattr(exc, "response", None), "headers", None))


def error_text(exc: Any) -> str:
    """The server's own words from an ``openai.APIStatusError`` (either vLLM error body shape)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
        if isinstance(inner, str):
            return inner
        return str(body)
    return str(getattr(exc, "message", exc))


async def served_models(config: ModelConfig) -> list[str]:
    """The model names ``GET /models`` lists (empty when it cannot be read)."""
    import httpx

    key = os.environ.get(config.api_key_env)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        async with httpx.AsyncClient(timeout=min(config.timeout_s, 5.0)) as client:
            reply = await client.get(config.api_base.rstrip("/") + "/models", headers=headers)
        return [str(m["id"]) for m in reply.json().get("data", []) if isinstance(m, dict) and "id" in m]
    except (httpx.HTTPError, ValueError, AttributeError, TypeError):
        return []


async def describe(config: ModelConfig, answer: ServerAnswer, attempts: int = 1) -> str:
    """The one line a user reads for ``answer``: the endpoint, the server's words, what to change."""
    base = config.api_base
    said = mask_secrets(answer.message, config.api_key_env).strip()
    status = f"HTTP {answer.status}: " if answer.status else ""
    quoted = f"{status}{said}" if said else status.rstrip(": ")
    problem = answer.problem
    if problem is Problem.UNKNOWN_MODEL:
        names = await served_models(config)
        serves = f" It serves: {', '.join(names)}." if names else ""
        line = f"The model endpoint {base} does not serve the model '{config.model}' ({quoted}).{serves} "                "Set model.model (or --model) to a served name."
    elif problem is Problem.AUTH:
        where = "is not set" if not os.environ.get(config.api_key_env) else "was refused"
        line = f"The model endpoint {base} wants an API key ({quoted}); the key in ${config.api_key_env} "                f"{where}: export it (model.api_key_env names the variable)."
    elif problem is Problem.IMAGE_LIMIT:
        line = f"The model endpoint {base} takes at most {answer.limit} image(s) per request ({quoted}); "                "even the smallest request needs more: raise vLLM's --limit-mm-per-prompt."
    elif problem is Problem.CONTEXT_LIMIT:
        line = f"The model endpoint {base} takes at most {answer.limit} tokens ({quoted}); even the smallest "                "request is longer: raise vLLM's --max-model-len or lower model.query_max_pixels."
    elif problem is Problem.RATE_LIMIT and answer.retry_after_s is not None \
            and answer.retry_after_s > config.retry_after_max_s:
        line = f"The model endpoint {base} is rate-limiting and asks to retry after {answer.retry_after_s:g} s, "                f"more than model.retry_after_max_s ({config.retry_after_max_s:g} s) ({quoted})."
    elif problem is Problem.MALFORMED:
        line = f"The model endpoint {base} answered {attempts} time(s) with something that is not a chat "                f"completion ({said}); is {base} an OpenAI-compatible /v1 endpoint?"
    elif problem in RETRYABLE:
        line = f"The model endpoint {base} failed after {attempts} attempt(s): {quoted}."
    else:
        line = f"The model endpoint {base} refused the request ({quoted})."
    return mask_secrets(line, config.api_key_env)


def budget_line(config: ModelConfig, exc: BudgetExceeded) -> str:
    """The one line for a question that cannot fit the server's limits even at its smallest."""
    if exc.problem == "images":
        return (f"The model endpoint {config.api_base} takes at most {exc.limit} image(s) per request and even "
                f"the smallest request needs {exc.needed}: raise vLLM's --limit-mm-per-prompt (and model.max_images).")
    return (f"The model endpoint {config.api_base} takes at most about {exc.limit} prompt tokens and even the "
            f"smallest request needs about {exc.needed}: raise vLLM's --max-model-len (and model.max_context_tokens) "
            "or lower model.query_max_pixels.")


def jpeg_bytes(image: Image.Image, quality: int = 85) -> bytes:
    """JPEG encoding of an RGB image, for an ``ImageBlock``."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
