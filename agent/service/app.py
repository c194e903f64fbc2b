"""The inspection service as a FastAPI app: :func:`create_app` over one :class:`DamageQueryEngine`.

Routes: ``/healthz`` (the process is up), ``/readyz`` (the index is loaded when the mode needs
it and the model endpoint is reachable; 503 with the reason otherwise), ``POST /v1/inspect``
(:mod:`agent.service.inspect`), the OpenAI-compatible ``POST /v1/chat/completions`` and
``GET /v1/models`` (:mod:`agent.service.openai_door`), ``GET /v1/traces[/{id}]``
(:mod:`agent.service.traces`), ``GET /v1/examples/{id}[/image]`` (:mod:`agent.service.examples`),
the page at ``/`` and its files at ``/static/``, OpenAPI at ``/docs``.

Every ``/v1`` route wants the service's bearer token when one is configured
(:mod:`agent.service.auth`); request bodies are bounded (:class:`agent.service.uploads.BodyLimit`);
every error is an OpenAI-style JSON body with one sentence (:mod:`agent.service.errors`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.service import examples, inspect, openai_door, traces
from agent.service.auth import BearerToken
from agent.service.errors import error_response, response_for
from agent.service.state import ServiceState
from agent.service.uploads import BodyLimit, body_limit
from index.errors import DamageRagError

logger = logging.getLogger(__name__)

#: The page's files (written with the page; served as they are, no build step).
STATIC_DIR = Path(__file__).resolve().parent / "static"


async def readiness(state: ServiceState) -> str | None:
    """Why the service cannot answer yet (one sentence), or None when it can."""
    from agent.cli.endpoint import check_reachable
    from agent.endpoint_errors import ModelEndpointError

    if state.needs_index(None):
        index = state.index.state
        if not index.loaded:
            state.index.ensure()  # after a failure, try again (the index may have been built since)
            if index.error is not None:
                return str(index.error)
            return f"The index {Path(state.engine.index_dir).name} is still loading; retry in a few seconds."
    try:
        await asyncio.to_thread(check_reachable, state.config.model)
    except ModelEndpointError as exc:
        return str(exc)
    return None


def _validation_line(exc: RequestValidationError) -> str:
    first = (exc.errors() or [{}])[0]
    where = " ".join(str(part) for part in first.get("loc", ()) if part != "body")
    return f"Invalid {where or 'request'}: {first.get('msg', 'not valid')}."


def http_error_line(request: Request, exc: StarletteHTTPException) -> str:
    """One sentence for one of Starlette's HTTP exceptions, naming the route."""
    detail = " ".join(str(exc.detail or "").split()).rstrip(".")
    where = f"{request.method} {request.url.path}"
    if exc.status_code in (404, 405) and detail in ("", "Not Found", "Method Not Allowed"):
        return f"No route {where}."
    if exc.status_code in (404, 405):
        return f"{detail}."
    return f"{where}: {detail or 'the request was refused'} (HTTP {exc.status_code})."


def create_app(engine: Any) -> FastAPI:
    """The app serving ``engine`` (a :class:`agent.engine.DamageQueryEngine`); the index starts
    loading in the background when the app starts."""
    from PIL import Image

    Image.init()  # Pillow's format plugins, loaded now rather than on the first upload (~0.5 s)
    state = ServiceState(engine)
    service = engine.config.service
    secret_env = engine.config.model.api_key_env
    redact = state.redact  # server folders by name, the model's and Qdrant's keys masked

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.needs_index(None):
            state.index.ensure()
        yield
        state.close()

    app = FastAPI(title="damage-rag inspection service", version="1", lifespan=lifespan,
                  description="Vehicle-damage inspection with retrieved labelled examples: POST /v1/inspect, or "
                              "the OpenAI-compatible /v1/chat/completions (model damage-rag[:MODE]).")
    app.state.service = state
    app.add_middleware(BodyLimit, limit=body_limit(service.max_upload_mb), max_upload_mb=service.max_upload_mb)

    @app.exception_handler(DamageRagError)
    async def project_error(request: Request, exc: DamageRagError) -> JSONResponse:
        return response_for(exc, secret_env, service.retry_after_s, redact=redact)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_line(exc), code="invalid_request", api_key_env=secret_env,
                              redact=redact)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Starlette's and FastAPI's own refusals (no route, a form it cannot parse, a form part
        over 1 MB) as OpenAI-style bodies."""
        return error_response(exc.status_code, http_error_line(request, exc), headers=getattr(exc, "headers", None),
                              api_key_env=secret_env, redact=redact)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return response_for(exc, secret_env, redact=redact)

    token = BearerToken(service.api_key_env)
    for router in (inspect.router, openai_door.router, traces.router, examples.router):
        app.include_router(router, dependencies=[Depends(token)])

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "uptime_s": round(time.time() - state.started, 1)}

    @app.get("/readyz", summary="Ready to answer: the index is loaded and the model endpoint reachable")
    async def readyz() -> JSONResponse:
        reason = await readiness(state)
        if reason is not None:
            return error_response(503, reason, code="not_ready", headers={"Retry-After": str(service.retry_after_s)},
                                  api_key_env=secret_env, redact=redact)
        index = state.index.state
        return JSONResponse({"status": "ready", "mode": state.config.agent.mode, "model": state.config.model.model,
                             "index_loaded": index.loaded, "index_load_s": index.seconds,
                             "running": state.gate.running, "waiting": state.gate.waiting,
                             "auth": token.enabled})

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        index_html = STATIC_DIR / "index.html"
        if not index_html.is_file():
            raise HTTPException(404, "The page is not installed (agent/service/static/index.html).")
        return FileResponse(index_html, media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app
