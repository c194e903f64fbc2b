"""``serve``: the inspection service (FastAPI on uvicorn) over one engine: ``POST /v1/inspect``,
an OpenAI-compatible ``/v1/chat/completions``, the traces, and a page at ``/``."""

from __future__ import annotations

import argparse
import os
import socket
from typing import Any

from agent.cli.ask import _engine, add_engine_args
from index.console import flag, out
from index.errors import UserError

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``serve`` to the sub-command parsers ``sub``."""
    p = sub.add_parser(
        "serve", help="Serve the inspection over HTTP: /v1/inspect, an OpenAI-compatible /v1/chat/completions, "
                      "the traces, and a page to try it.",
        description="Serve the inspection over HTTP. It listens at once and loads the index in the background "
                    "(GET /readyz says when it can answer). Clients: POST /v1/inspect (multipart photo + question), "
                    "or any OpenAI client with base_url http://HOST:PORT/v1 and model damage-rag "
                    "(damage-rag:rag, damage-rag:agentic, damage-rag:zero-shot); the page is at /, the API at /docs. "
                    "It prints its URL on stdout; Ctrl-C stops it.",
        example=["python -m agent serve --config configs/vehicle_damage.yaml",
                 "python -m agent serve --host 0.0.0.0 --port 8080   # every interface (a container)"])
    add_engine_args(p)
    p.add_argument("--host", help="Interface to listen on (default: service.host of --config, 127.0.0.1: this "
                                  "machine only).")
    p.add_argument("--port", type=int, help="Port (default: service.port of --config, 8080; 0 picks a free one).")
    p.set_defaults(func=cmd_serve)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket (so the URL printed is the real one, port 0 included)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}): choose another --port "
                        "(0 picks a free one) or --host.") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (or SIGTERM); the base URL is the first line on stdout."""
    import uvicorn

    from agent.service import create_app

    engine = _engine(args)
    service = engine.config.service
    host = args.host or service.host
    port = service.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {port}.")
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}"
    out.file.write(url + "\n")
    out.file.flush()
    token = "on" if os.environ.get(service.api_key_env) else f"off (set ${service.api_key_env} to require one)"
    flag("serving", "bold", f"{url}/v1 (OpenAI base URL; models damage-rag[:rag|:agentic|:zero-shot]), the page at "
         f"{url}/, the API at {url}/docs; mode {engine.config.agent.mode}, model {engine.config.model.model} at "
         f"{engine.config.model.api_base}; bearer token {token}. Ctrl-C stops it.")
    if host not in ("127.0.0.1", "localhost", "::1"):
        flag("warning", "yellow", f"listening on {host}: reachable from other machines"
             + ("" if os.environ.get(service.api_key_env) else f"; set ${service.api_key_env} to require a token"))
    level = "info" if getattr(args, "verbose", 0) else "warning"
    config = uvicorn.Config(create_app(engine), log_level=level, access_log=bool(getattr(args, "verbose", 0)),
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
