"""Opening the index and its embedder in a background thread, so a query's other work (reading
the photo, importing the model client, composing the request) overlaps the slowest part of a
cold start: importing torch, loading the embedder and reading the vector store.

:class:`IndexLoading` starts at most one load at a time; whoever needs the index first waits for
it and gets the load's own error (a :class:`~index.errors.DamageRagError` is one line for the
command line), after which the next start tries again (the index may have been built since).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

__all__ = ["IndexLoading"]

logger = logging.getLogger(__name__)


class IndexLoading:
    """One background load of the index at ``index_dir`` by ``open_index`` (thread-safe)."""

    def __init__(self, open_index: Callable[[], Any], index_dir: Path) -> None:
        self._open = open_index
        self.index_dir = index_dir
        self._lock = threading.Lock()
        self._future: Future | None = None
        self.seconds: float | None = None  # how long the last successful load took

    def start(self) -> Future:
        """Start the load unless one is running or has succeeded; returns its future (idempotent).
        The load runs in a copy of the caller's ``contextvars`` (LlamaIndex keeps the active span
        there), so the spans it opens belong to the caller's span, if any."""
        with self._lock:
            if self._future is None:
                future: Future = Future()
                future.set_running_or_notify_cancel()  # a cancelled waiter must not cancel the load
                # in the starter's context: a load a query starts is part of its trace (its span)
                context = contextvars.copy_context()
                threading.Thread(target=context.run, args=(self._run, future), daemon=True,
                                 name="damage-index-load").start()
                self._future = future
            return self._future

    def _run(self, future: Future) -> None:
        started = time.perf_counter()
        try:
            index = self._open()
        except Exception as exc:  # noqa: BLE001 - kept for the first query that needs the index
            logger.debug("background load of the index at %s failed", self.index_dir, exc_info=True)
            future.set_exception(exc)
            return
        self.seconds = time.perf_counter() - started
        logger.info("index %s and its embedder loaded in %.1f s (in the background)", self.index_dir, self.seconds)
        future.set_result(index)

    def done(self) -> bool:
        """Whether a started load has finished (either way); False when none was started."""
        future = self._future
        return future is not None and future.done()

    def result(self) -> Any:
        """The index: starts the load if needed and waits for it.

        Raises:
            Exception: The load's own error (e.g. ``IndexNotFoundError``); the next call starts
                a new load.
        """
        future = self.start()
        try:
            return future.result()
        except Exception:
            with self._lock:
                if self._future is future:
                    self._future = None
            raise

    async def wait(self) -> None:
        """Wait for the started load without blocking the event loop (its error is left for
        :meth:`result`)."""
        with contextlib.suppress(Exception):  # raised by result()
            await asyncio.wrap_future(self.start())

    def description(self) -> str:
        """What a query waits for, e.g. ``loading the index (10,000 regions) and the embedder
        facebook/dinov2-base``, from the manifest (a plain phrase when it cannot be read)."""
        from index.index_dir import read_manifest

        try:
            manifest = read_manifest(self.index_dir)
            regions = int((manifest.get("counts") or {}).get("nodes_by_kind", {}).get("region", 0))
            embedder = str(manifest["embedder"]["model_id"])
        except Exception:  # noqa: BLE001 - the load itself reports what is wrong
            return f"loading the index at {self.index_dir} and its embedder"
        return f"loading the index ({regions:,} regions) and the embedder {embedder}"
