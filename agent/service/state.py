"""What every request shares: one engine, its event-loop thread, the index loading in the
background, and the gate that bounds how many questions run and wait.

The engine's queries run on a loop of their own (:class:`EngineLoop`), not on the server's:
a query decodes the photo and embeds it on the CPU between its model calls, and that work
must not stall ``/healthz``, uploads or the queue's refusals. Its model calls still overlap.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from agent.service.errors import ServiceError
from agent.service.public import Redactor

logger = logging.getLogger(__name__)

#: How often a waiting or running question checks that its caller is still there, in seconds.
_DISCONNECT_POLL_S = 0.25


class EngineLoop:
    """An event loop in a daemon thread that runs the engine's coroutines for the server's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="damage-service-engine")
        self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Await ``coro`` run on the engine's loop (cancelled there if the caller is cancelled)."""
        context = contextvars.copy_context()
        future = context.run(asyncio.run_coroutine_threadsafe, coro, self.loop)
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        """Stop the loop (pending queries are abandoned: the process is ending)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class InferenceGate:
    """At most ``max_concurrent`` questions at once and ``max_queue`` waiting; one more is a 503.

    Use as ``async with gate.slot(): ...``; the refusal is immediate, never a wait.
    """

    def __init__(self, max_concurrent: int, max_queue: int, retry_after_s: int) -> None:
        self.max_concurrent, self.max_queue, self.retry_after_s = max_concurrent, max_queue, retry_after_s
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self.running = 0
        self.waiting = 0

    def slot(self) -> _Slot:
        """A context manager holding one slot (raises :class:`ServiceError` 503 when full)."""
        if self.running + self.waiting >= self.max_concurrent + self.max_queue:
            raise ServiceError(
                503, f"The service is busy: {self.running} question(s) running and {self.waiting} waiting "
                     f"(service.max_concurrent {self.max_concurrent}, service.max_queue {self.max_queue}); "
                     f"retry in {self.retry_after_s} s.",
                code="queue_full", headers={"Retry-After": str(self.retry_after_s)})
        return _Slot(self)


class _Slot:
    def __init__(self, gate: InferenceGate) -> None:
        self.gate = gate
        gate.waiting += 1  # counted from the moment it was admitted, so the next check sees it
        self._waiting = True
        self._entered = False

    def abandon(self) -> None:
        """Stop counting this slot as waiting (a question cancelled before it entered)."""
        if self._waiting:
            self._waiting = False
            self.gate.waiting -= 1

    async def __aenter__(self) -> _Slot:
        try:
            await self.gate._semaphore.acquire()
        finally:
            self.abandon()
        self.gate.running += 1
        self._entered = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._entered:
            self.gate.running -= 1
            self.gate._semaphore.release()


@dataclass
class IndexState:
    """Where the background load of the index stands."""

    loaded: bool = False
    loading: bool = False
    error: BaseException | None = None
    seconds: float | None = None


class IndexLoader:
    """Opens ``engine.index`` in a background thread at start-up, so the service listens at once.

    Uses ``engine.start_loading()`` when the engine has one; either way a thread waits on
    ``engine.index`` (which loads once, under the engine's lock) to learn the outcome. A load
    that failed (no index yet) is retried by :meth:`ensure`, e.g. from ``/readyz``.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.state = IndexState()
        self._lock = threading.Lock()
        self._attempt: Future | None = None  # the running or last load, resolved with None either way

    def ensure(self) -> Future:
        """Start loading unless loaded or loading already; returns the attempt (done when it ends)."""
        with self._lock:
            if self._attempt is not None and (self.state.loaded or self.state.loading):
                return self._attempt
            self.state.loading = True
            attempt: Future = Future()
            attempt.set_running_or_notify_cancel()  # a waiter that gives up must not cancel the load
            self._attempt = attempt
        threading.Thread(target=self._load, args=(attempt,), daemon=True, name="damage-service-index").start()
        return attempt

    def _load(self, attempt: Future) -> None:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            if hasattr(self.engine, "start_loading"):
                self.engine.start_loading()
            _ = self.engine.index
        except Exception as exc:  # noqa: BLE001 - kept and reported by /readyz and the queries
            error = exc
            logger.warning("the index could not be loaded: %s", exc)
        with self._lock:
            self.state = IndexState(loaded=error is None, loading=False, error=error,
                                    seconds=round(time.perf_counter() - started, 3))
        if error is None:
            logger.info("index %s loaded in %.1f s", self.engine.index_dir, self.state.seconds)
        attempt.set_result(None)

    async def wait(self) -> None:
        """Wait for the index without holding a thread; raises its load error (a new attempt is
        made after a failure)."""
        if self.state.loaded:
            return
        await asyncio.wrap_future(self.ensure())
        if not self.state.loaded and self.state.error is not None:
            raise self.state.error


class ServiceState:
    """The engine and what goes with it, one per app."""

    def __init__(self, engine: Any) -> None:
        service = engine.config.service
        self.engine = engine
        self.config = engine.config
        self.loop = EngineLoop()
        self.gate = InferenceGate(service.max_concurrent, service.max_queue, service.retry_after_s)
        self.index = IndexLoader(engine)
        self.redact = Redactor.for_engine(engine)
        self.started = time.time()

    @property
    def traces_dir(self) -> Any:
        """Where the engine writes its traces."""
        return self.config.agent.traces_dir

    def needs_index(self, mode: str | None) -> bool:
        """Whether a question in ``mode`` (None: the config's) retrieves examples."""
        return (mode or self.config.agent.mode) != "zero-shot"

    async def ask(self, photo: bytes, question: str, *, mode: str | None, history: list[Any] | None = None,
                  disconnected: Callable[[], Awaitable[bool]] | None = None) -> Any:
        """Answer one question under the gate (503 when full), on the engine's loop.

        ``disconnected`` (e.g. ``request.is_disconnected``) is polled while the question waits
        or runs: a caller that went away gives its slot back at once (its query is cancelled)
        instead of holding the queue for an answer nobody reads.
        """
        slot = self.gate.slot()  # refused here, at once, when the queue is full

        async def answer() -> Any:
            async with slot:
                if self.needs_index(mode):
                    await self.index.wait()
                return await self.loop.run(self.engine.aquery(photo, question, mode=mode, history=history))

        task = asyncio.ensure_future(answer())
        task.add_done_callback(lambda _: slot.abandon())  # cancelled before it ever waited
        if disconnected is None:
            return await task
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=_DISCONNECT_POLL_S)
                if done:
                    return task.result()
                if await disconnected():
                    logger.info("the caller went away; its question is cancelled")
                    task.cancel()
                    raise ServiceError(499, "The client closed the connection before the answer.",
                                       code="client_closed")
        finally:
            if not task.done():
                task.cancel()

    def close(self) -> None:
        """Stop the engine's loop."""
        self.loop.stop()
