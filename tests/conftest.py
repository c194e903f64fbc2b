"""Shared fixtures: small hand-made LabelMe datasets and the project's configs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
VEHICLE_CONFIG = REPO / "configs" / "vehicle_damage.yaml"
PCB_CONFIG = REPO / "configs" / "pcb_defects.yaml"


def make_photo(path: Path, size: tuple[int, int] = (640, 480), mode: str = "RGB", **save: object) -> Path:
    """Write a plain photo-like image (a gradient) of the given size and mode."""
    width, height = size
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    if mode == "CMYK":
        img = img.convert("CMYK")
    elif mode == "L":
        img = img.convert("L")
    elif mode == "RGBA":
        img = img.convert("RGBA")
    elif mode == "I;16":
        img = img.convert("L").point(lambda v: v).convert("I").point(lambda v: v * 200).convert("I;16")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **save)
    return path


def labelme_json(
    image_name: str,
    shapes: list[dict],
    size: tuple[int, int] = (640, 480),
    **top: object,
) -> dict:
    """A LabelMe 4.6.0 document in the user's layout."""
    doc = {
        "dudosa": False,
        "editada": False,
        "flags": {},
        "imageData": None,
        "imageHeight": size[1],
        "imagePath": image_name,
        "imageWidth": size[0],
        "incorrecta": False,
        "root": f"Dataset/Zonas/5/{image_name}",
        "shapes": shapes,
        "version": "4.6.0",
    }
    doc.update(top)
    return doc


def polygon(label: str, points: list[list[float]], **extra: object) -> dict:
    """A LabelMe polygon shape."""
    return {"flags": {}, "group_id": None, "label": label, "points": points, "shape_type": "polygon", **extra}


def write_pair(root: Path, stem: str, shapes: list[dict], size=(640, 480), image_kwargs=None, **top) -> tuple[Path, Path]:
    """Write ``{stem}_imageDANO_original.jpg`` and ``{stem}_labelDANO_modificado.json``."""
    image = make_photo(root / f"{stem}_imageDANO_original.jpg", size, **(image_kwargs or {}))
    doc = labelme_json(image.name, shapes, size, **top)
    ann = root / f"{stem}_labelDANO_modificado.json"
    ann.write_text(json.dumps(doc, indent=4))
    return image, ann


@pytest.fixture
def vehicle_config():
    """The vehicle-damage domain config."""
    from index.config import load_config

    return load_config(VEHICLE_CONFIG)


def with_root(config, root: Path, **overrides):
    """The config pointed at ``root`` with extra dotted overrides."""
    from index.config import apply_overrides

    return apply_overrides(config, {"dataset.root": root, **overrides})


@pytest.fixture(scope="session")
def tiny_dinov2(tmp_path_factory) -> Path:
    """A tiny random DINOv2 saved like a real one (config, weights, image processor)."""
    from index.embedders.tiny import save_tiny_dinov2

    return save_tiny_dinov2(tmp_path_factory.mktemp("models") / "tiny-dinov2")


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory) -> Path:
    """Twelve small synthetic photos in the user's LabelMe layout, all 8 labels present."""
    from index.synth.dataset import synthesize_labelme

    root = tmp_path_factory.mktemp("synth")
    synthesize_labelme(root, 12, size=(800, 600), seed=1)
    return root
