"""Shared machinery of the in-process (transformers) embedders."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr

from index.embedders.base import VisualEmbedder
from index.embedders.config import EmbedderError
from index.embedders.loading import model_files_signature, select_device, select_dtype

logger = logging.getLogger(__name__)


def pooled_features(output: Any) -> Any:
    """The embedding tensor from a ``get_image_features`` / ``get_text_features`` result.

    transformers 4.x returns a tensor; transformers 5 returns a ``BaseModelOutputWithPooling``
    whose ``pooler_output`` holds the (projected) embedding.

    Args:
        output: What the model method returned.

    Returns:
        A (batch, dim) tensor.
    """
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    if isinstance(output, tuple) and len(output) > 1 and isinstance(output[1], torch.Tensor):
        return output[1]
    raise EmbedderError(
        f"Unexpected output type {type(output).__name__} from the model's feature method."
    )


def accepted_kwargs(method: Callable[..., Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Keep the entries of ``inputs`` that ``method`` names as parameters.

    Args:
        method: A model method (decorators with ``functools.wraps`` are seen through).
        inputs: Processor outputs.

    Returns:
        The filtered mapping.
    """
    params = inspect.signature(method).parameters
    return {k: v for k, v in inputs.items() if k in params}


class LocalEmbedder(VisualEmbedder):
    """A model run in this process with torch; subclasses load it in :meth:`_setup`."""

    _model: Any = PrivateAttr(default=None)
    _device: str = PrivateAttr(default="cpu")
    _dtype: Any = PrivateAttr(default=None)
    _model_dir: Path | None = PrivateAttr(default=None)
    _native: int = PrivateAttr(default=0)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "LocalEmbedder"

    def _native_dim(self) -> int:
        return self._native

    def _run(self, items: list[Any], encode: Any) -> Any:
        # One forward pass at a time: LlamaIndex's async methods run in worker threads, and
        # torch already uses every core for a single pass.
        with self._lock:
            return super()._run(items, encode)

    def load(self, model_dir: Path) -> None:
        """Load weights and preprocessing from ``model_dir`` onto the configured device.

        Args:
            model_dir: The resolved model directory.

        Raises:
            EmbedderError: If loading fails or ``dim`` exceeds the native dimension.
        """
        cfg = self.embedder_config
        self._model_dir = model_dir
        self._device = select_device(cfg.device)
        self._dtype = select_dtype(self._device, cfg.half_precision_on_gpu)
        try:
            self._setup(model_dir)
        except EmbedderError:
            raise
        except Exception as exc:
            raise EmbedderError(
                f"Could not load embedder '{cfg.model}' from {model_dir} as family "
                f"'{self.family}': {type(exc).__name__}: {exc}"
            ) from exc
        if cfg.dim is not None and cfg.dim > self._native:
            raise EmbedderError(
                f"Could not load embedder '{cfg.model}': dim={cfg.dim} exceeds its native "
                f"dimension {self._native}; use a dim of at most {self._native}."
            )
        if cfg.dim is not None and self.family != "qwen3_vl_embedding":
            logger.warning(
                "Truncating %s embeddings to %d dims: this family was not trained with Matryoshka "
                "loss, so retrieval quality may drop.",
                self.family,
                cfg.dim,
            )
        self._fingerprint_parts = {
            "files": self._files_signature(model_dir),
            **self._extra_fingerprint(),
        }
        logger.info(
            "Loaded %s embedder %s (%d-d%s) on %s, %s",
            self.family,
            cfg.model,
            self._native,
            f" -> {cfg.dim}" if cfg.dim else "",
            self._device,
            str(self._dtype).replace("torch.", ""),
        )

    def _setup(self, model_dir: Path) -> None:
        raise NotImplementedError

    def _files_signature(self, model_dir: Path) -> dict[str, Any]:
        """Identity of the weights and configuration files (a Hugging Face layout by default)."""
        return model_files_signature(model_dir)

    def _extra_fingerprint(self) -> dict[str, Any]:
        """Preprocessing choices made in code that change the vectors (e.g. the instruction)."""
        return {}

    def _load_model(self, model_dir: Path) -> Any:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(str(model_dir), dtype=self._dtype)
        return model.to(self._device).eval()

    def _to_device(self, batch: Any) -> dict[str, Any]:
        import torch

        moved = {}
        for key, value in dict(batch).items():
            if isinstance(value, torch.Tensor):
                value = value.to(self._device)
                if value.is_floating_point():
                    value = value.to(self._dtype)
            moved[key] = value
        return moved
