"""The OpenAI-compatible front door as an application meets it: the official ``openai`` client
pointed at ``agent serve`` (base URL and key changed, nothing else), the fake model behind it."""

from __future__ import annotations

import dataclasses
import json

import openai
import pytest

from agent.testing import Reply
from agent.testing.scenarios import responder
from tests.agent.service.running import UPSTREAM_KEY, data_uri, one_line_error, user_message


@pytest.fixture
def client(service) -> openai.OpenAI:
    """The official client, as the user's application would configure it."""
    return openai.OpenAI(base_url=service.base_url, api_key=service.token, max_retries=0, timeout=60)


@pytest.fixture
def counted(fake):
    """The upstream answering as ``agentic``, each reply costing 100 prompt and 7 completion tokens."""
    answer = responder("agentic")
    fake.responder = lambda body: dataclasses.replace(answer(body), prompt_tokens=100, completion_tokens=7)
    return fake


def test_models_lists_the_modes(client):
    assert [m.id for m in client.models.list()] == ["damage-rag", "damage-rag:zero-shot", "damage-rag:rag",
                                                    "damage-rag:agentic"]
    assert client.models.retrieve("damage-rag:rag").mode == "rag"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_chat_answers_with_retrieved_examples_usage_and_trace(client, service, counted, photo):
    raw = client.chat.completions.with_raw_response.create(
        model="damage-rag:rag", messages=[user_message("¿Tiene rayones en el capó?", data_uri(photo))],
        response_format={"type": "json_object"})
    completion = raw.parse()
    assert UPSTREAM_KEY not in raw.http_response.text
    trace_id = raw.headers["x-trace-id"]
    report = json.loads(completion.choices[0].message.content)
    assert completion.object == "chat.completion" and completion.model == "damage-rag:rag"
    assert completion.choices[0].finish_reason == "stop"
    assert report["trace_id"] == trace_id and report["mode"] == "rag" and report["valid"]
    assert report["trace"] == f"/v1/traces/{trace_id}"  # the service's URL, as /v1/inspect gives it
    assert report["answer"].startswith("Respuesta fija")  # the canned Spanish answer, for a Spanish question

    # the retrieved examples reached the model as images, after the query photo, named in the text
    (request,) = counted.chat_requests
    assert request.has_authorization and request.body["model"] == "qwen"
    examples = report["examples_used"]
    assert examples and len(request.image_parts()) == 1 + len(examples)
    prompt_text = json.dumps(request.messages, ensure_ascii=False)
    assert all(f"id {example}" in prompt_text for example in examples)

    # usage is the sum over the underlying model calls (one in rag mode)
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) \
        == (100, 7, 107)

    with service.client() as http:
        trace = http.get(f"/v1/traces/{trace_id}").json()
    assert trace["id"] == trace_id
    assert trace["events"][0]["question"] == "¿Tiene rayones en el capó?"
    assert [e["name"] for e in trace["events"] if e["type"] == "tool_call"] == ["search_similar_damage"]


def test_agentic_usage_sums_both_calls_and_the_answer_is_the_content(client, counted, photo):
    completion = client.chat.completions.create(
        model="damage-rag:agentic", messages=[user_message("Any damage on the door?", data_uri(photo))])
    assert completion.choices[0].message.content.startswith("Canned reply of the fake server")
    assert len(counted.chat_requests) == 2  # a search_similar_damage call, then the answer
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (200, 14)


def test_streaming_with_the_client(client, counted, photo):
    stream = client.chat.completions.create(
        model="damage-rag", messages=[user_message("Any damage?", data_uri(photo))], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Canned reply of the fake server")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 214
    assert len({c.id for c in chunks}) == 1


def test_earlier_turns_reach_the_model_as_history(client, fake, photo):
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "I will send a photo of my car."},
                {"role": "assistant", "content": "Send it, please."},
                user_message("Any damage?", data_uri(photo))]
    client.chat.completions.create(model="damage-rag:zero-shot", messages=messages)
    (request,) = fake.chat_requests
    roles = [m["role"] for m in request.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert "You are terse." not in json.dumps(request.messages)  # the engine's own system prompt
    assert "I will send a photo" in json.dumps(request.messages)


@pytest.mark.parametrize(("content", "said"), [
    ("Any damage?", "holds no image"),
    ([{"type": "text", "text": "Any damage?"}, {"type": "image_url", "image_url": {"url": "IMG"}},
      {"type": "image_url", "image_url": {"url": "IMG"}}], "holds 2 images"),
    ([{"type": "text", "text": "Any damage?"},
      {"type": "image_url", "image_url": {"url": "https://example.com/car.jpg"}}], "never fetches URLs"),
])
def test_requests_it_cannot_serve_are_refused_openai_style(client, fake, photo, content, said):
    if isinstance(content, list):
        content = [{**p, "image_url": {"url": data_uri(photo)}} if p.get("image_url", {}).get("url") == "IMG" else p
                   for p in content]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="damage-rag", messages=[{"role": "user", "content": content}])
    assert said in caught.value.message
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    assert fake.chat_requests == []  # nothing went upstream, no URL was fetched


def test_another_models_name_is_refused(client, fake, photo):
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=[user_message("Any damage?", data_uri(photo))])


def test_the_upstream_key_never_reaches_the_caller(service, fake, photo):
    """The upstream refuses, quoting the key it was sent: the service's 502 masks it, and no trace holds it."""
    fake.responder = lambda body: Reply.http_error(403, f"key {UPSTREAM_KEY} is not allowed for this model")
    with service.client() as http:
        response = http.post("/v1/chat/completions", json={
            "model": "damage-rag:zero-shot", "messages": [user_message("Any damage?", data_uri(photo))]})
        message = one_line_error(response, 502)
        assert UPSTREAM_KEY not in response.text and "***" in message
        listed = http.get("/v1/traces").text
    assert UPSTREAM_KEY not in listed
    for path in service.traces_dir.glob("*.jsonl"):
        assert UPSTREAM_KEY not in path.read_text(encoding="utf-8")


def test_an_unreachable_upstream_is_a_503_with_the_sentence(service, fake, photo):
    fake.responder = lambda body: Reply.drop_connection()
    with service.client() as http:
        response = http.post("/v1/chat/completions", json={
            "model": "damage-rag:zero-shot", "messages": [user_message("Any damage?", data_uri(photo))]})
    assert "model endpoint" in one_line_error(response, 503)
