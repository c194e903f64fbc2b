"""The local backend's contract on tiny randomly initialised models of every family
(tests/fixtures/embedders.py): unit float32 rows, determinism, batching, text, the LlamaIndex
interface, Matryoshka truncation, the Qwen3-VL instruction and chat-template fallback."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from index.embedders import (
    EmbedderConfig,
    EmbedderError,
    EmbedderInfo,
    VisualEmbedder,
    load_embedder,
)
from tests.fixtures.embedders import (
    BUILDERS,
    QWEN_OPTS,
    TEXT_CAPABLE,
    TEXTS,
    assert_unit_rows,
    sample_images,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("hf_offline"),
]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_image_embeddings_contract(name: str, tiny_embedders: dict[str, VisualEmbedder]) -> None:
    embedder = tiny_embedders[name]
    _, family, dim = BUILDERS[name]
    images = sample_images()
    vectors = embedder.embed_images(images)
    assert_unit_rows(vectors, len(images), dim)
    # deterministic, and independent of batching / padding (batch_size=2 vs one at a time)
    np.testing.assert_array_equal(vectors, embedder.embed_images(images))
    singles = np.concatenate([embedder.embed_images([im]) for im in images])
    np.testing.assert_allclose(vectors, singles, atol=2e-5)
    # a mode-L image embeds like its RGB conversion
    np.testing.assert_allclose(
        embedder.embed_images([images[2].convert("RGB")])[0], vectors[2], atol=1e-6
    )
    assert embedder.embed_images([]).shape == (0, dim)
    info = embedder.info
    assert isinstance(info, EmbedderInfo)
    assert (info.family, info.dim) == (family, dim)
    assert len(info.fingerprint) == 64
    assert info.to_dict() == {
        "model_id": embedder.embedder_config.model,
        "family": family,
        "dim": dim,
        "fingerprint": info.fingerprint,
    }


@pytest.mark.parametrize("name", TEXT_CAPABLE)
def test_text_embeddings_contract(name: str, tiny_embedders: dict[str, VisualEmbedder]) -> None:
    embedder = tiny_embedders[name]
    dim = BUILDERS[name][2]
    vectors = embedder.embed_texts(TEXTS)
    assert_unit_rows(vectors, len(TEXTS), dim)
    singles = np.concatenate([embedder.embed_texts([t]) for t in TEXTS])
    np.testing.assert_allclose(vectors, singles, atol=2e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert embedder.embed_texts([]).shape == (0, dim)


def test_dinov2_cannot_embed_text(tiny_embedders: dict[str, VisualEmbedder]) -> None:
    with pytest.raises(EmbedderError, match="image-only") as err:
        tiny_embedders["dinov2"].embed_texts(["a dent"])
    assert str(err.value).count(". ") == 0  # one sentence
    with pytest.raises(EmbedderError):
        tiny_embedders["dinov2"].get_query_embedding("a dent")


def test_llamaindex_interface(tiny_embedders: dict[str, VisualEmbedder], tmp_path: Path) -> None:
    from llama_index.core.embeddings import MultiModalEmbedding

    embedder = tiny_embedders["siglip"]
    assert isinstance(embedder, MultiModalEmbedding)
    image = sample_images()[0]
    path = tmp_path / "x.png"
    image.save(path)
    expected = embedder.embed_images([image])[0]
    np.testing.assert_allclose(embedder.get_image_embedding(str(path)), expected, atol=1e-6)
    np.testing.assert_allclose(
        embedder.get_image_embedding(io.BytesIO(path.read_bytes())), expected, atol=1e-6
    )
    batch = embedder.get_image_embedding_batch([str(path), str(path), str(path)])
    assert np.asarray(batch).shape == (3, 32)
    got = asyncio.run(embedder.aget_image_embedding(str(path)))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    query = embedder.get_query_embedding(TEXTS[0])
    np.testing.assert_allclose(query, embedder.embed_texts([TEXTS[0]])[0], atol=1e-6)
    np.testing.assert_allclose(
        asyncio.run(embedder.aget_query_embedding(TEXTS[0])), query, atol=1e-6
    )
    assert len(embedder.get_text_embedding_batch(TEXTS)) == 3
    with pytest.raises(EmbedderError, match="Cannot read image"):
        embedder.get_image_embedding(str(tmp_path / "missing.png"))


def test_matryoshka_truncation(
    tiny_model_dirs: dict[str, Path], tiny_embedders: dict[str, VisualEmbedder]
) -> None:
    full = tiny_embedders["qwen"].embed_images(sample_images())
    small = load_embedder(EmbedderConfig(model=str(tiny_model_dirs["qwen"]), dim=16, **QWEN_OPTS))
    vectors = small.embed_images(sample_images())
    assert_unit_rows(vectors, 5, 16)
    expected = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert_unit_rows(small.embed_texts(TEXTS), 3, 16)
    assert small.info.dim == 16
    assert small.info.fingerprint != tiny_embedders["qwen"].info.fingerprint
    with pytest.raises(EmbedderError, match="native dimension 64"):
        load_embedder(EmbedderConfig(model=str(tiny_model_dirs["qwen"]), dim=65))


def test_qwen_instruction_and_template_fallback(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    base = load_embedder(EmbedderConfig(model=str(tiny_model_dirs["qwen"]), **QWEN_OPTS))
    images = sample_images()[:2]
    reference = base.embed_images(images)
    other = load_embedder(
        EmbedderConfig(
            model=str(tiny_model_dirs["qwen"]), instruction="Find the same car", **QWEN_OPTS
        )
    )
    assert not np.allclose(other.embed_images(images), reference, atol=1e-4)
    assert other.info.fingerprint != base.info.fingerprint
    # Without a chat template the standard Qwen chat format is used: same prompt, same vectors.
    bare = Path(shutil.copytree(tiny_model_dirs["qwen"], tmp_path / "bare"))
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    tok_cfg = json.loads((bare / "tokenizer_config.json").read_text())
    tok_cfg.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    fallback = load_embedder(EmbedderConfig(model=str(bare), **QWEN_OPTS))
    np.testing.assert_allclose(fallback.embed_images(images), reference, atol=1e-5)
    np.testing.assert_allclose(fallback.embed_texts(TEXTS), base.embed_texts(TEXTS), atol=1e-5)
