"""The one retry policy of the project's HTTP clients: the model endpoint and the remote embedder.

Both clients (``agent.llm`` over the openai client, ``index.embedders.remote`` over httpx) turn
every failed attempt into a retry decision here, so they wait, jitter and give up alike:

- **bounded attempts**: ``max_retries`` after the first attempt, and at most
  ``max_retries_of[kind]`` retries of one kind of failure (a malformed reply is retried once:
  a server that answers HTML twice will answer HTML a third time);
- **exponential backoff with jitter**: ``backoff_s · 2ⁿ``, capped at ``backoff_max_s``, times a
  uniform factor in [1 − jitter, 1 + jitter], so many clients refused at once do not come back
  in step;
- **Retry-After honoured up to a bound**: a server that says when to come back (429, 503) is
  waited for — never earlier than it asked, plus a little jitter — unless it asks for more than
  ``retry_after_max_s``; then the client gives up at once and says so instead of hanging.

The openai client's own retries (and LlamaIndex's) are switched off by the model client: they
would multiply with these, cannot be bounded by ``retry_after_max_s`` and know nothing of
malformed replies. This module imports nothing of ``agent``: the index side uses it too.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DEFAULT_RETRY_AFTER_MAX_S", "GiveUp", "RetryPolicy", "RetryState", "retry_after_seconds"]

logger = logging.getLogger(__name__)

#: The longest Retry-After honoured when the caller's config has no bound of its own.
DEFAULT_RETRY_AFTER_MAX_S = 30.0
#: The longest backoff between two attempts when the server does not say.
DEFAULT_BACKOFF_MAX_S = 8.0

GiveUpReason = Literal["exhausted", "retry_after_too_long", "repeated"]


class GiveUp(Exception):
    """No further attempt: why (``reason``), after how many ``attempts``, and the server's
    ``retry_after_s`` when that was the reason. The caller turns it into its own error."""

    def __init__(self, reason: GiveUpReason, attempts: int, retry_after_s: float | None = None) -> None:
        super().__init__(f"{reason} after {attempts} attempt(s)")
        self.reason: GiveUpReason = reason
        self.attempts = attempts
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one request.

    Attributes:
        max_retries: Retries after the first attempt (0: one attempt only).
        backoff_s: Wait before the first retry when the server does not say; doubles per retry.
        backoff_max_s: Longest such wait (never below ``backoff_s``).
        retry_after_max_s: Longest ``Retry-After`` honoured; a longer one gives up at once.
        jitter: Relative spread of the backoff (0.5: between half and one and a half of it).
        max_retries_of: Fewer retries for some kinds of failure (``{"malformed": 1}``).
    """

    max_retries: int
    backoff_s: float = 0.5
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S
    retry_after_max_s: float = DEFAULT_RETRY_AFTER_MAX_S
    jitter: float = 0.5
    max_retries_of: Mapping[str, int] = field(default_factory=lambda: {"malformed": 1})

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_s < 0 or self.retry_after_max_s < 0:
            raise ValueError("max_retries, backoff_s and retry_after_max_s must not be negative")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    @property
    def max_attempts(self) -> int:
        """Attempts in all, the first included."""
        return self.max_retries + 1

    def backoff(self, retry: int) -> float:
        """The jittered wait before retry number ``retry`` (1 for the first retry)."""
        cap = max(self.backoff_max_s, self.backoff_s)
        base = min(cap, self.backoff_s * 2 ** max(0, retry - 1))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    def start(self) -> RetryState:
        """The state of one request's attempts (one per request: it counts them)."""
        return RetryState(self)


@dataclass
class RetryState:
    """The attempts of one request under a :class:`RetryPolicy`."""

    policy: RetryPolicy
    attempts: int = 0
    _kinds: Counter[str] = field(default_factory=Counter)

    def begin(self) -> int:
        """Count a new attempt; returns its number (1 for the first)."""
        self.attempts += 1
        return self.attempts

    def after_failure(self, kind: str = "", retry_after_s: float | None = None) -> float:
        """The seconds to wait before the next attempt, after a retryable failure of ``kind``.

        Args:
            kind: The kind of failure (``"malformed"``, ``"server"``...), for ``max_retries_of``.
            retry_after_s: The server's ``Retry-After``, in seconds, if it sent one.

        Raises:
            GiveUp: When the server asks to wait longer than ``retry_after_max_s``
                (``retry_after_too_long``, checked first: no attempt would help), the attempts
                are used up (``exhausted``) or this kind failed too often (``repeated``).
        """
        policy, attempts = self.policy, max(1, self.attempts)
        self._kinds[kind] += 1
        if retry_after_s is not None and retry_after_s > policy.retry_after_max_s:
            raise GiveUp("retry_after_too_long", attempts, retry_after_s)
        if attempts >= policy.max_attempts:
            raise GiveUp("exhausted", attempts, retry_after_s)
        cap = policy.max_retries_of.get(kind)
        if cap is not None and self._kinds[kind] > cap:
            raise GiveUp("repeated", attempts, retry_after_s)
        backoff = policy.backoff(attempts)
        if retry_after_s is None:
            return backoff
        # never earlier than the server asked; a little later, so its clients do not return at once
        return retry_after_s + random.uniform(0, 0.25 * max(retry_after_s, policy.backoff_s))


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """The wait a response's headers ask for, in seconds (None when they ask for none).

    Reads ``retry-after-ms`` (what OpenAI's servers send), then ``Retry-After`` as seconds or as
    an HTTP date. ``headers`` is any mapping with ``get`` (httpx headers are case-insensitive; a
    plain dict is looked up in both cases).
    """
    if headers is None or not hasattr(headers, "get"):
        return None

    def header(name: str) -> Any:
        return headers.get(name) or headers.get(name.title())

    try:
        millis = header("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000)
    except (TypeError, ValueError):
        pass
    value = header("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        logger.debug("unreadable Retry-After header %r", value)
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
