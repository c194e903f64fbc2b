"""The peer of the indexing benchmark: LlamaIndex's own multimodal ingestion, with the same embedder.

``MultiModalVectorStoreIndex.from_documents`` over the same photos as ``ImageDocument``\\ s, the
project's embedder passed as its ``image_embed_model`` (every project embedder *is* a LlamaIndex
``MultiModalEmbedding``: :class:`~index.embedders.base.VisualEmbedder`), then
``storage_context.persist``. That is what a LlamaIndex user writes: one whole-photo vector per
photo, each photo read whole and decoded at full resolution inside the embedder, one thread.
It runs in a child process of its own (``python -m index.bench peer-child JSON``), so its peak
memory is its own.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any


def llama_index_peer(config_path: str, dataset: str, model: str, photos: int,
                     overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ingest the first ``photos`` photos of ``dataset`` the LlamaIndex way and time it.

    Args:
        config_path: The domain YAML (its dataset reader lists the same photos the build indexes).
        dataset: The dataset folder.
        model: The local model directory the embedder loads.
        photos: How many photos.
        overrides: Further config overrides (``embedder.device``, ``embedder.batch_size``).

    Returns:
        ``photos``, ``vectors``, ``seconds`` (model load, ingestion and persist),
        ``model_load_s``, ``ingest_s``, ``persist_s``.
    """
    started = time.perf_counter()
    from index.config import apply_overrides, load_config
    from index.inspection import plan_dataset

    config = apply_overrides(load_config(config_path),
                             {"dataset.root": dataset, "embedder.model": model, **(overrides or {})})
    scan, _ = plan_dataset(config)
    records = scan.records[:photos]
    scan_s = time.perf_counter() - started

    from llama_index.core import StorageContext
    from llama_index.core.indices import MultiModalVectorStoreIndex
    from llama_index.core.schema import ImageDocument

    from index.embedders import load_embedder

    loading = time.perf_counter()
    embedder = load_embedder(config.embedder)
    load_s = time.perf_counter() - loading

    documents = [ImageDocument(image_path=str(r.image_path), metadata={"image_id": r.image_id}) for r in records]
    ingesting = time.perf_counter()
    index = MultiModalVectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(), embed_model=embedder,
        image_embed_model=embedder, show_progress=False)
    ingest_s = time.perf_counter() - ingesting
    with tempfile.TemporaryDirectory(prefix="peer-index-") as persist_dir:
        persisting = time.perf_counter()
        index.storage_context.persist(persist_dir=persist_dir)
        persist_s = time.perf_counter() - persisting
    vectors = len(index.image_vector_store.to_dict().get("embedding_dict", {})) if hasattr(
        index.image_vector_store, "to_dict") else len(records)
    return {
        "photos": len(records),
        "vectors": vectors,
        "seconds": time.perf_counter() - started,
        "scan_s": scan_s,
        "model_load_s": load_s,
        "ingest_s": ingest_s,
        "persist_s": persist_s,
    }
