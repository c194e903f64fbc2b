"""Configuration of the visual embedder, and the plain types the package exposes.

This module imports nothing heavy (no torch, transformers or LlamaIndex): the domain
configuration imports it at start-up.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from index.errors import DamageRagError

#: The built-in families; ``EmbedderConfig.family`` also accepts 'package.module:Class'.
Family = Literal["auto", "siglip", "clip", "dinov2", "qwen3_vl_embedding", "efficientnet_lite"]
BUILTIN_FAMILIES: tuple[str, ...] = get_args(Family)
#: A user embedder class: dotted module path, a colon, a class name.
_PLUGIN_FAMILY = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
Backend = Literal["local", "remote"]
Device = Literal["auto", "cpu", "cuda", "mps"]

#: Default task instruction for Qwen3-VL-Embedding. The same instruction is applied to indexed
#: images and to queries, because image-to-image retrieval is symmetric; it is worded so that it
#: also reads sensibly in front of a text query.
DEFAULT_INSTRUCTION = (
    "Represent what the input shows for retrieving similar labelled examples."
)

#: Qwen3-VL-Embedding's own per-image pixel ceiling (1800 merged 32x32 patches).
DEFAULT_MAX_IMAGE_PIXELS = 1800 * 32 * 32


class EmbedderConfig(BaseModel):
    """The visual embedding model and how to run it."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="google/siglip2-base-patch16-224",
        min_length=1,
        description=(
            "Hugging Face hub id or local directory of the model (local backend), or the model "
            "name the server knows it by (remote backend)."
        ),
    )
    family: str = Field(
        default="auto",
        description=(
            "Model family: 'auto', 'siglip', 'clip', 'dinov2', 'qwen3_vl_embedding', "
            "'efficientnet_lite', or 'package.module:Class' for your own embedder class (see "
            "index/embedders/plugin.py). 'auto' picks efficientnet_lite for the packaged model "
            "ids efficientnet-lite0/1/2 and otherwise reads model_type from the model's "
            "config.json (siglip, siglip2, clip, dinov2, dinov2_with_registers, qwen3_vl); it "
            "never guesses from a directory's name."
        ),
    )
    backend: Backend = Field(
        default="local",
        description=(
            "'local' runs the model in this process through transformers; 'remote' calls an "
            "OpenAI-compatible /v1/embeddings server (e.g. vLLM with --runner pooling)."
        ),
    )
    api_base: str | None = Field(
        default=None,
        description=(
            "Remote backend: the server's OpenAI-compatible root, e.g. http://localhost:8001/v1 "
            "(requests go to <api_base>/embeddings)."
        ),
    )
    api_key_env: str = Field(
        default="EMBEDDER_API_KEY",
        min_length=1,
        description=(
            "Remote backend: name of the environment variable holding the API key (sent as a "
            "Bearer token when set; the key itself never goes into the config)."
        ),
    )
    dim: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Matryoshka truncation: keep the first `dim` components and re-normalise (e.g. 768 "
            "for Qwen3-VL-Embedding). Must not exceed the model's native dimension; None keeps "
            "the native dimension."
        ),
    )
    device: Device = Field(
        default="auto",
        description="Local backend: where to run the model; 'auto' picks CUDA, then MPS, then CPU.",
    )
    half_precision_on_gpu: bool = Field(
        default=True,
        description=(
            "Local backend: load weights in half precision on a GPU (bfloat16 on CUDA when "
            "supported, else float16; float16 on MPS). The CPU always uses float32."
        ),
    )
    batch_size: int = Field(
        default=16,
        gt=0,
        le=2048,
        description=(
            "Images or texts per forward pass (local) or concurrent requests per batch (remote)."
        ),
    )
    instruction: str | None = Field(
        default=DEFAULT_INSTRUCTION,
        description=(
            "Qwen3-VL-Embedding only: task instruction placed in the system turn of every input "
            "(images and queries alike). None uses the model's generic \"Represent the user's "
            'input."'
        ),
    )
    max_image_pixels: int = Field(
        default=DEFAULT_MAX_IMAGE_PIXELS,
        ge=4096,
        description=(
            "Qwen3-VL-Embedding only: pixel budget per image. Larger photos are downscaled to "
            "fit (one visual token per 32x32 px); lower it to embed faster on a CPU. The remote "
            "backend downscales to this budget before upload."
        ),
    )
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Remote backend: timeout of one HTTP request, in seconds.",
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        le=20,
        description=(
            "Remote backend: retries (with exponential backoff) after a connection error, a "
            "timeout, HTTP 429 or HTTP 5xx, before giving up."
        ),
    )

    @field_validator("family")
    @classmethod
    def _check_family(cls, value: str) -> str:
        if value in BUILTIN_FAMILIES or _PLUGIN_FAMILY.fullmatch(value):
            return value
        raise ValueError(
            f"embedder.family must be one of {', '.join(BUILTIN_FAMILIES)}, or "
            f"'package.module:Class' naming your own embedder class; got '{value}'"
        )

    @model_validator(mode="after")
    def _check_remote(self) -> EmbedderConfig:
        if self.backend == "remote" and not self.api_base:
            raise ValueError("backend 'remote' needs api_base, e.g. http://localhost:8001/v1")
        if self.api_base and not self.api_base.startswith(("http://", "https://")):
            raise ValueError(f"api_base must start with http:// or https://, got '{self.api_base}'")
        return self


class EmbedderError(DamageRagError, RuntimeError):
    """The embedder cannot be loaded or cannot embed what it was given."""


@dataclass(frozen=True)
class EmbedderInfo:
    """What produced a set of vectors: stored next to an index to detect a model change.

    Attributes:
        model_id: The configured model (hub id, local path or served model name).
        family: The resolved family ('siglip', 'clip', 'dinov2', 'qwen3_vl_embedding',
            'efficientnet_lite', or the 'package.module:Class' of a user embedder).
        dim: Output dimension (after any Matryoshka truncation).
        fingerprint: Hex sha256 over weights, preprocessing and truncation: the same model loaded
            twice gives the same value, other weights give another.
    """

    model_id: str
    family: str
    dim: int
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        """Returns: the fields as a JSON-serialisable dict."""
        return asdict(self)
