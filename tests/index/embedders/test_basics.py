"""Tests of index.embedders that load no model: the configuration, the weight of importing the
package, and the small helpers (pooling, resizing, instructions, devices, image loading)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from index.embedders import (
    DEFAULT_INSTRUCTION,
    EmbedderConfig,
    EmbedderError,
)
from tests.fixtures.paths import REPO

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("hf_offline"),
]


def test_config_fields_are_described_and_strict() -> None:
    for name, field in EmbedderConfig.model_fields.items():
        assert field.description, name
    cfg = EmbedderConfig()
    assert cfg.model == "google/siglip2-base-patch16-224"
    assert cfg.family == "auto" and cfg.backend == "local" and cfg.batch_size == 16
    assert cfg.instruction == DEFAULT_INSTRUCTION
    assert EmbedderConfig.model_validate(cfg.model_dump(mode="json")) == cfg
    with pytest.raises(ValueError, match="extra"):
        EmbedderConfig(modle="x")
    with pytest.raises(ValueError, match="api_base"):
        EmbedderConfig(backend="remote")
    with pytest.raises(ValueError):
        EmbedderConfig(dim=0)


def test_package_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, index.embedders; "
        "print(int(any(m in sys.modules for m in ('torch', 'transformers', 'llama_index.core'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert out.stdout.strip() == "0"


def test_helpers() -> None:
    import torch

    from index.embedders.base import load_image
    from index.embedders.loading import select_device, select_dtype
    from index.embedders.qwen3_vl import last_token_pool, normalise_instruction, smart_resize

    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    assert last_token_pool(hidden, right).flatten().tolist() == [2.0, 7.0]
    assert last_token_pool(hidden, left).flatten().tolist() == [3.0, 7.0]
    assert smart_resize(3000, 4000, 32, 4096, 1800 * 32 * 32) == (1152, 1536)
    assert smart_resize(10, 10, 32, 4096, 1800 * 32 * 32) == (64, 64)
    assert normalise_instruction(None) == "Represent the user's input."
    assert normalise_instruction(" Find cars ") == "Find cars."
    assert select_device("cpu") == "cpu" and select_dtype("cpu", True) == torch.float32
    # EXIF orientation is applied; 16-bit grey is scaled, not clipped
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), "red").save(buffer, format="JPEG", exif=exif.tobytes())
    assert load_image(buffer).size == (20, 40)
    deep = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    assert deep.mode == "I;16"
    assert load_image(deep).mode == "RGB" and 120 < np.asarray(load_image(deep)).mean() < 135
    if not torch.cuda.is_available():
        with pytest.raises(EmbedderError, match="no CUDA"):
            select_device("cuda")
