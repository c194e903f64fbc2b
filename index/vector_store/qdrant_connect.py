"""Connecting to Qdrant: the lazy import of qdrant-client, one client per location, clear errors.

qdrant-client is the optional ``qdrant`` extra: it is imported here, on first use, so the FAISS
backend never needs it. Local mode (``index.qdrant.path``) locks its folder to one client, so
every store of a process that names the same folder shares one client; ``":memory:"`` gives
each store its own. A server (``index.qdrant.url``) gets one client per address and key.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from index.errors import DamageRagError
from index.vector_store.config import QdrantConfig

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

logger = logging.getLogger(__name__)

_clients: dict[tuple[str, ...], Any] = {}
_lock = threading.Lock()


class QdrantBackendError(DamageRagError, RuntimeError):
    """The qdrant backend cannot be used: qdrant-client missing, server unreachable or refusing."""


def require_qdrant() -> Any:
    """The ``qdrant_client`` module, or one sentence saying how to install it."""
    try:
        import qdrant_client
    except ImportError:
        raise QdrantBackendError(
            "index.backend 'qdrant' needs qdrant-client: pip install damage-rag[qdrant]"
        ) from None
    return qdrant_client


def server_url(config: QdrantConfig) -> str | None:
    """The server's URL (``url_env``'s variable first, if set), or None for local mode."""
    return (os.environ.get(config.url_env) if config.url_env else None) or config.url


def location(config: QdrantConfig) -> str:
    """Where the collection lives, for messages: the server's URL or the local folder."""
    return server_url(config) or f"local folder {config.path}"


def connect(config: QdrantConfig) -> QdrantClient:
    """The client for ``config``'s location (shared by the stores of this process)."""
    qdrant_client = require_qdrant()
    url = server_url(config)
    if url is None:
        if config.path is None:
            raise QdrantBackendError("index.qdrant needs path (local mode) or url (a server)")
        if config.path == ":memory:":
            return qdrant_client.QdrantClient(location=":memory:")
        key: tuple[str, ...] = ("path", os.path.realpath(config.path))
    else:
        api_key = os.environ.get(config.api_key_env) or None
        key = ("url", url, api_key or "", str(config.timeout_s))
    with _lock:
        client = _clients.get(key)
        if client is None:
            try:
                if key[0] == "path":
                    os.makedirs(key[1], exist_ok=True)
                    client = qdrant_client.QdrantClient(path=key[1])
                else:
                    client = qdrant_client.QdrantClient(url=url, api_key=api_key, timeout=config.timeout_s)
            except (OSError, RuntimeError, ValueError) as exc:
                raise QdrantBackendError(f"cannot open Qdrant at {location(config)}: {exc}") from exc
            if not _clients:
                atexit.register(close_clients)  # before interpreter teardown, which makes closing noisy
            _clients[key] = client
    return client


def server_call(config: QdrantConfig, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, with a refused or unreachable server turned into one sentence."""
    try:
        return call(*args, **kwargs)
    except DamageRagError:
        raise
    except Exception as exc:  # httpx/grpc/qdrant errors have no common base but Exception
        if type(exc).__module__.startswith(("httpx", "httpcore", "qdrant_client", "grpc")):
            raise QdrantBackendError(f"Qdrant at {location(config)} failed to {what}: {exc}") from exc
        raise


def close_clients() -> None:
    """Close every shared client (tests; a process that is done with its stores)."""
    with _lock:
        for client in _clients.values():
            try:
                client.close()
            except Exception:  # closing is best effort
                logger.debug("closing a Qdrant client failed", exc_info=True)
        _clients.clear()
