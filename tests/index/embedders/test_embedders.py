"""Tests of index.embedders on tiny randomly initialised models of every family.

Each model is built from a config, saved with save_pretrained (with a matching image processor
and an offline-built tokenizer) and loaded back by path through load_embedder, the code path a
real checkpoint takes. The remote backend talks to a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from index.embedders import (
    DEFAULT_INSTRUCTION,
    EmbedderConfig,
    EmbedderError,
    EmbedderInfo,
    VisualEmbedder,
    load_embedder,
)
from tests.fixtures.paths import REPO

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

WORDS = [
    "a",
    "photo",
    "of",
    "car",
    "dent",
    "scratch",
    "crack",
    "broken",
    "glass",
    "bumper",
    "door",
    "the",
    "damage",
    "on",
]
QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'text' %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEXTS = ["a photo of a dent", "scratch on the door of the car", "broken glass"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _images() -> list[Image.Image]:
    rng = np.random.RandomState(0)
    rgb = Image.fromarray(rng.randint(0, 255, (40, 50, 3), dtype=np.uint8))
    tall = Image.fromarray(rng.randint(0, 255, (70, 30, 3), dtype=np.uint8))
    gray = Image.fromarray(rng.randint(0, 255, (33, 33), dtype=np.uint8))  # mode L
    rgba = Image.fromarray(rng.randint(0, 255, (48, 48, 4), dtype=np.uint8))  # mode RGBA
    return [rgb, tall, gray, rgba, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]


def _tokenizer(specials: list[str], pad: str, template: str | None = None, **kwargs: object):
    """A word-level tokenizer built offline; ``template`` like '<s> $A </s>' adds markers."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([*specials, *WORDS, "<unk>"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if template:
        marks = [(t, vocab[t]) for t in template.split() if t in vocab]
        backend.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=marks
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=pad, unk_token="<unk>", **kwargs
    )


TOWER = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}


def _build_siglip(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    torch.manual_seed(seed)
    tok = _tokenizer(["<pad>", "</s>"], "<pad>", "$A </s>", eos_token="</s>")
    config = SiglipConfig(
        text_config={"vocab_size": len(tok), "max_position_embeddings": 16, **TOWER},
        vision_config={"image_size": 32, "patch_size": 8, **TOWER},
    )
    SiglipModel(config).save_pretrained(path)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _build_siglip2(path: Path) -> Path:
    import torch
    from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model

    torch.manual_seed(1)
    tok = _tokenizer(["<pad>", "</s>"], "<pad>", "$A </s>", eos_token="</s>")
    config = Siglip2Config(
        text_config={"vocab_size": len(tok), "max_position_embeddings": 16, **TOWER},
        vision_config={"num_patches": 16, "patch_size": 8, **TOWER},
    )
    Siglip2Model(config).save_pretrained(path)
    Siglip2ImageProcessor(max_num_patches=16, patch_size=8).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _build_clip(path: Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(2)
    tok = _tokenizer(
        ["<pad>", "<s>", "</s>"], "<pad>", "<s> $A </s>", bos_token="<s>", eos_token="</s>"
    )
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tok),
            "max_position_embeddings": 16,
            "eos_token_id": tok.eos_token_id,
            **TOWER,
        },
        vision_config={"image_size": 32, "patch_size": 8, **TOWER},
        projection_dim=24,
    )
    CLIPModel(config).save_pretrained(path)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _build_dinov2(path: Path) -> Path:
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(3)
    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, **TOWER)).save_pretrained(path)
    BitImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)
    return path


def _build_qwen(path: Path) -> Path:
    """A tiny Qwen3-VL saved the way real checkpoints are (ForConditionalGeneration keys)."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    torch.manual_seed(4)
    tok = _tokenizer(
        QWEN_SPECIALS,
        "<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=QWEN_SPECIALS[1:],
    )
    tok.chat_template = QWEN_TEMPLATE
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "max_position_embeddings": 512,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [6, 5, 5],
                "mrope_interleaved": True,
            },
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 8,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 64,
            "num_position_embeddings": 16,
            "deepstack_visual_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    Qwen3VLForConditionalGeneration(config).save_pretrained(path)
    Qwen2VLImageProcessorPil(
        patch_size=8,
        merge_size=2,
        temporal_patch_size=2,
        size={"shortest_edge": 1024, "longest_edge": 4096},
    ).save_pretrained(path)
    tok.save_pretrained(path)
    return path


QWEN_OPTS = {"max_image_pixels": 4096}
BUILDERS = {
    "siglip": (_build_siglip, "siglip", 32),
    "siglip2": (_build_siglip2, "siglip", 32),
    "clip": (_build_clip, "clip", 24),
    "dinov2": (_build_dinov2, "dinov2", 32),
    "qwen": (_build_qwen, "qwen3_vl_embedding", 64),
}
TEXT_CAPABLE = ["siglip", "siglip2", "clip", "qwen"]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: build(root / name) for name, (build, _, _) in BUILDERS.items()}


@pytest.fixture(scope="module")
def embedders(model_dirs: dict[str, Path]) -> dict[str, VisualEmbedder]:
    loaded = {}
    for name, path in model_dirs.items():
        opts = QWEN_OPTS if name == "qwen" else {}
        loaded[name] = load_embedder(EmbedderConfig(model=str(path), batch_size=2, **opts))
    return loaded


def _assert_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.shape == (n, dim)
    assert vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# ---- configuration -----------------------------------------------------------------------------


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


# ---- local families ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILDERS))
def test_image_embeddings_contract(name: str, embedders: dict[str, VisualEmbedder]) -> None:
    embedder = embedders[name]
    _, family, dim = BUILDERS[name]
    images = _images()
    vectors = embedder.embed_images(images)
    _assert_unit_rows(vectors, len(images), dim)
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
def test_text_embeddings_contract(name: str, embedders: dict[str, VisualEmbedder]) -> None:
    embedder = embedders[name]
    dim = BUILDERS[name][2]
    vectors = embedder.embed_texts(TEXTS)
    _assert_unit_rows(vectors, len(TEXTS), dim)
    singles = np.concatenate([embedder.embed_texts([t]) for t in TEXTS])
    np.testing.assert_allclose(vectors, singles, atol=2e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert embedder.embed_texts([]).shape == (0, dim)


def test_dinov2_cannot_embed_text(embedders: dict[str, VisualEmbedder]) -> None:
    with pytest.raises(EmbedderError, match="image-only") as err:
        embedders["dinov2"].embed_texts(["a dent"])
    assert str(err.value).count(". ") == 0  # one sentence
    with pytest.raises(EmbedderError):
        embedders["dinov2"].get_query_embedding("a dent")


def test_llamaindex_interface(embedders: dict[str, VisualEmbedder], tmp_path: Path) -> None:
    from llama_index.core.embeddings import MultiModalEmbedding

    embedder = embedders["siglip"]
    assert isinstance(embedder, MultiModalEmbedding)
    image = _images()[0]
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
    model_dirs: dict[str, Path], embedders: dict[str, VisualEmbedder]
) -> None:
    full = embedders["qwen"].embed_images(_images())
    small = load_embedder(EmbedderConfig(model=str(model_dirs["qwen"]), dim=16, **QWEN_OPTS))
    vectors = small.embed_images(_images())
    _assert_unit_rows(vectors, 5, 16)
    expected = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    _assert_unit_rows(small.embed_texts(TEXTS), 3, 16)
    assert small.info.dim == 16
    assert small.info.fingerprint != embedders["qwen"].info.fingerprint
    with pytest.raises(EmbedderError, match="native dimension 64"):
        load_embedder(EmbedderConfig(model=str(model_dirs["qwen"]), dim=65))


def test_fingerprint_identifies_weights(
    model_dirs: dict[str, Path], embedders: dict[str, VisualEmbedder], tmp_path: Path
) -> None:
    again = load_embedder(EmbedderConfig(model=str(model_dirs["siglip"])))
    assert again.info.fingerprint == embedders["siglip"].info.fingerprint
    copy = shutil.copytree(model_dirs["siglip"], tmp_path / "copy")
    assert load_embedder(EmbedderConfig(model=str(copy))).info.fingerprint == again.info.fingerprint
    other = load_embedder(EmbedderConfig(model=str(_build_siglip(tmp_path / "other", seed=7))))
    assert other.info.fingerprint != again.info.fingerprint
    prints = {e.info.fingerprint for e in embedders.values()}
    assert len(prints) == len(embedders)


def test_qwen_instruction_and_template_fallback(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    base = load_embedder(EmbedderConfig(model=str(model_dirs["qwen"]), **QWEN_OPTS))
    images = _images()[:2]
    reference = base.embed_images(images)
    other = load_embedder(
        EmbedderConfig(model=str(model_dirs["qwen"]), instruction="Find the same car", **QWEN_OPTS)
    )
    assert not np.allclose(other.embed_images(images), reference, atol=1e-4)
    assert other.info.fingerprint != base.info.fingerprint
    # Without a chat template the standard Qwen chat format is used: same prompt, same vectors.
    bare = Path(shutil.copytree(model_dirs["qwen"], tmp_path / "bare"))
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    tok_cfg = json.loads((bare / "tokenizer_config.json").read_text())
    tok_cfg.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    fallback = load_embedder(EmbedderConfig(model=str(bare), **QWEN_OPTS))
    np.testing.assert_allclose(fallback.embed_images(images), reference, atol=1e-5)
    np.testing.assert_allclose(fallback.embed_texts(TEXTS), base.embed_texts(TEXTS), atol=1e-5)


def test_family_detection_and_mismatch(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    # the directory name says nothing; config.json's model_type decides
    renamed = Path(shutil.copytree(model_dirs["dinov2"], tmp_path / "clip-vit-siglip"))
    assert load_embedder(EmbedderConfig(model=str(renamed))).family == "dinov2"
    with pytest.raises(EmbedderError, match="model_type 'dinov2'"):
        load_embedder(EmbedderConfig(model=str(renamed), family="clip"))
    unknown = tmp_path / "bert"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(EmbedderError, match="model_type 'bert'"):
        load_embedder(EmbedderConfig(model=str(unknown)))


def test_hub_id_found_in_cache_offline(
    model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--tiny-org--tiny-dino"
    shutil.copytree(model_dirs["dinov2"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    embedder = load_embedder(EmbedderConfig(model="tiny-org/tiny-dino"))
    assert embedder.info.model_id == "tiny-org/tiny-dino" and embedder.info.family == "dinov2"
    direct = load_embedder(EmbedderConfig(model=str(model_dirs["dinov2"])))
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


# ---- remote backend ----------------------------------------------------------------------------

REMOTE_DIM = 16


class _EmbeddingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.headers_seen: list[dict] = []
        self.fail_next = 0
        self.status_on_fail = 500
        self.shape = "float"
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _EmbeddingServer

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            failing = self.server.fail_next > 0
            self.server.fail_next -= 1 if failing else 0
            self.server.requests.append(json.loads(body))
            self.server.headers_seen.append(dict(self.headers))
        if self.path != "/v1/embeddings":
            return self._reply(404, {"error": "not found"})
        if failing:
            return self._reply(self.server.status_on_fail, {"error": "busy"})
        seed = int.from_bytes(
            hashlib.sha256(json.dumps(json.loads(body)["messages"]).encode()).digest()[:4], "little"
        )
        vector = np.random.RandomState(seed).randn(REMOTE_DIM).astype(np.float32)
        if self.server.shape == "base64":
            embedding: object = base64.b64encode(vector.astype("<f4").tobytes()).decode()
        elif self.server.shape == "nested":
            embedding = [vector.tolist()]
        else:
            embedding = vector.tolist()
        self._reply(
            200,
            {
                "object": "list",
                "data": [{"index": 0, "object": "embedding", "embedding": embedding}],
            },
        )

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    srv = _EmbeddingServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from index.embedders import remote

    monkeypatch.setattr(remote, "_BACKOFF_BASE_S", 0.01)


def _remote(server: _EmbeddingServer, **kwargs: object) -> VisualEmbedder:
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    return load_embedder(
        EmbedderConfig(model="qwen3-vl-emb", backend="remote", api_base=base, **kwargs)
    )


def test_remote_success(server: _EmbeddingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_EMB_KEY", "sekret")
    embedder = _remote(server, api_key_env="MY_EMB_KEY", batch_size=2)
    images = _images()
    vectors = embedder.embed_images(images)
    _assert_unit_rows(vectors, len(images), REMOTE_DIM)
    np.testing.assert_array_equal(vectors, embedder.embed_images(images))
    request = server.requests[0]
    assert request["model"] == "qwen3-vl-emb" and request["encoding_format"] == "float"
    system, user = request["messages"]
    assert system["role"] == "system" and system["content"][0]["text"] == DEFAULT_INSTRUCTION
    part = user["content"][0]
    assert part["type"] == "image_url"
    assert part["image_url"]["url"].startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].split(",", 1)[1])))
    assert decoded.mode == "RGB"
    assert server.headers_seen[0]["Authorization"] == "Bearer sekret"
    # photos are downscaled to the pixel budget before upload
    _remote(server, max_image_pixels=4096).embed_images([Image.new("RGB", (400, 300), "blue")])
    url = server.requests[-1]["messages"][1]["content"][0]["image_url"]["url"]
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.width * sent.height <= 4096 and abs(sent.width / sent.height - 4 / 3) < 0.05
    texts = embedder.embed_texts(TEXTS)
    _assert_unit_rows(texts, 3, REMOTE_DIM)
    assert server.requests[-1]["messages"][1]["content"][0] == {"type": "text", "text": TEXTS[-1]}
    info = embedder.info
    assert (info.family, info.dim, info.model_id) == (
        "qwen3_vl_embedding",
        REMOTE_DIM,
        "qwen3-vl-emb",
    )
    assert info.fingerprint == _remote(server).info.fingerprint
    assert info.fingerprint != _remote(server, dim=8).info.fingerprint
    np.testing.assert_allclose(embedder.get_query_embedding(TEXTS[0]), texts[0], atol=1e-6)


@pytest.mark.parametrize("shape", ["base64", "nested"])
def test_remote_response_shapes_and_truncation(server: _EmbeddingServer, shape: str) -> None:
    reference = _remote(server).embed_texts(TEXTS)
    server.shape = shape
    np.testing.assert_allclose(_remote(server).embed_texts(TEXTS), reference, atol=1e-6)
    small = _remote(server, dim=8).embed_texts(TEXTS)
    _assert_unit_rows(small, 3, 8)
    with pytest.raises(EmbedderError, match="native dimension 16"):
        _remote(server, dim=32).embed_texts(TEXTS)


def test_remote_retries_after_500(server: _EmbeddingServer) -> None:
    server.fail_next = 1
    vectors = _remote(server, max_retries=2).embed_texts(["a dent"])
    _assert_unit_rows(vectors, 1, REMOTE_DIM)
    assert len(server.requests) == 2
    server.fail_next = 5
    with pytest.raises(EmbedderError, match="HTTP 500") as err:
        _remote(server, max_retries=1).embed_texts(["a dent"])
    assert f"127.0.0.1:{server.server_address[1]}/v1/embeddings" in str(err.value)


def test_remote_client_error_is_not_retried(server: _EmbeddingServer) -> None:
    server.fail_next, server.status_on_fail = 1, 400
    with pytest.raises(EmbedderError, match="HTTP 400"):
        _remote(server, max_retries=3).embed_texts(["a dent"])
    assert len(server.requests) == 1


def test_remote_unreachable_names_endpoint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    embedder = load_embedder(
        EmbedderConfig(model="m", backend="remote", api_base=url, max_retries=1, timeout_s=2)
    )
    with pytest.raises(EmbedderError) as err:
        embedder.embed_images(_images()[:1])
    assert f"{url}/embeddings" in str(err.value) and "2 attempt" in str(err.value)
