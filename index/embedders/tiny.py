"""A tiny random DINOv2, saved like a real model, for tests, benchmarks and offline demos.

No weights can be downloaded on machines without hub access; this builds a model from a
config and saves it so it loads through exactly the same ``from_pretrained(path)`` code as a
real one. Its vectors are meaningless; its cost is tiny, so benchmarks measure the pipeline.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def save_tiny_dinov2(path: Path, seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Path:
    """Save a tiny random DINOv2 (weights + image processor) at ``path``; reuse it if present.

    Args:
        path: Target directory.
        seed: Weight initialisation seed (another seed gives another fingerprint).
        hidden_size: Embedding dimension.
        layers: Transformer layers.

    Returns:
        ``path``.
    """
    if (path / "config.json").is_file() and (path / "preprocessor_config.json").is_file() and any(path.glob("*.safetensors")):
        return path
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    config = Dinov2Config(image_size=32, patch_size=8, hidden_size=hidden_size, num_hidden_layers=layers,
                          num_attention_heads=2, intermediate_size=64)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    Dinov2Model(config).save_pretrained(tmp)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.replace(path)
    return path
