"""What the model server said, classified: the error contract between the agent and its endpoint.

vLLM answers a request it will not serve with a status and a message (``{"error": {"message":
...}}``, or ``{"object": "error", "message": ...}`` on older servers). The agent recovers from
some answers (a tool-choice or schema refusal, an image or context limit it can learn) and
reports the others in one line that names the endpoint, quotes the server's words with secrets
masked and says what to change. :func:`classify` is the one place that reads those words.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass

from index.errors import DamageRagError


class Problem(str, enum.Enum):
    """The kinds of answer the agent tells apart."""

    TOOL_CHOICE = "tool_choice"  # "auto" tool choice needs --enable-auto-tool-choice
    SCHEMA = "schema"  # response_format / json_schema / grammar refused
    IMAGE_LIMIT = "image_limit"  # more images than --limit-mm-per-prompt
    CONTEXT_LIMIT = "context_limit"  # more tokens than --max-model-len
    UNKNOWN_MODEL = "unknown_model"  # 404: the model name is not served
    AUTH = "auth"  # 401/403: missing or wrong API key
    RATE_LIMIT = "rate_limit"  # 429
    SERVER = "server"  # 5xx
    MALFORMED = "malformed"  # 200 with a body that is no chat completion
    UNREACHABLE = "unreachable"  # connection refused, reset, DNS
    TIMEOUT = "timeout"  # no whole reply within model.timeout_s
    OTHER = "other"  # any other refusal


#: Problems that every request to this endpoint would meet (an evaluation stops on them).
ENDPOINT_WIDE = {Problem.UNREACHABLE, Problem.AUTH, Problem.UNKNOWN_MODEL}
#: What to do about an endpoint nobody answers at; the command lines end that error's line with it.
UNREACHABLE_HINT = ("Is the model server running? Start it (docs/serving.md) and point --api-base or VLM_API_BASE "
                    "(model.api_base) at it, or try the agent with no model: `python -m agent fake-server`.")
#: Problems worth another attempt of the same request.
RETRYABLE = {Problem.RATE_LIMIT, Problem.SERVER, Problem.MALFORMED, Problem.UNREACHABLE, Problem.TIMEOUT}

_IMAGE_LIMIT = re.compile(r"At most (\d+) image\(s\) may be provided", re.IGNORECASE)
# vLLM 0.33's words (renderers/params.py, serve/utils/api_utils.py, v1/engine/input_processor.py).
_CONTEXT_LIMIT = [
    re.compile(r"maximum context length is (\d+) tokens", re.IGNORECASE),
    re.compile(r"maximum context length \((\d+)\)", re.IGNORECASE),
    re.compile(r"maximum model length of (\d+)", re.IGNORECASE),
]
# The prompt size the server counted; "contains at least N" is a truncated count, not the size.
_PROMPT_TOKENS = [
    re.compile(r"your prompt contains (\d+) input tokens", re.IGNORECASE),
    re.compile(r"Input length \((\d+)\)", re.IGNORECASE),
    re.compile(r"decoder prompt \(length (\d+)\)", re.IGNORECASE),
]
_SCHEMA_WORDS = re.compile(r"response_format|json_schema|json schema|grammar|guided|structured output|xgrammar",
                           re.IGNORECASE)
_TOOL_CHOICE = re.compile(r"tool[ _]choice|enable-auto-tool-choice|tool-call-parser", re.IGNORECASE)
_SECRETS = [
    re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"\b(sk-)[A-Za-z0-9_-]{8,}"),
]


@dataclass(frozen=True)
class ServerAnswer:
    """One classified answer: its kind, status, the server's words and what it tells us."""

    problem: Problem
    status: int | None
    message: str
    limit: int | None = None  # the image or token limit the message states
    prompt_tokens: int | None = None  # the prompt size the server counted (context limit)
    retry_after_s: float | None = None


def classify(status: int | None, message: str, retry_after_s: float | None = None) -> ServerAnswer:
    """Classify an HTTP answer by its status and message.

    Args:
        status: The HTTP status (None for a reply that never came).
        message: The server's error message (the ``message`` of its error body).
        retry_after_s: The ``Retry-After`` header, in seconds, if any.
    """
    text = message or ""
    if status is None:
        return ServerAnswer(Problem.UNREACHABLE, None, text)
    if status == 429:
        return ServerAnswer(Problem.RATE_LIMIT, status, text, retry_after_s=retry_after_s)
    if status >= 500:
        return ServerAnswer(Problem.SERVER, status, text, retry_after_s=retry_after_s)
    if status in (401, 403):
        return ServerAnswer(Problem.AUTH, status, text)
    if status == 404 and "does not exist" in text:
        return ServerAnswer(Problem.UNKNOWN_MODEL, status, text)
    match = _IMAGE_LIMIT.search(text)
    if match:
        return ServerAnswer(Problem.IMAGE_LIMIT, status, text, limit=int(match.group(1)))
    for pattern in _CONTEXT_LIMIT:
        match = pattern.search(text)
        if match:
            used = next((int(m.group(1)) for p in _PROMPT_TOKENS if (m := p.search(text))), None)
            return ServerAnswer(Problem.CONTEXT_LIMIT, status, text, limit=int(match.group(1)), prompt_tokens=used)
    if _TOOL_CHOICE.search(text):
        return ServerAnswer(Problem.TOOL_CHOICE, status, text)
    if _SCHEMA_WORDS.search(text):
        return ServerAnswer(Problem.SCHEMA, status, text)
    return ServerAnswer(Problem.OTHER, status, text)


def mask_secrets(text: str, api_key_env: str | None = None) -> str:
    """``text`` with the API key (from ``api_key_env``) and bearer tokens replaced by ``***``."""
    key = os.environ.get(api_key_env) if api_key_env else None
    if key and len(key) >= 4:
        text = text.replace(key, "***")
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text


class ModelEndpointError(DamageRagError, RuntimeError):
    """The model endpoint could not serve the query; the message names it and says what to do.

    ``answer`` is the classified cause (for traces and for callers that recover).
    """

    exit_code = 1

    def __init__(self, message: str, answer: ServerAnswer | None = None) -> None:
        super().__init__(message)
        self.answer = answer

    @property
    def problem(self) -> Problem | None:
        """The kind of failure, when it came from a classified answer."""
        return self.answer.problem if self.answer else None


class ModelRequestRejected(ModelEndpointError):
    """The endpoint refused this request (4xx): the agent may recover (another protocol, a
    smaller request) or report it."""

    @property
    def status(self) -> int | None:
        """The HTTP status of the refusal."""
        return self.answer.status if self.answer else None
