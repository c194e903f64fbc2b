"""Errors as the service answers them: an OpenAI-style JSON body holding the CLI's one-line message.

Every refusal, ours or the engine's, is ``{"error": {"message", "type", "param", "code"}}`` (the
shape OpenAI's API and vLLM use, so an OpenAI client raises its usual exception with our
sentence). :func:`status_of` maps the project's error family (:class:`~index.errors.DamageRagError`)
to HTTP statuses; the message is the sentence the CLI prints, with secrets masked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse

from agent.endpoint_errors import ModelEndpointError, ModelRequestRejected, Problem, mask_secrets
from index.errors import DamageRagError

logger = logging.getLogger(__name__)

#: OpenAI's error ``type`` for each status the service answers.
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
          502: "upstream_error", 503: "service_unavailable", 504: "timeout_error"}


class ServiceError(DamageRagError):
    """A request the service refuses; ``status`` is the HTTP status, the message one sentence."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.param, self.headers = status, code, param, dict(headers or {})


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """The OpenAI-style error body."""
    return {"error": {"message": message, "type": _TYPES.get(status, "api_error"), "param": param,
                      "code": code or str(status)}}


def error_response(status: int, message: str, *, code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None, api_key_env: str | None = None,
                   redact: Callable[[str], str] | None = None) -> JSONResponse:
    """A JSON error response; the message is masked (``api_key_env``'s key, bearer tokens) and
    passed through ``redact`` (the service's :class:`agent.service.public.Redactor`: folders by
    name, the model's and Qdrant's keys masked)."""
    line = mask_secrets(" ".join(str(message).split()), api_key_env)
    if redact is not None:
        line = redact(line)
    return JSONResponse(error_body(status, line, code, param), status_code=status, headers=headers)


def status_of(exc: BaseException) -> tuple[int, str]:
    """HTTP status and error code of one of the project's errors.

    The model endpoint unreachable is 503 (nothing to answer with now), a timeout 504, any
    other endpoint failure or refusal 502 (the upstream failed us); an unreadable photo 415,
    an unknown label 400. Any other of the project's errors comes from the service's own side
    (no index, a corrupt or busy one, an embedder that cannot load, a full disk, a bad prompt
    file): 503, the request was fine.
    """
    from index.embedders.config import EmbedderError
    from index.imaging.decode import ImageReadError, ImageTooLargeError
    from index.index_dir import IndexNotFoundError
    from index.taxonomy import UnknownLabelError

    if isinstance(exc, ServiceError):
        return exc.status, exc.code or str(exc.status)
    if isinstance(exc, ModelEndpointError):
        problem = exc.problem
        if problem is Problem.UNREACHABLE:
            return 503, "model_unreachable"
        if problem is Problem.TIMEOUT:
            return 504, "model_timeout"
        return 502, "model_refused" if isinstance(exc, ModelRequestRejected) else "model_failed"
    if isinstance(exc, ImageTooLargeError):
        return 400, "image_too_large"
    if isinstance(exc, ImageReadError):
        return 415, "not_an_image"
    if isinstance(exc, UnknownLabelError):
        return 400, "invalid_label"
    if isinstance(exc, (IndexNotFoundError, EmbedderError)):
        return 503, "index_unavailable"
    if isinstance(exc, DamageRagError):
        return 503, "service_unavailable"
    return 500, "internal_error"


def response_for(exc: BaseException, api_key_env: str | None = None, retry_after_s: int | None = None,
                 redact: Callable[[str], str] | None = None) -> JSONResponse:
    """The error response for an exception raised while answering (never a stack trace)."""
    status, code = status_of(exc)
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 503 and retry_after_s and "Retry-After" not in headers:
        headers["Retry-After"] = str(retry_after_s)
    if status == 500:
        logger.exception("unexpected error while answering", exc_info=exc)
        message = f"The service failed unexpectedly ({type(exc).__name__}); its log has the details."
    else:
        message = str(exc)
    return error_response(status, message, code=code, param=getattr(exc, "param", None), headers=headers,
                          api_key_env=api_key_env, redact=redact)
