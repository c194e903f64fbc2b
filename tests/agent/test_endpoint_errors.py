"""The error contract: vLLM's own words, classified; secrets masked."""

from __future__ import annotations

import pytest

from agent.endpoint_errors import Problem, classify, mask_secrets

IMAGES = "At most 16 image(s) may be provided in one prompt. (parameter=image)"
CONTEXT = ("This model's maximum context length is 32768 tokens. However, your prompt contains 40000 input tokens, "
           "which is more than the maximum allowed. (parameter=input_tokens, value=40000)")
AT_LEAST = ("This model's maximum context length is 32768 tokens. However, your prompt contains at least 32769 "
            "input tokens, which exceeds this limit even without any output tokens. Please reduce the length of the "
            "input prompt. (parameter=input_tokens, value=32769)")
INPUT_LENGTH = "Input length (40000) exceeds model's maximum context length (32768)."
DECODER = ("The decoder prompt (length 40000) is longer than the maximum model length of 32768. Make sure that "
           "`max_model_len` is no smaller than the number of text tokens plus multimodal tokens.")


@pytest.mark.parametrize("status, message, problem", [
    (400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set', Problem.TOOL_CHOICE),
    (400, "Grammar error: unsupported keyword 'patternProperties' in json_schema", Problem.SCHEMA),
    (400, "response_format json_schema is not supported by this backend", Problem.SCHEMA),
    (400, IMAGES, Problem.IMAGE_LIMIT),
    (400, CONTEXT, Problem.CONTEXT_LIMIT),
    (400, DECODER, Problem.CONTEXT_LIMIT),
    (400, AT_LEAST, Problem.CONTEXT_LIMIT),
    (400, INPUT_LENGTH, Problem.CONTEXT_LIMIT),
    (404, "The model `qwen-7b` does not exist.", Problem.UNKNOWN_MODEL),
    (401, "Unauthorized", Problem.AUTH),
    (429, "Too many requests", Problem.RATE_LIMIT),
    (503, "overloaded", Problem.SERVER),
    (400, "temperature must be non-negative", Problem.OTHER),
    (404, "Not Found", Problem.OTHER),  # a wrong path, not an unknown model
])
def test_classify_by_status_and_words(status, message, problem):
    assert classify(status, message).problem is problem


def test_limits_are_read_from_the_message():
    assert classify(400, IMAGES).limit == 16
    context = classify(400, CONTEXT)
    assert (context.limit, context.prompt_tokens) == (32768, 40000)
    at_least = classify(400, AT_LEAST)  # vLLM 0.33 truncates the count: no prompt size to learn from it
    assert (at_least.limit, at_least.prompt_tokens) == (32768, None)
    assert (classify(400, INPUT_LENGTH).limit, classify(400, INPUT_LENGTH).prompt_tokens) == (32768, 40000)
    decoder = classify(400, DECODER)
    assert (decoder.limit, decoder.prompt_tokens) == (32768, 40000)
    assert classify(429, "slow down", retry_after_s=2.0).retry_after_s == 2.0


def test_a_4xx_that_does_not_speak_of_schemas_is_not_a_schema_refusal():
    assert classify(404, "The model `x` does not exist.").problem is not Problem.SCHEMA
    assert classify(400, IMAGES).problem is not Problem.SCHEMA


def test_secrets_are_masked(monkeypatch):
    monkeypatch.setenv("VLM_API_KEY", "s3cret-token-123")
    said = "invalid key s3cret-token-123; header was Bearer abcdefghijkl and sk-abcdefghijklmnop"
    masked = mask_secrets(said, "VLM_API_KEY")
    assert "s3cret" not in masked and "abcdefghijkl" not in masked and masked.count("***") == 3
