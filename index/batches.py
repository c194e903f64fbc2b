"""The embedding side of a build: the model loading in the background, batches of crops, torch's threads.

The build's decode threads hand rendered photos to a :class:`Batcher`, which embeds their crops
in batches with the model a :class:`ModelLoader` loads meanwhile and adds the nodes to the store.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from index.config import DomainConfig
from index.regions.cut import RenderedCrop


class ModelLoader:
    """Loads the embedder in a background thread, so reading and decoding need not wait for it."""

    def __init__(self, config: DomainConfig, embedder: Any = None) -> None:
        self.config = config
        self._embedder = embedder
        self._future: Future | None = None

    def start(self) -> None:
        """Begin loading (once)."""
        if self._embedder is None and self._future is None:
            from index.embedders import load_embedder

            loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-embedder")
            self._future = loader.submit(load_embedder, self.config.embedder)
            loader.shutdown(wait=False)

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


class Batcher:
    """Collects rendered photos and embeds their crops in batches."""

    def __init__(self, model: ModelLoader, store: Any, dataset: str, batch_size: int) -> None:
        self.model, self.store, self.dataset = model, store, dataset
        self.batch_size = batch_size
        self.pending: list[tuple[str, str, list[RenderedCrop]]] = []  # (image id, signature, crops)
        self.done: list[tuple[str, str, list[str]]] = []
        self.threads: EmbedThreads | None = None

    def add(self, image_id: str, signature: str, rendered: list[RenderedCrop]) -> None:
        """Queue one photo's rendered crops; embed a batch once enough wait and the model is ready."""
        self.pending.append((image_id, signature, rendered))
        if self.model.ready() and sum(len(r) for _, _, r in self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Embed every queued crop now and add the nodes to the store."""
        crops = [c for _, _, rendered in self.pending for c in rendered]
        if crops:
            embedder = self.model.get()
            if self.threads is not None:
                self.threads.apply()
            vectors = embedder.embed_images([c.image for c in crops])
            nodes = []
            for rendered, vector in zip(crops, vectors, strict=True):
                node = rendered.crop.to_image_node(self.dataset, image_path=rendered.relative_path)
                node.embedding = vector.tolist()
                nodes.append(node)
            self.store.add(nodes)
        for image_id, signature, rendered in self.pending:
            self.done.append((image_id, signature, [c.crop.node_id for c in rendered]))
        self.pending = []


class EmbedThreads:
    """Give torch the cores the decode threads leave (it competes with them otherwise)."""

    def __init__(self, workers: int) -> None:
        self.threads = max(1, (os.cpu_count() or 1) - workers)
        self.previous: int | None = None

    def apply(self) -> None:
        """Limit torch's threads (once), when the embedder runs on torch."""
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and self.previous is None:
            self.previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)

    def restore(self) -> None:
        """Give torch its threads back."""
        if self.previous is not None:
            import torch

            torch.set_num_threads(self.previous)
