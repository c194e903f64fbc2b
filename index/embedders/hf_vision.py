"""Hugging Face vision encoders: SigLIP / SigLIP2 and CLIP (image + text), DINOv2 (image only)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from PIL import Image

from index.embedders.config import EmbedderError
from index.embedders.local import LocalEmbedder, accepted_kwargs, pooled_features

logger = logging.getLogger(__name__)


def _to_numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


class ContrastiveEmbedder(LocalEmbedder):
    """SigLIP, SigLIP2 and CLIP: image and text towers projected into one space.

    Images go through the model's image processor and ``get_image_features``; texts through its
    tokenizer and ``get_text_features``. SigLIP texts are lower-cased and padded to the full
    text length (``padding="max_length"``), as the models were trained; CLIP texts are padded to
    the longest in the batch and truncated to the model's context (77 tokens).
    """

    _image_processor: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _tokenizer_error: str | None = PrivateAttr(default=None)
    _text_max_length: int = PrivateAttr(default=64)

    @classmethod
    def class_name(cls) -> str:
        return "ContrastiveEmbedder"

    def _setup(self, model_dir: Path) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer

        model = self._load_model(model_dir)
        if not hasattr(model, "get_image_features"):
            raise EmbedderError(
                f"Could not load embedder '{self.embedder_config.model}': {type(model).__name__} "
                f"has no get_image_features, so it is not a {self.family} image-text model."
            )
        self._model = model
        self._image_processor = AutoImageProcessor.from_pretrained(str(model_dir))
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        except Exception as exc:  # image embedding still works without a tokenizer
            self._tokenizer_error = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "No usable tokenizer in %s (%s): text embedding disabled.", model_dir, exc
            )
        text_config = getattr(model.config, "text_config", None)
        self._text_max_length = int(getattr(text_config, "max_position_embeddings", 64) or 64)
        self._native = self._probe_dim()

    def _probe_dim(self) -> int:
        import torch

        cfg = self._model.config
        projection = getattr(cfg, "projection_dim", None)
        if self.family == "clip" and projection:
            return int(projection)
        vision = getattr(cfg, "vision_config", None)
        hidden = getattr(vision, "hidden_size", None)
        if hidden:
            return int(hidden)
        with torch.inference_mode():  # pragma: no cover - unusual configs only
            return int(self._encode_images([Image.new("RGB", (32, 32))]).shape[1])

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        inputs = self._image_processor(images=images, return_tensors="pt")
        inputs = accepted_kwargs(self._model.get_image_features, self._to_device(inputs))
        with torch.inference_mode():
            return _to_numpy(pooled_features(self._model.get_image_features(**inputs)))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        if self._tokenizer is None:
            raise EmbedderError(
                f"Embedder '{self.embedder_config.model}' has no usable tokenizer "
                f"({self._tokenizer_error}), so it cannot embed text."
            )
        if self.family == "siglip":
            encoded = self._tokenizer(
                [t.lower() for t in texts],
                padding="max_length",
                truncation=True,
                max_length=self._text_max_length,
                return_tensors="pt",
            )
        else:
            encoded = self._tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self._text_max_length,
                return_tensors="pt",
            )
        inputs = accepted_kwargs(self._model.get_text_features, self._to_device(encoded))
        with torch.inference_mode():
            return _to_numpy(pooled_features(self._model.get_text_features(**inputs)))


class Dinov2Embedder(LocalEmbedder):
    """DINOv2 (with or without registers): image-only self-supervised features.

    The embedding is the class token of the final, layer-normalised hidden state
    (``last_hidden_state[:, 0]``, which is also what transformers returns as ``pooler_output``;
    it is ``x_norm_clstoken`` in the original code). That is the global descriptor DINOv2's own
    k-NN and instance-retrieval evaluations use; the mean of the patch tokens is meant for dense
    tasks and linear probes (concatenated with the class token), not for nearest-neighbour search.
    """

    _image_processor: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "Dinov2Embedder"

    def _setup(self, model_dir: Path) -> None:
        from transformers import AutoImageProcessor

        self._model = self._load_model(model_dir)
        self._image_processor = AutoImageProcessor.from_pretrained(str(model_dir))
        self._native = int(self._model.config.hidden_size)

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        inputs = self._image_processor(images=images, return_tensors="pt")
        inputs = accepted_kwargs(self._model.forward, self._to_device(inputs))
        with torch.inference_mode():
            output = self._model(**inputs)
        return _to_numpy(output.last_hidden_state[:, 0])

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        raise EmbedderError(
            f"DINOv2 ('{self.embedder_config.model}') is an image-only model and cannot embed "
            "text; use a SigLIP, CLIP or Qwen3-VL-Embedding model for text queries."
        )
