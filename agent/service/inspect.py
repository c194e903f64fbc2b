"""``POST /v1/inspect``: a photo and a question in, the damage report out.

The photo comes as a multipart upload (``photo``, with ``question``, ``mode``, ``label`` fields)
or as JSON (``{"image": base64 or a data:image/...;base64, URI, "question", "mode", "label"}``).
The answer is exactly what ``agent ask --json`` prints (:func:`agent.cli.report_json`), or with
``?simple=1`` the user's own short shape (:meth:`DamageReport.to_simple`); ``X-Trace-Id``
names the trace either way. One difference from the CLI: ``trace`` is the trace's URL on this
service (``/v1/traces/{id}``), never the file's path on the server.
"""

from __future__ import annotations

import json
from typing import Any

import python_multipart  # noqa: F401 - Starlette parses the uploads with it: a missing install fails at start
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from agent.service.errors import ServiceError
from agent.service.public import public_report
from agent.service.uploads import check_photo, decode_image_field, upload_limits
from index.config import MODES

router = APIRouter()

_FIELDS = {"question": {"type": "string", "description": "The question, in any language, e.g. '¿Tiene rayones en el capó?'."},
           "mode": {"type": "string", "enum": list(MODES), "description": "agentic, rag or zero-shot (default: agent.mode)."},
           "label": {"type": "string", "description": "Optional damage type the question is about (id, key, name or synonym)."}}
_OPENAPI = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["photo", "question"], "properties": {
        "photo": {"type": "string", "format": "binary", "description": "The photo (JPEG, PNG, WebP...)."}, **_FIELDS}}},
    "application/json": {"schema": {"type": "object", "required": ["image", "question"], "properties": {
        "image": {"type": "string", "description": "The photo as base64 or a data:image/...;base64, URI (never a URL)."},
        **_FIELDS}}},
}}}


def with_label(question: str, label: str | None, taxonomy: Any) -> str:
    """The question, naming ``label`` when it does not already: the rag mode retrieves examples of
    the one label a question names, and the agent reads it.

    Raises:
        UnknownLabelError: If ``label`` names no label of the taxonomy.
    """
    if not label:
        return question
    chosen = taxonomy.resolve(label)
    if taxonomy.mentions(question) == [chosen]:
        return question
    return f"{question.rstrip()} (damage type: {chosen.name})"


def checked_mode(mode: Any) -> str | None:
    """``mode`` if it is one of the modes (None: the config's); else a 400."""
    if mode in (None, ""):
        return None
    if mode not in MODES:
        raise ServiceError(400, f"Unknown mode '{mode}'; use one of {', '.join(MODES)}.", code="invalid_mode",
                           param="mode")
    return str(mode)


def checked_question(question: Any) -> str:
    """A non-empty question string; else a 400 saying how to send one."""
    if not isinstance(question, str) or not question.strip():
        raise ServiceError(400, "The request has no question: send a non-empty 'question' field with the photo.",
                           code="missing_question", param="question")
    return question.strip()


async def _form_request(request: Request) -> tuple[bytes, dict[str, Any]]:
    form = await request.form()
    photo = form.get("photo")
    if isinstance(photo, str) or not hasattr(photo, "read"):  # absent, or a text field, not a file
        raise ServiceError(400, "The request has no photo: send the file as the multipart field 'photo'.",
                           code="missing_photo", param="photo")
    data = await photo.read()
    fields = {key: form.get(key) for key in ("question", "mode", "label")}
    return data, {key: value for key, value in fields.items() if isinstance(value, str)}


async def _json_request(request: Request) -> tuple[bytes, dict[str, Any]]:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ServiceError(400, "The request body is not JSON: send {\"image\": ..., \"question\": ...} or a "
                                "multipart form.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ServiceError(400, "The JSON body must be an object {\"image\": ..., \"question\": ...}.", code="invalid_json")
    image = body.get("image")
    if not isinstance(image, str) or not image.strip():
        raise ServiceError(400, "The request has no photo: send it as 'image', base64 or a data:image/...;base64, URI.",
                           code="missing_photo", param="image")
    return decode_image_field(image, "image"), body


@router.post("/v1/inspect", summary="Inspect a photo: the damage report for a question about it",
             openapi_extra=_OPENAPI, response_description="The report, as `agent ask --json` prints it.")
async def inspect(request: Request, simple: bool = False) -> JSONResponse:
    """Answer one question about one photo (multipart or JSON; see the request body schema).

    The photo is checked as an image (size, header, pixel count) before anything else; the
    question must not be empty. ``?simple=1`` returns the short JSON shape.
    """
    state = request.app.state.service
    config = state.config
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data" or kind == "application/x-www-form-urlencoded":
        data, fields = await _form_request(request)
    elif kind in ("application/json", ""):
        data, fields = await _json_request(request)
    else:
        raise ServiceError(415, f"Content-Type {kind} is not accepted: send multipart/form-data or application/json.",
                           code="unsupported_media_type")
    what = "photo" if kind.startswith("multipart") else "image"
    check_photo(data, what=what, **upload_limits(config))
    question = checked_question(fields.get("question"))
    mode = checked_mode(fields.get("mode"))
    question = with_label(question, fields.get("label") or None, state.engine.taxonomy)
    report = await state.ask(data, question, mode=mode, disconnected=request.is_disconnected)
    payload = report.to_simple() if simple else public_report(state, report)
    return JSONResponse(payload, headers={"X-Trace-Id": report.trace_id})
