"""The vLLM-faithful mode over real HTTP: vLLM 0.33's limits (model, max_tokens, images, context
length, API key) with its exact status codes and error bodies, older servers' flat body, and
``GET /v1/models``'s model cards."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from agent.budget import MESSAGE_OVERHEAD_TOKENS, image_tokens, text_tokens
from agent.testing import (
    IMAGE_PLACEHOLDER_TOKENS,
    FakeOpenAIServer,
    Reply,
    estimate_prompt_tokens,
)
from tests.agent.testing.helpers import make_client, png_bytes

PNG = "data:image/png;base64," + base64.b64encode(png_bytes(8, 8)).decode()
BIG_PNG = "data:image/png;base64," + base64.b64encode(png_bytes(320, 320)).decode()  # 102 tok


@pytest.fixture
def vllm() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer.like_vllm(["qwen3vl"], max_images_per_prompt=16) as srv:
        yield srv


def post(server: FakeOpenAIServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=body, headers=headers, timeout=5)


def images(n: int, url: str = PNG, text: str = "Any damage?") -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}}] * n
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


def text_of(tokens: int) -> list[dict[str, Any]]:
    """One user message whose estimate is exactly ``tokens``."""
    return [{"role": "user", "content": "x" * 4 * (tokens - MESSAGE_OVERHEAD_TOKENS)}]


def bad_request(message: str, param: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "BadRequestError", "param": param, "code": 400}}


# -- images -----------------------------------------------------------------------------------


def test_image_limit_is_vllms_400_exactly(vllm: FakeOpenAIServer) -> None:
    vllm.script(Reply.text("16 images are fine"))
    ok = post(vllm, {"model": "qwen3vl", "messages": images(16)})
    assert ok.status_code == 200
    resp = post(vllm, {"model": "qwen3vl", "messages": images(17)})
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {
        "error": {
            "message": "At most 16 image(s) may be provided in one prompt. (parameter=image)",
            "type": "BadRequestError",
            "param": "image",
            "code": 400,
        }
    }


def test_images_of_the_whole_conversation_count(vllm: FakeOpenAIServer) -> None:
    """The history is one prompt: 9 images in turn 1 plus 9 in turn 2 are 18."""
    messages = [*images(9), {"role": "assistant", "content": "ok"}, *images(9)]
    assert post(vllm, {"model": "qwen3vl", "messages": messages}).status_code == 400


def test_default_image_limit_is_999() -> None:
    with FakeOpenAIServer() as srv:
        srv.script(Reply.text("fine"))
        assert post(srv, {"messages": images(999)}).status_code == 200
        resp = post(srv, {"messages": images(1000)})
    assert resp.json() == bad_request(
        "At most 999 image(s) may be provided in one prompt. (parameter=image)", "image"
    )


def test_refused_requests_are_recorded_and_consume_no_script(vllm: FakeOpenAIServer) -> None:
    vllm.script(Reply.text("for the next good request"))
    body = {"model": "qwen3vl", "messages": images(17), "stream": True}
    resp = post(vllm, body)
    assert resp.status_code == 400  # a JSON error even to a streaming request, as vLLM
    assert resp.headers["content-type"] == "application/json"
    (record,) = vllm.chat_requests
    assert record.body == body and record.status == 400
    assert record.reply is not None and record.reply.label == "vllm_image_limit"
    assert len(record.image_parts()) == 17
    assert vllm.pending_replies == 1


def test_openai_client_sees_bad_request_without_retry(vllm: FakeOpenAIServer) -> None:
    client = make_client(vllm, max_retries=3)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="qwen3vl", messages=images(17))  # type: ignore[arg-type]
    assert info.value.status_code == 400
    assert (
        info.value.body
        == bad_request(
            "At most 16 image(s) may be provided in one prompt. (parameter=image)", "image"
        )["error"]
    )
    assert len(vllm.chat_requests) == 1


# -- context length ---------------------------------------------------------------------------


def test_estimate_is_agent_budgets() -> None:
    body = {"messages": [*images(2, BIG_PNG, text="abcdefgh")]}
    expected = MESSAGE_OVERHEAD_TOKENS + 2 * image_tokens(320, 320) + text_tokens("abcdefgh")
    assert estimate_prompt_tokens(body) == expected == 4 + 2 * 102 + 2
    unexpanded = MESSAGE_OVERHEAD_TOKENS + 2 * IMAGE_PLACEHOLDER_TOKENS + 2
    assert estimate_prompt_tokens(body, expand_images=False) == unexpanded


def test_the_issues_context_example_in_input_tokens_style() -> None:
    with FakeOpenAIServer.like_vllm(["qwen3vl"], context_error_style="input_tokens") as srv:
        resp = post(srv, {"model": "qwen3vl", "messages": text_of(40000)})
    assert resp.status_code == 400
    assert resp.json() == bad_request(
        "This model's maximum context length is 32768 tokens. However, your prompt contains "
        "40000 input tokens, which exceeds this limit even without any output tokens. Please "
        "reduce the length of the input prompt. (parameter=input_tokens, value=40000)",
        "input_tokens",
    )


@pytest.fixture
def small() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer.like_vllm(["qwen3vl"], max_model_len=100) as srv:
        yield srv


def test_auto_style_text_too_long_says_at_least_max_plus_one(small: FakeOpenAIServer) -> None:
    resp = post(small, {"model": "qwen3vl", "messages": text_of(104)})
    assert resp.json() == bad_request(
        "This model's maximum context length is 100 tokens. However, your prompt contains at "
        "least 101 input tokens, which exceeds this limit even without any output tokens. "
        "Please reduce the length of the input prompt. (parameter=input_tokens, value=101)",
        "input_tokens",
    )


def test_auto_style_images_push_it_over(small: FakeOpenAIServer) -> None:
    body = {"model": "qwen3vl", "messages": images(1, BIG_PNG, text="hi")}
    assert estimate_prompt_tokens(body) == 4 + 102 + 1
    resp = post(small, body)
    assert resp.json() == bad_request(
        "Input length (107) exceeds model's maximum context length (100).", None
    )


def test_auto_style_exactly_full_leaves_no_output_token(small: FakeOpenAIServer) -> None:
    small.script(Reply.text("fits"))
    assert post(small, {"model": "qwen3vl", "messages": text_of(99)}).status_code == 200
    resp = post(small, {"model": "qwen3vl", "messages": text_of(100)})
    assert resp.json() == bad_request(
        "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)", "max_tokens"
    )


def test_decoder_prompt_style(small: FakeOpenAIServer) -> None:
    small.context_error_style = "decoder_prompt"
    resp = post(small, {"model": "qwen3vl", "messages": images(1, BIG_PNG, text="hi")})
    assert resp.json() == bad_request(
        "The decoder prompt (length 107) is longer than the maximum model length of 100. "
        "Make sure that `max_model_len` is no smaller than the number of text tokens plus "
        "multimodal tokens. For image inputs, the number of image tokens depends on the number "
        "of images, and possibly their aspect ratios as well.",
        None,
    )
    resp = post(small, {"model": "qwen3vl", "messages": text_of(100)})
    assert resp.json()["error"]["message"] == (
        "The decoder prompt (length 100) plus the number of requested output tokens (at least 1) "
        "is longer than the maximum model length of 100. Make sure that `max_model_len` is no "
        "smaller than the number of text tokens (prompt + requested output tokens)."
    )


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_above_max_model_len(vllm: FakeOpenAIServer, param: str) -> None:
    vllm.script(Reply.text("clamped, not refused"))
    ok = post(vllm, {"model": "qwen3vl", "messages": text_of(10), param: 32768})
    assert ok.status_code == 200
    resp = post(vllm, {"model": "qwen3vl", "messages": text_of(10), param: 40000})
    assert resp.json() == bad_request(
        f"{param}=40000 cannot be greater than max_model_len=32768. Please request fewer "
        f"output tokens. (parameter={param}, value=40000)",
        param,
    )


def test_no_context_check_without_max_model_len() -> None:
    with FakeOpenAIServer() as srv:
        srv.script(Reply.text("anything goes"))
        assert post(srv, {"messages": text_of(40000), "max_tokens": 10**6}).status_code == 200


# -- model, API key, body shape ---------------------------------------------------------------


def test_unknown_model_is_404_with_valid_aliases() -> None:
    with FakeOpenAIServer.like_vllm(["qwen3vl", "qwen"]) as srv:
        resp = post(srv, {"model": "gpt-4o", "messages": text_of(10)})
        assert resp.status_code == 404
        assert resp.json() == {
            "error": {
                "message": "The model `gpt-4o` does not exist. Valid aliases: qwen3vl, qwen.",
                "type": "NotFoundError",
                "param": "model",
                "code": 404,
            }
        }
        with pytest.raises(openai.NotFoundError):
            make_client(srv, max_retries=2).chat.completions.create(
                model="gpt-4o",
                messages=text_of(10),  # type: ignore[arg-type]
            )
        assert len(srv.chat_requests) == 2  # 404 is not retried

        # an alias or no model at all is served; vLLM reports its first name either way
        srv.script(Reply.text("a"), Reply.text("b"))
        assert post(srv, {"model": "qwen", "messages": text_of(10)}).json()["model"] == "qwen3vl"
        assert post(srv, {"messages": text_of(10)}).json()["model"] == "qwen3vl"


def test_api_key_401_comes_first(vllm: FakeOpenAIServer) -> None:
    vllm.api_key = "sk-right"
    resp = post(vllm, {"model": "gpt-4o", "messages": images(17)}, Authorization="Bearer nope")
    assert resp.status_code == 401
    assert resp.json() == {"error": "Unauthorized"}
    resp = post(vllm, {"model": "gpt-4o", "messages": text_of(10)}, Authorization="bearer sk-right")
    assert resp.status_code == 404
    assert httpx.get(f"{vllm.base_url}/models").status_code == 401
    assert httpx.get(f"{vllm.url}/health").status_code == 200


def test_legacy_error_body(vllm: FakeOpenAIServer) -> None:
    vllm.legacy_error_body = True
    resp = post(vllm, {"model": "qwen3vl", "messages": images(17)})
    assert resp.status_code == 400
    assert resp.json() == {
        "object": "error",
        "message": "At most 16 image(s) may be provided in one prompt. (parameter=image)",
        "type": "BadRequestError",
        "param": "image",
        "code": 400,
    }
    vllm.script(Reply.http_error(503, "busy"))
    assert post(vllm, {"messages": text_of(10)}).json() == {
        "object": "error",
        "message": "busy",
        "type": "ServiceUnavailableError",
        "param": None,
        "code": 503,
    }


def test_models_route_lists_served_names_like_vllm() -> None:
    with FakeOpenAIServer.like_vllm(
        ["qwen3vl", "qwen"], max_model_len=65536, model_path="Qwen/Qwen3-VL-8B-Instruct"
    ) as srv:
        resp = httpx.get(f"{srv.base_url}/models")
        listed = make_client(srv).models.list()
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["qwen3vl", "qwen"] == [m.id for m in listed.data]
    card = body["data"][0]
    permission = card.pop("permission")
    assert isinstance(card.pop("created"), int)
    assert card == {
        "id": "qwen3vl",
        "object": "model",
        "owned_by": "vllm",
        "root": "Qwen/Qwen3-VL-8B-Instruct",
        "parent": None,
        "max_model_len": 65536,
    }
    assert len(permission) == 1 and permission[0]["id"].startswith("modelperm-")
    assert permission[0]["object"] == "model_permission"
    assert permission[0]["allow_sampling"] is True and permission[0]["organization"] == "*"
