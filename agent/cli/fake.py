"""``fake-server``: the test double the project ships, in the foreground, so ``ask``, ``chat`` and
``eval`` can be tried end to end with no model server (canned answers; see
:mod:`agent.testing.scenarios`)."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from index.console import console, flag, out, say
from index.errors import UserError

__all__ = ["register"]

#: Where the shipped configs look for the model (``http://localhost:8000/v1``).
DEFAULT_PORT = 8000


def register(sub: Any) -> None:
    """Add ``fake-server`` to the sub-command parsers ``sub``."""
    from agent.testing.scenarios import DEFAULT_SCENARIO, SCENARIOS

    listed = "\n".join(f"  {name:12s} {what}" for name, what in SCENARIOS.items())
    p = sub.add_parser(
        "fake-server", help="A fake OpenAI-compatible model server with canned answers: try ask, chat and eval "
                            "with no model.",
        description="A fake OpenAI-compatible model server with canned answers (no model looks at the photos), "
                    "to try ask, chat and eval end to end with nothing installed. It prints its URL on stdout "
                    "and one line per request on stderr; Ctrl-C stops it.\n\nscenarios:\n" + listed,
        example=[f"python -m agent fake-server --port {DEFAULT_PORT}",
                 'python -m agent ask --image photo.jpg "¿Tiene rayones?"   # in another shell'])
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help="Port to listen on; 0 picks a free one (default: %(default)s, where the shipped configs look).")
    p.add_argument("--host", default="127.0.0.1", help="Interface to listen on.")
    p.add_argument("--scenario", choices=list(SCENARIOS), default=DEFAULT_SCENARIO, help="What the server answers.")
    p.add_argument("--delay", type=float, default=5.0, help="Seconds each reply waits, in the slow scenario.")
    p.set_defaults(func=cmd_fake_server)


def _describe(reply: Any) -> str:
    """What a reply is, in a few words."""
    if reply.calls:
        return "tool call " + ", ".join(call.name for call in reply.calls)
    if reply.status != 200:
        return f"HTTP {reply.status} ({reply.label})"
    if reply.content and "<tool_call>" in reply.content:
        return "tool call as <tool_call> text"
    wait = f" after {reply.delay:g} s" if reply.delay else ""
    return ("the JSON answer" if reply.label == "json" else "a prose answer") + wait


def cmd_fake_server(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (or SIGTERM); the base URL is the first line on stdout."""
    from agent.testing.scenarios import fake_server

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {args.port}.")
    if args.delay < 0:
        raise UserError(f"--delay must be at least 0, got {args.delay}.")
    server = fake_server(args.scenario, host=args.host, port=args.port, delay_s=args.delay,
                         on_reply=lambda n, reply: say(f"request {n}: {_describe(reply)}"))
    try:
        server.start()
    except OSError as exc:
        raise UserError(f"Cannot listen on {args.host}:{args.port} ({exc.strerror or exc}): choose another "
                        "--port (0 picks a free one).") from None
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        out.file.write(server.base_url + "\n")
        out.file.flush()
        flag("fake model server", "bold", f"scenario {args.scenario}, canned answers (no model looks at the photos). "
             f"Point the agent at it with --api-base {server.base_url}"
             + (" (the shipped configs' default)" if args.port == DEFAULT_PORT and args.host == "127.0.0.1" else "")
             + "; Ctrl-C stops it.")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        console.print()
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    say("fake model server stopped")
    return 0
