"""The OpenAI-compatible front door: ``POST /v1/chat/completions`` and ``GET /v1/models``.

An application that talks to its Qwen3-VL server through an OpenAI client gets retrieval by
changing its base URL. The model name chooses the mode: ``damage-rag`` (the config's),
``damage-rag:rag``, ``damage-rag:agentic``, ``damage-rag:zero-shot``. A request whose last
message is the user's, holding exactly one image (a ``data:`` URI) and a question, is answered
by the engine; earlier user and assistant turns are its history, a client's system message is
left out (the engine has its own). Anything else — no image, several, an http(s) image URL
(never fetched), client tools, another model's name — is refused with an OpenAI error body, or
passed upstream unchanged with ``service.unsupported: passthrough`` (taking a place in the queue
like any question; http(s) image URLs still refused unless ``service.passthrough_image_urls``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from agent.service.errors import ServiceError
from agent.service.public import public_report
from agent.service.streaming import chat_completion, completion_chunks, event_stream
from agent.service.uploads import check_photo, decode_image_field, upload_limits
from index.config import MODES

router = APIRouter()

#: The front door's model name; ``NAME:MODE`` picks a mode.
MODEL_NAME = "damage-rag"
#: Model name -> mode (None: the config's ``agent.mode``).
MODEL_MODES: dict[str, str | None] = {MODEL_NAME: None, **{f"{MODEL_NAME}:{mode}": mode for mode in MODES}}


class Unsupported(ServiceError):
    """A chat request the engine cannot answer: refused (400/404) or passed upstream, as configured."""


@dataclass
class EngineChat:
    """A chat request the engine answers: the photo, the question, the mode and the earlier turns."""

    photo: bytes
    question: str
    mode: str | None
    history: list[Any] = field(default_factory=list)


def _parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [part for part in content if isinstance(part, dict)]
    return []


def _image_url(part: dict[str, Any]) -> str:
    image = part.get("image_url")
    return str(image.get("url", "") if isinstance(image, dict) else image or "")


def _image_bytes(url: str, limits: dict[str, Any], what: str) -> bytes:
    if not url.lower().startswith("data:"):
        raise Unsupported(400, f"The {what} is given by URL; this service never fetches URLs: send it as a "
                               "data:image/...;base64, URI.", code="image_url_not_supported", param="messages")
    data = decode_image_field(url, what)
    check_photo(data, what=what, **limits)
    return data


def _history(messages: list[dict[str, Any]], limits: dict[str, Any]) -> list[Any]:
    """Earlier user and assistant turns as LlamaIndex chat messages (system messages left out)."""
    from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock

    turns = []
    for number, message in enumerate(messages, start=1):
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        if role not in ("user", "assistant"):
            raise Unsupported(400, f"Message {number} has role '{role}'; the engine takes user and assistant turns "
                                   "only (its own tools, not the client's).", code="unsupported_role", param="messages")
        blocks: list[Any] = []
        for part in _parts(message):
            if part.get("type") == "text" and part.get("text"):
                blocks.append(TextBlock(text=str(part["text"])))
            elif part.get("type") == "image_url" and role == "user":
                data = _image_bytes(_image_url(part), limits, f"image of message {number}")
                blocks.append(ImageBlock(image=data, image_mimetype="image/jpeg"))
        if blocks:
            turns.append(ChatMessage(role=role, blocks=blocks))
    return turns


def engine_chat(body: dict[str, Any], limits: dict[str, Any]) -> EngineChat:
    """The engine's reading of a chat request.

    Raises:
        Unsupported: For a request the engine cannot answer (the message says why).
        ServiceError: For one it would answer but that is broken (an unreadable image, no question).
    """
    model = body.get("model")
    if not isinstance(model, str):
        raise ServiceError(400, "The request's 'model' must be a string, e.g. \"damage-rag\".",
                           code="invalid_request", param="model")
    messages = body.get("messages")
    if isinstance(messages, list):
        for number, message in enumerate(messages, start=1):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise ServiceError(400, f"Message {number} is not an object with a 'role' (a string).",
                                   code="invalid_request", param="messages")
    if model not in MODEL_MODES:
        raise Unsupported(404, f"The model '{model}' is not served here; this service serves "
                               f"{', '.join(MODEL_MODES)}.", code="model_not_found", param="model")
    if not isinstance(messages, list) or not messages:
        raise ServiceError(400, "The request has no messages.", code="invalid_request", param="messages")
    if body.get("tools") or body.get("functions"):
        raise Unsupported(400, "The request carries its own tools; the engine answers with its retrieval tools "
                               "only.", code="tools_not_supported", param="tools")
    last = messages[-1]
    if last.get("role") != "user":
        raise Unsupported(400, f"The last message is the {last.get('role')}'s; the engine answers a user message "
                               "holding one photo and a question.", code="unsupported_request", param="messages")
    parts = _parts(last)
    images = [part for part in parts if part.get("type") == "image_url"]
    if len(images) != 1:
        said = "no image" if not images else f"{len(images)} images"
        raise Unsupported(400, f"The last user message holds {said}; the engine answers about exactly one photo "
                               "(an image_url part with a data: URI).", code="image_count", param="messages")
    photo = _image_bytes(_image_url(images[0]), limits, "image")
    question = "\n".join(str(p.get("text", "")) for p in parts if p.get("type") == "text").strip()
    if not question:
        raise ServiceError(400, "The last user message has no question: add a text part beside the image.",
                           code="missing_question", param="messages")
    return EngineChat(photo, question, MODEL_MODES[model], _history(messages[:-1], limits))


def fetched_urls(body: dict[str, Any]) -> int:
    """How many image parts of the request's messages are URLs an upstream would fetch (not ``data:``)."""
    messages = body.get("messages")
    return sum(1 for message in messages if isinstance(message, dict)
               for part in _parts(message) if part.get("type") == "image_url"
               and not _image_url(part).strip().lower().startswith("data:")) if isinstance(messages, list) else 0


def _wants_json(body: dict[str, Any]) -> bool:
    kind = body.get("response_format")
    return isinstance(kind, dict) and kind.get("type") in ("json_object", "json_schema")


@router.post("/v1/chat/completions", summary="OpenAI-compatible chat completions, answered with retrieval")
async def chat_completions(request: Request) -> Response:
    """A ``chat.completion`` (or its stream) whose content is the engine's answer, or the
    report JSON when ``response_format`` asks for JSON; ``X-Trace-Id`` names the trace."""
    from agent.service.passthrough import forward_chat

    state = request.app.state.service
    config = state.config
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ServiceError(400, "The request body is not JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ServiceError(400, "The request body must be a JSON object.", code="invalid_json")
    try:
        chat = engine_chat(body, upload_limits(config))
    except Unsupported:
        if config.service.unsupported != "passthrough":
            raise
        urls = fetched_urls(body)
        if urls and not config.service.passthrough_image_urls:
            raise ServiceError(400, f"The request holds {urls} image URL(s); neither this service nor its upstream "
                                    "fetches URLs (service.passthrough_image_urls is false): send the images as "
                                    "data:image/...;base64, URIs.", code="image_url_not_supported",
                               param="messages") from None
        upstream = dict(body)
        if upstream.get("model") in MODEL_MODES:
            upstream["model"] = config.model.model
        return await forward_chat(upstream, config.model, gate=state.gate)
    report = await state.ask(chat.photo, chat.question, mode=chat.mode, history=chat.history,
                             disconnected=request.is_disconnected)
    if _wants_json(body):
        content = json.dumps(public_report(state, report), ensure_ascii=False)
    else:
        content = report.answer or report.raw_text or report.error or ""
    model = str(body["model"])
    headers = {"X-Trace-Id": report.trace_id}
    if body.get("stream"):
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        chunks = completion_chunks(content, model=model, trace_id=report.trace_id, usage=report.usage,
                                   include_usage=include_usage)
        return StreamingResponse(event_stream(chunks), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})
    return JSONResponse(chat_completion(content, model=model, trace_id=report.trace_id, usage=report.usage),
                        headers=headers)


def _model_card(state: Any, name: str) -> dict[str, Any]:
    mode = MODEL_MODES[name]
    return {"id": name, "object": "model", "created": int(state.started), "owned_by": "damage-rag",
            "mode": mode or state.config.agent.mode, "upstream": state.config.model.model}


@router.get("/v1/models", summary="The models this service answers as (OpenAI-compatible)")
async def models(request: Request) -> JSONResponse:
    """``damage-rag`` (the config's mode) and ``damage-rag:MODE`` for each mode."""
    state = request.app.state.service
    return JSONResponse({"object": "list", "data": [_model_card(state, name) for name in MODEL_MODES]})


@router.get("/v1/models/{model}", summary="One of the models this service answers as")
async def model_card(request: Request, model: str) -> JSONResponse:
    """The model card of ``damage-rag`` or ``damage-rag:MODE``; 404 for any other name."""
    if model not in MODEL_MODES:
        raise ServiceError(404, f"The model '{model[:80]}' is not served here; this service serves "
                                f"{', '.join(MODEL_MODES)}.", code="model_not_found", param="model")
    return JSONResponse(_model_card(request.app.state.service, model))
