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

Modules
    :mod:`~agent.testing.server` (:class:`FakeOpenAIServer`: lifecycle, scripting, recording),
    :mod:`~agent.testing.replies` (:class:`Reply`, what to answer), :mod:`~agent.testing.requests`
    (:class:`RecordedRequest` and request-inspection helpers), :mod:`~agent.testing.tokens`
    (usage estimates), :mod:`~agent.testing.completions` and :mod:`~agent.testing.embeddings`
    (response bodies), :mod:`~agent.testing.handler` (the HTTP layer).

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
"""

from agent.testing.completions import completion, stream_events, usage
from agent.testing.embeddings import (
    EmbeddingEncoding,
    default_embedding,
    embedding_inputs,
    embeddings_response,
)
from agent.testing.handler import FakeHTTPServer
from agent.testing.replies import (
    AUTO_TOOL_CHOICE_ERROR,
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
    UNKNOWN_IMAGE_TOKENS,
    estimate_completion_tokens,
    estimate_prompt_tokens,
    estimate_text_tokens,
)

__all__ = [
    "AUTO_TOOL_CHOICE_ERROR",
    "CHAT_PATH",
    "EMBEDDINGS_PATH",
    "MODELS_PATH",
    "UNKNOWN_IMAGE_TOKENS",
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
    "decode_data_uri",
    "default_embedding",
    "embedding_inputs",
    "embeddings_response",
    "error_body",
    "error_type_for",
    "estimate_completion_tokens",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
    "has_tools",
    "image_parts",
    "image_size",
    "stream_events",
    "usage",
    "wants_auto_tool_choice",
]
