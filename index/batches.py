"""The embedding side of a build: the model loading in the background, the embed thread, torch's threads.

The build's decode threads hand rendered photos to an :class:`EmbedWorker` through a bounded
queue; the worker embeds their crops in batches, in a thread of its own, with the model a
:class:`ModelLoader` loads meanwhile, and adds the nodes to the store. :class:`EmbedThreads`
decides how many cores torch takes, and :class:`StageClock` adds up the seconds of each stage.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from index.config import DomainConfig
from index.imports import LLAMA_INDEX, import_once
from index.regions.cut import RenderedCrop

logger = logging.getLogger(__name__)

#: Crops per forward pass on a CUDA GPU when ``embedder.batch_size`` is not set: a GPU needs
#: larger batches than a CPU to stay busy (the CPU default, 16, already saturates a CPU).
GPU_BATCH_SIZE = 64


def batch_size_for_device(config: Any, cuda: bool) -> Any:
    """``config`` (an ``EmbedderConfig``) with batches sized for the device it will run on.

    An explicitly configured ``batch_size`` is kept; otherwise a local model that will run on
    CUDA (``device`` auto or cuda, a GPU present) gets :data:`GPU_BATCH_SIZE`. Half precision on
    the GPU is the embedder's own choice (``half_precision_on_gpu``).
    """
    if "batch_size" in config.model_fields_set or config.backend != "local" or not cuda:
        return config
    if config.device not in ("auto", "cuda"):
        return config
    return config.model_copy(update={"batch_size": max(config.batch_size, GPU_BATCH_SIZE)})


class StageClock:
    """Seconds per stage of a build, added up over every thread that ran the stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to ``stage``."""
        with self._lock:
            self.seconds[stage] += seconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as part of stage ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def to_dict(self) -> dict[str, float]:
        """The seconds per stage, rounded, in the order the stages first ran."""
        with self._lock:
            return {name: round(value, 3) for name, value in self.seconds.items()}


class ModelLoader:
    """Loads the embedder in a background thread, so reading and decoding need not wait for it.

    Two threads importing LlamaIndex at once can meet its import cycles half done ("cannot
    import name ... from partially initialized module"), and the build's main thread needs it
    for the store. So both import it through :func:`index.imports.import_once`: the loader
    imports torch first, while the main thread imports LlamaIndex (:meth:`shared_imports`),
    and waits for that import, if it is still under way, before it loads the embedder.
    """

    def __init__(self, config: DomainConfig, embedder: Any = None, clock: StageClock | None = None) -> None:
        self.config = config
        self._embedder = embedder
        self._future: Future | None = None
        self.clock = clock or StageClock()

    def shared_imports(self) -> None:
        """Import what the main thread and the loader share (LlamaIndex), in the calling thread."""
        with self.clock.stage("import_llama_index"):
            import_once(LLAMA_INDEX)

    def start(self) -> None:
        """Begin loading (once)."""
        if self._embedder is None and self._future is None:
            loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-embedder")
            self._future = loader.submit(self._load)
            loader.shutdown(wait=False)

    def _load(self) -> Any:
        with self.clock.stage("model_load"):
            config = self.config.embedder
            if config.backend == "local":
                import torch  # (while the main thread imports LlamaIndex)

                config = batch_size_for_device(config, torch.cuda.is_available())
            import_once(LLAMA_INDEX)  # done by the main thread meanwhile, or under way there: waits
            from index.embedders import load_embedder

            return load_embedder(config)

    def ready(self) -> bool:
        """Whether the embedder is loaded (or failed to)."""
        return self._embedder is not None or (self._future is not None and self._future.done())

    def get(self) -> Any:
        """The embedder, waiting for it if needed (re-raises a loading error)."""
        if self._embedder is None:
            self.start()
            assert self._future is not None
            self._embedder = self._future.result()
        return self._embedder


class EmbedThreads:
    """How many cores torch takes: all of them when the model is the bottleneck, else what decoding leaves.

    On a small CPU torch's threads and the decode threads compete: a tiny model run on every
    core spends its time waiting for the cores the decoders hold (several times slower than on
    one), while a real-size model left one core runs at half speed. So the first crop is
    embedded on the cores the decoders leave and timed: if one photo's crops take longer to
    embed that way than one photo takes to decode and cut, the embedder is the bottleneck and
    torch gets every core (the decoders then wait on the bounded queue and cost little).
    """

    def __init__(self, workers: int) -> None:
        self.cores = os.cpu_count() or 1
        self.threads = max(1, self.cores - workers)
        self.previous: int | None = None
        self.bottleneck: str | None = None

    def apply(self, threads: int | None = None) -> None:
        """Set torch's threads (to ``threads``, default the decoders' leftover), when the embedder runs on torch."""
        if threads is not None:
            self.threads = threads
        torch = sys.modules.get("torch")
        if torch is None:
            return
        if self.previous is None:
            self.previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)

    def decide(self, embed_s_per_crop: float, crops_per_photo: float, produce_s_per_photo: float) -> None:
        """Choose torch's threads from the first measured crop and the decoders' pace so far."""
        embed_per_photo = embed_s_per_crop * max(1.0, crops_per_photo)
        self.bottleneck = "embed" if produce_s_per_photo > 0 and embed_per_photo > produce_s_per_photo else "decode"
        if self.bottleneck == "embed":
            self.apply(self.cores)
        logger.info("embedding %.0f ms/photo on %d thread(s), decoding and cutting %.0f ms/photo: %s-bound, "
                    "torch uses %d thread(s)", embed_per_photo * 1000, self.threads, produce_s_per_photo * 1000,
                    self.bottleneck, self.threads)

    def restore(self) -> None:
        """Give torch its threads back."""
        if self.previous is not None:
            import torch

            torch.set_num_threads(self.previous)


class EmbedWorker:
    """Embeds queued photos' crops in batches, in its own thread, and adds the nodes to the store.

    ``put`` blocks while ``limit()`` photos wait (the bounded queue that keeps memory flat and
    lets a slow embedder hold the decoders back); ``drain`` returns once everything queued is
    in the store; ``close`` ends the thread. An error in the thread is re-raised by the next
    ``put``, ``drain`` or ``close``.
    """

    def __init__(self, model: ModelLoader, store: Any, dataset: str, batch_size: int, threads: EmbedThreads,
                 clock: StageClock, limit: Callable[[], int], produce_pace: Callable[[], float]) -> None:
        self.model, self.store, self.dataset = model, store, dataset
        self.batch_size, self.threads, self.clock = batch_size, threads, clock
        self.limit, self.produce_pace = limit, produce_pace
        self.done: list[tuple[str, str, list[str]]] = []  # (image id, signature, node ids) in the store
        self.embedded = 0
        self.embed_started: float | None = None
        self._queue: list[Any] = []
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._closed = self._aborted = False
        self._flush_requested = 0
        self._flushed = 0
        self._thread = threading.Thread(target=self._run, name="embed", daemon=True)
        self._thread.start()

    # ---- producer side ---------------------------------------------------------------------
    def put(self, image_id: str, signature: str, rendered: list[RenderedCrop]) -> None:
        """Queue one photo's rendered crops, waiting while the queue is full."""
        with self._cond:
            if len(self._queue) >= self.limit() and self._error is None:
                with self.clock.stage("decode_waits_for_embed"):
                    while len(self._queue) >= self.limit() and self._error is None:
                        self._cond.wait(0.5)
            self._raise()
            self._queue.append((image_id, signature, rendered))
            self._cond.notify_all()

    def drain(self) -> list[tuple[str, str, list[str]]]:
        """Embed everything queued so far and return (and forget) the photos now in the store."""
        with self._cond:
            self._flush_requested += 1
            ticket = self._flush_requested
            self._cond.notify_all()
            while self._flushed < ticket and self._error is None:
                self._cond.wait(0.5)
            self._raise()
            done, self.done = self.done, []
        return done

    def close(self) -> None:
        """Stop the thread (after what is queued, if it is still healthy)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop the thread without embedding what is still queued (after an error or an interrupt)."""
        with self._cond:
            self._queue.clear()
            self._closed = self._aborted = True
            self._cond.notify_all()
        # A forward pass under way is not waited for long (a real-size model's batch takes
        # seconds on a CPU): the thread stops after it and nothing after an error is persisted.
        self._thread.join(timeout=1.0)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    # ---- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        pending: list[tuple[str, str, list[RenderedCrop]]] = []
        try:
            while True:
                with self._cond:
                    def idle() -> bool:
                        return not self._queue and self._flushed >= self._flush_requested and not self._closed

                    if idle():
                        with self.clock.stage("embed_waits_for_input"):
                            while idle():
                                self._cond.wait()
                    # Take one batch's worth: what stays queued counts against the producer's bound.
                    while self._queue and sum(len(r) for _, _, r in pending) < self.batch_size:
                        pending.append(self._queue.pop(0))
                    flush = self._flushed < self._flush_requested and not self._queue
                    ticket, closing = self._flush_requested, self._closed and not self._queue
                    self._cond.notify_all()
                if self._aborted:
                    return
                while sum(len(r) for _, _, r in pending) >= self.batch_size or (pending and (flush or closing)):
                    pending = self._embed_some(pending)
                if flush or closing:
                    with self._cond:
                        self._flushed = max(self._flushed, ticket)
                        self._cond.notify_all()
                    if closing:
                        return
        except BaseException as exc:  # handed to the producer
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _embed_some(self, pending: list[tuple[str, str, list[RenderedCrop]]]) -> list[tuple[str, str, list[RenderedCrop]]]:
        """Embed whole photos from the head of ``pending`` (about one batch); return the rest."""
        take, crops = 0, 0
        while take < len(pending) and (crops < self.batch_size or take == 0):
            crops += len(pending[take][2])
            take += 1
        head, rest = pending[:take], pending[take:]
        batch = [c for _, _, rendered in head for c in rendered]
        if batch:
            if not self.model.ready():
                with self.clock.stage("embed_waits_for_model"):
                    embedder = self.model.get()
            embedder = self.model.get()
            self.batch_size = getattr(getattr(embedder, "embedder_config", None), "batch_size", self.batch_size)
            with self.clock.stage("embed"):
                vectors = self._vectors(embedder, batch, len(head))
            with self.clock.stage("store_add"):
                nodes = []
                for rendered, vector in zip(batch, vectors, strict=True):
                    node = rendered.crop.to_image_node(self.dataset, image_path=rendered.relative_path)
                    node.embedding = vector.tolist()
                    nodes.append(node)
                self.store.add(nodes)
            self.embedded += len(batch)
        with self._cond:
            self.done.extend((image_id, signature, [c.crop.node_id for c in rendered]) for image_id, signature, rendered in head)
        return rest

    def _vectors(self, embedder: Any, batch: list[RenderedCrop], photos: int) -> Any:
        import numpy as np

        images = [c.image for c in batch]
        if self.embed_started is not None or self.threads.bottleneck is not None:
            return embedder.embed_images(images)
        self.embed_started = time.perf_counter()
        self.threads.apply()
        # One crop warms the model up; the next, timed on the cores decoding leaves, decides
        # torch's threads for the rest of the build.
        parts = [embedder.embed_images(images[:1])]
        probe = images[1:2] or images[:1]
        started = time.perf_counter()
        timed = embedder.embed_images(probe)
        self.threads.decide(time.perf_counter() - started, len(batch) / max(1, photos), self.produce_pace())
        if len(images) > 1:
            parts += [timed, embedder.embed_images(images[2:])] if len(images) > 2 else [timed]
        return np.concatenate(parts, axis=0)
