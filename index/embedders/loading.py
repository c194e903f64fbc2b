"""Finding a model on disk, recognising its family, fingerprinting it, choosing a device.

Nothing here loads weights. torch is imported inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.embedders.config import EmbedderError
from index.files import digest

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: config.json ``model_type`` -> embedder family.
MODEL_TYPE_TO_FAMILY: dict[str, str] = {
    "siglip": "siglip",
    "siglip2": "siglip",
    "clip": "clip",
    "dinov2": "dinov2",
    "dinov2_with_registers": "dinov2",
    "qwen3_vl": "qwen3_vl_embedding",
}

#: Small files hashed whole: they define the architecture, preprocessing and prompt format.
_WHOLE_FILES = (
    "config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
#: Large files identified by size + hash of their first MiB.
_SAMPLED_GLOBS = ("*.safetensors", "*.bin", "tokenizer.json", "*.model", "vocab.json", "merges.txt")
_SAMPLE_BYTES = 1 << 20


def _hub_offline() -> bool:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return False


def _looks_like_path(model: str) -> bool:
    return (
        model.startswith((".", "/", "~"))
        or "\\" in model
        or Path(model).is_absolute()
        or model.count("/") > 1
        or model.endswith("/")
    )


def _how_to_provide(model: str) -> str:
    return (
        f"download it where there is network access (`hf download {model} --local-dir <dir>`) "
        "and pass that directory with --embedder <dir>"
    )


def resolve_model_dir(model: str) -> Path:
    """The local directory holding ``model``'s config.json and weights.

    Args:
        model: A local directory, or a Hugging Face hub id ('org/name').

    Returns:
        The directory: ``model`` itself, the hub cache snapshot, or a fresh download (only when
        the hub is not offline).

    Raises:
        EmbedderError: One sentence saying what was tried and how to provide the model.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EmbedderError(
                f"Could not load embedder '{model}': the directory has no config.json; pass the "
                "directory that holds the model's config.json and weights."
            )
        return path.resolve()
    if path.exists():
        raise EmbedderError(
            f"Could not load embedder '{model}': it is a file, not a model directory; pass the "
            "directory that holds the model's config.json and weights."
        )
    if _looks_like_path(model):
        raise EmbedderError(
            f"Could not load embedder '{model}': no such directory; check the path, or "
            f"{_how_to_provide('<org/name>')}."
        )
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model, "config.json")
    except ValueError:  # not a valid repo id
        cached = None
    if isinstance(cached, str):
        return Path(cached).parent
    if _hub_offline():
        raise EmbedderError(
            f"Could not load embedder '{model}': not a local directory and not in the Hugging Face "
            f"cache, and the hub is offline (HF_HUB_OFFLINE=1); {_how_to_provide(model)}."
        )
    return _download(model)


def _download(model: str) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.jinja", "*.txt", "*.model", "*.safetensors"]
    logger.info("Downloading embedder %s from the Hugging Face hub", model)
    try:
        folder = Path(snapshot_download(model, allow_patterns=patterns))
        if not any(folder.glob("*.safetensors")):
            folder = Path(snapshot_download(model, allow_patterns=[*patterns, "*.bin"]))
    except Exception as exc:  # network, auth, missing repo: all end the same way
        raise EmbedderError(
            f"Could not load embedder '{model}': not a local directory and the Hugging Face hub "
            f"download failed ({type(exc).__name__}); {_how_to_provide(model)}."
        ) from None
    if not (folder / "config.json").is_file():
        raise EmbedderError(
            f"Could not load embedder '{model}': the hub repository has no config.json."
        )
    return folder


def read_model_type(model_dir: Path) -> str | None:
    """Returns: ``model_type`` from ``model_dir/config.json``, or None if absent."""
    try:
        data = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EmbedderError(f"Could not read {model_dir / 'config.json'}: {exc}") from None
    value = data.get("model_type") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def detect_family(model: str, model_dir: Path, requested: str) -> str:
    """The family to load ``model_dir`` with.

    Args:
        model: The configured model name, for messages.
        model_dir: The resolved model directory.
        requested: ``EmbedderConfig.family``; 'auto' reads config.json's ``model_type``.

    Returns:
        One of 'siglip', 'clip', 'dinov2', 'qwen3_vl_embedding'.

    Raises:
        EmbedderError: If 'auto' meets an unknown model_type, or an explicit family contradicts
            a known model_type.
    """
    model_type = read_model_type(model_dir)
    known = MODEL_TYPE_TO_FAMILY.get(model_type or "")
    if requested == "auto":
        if known is None:
            supported = ", ".join(sorted(MODEL_TYPE_TO_FAMILY))
            raise EmbedderError(
                f"Could not load embedder '{model}': its config.json has model_type "
                f"'{model_type}', which is not one of {supported}; set embedder.family explicitly "
                "if it is compatible with one of the families."
            )
        return known
    if known is not None and known != requested:
        raise EmbedderError(
            f"Could not load embedder '{model}': family '{requested}' was requested but its "
            f"config.json has model_type '{model_type}' (family '{known}'); use family 'auto'."
        )
    return requested


def _sample_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


def model_files_signature(model_dir: Path) -> dict[str, Any]:
    """A cheap identity of a model directory's contents.

    Small configuration files are hashed whole; weights and large tokenizer files contribute
    their size and a hash of their first MiB. Reading is O(number of files), not O(weights).

    Args:
        model_dir: The model directory.

    Returns:
        A JSON-serialisable mapping of file name to hash (or size and hash).
    """
    signature: dict[str, Any] = {}
    for name in _WHOLE_FILES:
        file = model_dir / name
        if file.is_file():
            signature[name] = hashlib.sha256(file.read_bytes()).hexdigest()
    sampled = sorted(
        {f for pattern in _SAMPLED_GLOBS for f in model_dir.glob(pattern) if f.is_file()}
    )
    for file in sampled:
        signature[file.name] = {"size": file.stat().st_size, "head_sha256": _sample_hash(file)}
    return signature


def fingerprint(parts: dict[str, Any]) -> str:
    """Returns: hex sha256 of ``parts`` serialised as canonical JSON."""
    return digest(parts)


def select_device(preference: str) -> str:
    """Pick the torch device.

    Args:
        preference: 'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda' or 'mps'.

    Returns:
        The device string.

    Raises:
        EmbedderError: If an explicitly requested accelerator is not available.
    """
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if preference == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if preference == "cuda" and not cuda:
        raise EmbedderError(
            "device 'cuda' was requested but torch sees no CUDA GPU; use 'auto' or 'cpu'."
        )
    if preference == "mps" and not mps:
        raise EmbedderError(
            "device 'mps' was requested but torch sees no MPS device; use 'auto' or 'cpu'."
        )
    return preference


def select_dtype(device: str, half_on_gpu: bool) -> torch.dtype:
    """Weights dtype: float32 on CPU; on a GPU bfloat16 (CUDA, if supported) or float16.

    Args:
        device: The device from :func:`select_device`.
        half_on_gpu: ``EmbedderConfig.half_precision_on_gpu``.

    Returns:
        The torch dtype.
    """
    import torch

    if device == "cpu" or not half_on_gpu:
        return torch.float32
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16
