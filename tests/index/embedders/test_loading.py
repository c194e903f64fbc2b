"""How load_embedder finds and identifies a model: weight fingerprints, family detection from
config.json, hub ids resolved from the offline cache, and the messages for missing models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from index.embedders import (
    EmbedderConfig,
    EmbedderError,
    VisualEmbedder,
    load_embedder,
)
from tests.fixtures.embedders import (
    build_siglip,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("hf_offline"),
]


def test_fingerprint_identifies_weights(
    tiny_model_dirs: dict[str, Path], tiny_embedders: dict[str, VisualEmbedder], tmp_path: Path
) -> None:
    again = load_embedder(EmbedderConfig(model=str(tiny_model_dirs["siglip"])))
    assert again.info.fingerprint == tiny_embedders["siglip"].info.fingerprint
    copy = shutil.copytree(tiny_model_dirs["siglip"], tmp_path / "copy")
    assert load_embedder(EmbedderConfig(model=str(copy))).info.fingerprint == again.info.fingerprint
    other = load_embedder(EmbedderConfig(model=str(build_siglip(tmp_path / "other", seed=7))))
    assert other.info.fingerprint != again.info.fingerprint
    prints = {e.info.fingerprint for e in tiny_embedders.values()}
    assert len(prints) == len(tiny_embedders)


def test_family_detection_and_mismatch(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    # the directory name says nothing; config.json's model_type decides
    renamed = Path(shutil.copytree(tiny_model_dirs["dinov2"], tmp_path / "clip-vit-siglip"))
    assert load_embedder(EmbedderConfig(model=str(renamed))).family == "dinov2"
    with pytest.raises(EmbedderError, match="model_type 'dinov2'"):
        load_embedder(EmbedderConfig(model=str(renamed), family="clip"))
    unknown = tmp_path / "bert"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(EmbedderError, match="model_type 'bert'"):
        load_embedder(EmbedderConfig(model=str(unknown)))


def test_hub_id_found_in_cache_offline(
    tiny_model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--tiny-org--tiny-dino"
    shutil.copytree(tiny_model_dirs["dinov2"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    embedder = load_embedder(EmbedderConfig(model="tiny-org/tiny-dino"))
    assert embedder.info.model_id == "tiny-org/tiny-dino" and embedder.info.family == "dinov2"
    direct = load_embedder(EmbedderConfig(model=str(tiny_model_dirs["dinov2"])))
    assert embedder.info.fingerprint == direct.info.fingerprint


def test_missing_model_messages(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model"
    with pytest.raises(EmbedderError) as err:
        load_embedder(EmbedderConfig(model=str(missing)))
    assert str(missing) in str(err.value) and "no such directory" in str(err.value)
    with pytest.raises(EmbedderError) as err:
        load_embedder(EmbedderConfig(model="nobody-here/no-such-model-xyz"))
    message = str(err.value)
    assert "'nobody-here/no-such-model-xyz'" in message
    assert "offline" in message and "hf download nobody-here/no-such-model-xyz" in message
    assert "--embedder" in message and message.count("\n") == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmbedderError, match="no config.json"):
        load_embedder(EmbedderConfig(model=str(empty)))
