"""``GET /v1/traces`` and ``GET /v1/traces/{id}``: each query's trace, as JSON or as the HTML page
``agent trace show --html`` writes. Neither shows a path on the server: every path in the events
is cut to its base name (:meth:`agent.service.public.Redactor.events`).

A trace id must match :data:`TRACE_ID` (the form :class:`agent.trace.Trace` gives its ids)
before it names a file, so no request value becomes a path.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from agent.service.errors import ServiceError

router = APIRouter()

#: A trace id: ``YYYYMMDD-HHMMSS-`` and six hexadecimal digits (:class:`agent.trace.Trace`).
TRACE_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")


def checked_trace_id(trace_id: str) -> str:
    """``trace_id`` when it has the form of one; else a 404 (it names no trace)."""
    if not TRACE_ID.fullmatch(trace_id or ""):
        raise ServiceError(404, f"'{trace_id[:80]}' is not a trace id (they look like 20260101-120000-a1b2c3); "
                                "GET /v1/traces lists them.", code="trace_not_found", param="id")
    return trace_id


def _events(traces_dir: object, trace_id: str) -> list[dict]:
    from agent.trace import TraceNotFoundError, load_trace

    try:
        return load_trace(traces_dir, trace_id)  # type: ignore[arg-type]
    except TraceNotFoundError:
        raise ServiceError(404, f"No trace '{trace_id}' on this service; GET /v1/traces lists them.",
                           code="trace_not_found", param="id") from None


@router.get("/v1/traces", summary="The traces of past queries, newest first")
async def traces(request: Request, limit: int = 100) -> JSONResponse:
    """One summary per trace (id, question, mode, status, seconds, tool calls), newest first;
    the newest ``limit`` (100) only, and ``total`` the number kept."""
    from agent.trace import list_traces

    state = request.app.state.service
    found = await asyncio.to_thread(list_traces, state.traces_dir, max(0, limit))
    total = await asyncio.to_thread(lambda: sum(1 for _ in Path(state.traces_dir).glob("*.jsonl")))
    return JSONResponse({"object": "list", "data": state.redact.events(found), "total": total})


@router.get("/v1/traces/{trace_id}", summary="One trace: its events as JSON, or the HTML page")
async def trace(request: Request, trace_id: str, format: str | None = None) -> Response:  # noqa: A002
    """The trace's events (``{"id", "events"}``); ``?format=html``, or a browser asking for
    ``text/html``, gets the self-contained page (the photo with the report's boxes, the steps,
    the images shown to the model, the report)."""
    from agent.trace import trace_html

    state = request.app.state.service
    trace_id = checked_trace_id(trace_id)
    events = await asyncio.to_thread(_events, state.traces_dir, trace_id)
    wants_html = format == "html" or (format is None and "text/html" in request.headers.get("accept", ""))
    if format not in (None, "html", "json"):
        raise ServiceError(400, f"Unknown format '{format}'; use json or html.", code="invalid_format", param="format")
    if wants_html:  # the images are read here, server-side; the page prints no path
        page = await asyncio.to_thread(trace_html, state.redact.events(events, keep_files=True))
        return HTMLResponse(page)
    return JSONResponse({"id": trace_id, "events": state.redact.events(events)})
