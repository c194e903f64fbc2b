"""The embedder interface: :class:`VisualEmbedder`, its result contract and its errors.

Every embedder returns float32 arrays of shape (n, dim) whose rows have unit L2 norm, optionally
truncated (Matryoshka) to ``EmbedderConfig.dim``. Subclasses only implement the raw forward
passes; batching, RGB conversion, truncation and normalisation live here, once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.embeddings import MultiModalEmbedding
from PIL import Image, ImageOps

from index.embedders.config import EmbedderConfig, EmbedderError, EmbedderInfo

logger = logging.getLogger(__name__)

#: What :meth:`VisualEmbedder.embed_images` accepts: PIL images, or what LlamaIndex passes
#: (a file path or a binary file-like object).
ImageInput = Image.Image | str | os.PathLike | IO[bytes]


def load_image(source: ImageInput) -> Image.Image:
    """Open ``source`` as an upright RGB image, as :func:`index.imaging.decode.decode_image` does.

    Args:
        source: A PIL image, a file path, or a binary file-like object.

    Returns:
        The decoded image in RGB mode, rotated according to its EXIF orientation.

    Raises:
        EmbedderError: If the source cannot be read as an image.
    """
    from index.imaging.decode import ImageReadError, decode_image, to_rgb

    if isinstance(source, Image.Image):
        return to_rgb(ImageOps.exif_transpose(source) or source)
    try:
        if hasattr(source, "read"):
            if hasattr(source, "seek"):
                source.seek(0)
            return decode_image(source.read(), name=repr(source))[0]
        return decode_image(Path(os.fspath(source)))[0]
    except (ImageReadError, TypeError) as exc:
        raise EmbedderError(f"Cannot read image {source!r}: {exc}") from None


def finish_vectors(raw: np.ndarray, native_dim: int, dim: int | None) -> np.ndarray:
    """Truncate (Matryoshka) and L2-normalise a batch of raw vectors.

    Args:
        raw: (n, native_dim) array of any float dtype.
        native_dim: The model's output dimension, checked against ``raw``.
        dim: Keep the first ``dim`` components, or None for all.

    Returns:
        A C-contiguous float32 array (n, dim or native_dim) with unit-norm rows.
    """
    vectors = np.asarray(raw, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != native_dim:
        raise EmbedderError(
            f"The model returned vectors of shape {vectors.shape}, expected (n, {native_dim})."
        )
    if dim is not None:
        if dim > native_dim:
            raise EmbedderError(
                f"dim={dim} exceeds the model's native dimension {native_dim}; "
                f"use a dim of at most {native_dim}."
            )
        vectors = vectors[:, :dim]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise EmbedderError("The model returned a zero or non-finite vector; cannot normalise it.")
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


class VisualEmbedder(MultiModalEmbedding):
    """Base class of all embedders; also a LlamaIndex ``MultiModalEmbedding``.

    Subclasses implement :meth:`_encode_images`, :meth:`_encode_texts` and :meth:`_native_dim`,
    and set ``self._fingerprint_parts`` while loading. Heavy handles (model, processor, HTTP
    client) are pydantic private attributes.
    """

    embedder_config: EmbedderConfig = Field(description="The configuration it was loaded from.")
    family: str = Field(description="Resolved model family.")

    _fingerprint_parts: dict[str, Any] = PrivateAttr(default_factory=dict)
    _info: EmbedderInfo | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "VisualEmbedder"

    # ---- what subclasses implement -------------------------------------------------------
    @abstractmethod
    def _native_dim(self) -> int:
        """The model's own output dimension (before truncation)."""

    @abstractmethod
    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Raw (n, native_dim) vectors for at most ``batch_size`` RGB images."""

    @abstractmethod
    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        """Raw (n, native_dim) vectors for at most ``batch_size`` texts."""

    # ---- public API ------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Output dimension (after any Matryoshka truncation)."""
        return self.embedder_config.dim or self._native_dim()

    @property
    def info(self) -> EmbedderInfo:
        """Model id, family, output dimension and fingerprint of this embedder."""
        if self._info is None:
            from index.embedders.loading import fingerprint

            dim = self.dim
            parts = {"family": self.family, "dim": dim, **self._fingerprint_parts}
            self._info = EmbedderInfo(
                model_id=self.embedder_config.model,
                family=self.family,
                dim=dim,
                fingerprint=fingerprint(parts),
            )
        return self._info

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Embed images, batched by ``batch_size``.

        Args:
            images: PIL images (any mode; converted to RGB), or file paths / binary file
                objects, which are opened one batch at a time.

        Returns:
            float32 array (len(images), dim) of unit-norm rows.

        Raises:
            EmbedderError: If an image cannot be read or the model fails.
        """
        return self._run(
            list(images), lambda batch: self._encode_images([load_image(x) for x in batch])
        )

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts (queries or captions) into the same space as the images.

        Args:
            texts: The texts.

        Returns:
            float32 array (len(texts), dim) of unit-norm rows.

        Raises:
            EmbedderError: If the model has no text encoder (DINOv2) or fails.
        """
        items = list(texts)
        if any(not isinstance(t, str) for t in items):
            raise EmbedderError("embed_texts takes strings only.")
        return self._run(items, self._encode_texts)

    def _run(self, items: list[Any], encode: Any) -> np.ndarray:
        size = self.embedder_config.batch_size
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            try:
                raw = encode(batch)
            except EmbedderError:
                raise
            except Exception as exc:  # torch / processor failures (e.g. out of memory)
                raise EmbedderError(
                    f"Embedder '{self.embedder_config.model}' failed on a batch of {len(batch)}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            chunks.append(finish_vectors(raw, self._native_dim(), self.embedder_config.dim))
            logger.debug("%s: embedded %d/%d", self.family, start + len(batch), len(items))
        return np.concatenate(chunks, axis=0)

    # ---- LlamaIndex interface --------------------------------------------------------------
    def _get_image_embedding(self, img_file_path: Any) -> list[float]:
        return self.embed_images([img_file_path])[0].tolist()

    async def _aget_image_embedding(self, img_file_path: Any) -> list[float]:
        return await asyncio.to_thread(self._get_image_embedding, img_file_path)

    def _get_image_embeddings(self, img_file_paths: list[Any]) -> list[list[float]]:
        return self.embed_images(img_file_paths).tolist()

    async def _aget_image_embeddings(self, img_file_paths: list[Any]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_image_embeddings, img_file_paths)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.embed_texts([text])[0].tolist()

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.embed_texts(texts).tolist()

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await self._aget_text_embedding(query)

    def to_payload(self) -> dict[str, Any]:
        """Returns: a credential-free description for LlamaIndex instrumentation events."""
        return {
            **super().to_payload(),
            "family": self.family,
            "dim_config": self.embedder_config.dim,
        }
