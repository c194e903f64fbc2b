"""The vLLM-faithful mode of the fake server: the limits vLLM 0.33 enforces on a chat request, and
the exact HTTP errors it answers when one is exceeded.

Every message below is copied from vLLM 0.33.0's source (its wheel), with the file and function it
comes from. vLLM turns each exception into its error body in ``create_error_response``
(``vllm/entrypoints/serve/exception_handling/error_response.py``): a ``VLLMValidationError`` is
HTTP 400, ``type`` ``"BadRequestError"``, ``param`` the exception's ``parameter``, and its message
is ``str(exc)``, which appends `` (parameter=P, value=V)`` for whichever of the two is set; a raw
``ValueError`` is HTTP 400 ``"BadRequestError"`` with ``param`` null.

The checks run in vLLM's order, before the fake's rules, responder and script (a refused request
never reaches the model, so it consumes no scripted reply; it is recorded like any other):

1. the model (``served_model_names``): HTTP 404;
2. ``max_completion_tokens`` / ``max_tokens`` above ``max_model_len``;
3. the images of the whole conversation (``max_images_per_prompt``);
4. the prompt length (``max_model_len``), estimated by :func:`~agent.testing.estimate_prompt_tokens`
   (``agent.budget``'s estimate), in the form ``context_error_style`` selects.

(vLLM checks ``tool_choice`` between 1 and 2; :meth:`FakeOpenAIServer.reject_auto_tool_choice` is
a rule, so here it comes after 4.)
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from agent.testing.replies import Reply
from agent.testing.requests import image_parts
from agent.testing.tokens import estimate_prompt_tokens

if TYPE_CHECKING:
    from agent.testing.server import FakeOpenAIServer

__all__ = [
    "DEFAULT_IMAGE_LIMIT",
    "ContextErrorStyle",
    "context_length_error",
    "decoder_prompt_error",
    "image_limit_error",
    "input_length_error",
    "input_tokens_error",
    "max_tokens_error",
    "model_list",
    "unknown_model_error",
    "vllm_refusal",
    "zero_max_tokens_error",
]

#: vLLM's default ``--limit-mm-per-prompt`` per modality: ``MultiModalConfig.get_limit_per_prompt``
#: (``vllm/config/multimodal.py``) returns 999 for a modality the operator did not set, and
#: Qwen3-VL sets no lower limit of its own (``Qwen3VLProcessingInfo.get_supported_mm_limits`` in
#: ``vllm/model_executor/models/qwen3_vl.py`` returns ``{"image": None, "video": None}``).
DEFAULT_IMAGE_LIMIT = 999

#: Which message answers a prompt longer than ``max_model_len``:
#:
#: - ``"auto"``: what vLLM 0.33's ``/v1/chat/completions`` answers a Qwen3-VL request. A prompt
#:   whose text alone (each image as its 3 placeholder tokens) is too long gets
#:   :func:`input_tokens_error` with ``at least max_model_len + 1`` tokens (the renderer tokenizes
#:   the templated text with ``truncation=True, max_length=max_model_len + 1``, see
#:   ``TokenizeParams.get_encode_kwargs`` in ``vllm/renderers/params.py``); one that only the
#:   expanded image tokens push over gets :func:`input_length_error`; one of exactly
#:   ``max_model_len`` tokens leaves no room for output: ``max_tokens`` becomes 0 and
#:   :func:`max_tokens_error` with 0.
#: - ``"input_tokens"``: :func:`input_tokens_error` with the whole estimate (images counted), the
#:   form of the issue's example ("your prompt contains 40000 input tokens").
#: - ``"decoder_prompt"``: the engine's own check, :func:`decoder_prompt_error` (vLLM's
#:   ``InputProcessor`` raises it for requests that reach the engine; 0.33's chat route
#:   normally refuses them earlier, but other entry points and versions answer with it).
ContextErrorStyle = Literal["auto", "input_tokens", "decoder_prompt"]


def _bad_request(message: str, param: str | None, label: str) -> Reply:
    reply = Reply.http_error(400, message, error_type="BadRequestError", param=param)
    return dataclasses.replace(reply, label=label)


def unknown_model_error(model: str, served_model_names: Sequence[str]) -> Reply:
    """HTTP 404 ``NotFoundError``, ``param`` ``"model"``:
    ``The model `X` does not exist. Valid aliases: a, b.``

    From ``BaseServing._check_model`` (``vllm/entrypoints/serve/engine/serving.py``), which the
    chat route runs first. (The render-only server's ``OpenAIModelRegistry.check_model`` in
    ``vllm/entrypoints/openai/models/serving.py`` omits the ``Valid aliases`` sentence.)
    """
    message = f"The model `{model}` does not exist. Valid aliases: {', '.join(served_model_names)}."
    reply = Reply.http_error(404, message, error_type="NotFoundError", param="model")
    return dataclasses.replace(reply, label="vllm_unknown_model")


def max_tokens_error(param: str, value: int, max_model_len: int) -> Reply:
    """``max_tokens=N cannot be greater than max_model_len=M. Please request fewer output
    tokens. (parameter=max_tokens, value=N)`` (``max_completion_tokens`` when that was sent).

    From ``TokenizeParams.__post_init__`` (``vllm/renderers/params.py``), built by
    ``ChatCompletionRequest.build_tok_params`` with ``max_total_tokens_param="max_model_len"``.
    """
    message = (
        f"{param}={value} cannot be greater than max_model_len={max_model_len}. "
        f"Please request fewer output tokens. (parameter={param}, value={value})"
    )
    return _bad_request(message, param, "vllm_max_tokens")


def zero_max_tokens_error() -> Reply:
    """``max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)``: a prompt of
    exactly ``max_model_len`` tokens leaves ``get_max_tokens``
    (``vllm/entrypoints/serve/utils/api_utils.py``) 0 output tokens, which
    ``SamplingParams._verify_args`` (``vllm/sampling_params.py``) rejects."""
    message = "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)"
    return _bad_request(message, "max_tokens", "vllm_context_length")


def image_limit_error(limit: int) -> Reply:
    """``At most 16 image(s) may be provided in one prompt. (parameter=image)``.

    From ``BaseProcessingInfo.validate_num_items`` (``vllm/multimodal/processing/context.py``),
    called for every image as the chat messages are parsed (``item_tracker.py`` in
    ``vllm/renderers/chat_utils/``). vLLM appends ``Set `--limit-mm-per-prompt` to increase this
    limit.`` only when the model itself supports more than the operator's limit allows *and* the
    request is within the model's limit; Qwen3-VL declares no limit of its own, so its limit is
    the operator's and the sentence never appears.
    """
    message = f"At most {limit} image(s) may be provided in one prompt. (parameter=image)"
    return _bad_request(message, "image", "vllm_image_limit")


def input_tokens_error(tokens: int, max_model_len: int, *, at_least: bool = False) -> Reply:
    """``This model's maximum context length is M tokens. However, your prompt contains N input
    tokens, which exceeds this limit even without any output tokens. Please reduce the length of
    the input prompt. (parameter=input_tokens, value=N)`` (``at least N`` when the tokenizer
    stopped at ``M + 1``).

    From ``TokenizeParams._token_len_check`` (``vllm/renderers/params.py``).
    """
    qualifier = "at least " if at_least else ""
    message = (
        f"This model's maximum context length is {max_model_len} tokens. However, your prompt "
        f"contains {qualifier}{tokens} input tokens, which exceeds this limit even without any "
        "output tokens. Please reduce the length of the input prompt. "
        f"(parameter=input_tokens, value={tokens})"
    )
    return _bad_request(message, "input_tokens", "vllm_context_length")


def input_length_error(tokens: int, max_model_len: int) -> Reply:
    """``Input length (N) exceeds model's maximum context length (M).``, ``param`` null.

    A ``ValueError`` from ``get_max_tokens`` (``vllm/entrypoints/serve/utils/api_utils.py``),
    which ``OpenAIServingChat._create_chat_completion`` calls with the prompt length after the
    image pads were expanded.
    """
    message = f"Input length ({tokens}) exceeds model's maximum context length ({max_model_len})."
    return _bad_request(message, None, "vllm_context_length")


def decoder_prompt_error(tokens: int, max_model_len: int) -> Reply:
    """The engine's check, ``param`` null: ``The decoder prompt (length N) is longer than the
    maximum model length of M. Make sure that `max_model_len` is no smaller than the number of
    text tokens plus multimodal tokens. For image inputs, the number of image tokens depends on
    the number of images, and possibly their aspect ratios as well.``; for a prompt of exactly
    M tokens: ``The decoder prompt (length M) plus the number of requested output tokens (at
    least 1) is longer than the maximum model length of M. Make sure that `max_model_len` is no
    smaller than the number of text tokens (prompt + requested output tokens).``

    From ``InputProcessor._validate_prompt_len`` (``vllm/v1/engine/input_processor.py``; the
    multimodal suggestion, as Qwen3-VL supports multimodal inputs).
    """
    if tokens > max_model_len:
        message = (
            f"The decoder prompt (length {tokens}) is longer than the maximum model length of "
            f"{max_model_len}. Make sure that `max_model_len` is no smaller than the number of "
            "text tokens plus multimodal tokens. For image inputs, the number of image tokens "
            "depends on the number of images, and possibly their aspect ratios as well."
        )
    else:
        message = (
            f"The decoder prompt (length {tokens}) plus the number of requested output tokens "
            f"(at least 1) is longer than the maximum model length of {max_model_len}. Make sure "
            "that `max_model_len` is no smaller than the number of text tokens (prompt + "
            "requested output tokens)."
        )
    return _bad_request(message, None, "vllm_context_length")


def context_length_error(
    body: Mapping[str, Any], max_model_len: int, style: ContextErrorStyle = "auto"
) -> Reply | None:
    """The error vLLM answers a chat request whose estimated prompt does not fit
    ``max_model_len`` (None when it fits); see :data:`ContextErrorStyle`."""
    tokens = estimate_prompt_tokens(body)
    if tokens < max_model_len:
        return None
    if style == "decoder_prompt":
        return decoder_prompt_error(tokens, max_model_len)
    if tokens == max_model_len:
        return zero_max_tokens_error()
    if style == "input_tokens":
        return input_tokens_error(tokens, max_model_len)
    if estimate_prompt_tokens(body, expand_images=False) > max_model_len:
        return input_tokens_error(max_model_len + 1, max_model_len, at_least=True)
    return input_length_error(tokens, max_model_len)


def vllm_refusal(server: FakeOpenAIServer, body: Mapping[str, Any]) -> Reply | None:
    """The error ``server``'s vLLM-faithful options give this chat request, or None (see the
    module docstring for the order)."""
    names = server.served_model_names
    model = body.get("model")
    if names and model and model not in names:
        return unknown_model_error(str(model), names)
    max_len = server.max_model_len
    param = (
        "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    )
    requested = body.get(param)
    if max_len is not None and isinstance(requested, int) and requested > max_len:
        return max_tokens_error(param, requested, max_len)
    limit = server.max_images_per_prompt
    limit = DEFAULT_IMAGE_LIMIT if limit is None else limit
    if len(image_parts(body)) > limit:
        return image_limit_error(limit)
    if max_len is not None:
        return context_length_error(body, max_len, server.context_error_style)
    return None


def model_list(
    names: Sequence[str], *, root: str | None = None, max_model_len: int | None = None
) -> dict[str, Any]:
    """The ``GET /v1/models`` body: vLLM's ``ModelList`` of one ``ModelCard`` per served name
    (``OpenAIModelRegistry.show_available_models``, ``vllm/entrypoints/openai/models/serving.py``;
    the models in ``vllm/entrypoints/serve/engine/protocol.py``): ``owned_by`` ``"vllm"``,
    ``root`` the path vLLM was started with, ``max_model_len``, one ``ModelPermission``."""
    now = int(time.time())
    permission = {
        "object": "model_permission",
        "created": now,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    data = [
        {
            "id": name,
            "object": "model",
            "created": now,
            "owned_by": "vllm",
            "root": root or names[0],
            "parent": None,
            "max_model_len": max_model_len,
            "permission": [{"id": f"modelperm-{uuid.uuid4().hex}", **permission}],
        }
        for name in names
    ]
    return {"object": "list", "data": data}
