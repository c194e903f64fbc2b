"""Named behaviours of the fake server, for trying the agent with no model: ``python -m agent
fake-server --scenario NAME``.

Each scenario is a responder (``callable(request_json) -> Reply``) that answers any number of
requests, in any mode, so ``ask``, ``chat`` and ``eval`` run end to end against it. The
answers are canned: no model looks at the photo, and the report says so in its answer.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

from agent.testing.replies import Reply
from agent.testing.requests import wants_auto_tool_choice
from agent.testing.server import FakeOpenAIServer, Responder

__all__ = ["DEFAULT_SCENARIO", "SCENARIOS", "canned_answer", "fake_server", "responder"]

#: What each scenario does, as ``fake-server --help`` lists it.
SCENARIOS: dict[str, str] = {
    "agentic": "calls search_similar_damage when offered tools, then answers (native tool calls)",
    "answer": "answers at once, calling no tool",
    "hermes": "vLLM without a tool parser: refuses tool_choice 'auto', then calls as <tool_call> text",
    "invalid": "answers in prose, never in the JSON asked for (the report comes back valid: false)",
    "unavailable": "HTTP 503 queue full, Retry-After 1, every time (the agent retries, then gives up)",
    "slow": "as agentic, each reply after --delay seconds (try it with a lower model.timeout_s)",
}
DEFAULT_SCENARIO = "agentic"

_SPANISH = re.compile(r"[¿¡ñáéíóú]|\b(tiene|hay|el|la|los|las|del|dónde|qué|daño|rayon\w*)\b", re.IGNORECASE)


def _texts(body: dict[str, Any]) -> list[tuple[str, str]]:
    """``(role, text)`` of every message of a chat request (text parts only)."""
    found = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        found.append((str(message.get("role")), str(content or "")))
    return found


def _question(body: dict[str, Any]) -> str:
    """The first user turn's text: the question (follow-ups and tool turns come after it)."""
    return next((text for role, text in _texts(body) if role == "user" and text.strip()), "")


def canned_answer(question: str) -> dict[str, Any]:
    """A valid report: one minor scratch on the door, its answer in the question's language
    (Spanish or English) and saying that no model looked at the photo."""
    spanish = bool(_SPANISH.search(question))
    answer = ("Respuesta fija del servidor de prueba (ningún modelo ha mirado la foto): un arañazo leve en la puerta."
              if spanish else "Canned reply of the fake server (no model looked at the photo): a light scratch on the door.")
    return {"damage_detected": True, "answer": answer, "examples_used": [],
            "findings": [{"label": "scratch", "location": "door" if not spanish else "puerta", "severity": "minor",
                          "confidence": 0.8, "bbox_2d": [420, 380, 640, 520],
                          "evidence": "a thin light line (canned)"}]}


def _answer(body: dict[str, Any]) -> Reply:
    return Reply.json(canned_answer(_question(body)))


def _agentic(body: dict[str, Any]) -> Reply:
    tool_done = any(role == "tool" for role, _ in _texts(body))
    if body.get("tools") and not tool_done:
        return Reply.tool_calls([("search_similar_damage", {"k": 3})])
    return _answer(body)


def _hermes(body: dict[str, Any]) -> Reply:
    if wants_auto_tool_choice(body):
        return Reply.reject_auto_tool_choice()
    texts = _texts(body)
    offered = any("<tools>" in text for role, text in texts if role == "system")
    if offered and not any("<tool_response>" in text for _, text in texts):
        return Reply.hermes_tool_call("search_similar_damage", {"k": 3})
    return _answer(body)


def _invalid(body: dict[str, Any]) -> Reply:
    return Reply.text("I think there might be a scratch somewhere, but I would rather not fill in a form.")


def _unavailable(body: dict[str, Any]) -> Reply:
    return Reply.unavailable(retry_after=1)


def responder(scenario: str, delay_s: float = 5.0) -> Responder:
    """The responder of a named scenario (see :data:`SCENARIOS`).

    Raises:
        ValueError: If ``scenario`` names none.
    """
    chosen: dict[str, Callable[[dict[str, Any]], Reply]] = {
        "agentic": _agentic, "answer": _answer, "hermes": _hermes, "invalid": _invalid,
        "unavailable": _unavailable, "slow": lambda body: Reply.slow(delay_s, _agentic(body)),
    }
    if scenario not in chosen:
        raise ValueError(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}")
    return chosen[scenario]


def fake_server(scenario: str = DEFAULT_SCENARIO, *, host: str = "127.0.0.1", port: int = 0,
                delay_s: float = 5.0, on_reply: Callable[[int, Reply], None] | None = None) -> FakeOpenAIServer:
    """A fake server (not started) answering every chat request as ``scenario`` does.

    ``on_reply(n, reply)`` is called for the n-th chat request (from 1) with the reply chosen
    (e.g. to print what the server does). Any model name is accepted.
    """
    answer = responder(scenario, delay_s)
    server = FakeOpenAIServer(host=host, port=port)
    if on_reply is None:
        server.responder = answer
        return server
    numbers = itertools.count(1)

    def reporting(body: dict[str, Any]) -> Reply:
        chosen = answer(body)
        on_reply(next(numbers), chosen)
        return chosen

    server.responder = reporting
    return server
