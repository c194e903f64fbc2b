"""The test double the product ships (as LlamaIndex ships ``MockLLM``): a scriptable fake
OpenAI-compatible server, used by the project's tests and by ``agent/bench.py``.

It is a real local HTTP server, so every layer that runs against a real vLLM runs here too
(``openai`` client, LlamaIndex ``OpenAILike``): request serialisation, retries, timeouts,
server-sent events, error mapping. Standard library only: a ``ThreadingHTTPServer`` on
``127.0.0.1`` (port 0, i.e. any free port) served from a daemon thread.

Routes
    ``POST /v1/chat/completions``  non-streaming and ``"stream": true`` (server-sent events in the
    OpenAI chunk format, tool-call deltas, ``stream_options.include_usage``, final ``[DONE]``);
    ``GET /v1/models``; ``POST /v1/embeddings`` (deterministic vectors, or scripted ones or
    errors, float or base64); ``GET /health``. With ``api_key=...`` the ``/v1`` routes want it as
    a bearer token, like vLLM's ``--api-key``.

The vLLM-faithful mode
    So that the agent's error handling is tested against what vLLM 0.33 really answers, the
    server enforces vLLM's limits with vLLM's exact status codes and error bodies (every message
    copied from vLLM's source; :mod:`~agent.testing.vllm` names the file and function of each):
    ``served_model_names`` (404 ``The model `X` does not exist. Valid aliases: ...``),
    ``max_images_per_prompt`` (400 ``At most N image(s) may be provided in one prompt.
    (parameter=image)``; vLLM's default 999 when None), ``max_model_len`` (400 for a prompt
    that does not fit, by the same estimate the agent budgets with, ``agent.budget``; the form
    chosen by ``context_error_style``; and for ``max_tokens`` above it), ``legacy_error_body``
    (older servers' ``{"object": "error", ...}``), ``api_key`` (401). ``GET /v1/models`` answers
    with vLLM's model cards. ``FakeOpenAIServer.like_vllm([...])`` switches it all on as
    ``vllm serve`` has it. Refused requests are recorded like any other and consume no script.

Transport faults (:class:`Reply` constructors)
    ``Reply.rate_limited(retry_after=N)`` (429 + ``Retry-After``), ``Reply.unavailable(N)``
    (vLLM's 503 body + ``Retry-After``), ``Reply.slow(s, r)`` (nothing for ``s`` seconds),
    ``Reply.trickle(interval, r)`` (the body one byte every ``interval`` s: only a
    whole-request deadline ends it), ``Reply.drop_connection()``, and 200s that are not a
    completion: ``Reply.html_page()``, ``Reply.empty_body()``, ``Reply.truncated_json()``,
    ``Reply.no_choices()``, ``Reply.raw(body)``.

Modules
    :mod:`~agent.testing.server` (:class:`FakeOpenAIServer`: lifecycle, scripting, recording),
    :mod:`~agent.testing.replies` (:class:`Reply`, what to answer), :mod:`~agent.testing.vllm`
    (vLLM's limits and exact errors), :mod:`~agent.testing.requests` (:class:`RecordedRequest`
    and request-inspection helpers), :mod:`~agent.testing.tokens` (token estimates, from
    ``agent.budget``), :mod:`~agent.testing.completions` and :mod:`~agent.testing.embeddings`
    (response bodies), :mod:`~agent.testing.handler` (the HTTP layer),
    :mod:`~agent.testing.scenarios` (named canned behaviours, served in the foreground by
    ``python -m agent fake-server`` to try the agent with no model).

Usage::

    from agent.testing import FakeOpenAIServer, Reply, image_parts
    from llama_index.llms.openai_like import OpenAILike

    with FakeOpenAIServer() as server:
        server.script(
            Reply.tool_calls([("search_examples", {"query": "dent on door"})]),
            Reply.text("A dent on the rear door, see example #3."),
        )
        llm = OpenAILike(model="qwen", api_base=server.base_url, api_key="x",
                         is_chat_model=True, is_function_calling_model=True, max_retries=0)
        ...  # run the agent
        first, second = server.chat_requests
        assert first.body["tool_choice"] == "auto"
        assert second.messages[-1]["role"] == "tool"
        assert image_parts(first)  # the query photo was sent as an image_url part

    # a vLLM started without --enable-auto-tool-choice: requests carrying tools get HTTP 400,
    # the others are answered from the script
    with FakeOpenAIServer() as server:
        server.reject_auto_tool_choice()
        server.script(Reply.hermes_tool_call("search_examples", {"query": "dent"}))

    # an embeddings server that is busy twice, then answers
    with FakeOpenAIServer(embedding_dim=16) as server:
        server.script_embeddings(Reply.http_error(503, "busy"), Reply.http_error(503, "busy"))

    # vLLM serving "qwen3vl" with --limit-mm-per-prompt '{"image": 16}': a 17th image is a 400
    with FakeOpenAIServer.like_vllm(["qwen3vl"], max_images_per_prompt=16) as server:
        ...
        assert server.chat_requests[-1].status == 400
"""

from agent.testing.completions import completion, stream_events, usage
from agent.testing.embeddings import (
    EmbeddingEncoding,
    default_embedding,
    embedding_answer,
    embedding_inputs,
    embeddings_response,
)
from agent.testing.handler import FakeHTTPServer
from agent.testing.replies import (
    AUTO_TOOL_CHOICE_ERROR,
    HTML_PAGE,
    QUEUE_FULL_ERROR,
    Reply,
    ReplyKind,
    ToolCallSpec,
    error_body,
    error_type_for,
)
from agent.testing.requests import (
    CHAT_PATH,
    EMBEDDINGS_PATH,
    MODELS_PATH,
    RecordedRequest,
    decode_data_uri,
    has_tools,
    image_parts,
    image_size,
    wants_auto_tool_choice,
)
from agent.testing.server import EmbeddingResponder, FakeOpenAIServer, Predicate, Responder
from agent.testing.tokens import (
    IMAGE_PLACEHOLDER_TOKENS,
    UNKNOWN_IMAGE_TOKENS,
    estimate_completion_tokens,
    estimate_image_url_tokens,
    estimate_prompt_tokens,
    estimate_text_tokens,
)
from agent.testing.vllm import (
    DEFAULT_IMAGE_LIMIT,
    ContextErrorStyle,
    context_length_error,
    decoder_prompt_error,
    image_limit_error,
    input_length_error,
    input_tokens_error,
    max_tokens_error,
    model_list,
    unknown_model_error,
    vllm_refusal,
    zero_max_tokens_error,
)

__all__ = [
    "AUTO_TOOL_CHOICE_ERROR",
    "CHAT_PATH",
    "DEFAULT_IMAGE_LIMIT",
    "EMBEDDINGS_PATH",
    "HTML_PAGE",
    "IMAGE_PLACEHOLDER_TOKENS",
    "MODELS_PATH",
    "QUEUE_FULL_ERROR",
    "UNKNOWN_IMAGE_TOKENS",
    "ContextErrorStyle",
    "EmbeddingEncoding",
    "EmbeddingResponder",
    "FakeHTTPServer",
    "FakeOpenAIServer",
    "Predicate",
    "RecordedRequest",
    "Reply",
    "ReplyKind",
    "Responder",
    "ToolCallSpec",
    "completion",
    "context_length_error",
    "decode_data_uri",
    "decoder_prompt_error",
    "default_embedding",
    "embedding_answer",
    "embedding_inputs",
    "embeddings_response",
    "error_body",
    "error_type_for",
    "estimate_completion_tokens",
    "estimate_image_url_tokens",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
    "has_tools",
    "image_limit_error",
    "image_parts",
    "image_size",
    "input_length_error",
    "input_tokens_error",
    "max_tokens_error",
    "model_list",
    "stream_events",
    "unknown_model_error",
    "usage",
    "vllm_refusal",
    "wants_auto_tool_choice",
    "zero_max_tokens_error",
]
