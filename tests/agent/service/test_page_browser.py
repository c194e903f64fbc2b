"""The page at ``/`` in a real browser: headless Chromium (Debian's ``chromium``) driven over the
DevTools protocol (:mod:`tests.agent.service.cdp`) against the real ``agent serve`` in a
subprocess, with the fake model server behind it (the package's ``service`` fixture, which
wants a bearer token). Screenshots go under each test's ``tmp_path``."""

from __future__ import annotations

import json

import httpx
import pytest

from agent.testing import Reply
from agent.testing.scenarios import canned_answer, responder
from tests.agent.service.cdp import Chromium, find_chromium

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium browser on PATH (apt-get install chromium, or set $CHROMIUM): the page's browser test "
           "needs one")

STATE = "document.documentElement.dataset.state"
FINISHED = f"['done', 'error'].includes({STATE}) && {STATE}"
WIDER_THAN_THE_WINDOW = ("[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
                         "document.documentElement.clientWidth + 1).map(e => e.tagName + '#' + e.id)")


def text_of(page, element_id: str) -> str:
    return page.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent")


def enter_token(page, token: str) -> None:
    page.evaluate(f"(() => {{ const t = document.getElementById('token'); t.value = {json.dumps(token)}; "
                  "t.dispatchEvent(new Event('input')); })()")


def ask(page, service_url: str, photo, token: str | None) -> str:
    """Open the page, enter the token, choose the photo, press Ask; the state it ends in."""
    page.navigate(service_url + "/")
    assert page.evaluate(STATE) == "idle"
    if token:
        enter_token(page, token)
    page.set_file_input("#photo", [photo])
    page.wait_for("document.getElementById('photo-view').naturalWidth > 0", timeout=10)
    page.evaluate("document.getElementById('ask').click()")
    return page.wait_for(FINISHED, timeout=120)


def test_the_page_shows_the_answer_boxes_examples_and_tool_calls(service, fake, photo, tmp_path):
    with Chromium.launch(tmp_path / "chromium") as browser:
        page = browser.page
        state = ask(page, service.url, photo, service.token)
        assert state == "done", text_of(page, "error")

        question = page.evaluate("document.getElementById('question').value")
        assert question == "¿Qué daños tiene el vehículo?"
        assert text_of(page, "answer") == canned_answer(question)["answer"]

        boxes = page.evaluate("[...document.querySelectorAll('#boxes .box')].map(b => b.textContent)")
        assert len(boxes) >= 1 and "Scratch" in boxes[0]
        examples = page.evaluate("[...document.querySelectorAll('#examples img')].map(i => i.naturalWidth)")
        assert len(examples) >= 1 and all(width > 0 for width in examples), \
            (examples, text_of(page, "examples-note"), text_of(page, "tools"), text_of(page, "examples"))
        assert page.evaluate("document.querySelectorAll('#examples svg polygon').length") >= 1
        tools = page.evaluate("[...document.querySelectorAll('#tools li')].map(li => li.textContent)")
        assert len(tools) == 1 and tools[0].startswith("search_similar_damage")
        assert text_of(page, "tool-count").startswith("1 tool call")
        assert "total" in text_of(page, "timings")

        href = page.evaluate("document.getElementById('trace-link').href")
        assert href.endswith("?format=html")
        html = httpx.get(href, headers=service.headers(), timeout=30)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        assert page.evaluate("sessionStorage.getItem('damage-rag-token')") == service.token
        assert page.errors() == []

        shot = page.screenshot(tmp_path / "page.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

        page.set_viewport(390, 844)  # a phone's width: one column, nothing wider than the window
        page.wait_for("window.innerWidth === 390", timeout=10)
        wider = page.evaluate(WIDER_THAN_THE_WINDOW)
        assert wider == [], wider
        page.screenshot(tmp_path / "phone.png")


def test_model_text_is_shown_as_text_never_as_markup(service, fake, photo, tmp_path):
    markup = '<img src="x" onerror="window.__injected = 1"><b>bold</b>'
    answer = {**canned_answer("¿daños?"), "answer": markup}
    answer["findings"][0]["evidence"] = markup

    def reply(body):
        if body.get("tools") and not any(m.get("role") == "tool" for m in body["messages"]):
            return responder("agentic")(body)
        return Reply.json(answer)

    fake.responder = reply
    with Chromium.launch(tmp_path / "chromium") as browser:
        page = browser.page
        assert ask(page, service.url, photo, service.token) == "done", text_of(page, "error")
        assert text_of(page, "answer") == markup
        assert page.evaluate("document.querySelectorAll('#result img:not(#examples img), #result b').length") == 0
        assert page.evaluate("window.__injected === undefined")


def test_without_the_token_the_page_says_so_and_opens_the_token_field(service, photo, tmp_path):
    with Chromium.launch(tmp_path / "chromium") as browser:
        page = browser.page
        assert ask(page, service.url, photo, token=None) == "error"
        error = text_of(page, "error")
        assert "HTTP 401" in error and "access token" in error
        assert page.evaluate("document.getElementById('auth').open") is True
        assert page.evaluate("document.getElementById('result').hidden") is True
        page.screenshot(tmp_path / "no-token.png")
