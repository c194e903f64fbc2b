"""Qwen3-VL-Embedding run locally through transformers (Qwen3-VL backbone).

The recipe follows the model's reference embedder: each input becomes a chat with the task
instruction as the system turn and the image (or text) as the user turn, rendered with the
model's chat template plus the generation prompt; the images are resized to multiples of the
merged patch size within a pixel budget; the embedding is the last hidden state of the last
non-padding token (right padding), L2-normalised, optionally truncated first (Matryoshka).

The inputs are assembled here from the tokenizer and the image processor instead of
``Qwen3VLProcessor``: in transformers 5 that processor cannot even be constructed without
torchvision (its video-processor check fails), and this machine class has none.
"""

from __future__ import annotations

import json
import logging
import math
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from PIL import Image

from index.embedders.config import EmbedderError
from index.embedders.local import LocalEmbedder, accepted_kwargs

logger = logging.getLogger(__name__)

MODEL_DEFAULT_INSTRUCTION = "Represent the user's input."
IMAGE_TOKEN = "<|image_pad|>"
_VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
_FALLBACK_TEMPLATE = (
    "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
    "<|im_start|>assistant\n"
)
_IMAGE_PART = "<|vision_start|><|image_pad|><|vision_end|>"


def normalise_instruction(instruction: str | None) -> str:
    """The instruction as the reference embedder uses it: stripped, ending in punctuation.

    Args:
        instruction: Configured instruction, or None for the model's generic one.

    Returns:
        The system-turn text.
    """
    text = (instruction or MODEL_DEFAULT_INSTRUCTION).strip() or MODEL_DEFAULT_INSTRUCTION
    if not unicodedata.category(text[-1]).startswith("P"):
        text += "."
    return text


def smart_resize(
    height: int, width: int, factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """Qwen-VL resizing: sides multiple of ``factor``, area within [min_pixels, max_pixels].

    Args:
        height: Image height.
        width: Image width.
        factor: Patch size times spatial merge size (32 for Qwen3-VL).
        min_pixels: Lower bound of the area.
        max_pixels: Upper bound of the area.

    Returns:
        (new_height, new_width), keeping the aspect ratio as closely as the grid allows.
    """
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def last_token_pool(hidden: Any, attention_mask: Any) -> Any:
    """Hidden state of each row's last attended token (works for left and right padding).

    Args:
        hidden: (batch, seq, dim) tensor.
        attention_mask: (batch, seq) tensor of 0/1.

    Returns:
        (batch, dim) tensor.
    """
    import torch

    last = attention_mask.shape[1] - 1 - attention_mask.flip(dims=[1]).argmax(dim=1)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last]


class Qwen3VLEmbedder(LocalEmbedder):
    """Qwen3-VL-Embedding (2B: 2048-d, 8B: 4096-d) through transformers."""

    _tokenizer: Any = PrivateAttr(default=None)
    _image_processor: Any = PrivateAttr(default=None)
    _chat_template: str | None = PrivateAttr(default=None)
    _image_token_id: int = PrivateAttr(default=-1)
    _factor: int = PrivateAttr(default=32)
    _merge: int = PrivateAttr(default=2)
    _system: str = PrivateAttr(default=MODEL_DEFAULT_INSTRUCTION)

    @classmethod
    def class_name(cls) -> str:
        return "Qwen3VLEmbedder"

    def _setup(self, model_dir: Path) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer

        model = self._load_model(model_dir)
        config = model.config
        if not (hasattr(model, "language_model") and hasattr(model, "visual")):
            raise EmbedderError(
                f"Could not load embedder '{self.embedder_config.model}': {type(model).__name__} is "
                "not a Qwen3-VL backbone (no language_model/visual)."
            )
        self._model = model
        self._native = int(config.text_config.hidden_size)
        self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self._tokenizer.padding_side = "right"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = "<|endoftext|>"
        self._image_processor = AutoImageProcessor.from_pretrained(str(model_dir))
        patch = int(
            getattr(self._image_processor, "patch_size", None) or config.vision_config.patch_size
        )
        self._merge = int(
            getattr(self._image_processor, "merge_size", None)
            or config.vision_config.spatial_merge_size
        )
        self._factor = patch * self._merge
        self._image_token_id = int(config.image_token_id)
        found = self._tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        if found != self._image_token_id:
            raise EmbedderError(
                f"Could not load embedder '{self.embedder_config.model}': the tokenizer maps "
                f"{IMAGE_TOKEN} to {found} but the model expects {self._image_token_id}."
            )
        self._chat_template = self._find_chat_template(model_dir)
        if self._chat_template is None:
            logger.warning(
                "%s has no chat template; using the standard Qwen chat format.", model_dir
            )
        self._system = normalise_instruction(self.embedder_config.instruction)

    def _find_chat_template(self, model_dir: Path) -> str | None:
        template = getattr(self._tokenizer, "chat_template", None)
        if isinstance(template, str) and template:
            return template
        jinja = model_dir / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text(encoding="utf-8")
        as_json = model_dir / "chat_template.json"
        if as_json.is_file():
            value = json.loads(as_json.read_text(encoding="utf-8")).get("chat_template")
            return value if isinstance(value, str) else None
        return None

    def _extra_fingerprint(self) -> dict[str, Any]:
        return {
            "instruction": self._system,
            "max_image_pixels": self.embedder_config.max_image_pixels,
        }

    def _prompt(self, user_part: dict[str, str]) -> str:
        if self._chat_template is None:
            user = _IMAGE_PART if user_part["type"] == "image" else user_part["text"]
            return _FALLBACK_TEMPLATE.format(system=self._system, user=user)
        conversation = [
            {"role": "system", "content": [{"type": "text", "text": self._system}]},
            {"role": "user", "content": [user_part]},
        ]
        return self._tokenizer.apply_chat_template(
            conversation,
            chat_template=self._chat_template,
            add_generation_prompt=True,
            tokenize=False,
        )

    def _forward(self, prompts: list[str], vision: dict[str, Any] | None) -> np.ndarray:
        import torch

        encoded = self._tokenizer(prompts, padding=True, return_tensors="pt")
        inputs: dict[str, Any] = {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "mm_token_type_ids": (encoded["input_ids"] == self._image_token_id).int(),
        }
        if vision is not None:
            inputs.update(vision)
        inputs = accepted_kwargs(self._model.forward, self._to_device(inputs))
        if hasattr(self._model, "rope_deltas"):
            self._model.rope_deltas = None  # cached by the model between generate() steps
        with torch.inference_mode():
            output = self._model(**inputs, use_cache=False)
            pooled = last_token_pool(output.last_hidden_state, inputs["attention_mask"])
        return pooled.float().cpu().numpy()

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        budget = self.embedder_config.max_image_pixels
        resized = []
        for image in images:
            height, width = smart_resize(
                image.height, image.width, self._factor, 4 * self._factor**2, budget
            )
            resized.append(
                image
                if image.size == (width, height)
                else image.resize((width, height), Image.BICUBIC)
            )
        vision = self._image_processor(images=resized, do_resize=False, return_tensors="pt")
        grids = vision["image_grid_thw"]
        template = self._prompt({"type": "image"})
        if template.count(IMAGE_TOKEN) != 1:
            raise EmbedderError(
                f"The chat template rendered {template.count(IMAGE_TOKEN)} image placeholders, expected 1."
            )
        prompts = [
            template.replace(IMAGE_TOKEN, IMAGE_TOKEN * (int(grid.prod()) // self._merge**2))
            for grid in grids
        ]
        return self._forward(
            prompts, {"pixel_values": vision["pixel_values"], "image_grid_thw": grids}
        )

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        prompts = []
        for text in texts:
            for token in _VISION_TOKENS:
                text = text.replace(token, "")
            prompts.append(self._prompt({"type": "text", "text": text}))
        return self._forward(prompts, None)
