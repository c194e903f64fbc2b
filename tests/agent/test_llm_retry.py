"""The one retry policy (index.retry) and the model client's use of it (agent.llm.chat): bounded
attempts, jittered backoff, Retry-After honoured up to model.retry_after_max_s, a malformed reply
retried once, refusals never retried. No network: ``chat`` runs fake calls that raise what the
openai client raises; the waits are recorded instead of slept."""

from __future__ import annotations

import asyncio
import email.utils
import time
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest

from agent import llm
from agent.endpoint_errors import ModelEndpointError, ModelRequestRejected, Problem
from index.config import ModelConfig
from index.retry import GiveUp, RetryPolicy, retry_after_seconds

URL = "http://127.0.0.1:9/v1/chat/completions"


def status_error(status: int, message: str = "busy", headers: dict[str, str] | None = None) -> openai.APIStatusError:
    """What the openai client raises for an HTTP error answer."""
    response = httpx.Response(status, headers=headers or {}, request=httpx.Request("POST", URL))
    return openai.APIStatusError(message, response=response, body={"error": {"message": message}})


def reply(content: str = "ok") -> Any:
    return SimpleNamespace(message=SimpleNamespace(content=content), raw={})


class Calls:
    """A coroutine factory failing with ``failures`` in turn, then answering."""

    def __init__(self, *failures: BaseException | Any) -> None:
        self.failures = list(failures)
        self.count = 0

    def __call__(self) -> Any:
        async def one() -> Any:
            self.count += 1
            if self.failures:
                failure = self.failures.pop(0)
                if isinstance(failure, BaseException):
                    raise failure
                return failure  # a malformed "reply"
            return reply()

        return one()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits ``chat`` asks for, instead of sleeping them."""
    seen: list[float] = []

    async def no_sleep(seconds: float) -> None:
        seen.append(seconds)

    monkeypatch.setattr(llm.asyncio, "sleep", no_sleep)
    return seen


def config(**kwargs: Any) -> ModelConfig:
    return ModelConfig(api_base="http://127.0.0.1:9/v1", **{"max_retries": 2, "retry_backoff_s": 1.0, **kwargs})


def run(cfg: ModelConfig, calls: Calls) -> Any:
    return asyncio.run(llm.chat(cfg, calls))


# ---------------------------------------------------------------------------- the policy itself
def test_backoff_doubles_is_capped_and_jittered():
    policy = RetryPolicy(max_retries=10, backoff_s=1.0, backoff_max_s=8.0, jitter=0.5)
    for retry, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (7, 8.0)]:
        samples = [policy.backoff(retry) for _ in range(200)]
        assert all(0.5 * base <= s <= 1.5 * base for s in samples)
        assert len(set(samples)) > 100  # jittered: clients refused together do not return in step
    assert RetryPolicy(max_retries=1, backoff_s=20.0).backoff(1) >= 10.0  # the cap never undercuts the first wait


def test_attempts_are_bounded_and_retry_after_checked_first():
    state = RetryPolicy(max_retries=2).start()
    state.begin()
    state.after_failure("server")
    state.begin()
    state.after_failure("server")
    state.begin()
    with pytest.raises(GiveUp) as stop:
        state.after_failure("server")
    assert (stop.value.reason, stop.value.attempts) == ("exhausted", 3)
    fresh = RetryPolicy(max_retries=5, retry_after_max_s=30).start()
    fresh.begin()
    with pytest.raises(GiveUp) as stop:
        fresh.after_failure("rate_limit", retry_after_s=31)
    assert (stop.value.reason, stop.value.retry_after_s, stop.value.attempts) == ("retry_after_too_long", 31, 1)


def test_retry_after_is_never_undercut():
    state = RetryPolicy(max_retries=5, backoff_s=0.1).start()
    state.begin()
    waits = [state.after_failure("rate_limit", retry_after_s=2.0) for _ in range(50)]
    assert all(2.0 <= w <= 2.5 for w in waits)
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


def test_retry_after_headers():
    assert retry_after_seconds(httpx.Headers({"Retry-After": "3"})) == 3.0
    assert retry_after_seconds({"retry-after": "1.5"}) == 1.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    now = time.time()
    date = email.utils.formatdate(now + 20, usegmt=True)
    assert 18 <= retry_after_seconds({"Retry-After": date}, now=now) <= 21
    assert retry_after_seconds({"Retry-After": email.utils.formatdate(now - 60, usegmt=True)}) == 0.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


def test_the_model_and_the_embedder_share_the_policy():
    from index.embedders import EmbedderConfig, load_embedder

    embedder = load_embedder(EmbedderConfig(model="m", backend="remote", api_base="http://127.0.0.1:9/v1",
                                            max_retries=4))
    for policy in (llm.retry_policy(config(max_retries=4)), embedder.retry_policy()):
        assert isinstance(policy, RetryPolicy)
        assert policy.max_attempts == 5 and policy.max_retries_of == {"malformed": 1}


# ---------------------------------------------------------------------------- the model client
def test_5xx_is_retried_with_growing_jittered_waits(waits):
    calls = Calls(status_error(500), status_error(503))
    response, call = run(config(), calls)
    assert response.message.content == "ok" and call.attempts == 3 == calls.count
    assert 0.5 <= waits[0] <= 1.5 and 1.0 <= waits[1] <= 3.0


def test_5xx_until_the_attempts_are_used_up_is_one_line(waits):
    calls = Calls(*[status_error(500, "overloaded")] * 5)
    with pytest.raises(ModelEndpointError, match=r"failed after 3 attempt\(s\): HTTP 500: overloaded") as err:
        run(config(), calls)
    assert calls.count == 3 and len(waits) == 2 and "\n" not in str(err.value)


def test_retry_after_is_honoured_within_its_bound(waits):
    calls = Calls(status_error(429, "slow down", {"Retry-After": "4"}), status_error(503, "queue", {"retry-after-ms": "1500"}))
    run(config(retry_after_max_s=10), calls)
    assert 4.0 <= waits[0] <= 5.0 and 1.5 <= waits[1] <= 1.9


def test_a_retry_after_beyond_the_bound_is_reported_not_awaited(waits):
    calls = Calls(status_error(429, "slow down", {"Retry-After": "3600"}))
    with pytest.raises(ModelEndpointError, match="retry after 3600 s, more than model.retry_after_max_s"):
        run(config(max_retries=5), calls)
    assert calls.count == 1 and waits == []


def test_a_malformed_reply_is_retried_once(waits):
    calls = Calls(SimpleNamespace(), SimpleNamespace(), SimpleNamespace())
    with pytest.raises(ModelEndpointError, match=r"answered 2 time\(s\) with something that is not a chat"):
        run(config(max_retries=5), calls)
    assert calls.count == 2
    assert run(config(max_retries=5), Calls(SimpleNamespace()))[1].attempts == 2


def test_a_refusal_is_not_retried(waits):
    calls = Calls(status_error(400, "temperature must be non-negative"))
    with pytest.raises(ModelRequestRejected) as err:
        run(config(), calls)
    assert calls.count == 1 and waits == [] and err.value.problem is Problem.OTHER


def test_no_retries_means_one_attempt(waits):
    with pytest.raises(ModelEndpointError, match=r"after 1 attempt"):
        run(config(max_retries=0), Calls(status_error(502)))
    assert waits == []


def test_the_deadline_bounds_each_whole_attempt(waits):
    async def hang() -> Any:
        await asyncio.Event().wait()

    with pytest.raises(ModelEndpointError, match="no whole reply within 0.05 s"):
        asyncio.run(llm.chat(config(timeout_s=0.05, max_retries=1), hang))
    assert len(waits) == 1
