"""The model endpoint as the command lines meet it: a quick look before the slow work, and what
to do when nobody answers.

An unreachable endpoint costs a query its whole set-up first (the index, the embedder) and then
its retries; ``ask`` looks first: a TCP connection to ``model.api_base`` that is refused, or
a host name that does not resolve, or no connection within a few seconds, ends in one line at
once. Only that: whatever the server then answers is the agent's business (``agent.llm``).
"""

from __future__ import annotations

import socket
import urllib.request
from urllib.parse import urlsplit

from agent.endpoint_errors import UNREACHABLE_HINT, ModelEndpointError, Problem, ServerAnswer
from index.config import ModelConfig

#: Longest wait for the TCP connection of :func:`check_reachable`, in seconds.
CONNECT_TIMEOUT_S = 5.0


def with_hint(exc: ModelEndpointError, unreachable: bool = False) -> ModelEndpointError:
    """``exc``, its line ending with what to do when the endpoint is unreachable (its problem, or
    ``unreachable``, says so); else ``exc`` as it is."""
    if not (unreachable or exc.problem is Problem.UNREACHABLE) or UNREACHABLE_HINT in str(exc):
        return exc
    return ModelEndpointError(f"{str(exc).rstrip()} {UNREACHABLE_HINT}", exc.answer)


def _through_proxy(scheme: str, host: str) -> bool:
    """Whether httpx would go through a proxy to ``host`` (then a direct look proves nothing)."""
    proxies = urllib.request.getproxies()
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(host)


def check_reachable(config: ModelConfig) -> None:
    """Raise at once if nothing listens at ``config.api_base``.

    Raises:
        ModelEndpointError: (:attr:`Problem.UNREACHABLE`) The connection was refused, the host
            name does not resolve, or no connection came within :data:`CONNECT_TIMEOUT_S`; the
            message names the endpoint and says what to do.
    """
    parts = urlsplit(config.api_base)
    scheme = (parts.scheme or "http").lower()
    host = parts.hostname
    if not host or scheme not in ("http", "https") or _through_proxy(scheme, host):
        return  # an odd URL or a proxy: let the client and its error contract deal with it
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return
    timeout = min(CONNECT_TIMEOUT_S, config.timeout_s)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except socket.gaierror as exc:
        why = f"the host name {host} does not resolve ({exc.strerror or exc})"
    except TimeoutError:
        why = f"no connection to {host}:{port} within {timeout:g} s"
    except OSError as exc:
        why = f"cannot connect to {host}:{port} ({exc.strerror or exc})"
    answer = ServerAnswer(Problem.UNREACHABLE, None, why)
    raise with_hint(ModelEndpointError(f"The model endpoint {config.api_base} is unreachable: {why}.", answer))
