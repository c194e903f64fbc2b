"""Build → search end to end: incremental reruns, interruption, embedder changes, exact filters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.config import apply_overrides
from index.embedders import EmbedderConfig, load_embedder
from index.search import DamageIndex, EmbedderMismatchError, index_info
from tests.fixtures.datasets import with_root


@pytest.fixture
def dataset(tmp_path, synth_dataset) -> Path:
    """A private copy of the synthetic dataset, free to modify."""
    return Path(shutil.copytree(synth_dataset, tmp_path / "data"))


@pytest.fixture
def config(vehicle_config, dataset, tiny_dinov2):
    return with_root(vehicle_config, dataset, **{"embedder.model": str(tiny_dinov2)})


def test_build_then_search_end_to_end(config, tmp_path):
    out = tmp_path / "index"
    report = build_index(config, index_dir=out)
    assert report["images"] == 12 and report["embedded_images"] == 12 and not report["up_to_date"]
    assert set(report["nodes_by_kind"]) == {"region", "image", "background"}
    assert set(report["regions_by_label"]) == set(config.taxonomy.label_keys())
    for name in ("faiss.index", "metadata.sqlite", "manifest.json", "build_report.json"):
        assert (out / name).is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["embedder"]["family"] == "dinov2" and manifest["dim"] == 32
    assert manifest["config"]["regions"]["crop_size"] == 384 and manifest["complete"]
    info = index_info(out)
    assert info["nodes"] == report["vectors"] == sum(report["nodes_by_kind"].values())

    index = DamageIndex.open(out)
    query = next(config.dataset.root.glob("*.jpg"))
    hits = index.search(query, k=4, label="rayones", kind="region")
    assert len(hits) == 4 and all(h.label == "scratch" and h.kind == "region" for h in hits)
    assert all(Path(h.crop_path).is_file() for h in hits)
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    assert not list(out.parent.glob("index.staging")) and not list(out.parent.glob("index.old"))


def test_filtered_search_is_the_true_top_k(config, tmp_path):
    out = tmp_path / "index"
    build_index(config, index_dir=out)
    index = DamageIndex.open(out)
    query = index.embed(next(config.dataset.root.glob("*.jpg")))
    for label in config.taxonomy.label_keys():
        allowed = [n for n in index.store.get_nodes(index.store.node_ids()) if label in n.metadata["labels"]]
        brute = sorted(((float(index.store.get_vector(n.node_id) @ query), n.node_id) for n in allowed), reverse=True)
        hits = index.search(vector=query, k=3, label=label)
        assert [h.id for h in hits] == [node_id for _, node_id in brute[:3]]


def test_rerun_reuses_and_tracks_changes(config, dataset, tmp_path):
    out = tmp_path / "index"
    first = build_index(config, index_dir=out)
    again = build_index(config, index_dir=out)
    assert again["up_to_date"] and again["reused_images"] == 12 and again["vectors"] == first["vectors"]

    annotation = sorted(dataset.glob("*.json"))[0]
    doc = json.loads(annotation.read_text())
    doc["shapes"].append({"label": "2", "points": [[10, 10], [60, 10], [60, 60]], "shape_type": "polygon",
                          "flags": {}, "group_id": None})
    annotation.write_text(json.dumps(doc))
    gone = sorted(dataset.glob("*.json"))[-1]
    (dataset / json.loads(gone.read_text())["imagePath"]).unlink()
    gone.unlink()
    changed = build_index(config, index_dir=out)
    assert changed["embedded_images"] == 1 and changed["reused_images"] == 10 and changed["images"] == 11
    assert changed["removed_nodes"] > 0
    index = DamageIndex.open(out)
    assert index.store.count() == changed["vectors"] == sum(changed["nodes_by_kind"].values())
    stored = {p.name for p in (out / "crops").iterdir()}
    assert stored == {Path(n.image_path).name for n in index.store.get_nodes(index.store.node_ids())}


class _Interrupting:
    """Wraps an embedder and raises KeyboardInterrupt after some batches (a user's Ctrl-C)."""

    def __init__(self, inner, after: int) -> None:
        self.inner, self.after, self.calls = inner, after, 0
        self.info = inner.info

    def embed_images(self, images):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return self.inner.embed_images(images)


def test_interrupted_build_keeps_the_old_index_and_resumes(config, dataset, tmp_path):
    out = tmp_path / "index"
    small = apply_overrides(config, {"embedder.batch_size": 2})
    build_index(small, index_dir=out, limit=4)
    before = (out / "manifest.json").read_bytes()
    embedder = load_embedder(small.embedder)
    with pytest.raises(KeyboardInterrupt):
        build_index(small, index_dir=out, embedder=_Interrupting(embedder, after=6), checkpoint_every=2)
    assert (out / "manifest.json").read_bytes() == before  # the previous index is untouched
    assert DamageIndex.open(out).store.count() > 0
    resumed = build_index(small, index_dir=out)
    assert resumed["images"] == 12 and resumed["embedded_images"] < 12 - 4  # picked up the checkpoint
    assert DamageIndex.open(out).store.count() == resumed["vectors"]


def test_other_embedder_rebuilds_and_is_refused_at_query_time(config, tmp_path, tiny_dinov2):
    from index.embedders.tiny import save_tiny_dinov2

    other = save_tiny_dinov2(tmp_path / "other-dinov2", seed=99, hidden_size=48, layers=1)
    out = tmp_path / "index"
    build_index(config, index_dir=out, limit=3)
    with pytest.raises(EmbedderMismatchError, match="not comparable"):
        DamageIndex.open(out, embedder_model=str(other))
    assert DamageIndex.open(out, embedder_model=str(tiny_dinov2)).store.count() > 0
    rebuilt = build_index(apply_overrides(config, {"embedder.model": str(other)}), index_dir=out, limit=3)
    assert "embedder changed" in rebuilt["rebuilt"] and rebuilt["dim"] == 48
    assert rebuilt["embedded_images"] == 3


def test_corrupt_photo_found_while_building_is_skipped(config, dataset, tmp_path):
    image = sorted(dataset.glob("*.jpg"))[0]
    data = bytearray(image.read_bytes())
    table = data.index(b"\xff\xc4")
    data[table + 5 : table + 21] = b"\xff" * 16  # header reads, pixels do not
    image.write_bytes(bytes(data))
    report = build_index(config, index_dir=tmp_path / "index")
    assert report["images"] == 11 and report["skipped_by_reason"] == {"corrupt_image": 1}
    assert report["skipped"][0]["file"].endswith(image.name)


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_index_types_build_and_search(config, tmp_path, index_type):
    out = tmp_path / "index"
    build_index(apply_overrides(config, {"index.type": index_type}), index_dir=out)
    index = DamageIndex.open(out)
    hits = index.search(next(config.dataset.root.glob("*.jpg")), k=3, label="dent")
    assert hits and all("dent" in h.labels for h in hits)


def test_query_embedder_info_matches_manifest(config, tmp_path):
    out = tmp_path / "index"
    build_index(config, index_dir=out, limit=2)
    embedder = load_embedder(EmbedderConfig(model=config.embedder.model))
    index = DamageIndex.open(out, embedder=embedder)
    vector = index.embed(next(config.dataset.root.glob("*.jpg")))
    assert vector.shape == (32,) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-4)


def test_missing_embedder_leaves_no_index_and_no_debris(config, tmp_path):
    from index.embedders import EmbedderError

    out = tmp_path / "index"
    broken = apply_overrides(config, {"embedder.model": str(tmp_path / "no-such-model")})
    with pytest.raises(EmbedderError, match="no-such-model"):
        build_index(broken, index_dir=out)
    assert not out.exists() and not (tmp_path / "index.staging").exists()


def test_build_of_one_side_of_a_split_indexes_only_those_photos(config, tmp_path):
    from index.dataset import read_dataset

    ids = sorted(r.image_id for r in read_dataset(config).records)
    train = ids[: len(ids) // 2]
    out = tmp_path / "train"
    report = build_index(config, index_dir=out, images=train)
    assert report["images"] == len(train) and not report["skipped_by_reason"]
    index = DamageIndex.open(out)
    assert {n.metadata["image_id"] for n in index.store.get_nodes()} == set(train)
    assert build_index(config, index_dir=out, images=train)["up_to_date"]


def test_report_gives_each_stage_and_the_bottleneck(config, tmp_path):
    report = build_index(config, index_dir=tmp_path / "index", workers=2)
    stages = report["stages"]
    for stage in ("scan", "model_load", "decode", "cut", "embed", "write_crops", "write_index"):
        assert stages[stage] >= 0, stage
    assert stages["decode"] > 0 and stages["embed"] > 0
    pipeline = report["pipeline"]
    assert pipeline["embedded_crops"] == report["vectors"] and pipeline["decode_workers"] == 2
    assert pipeline["bottleneck"] in ("decode", "embed") and pipeline["torch_threads"] >= 1
    assert 0 <= pipeline["first_embed_s"] <= report["seconds"]
    assert build_index(config, index_dir=tmp_path / "index")["pipeline"] is None  # up to date: nothing ran


# ---- the embed thread, alone (no model: a scripted embedder) ---------------------------------

class _Node:
    def __init__(self, node_id: str) -> None:
        self.node_id, self.embedding = node_id, None


class _Crop:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id

    def to_image_node(self, dataset, image_path):
        return _Node(self.node_id)


class _Rendered:
    def __init__(self, node_id: str) -> None:
        self.crop, self.image, self.relative_path = _Crop(node_id), object(), f"crops/{node_id}.jpg"


class _Store:
    def __init__(self) -> None:
        self.nodes: list = []

    def add(self, nodes) -> None:
        self.nodes += nodes


class _GatedEmbedder:
    """Blocks every forward pass until released; fails if told to."""

    def __init__(self, fail: bool = False) -> None:
        import threading

        self.gate, self.fail, self.calls = threading.Event(), fail, 0

    def embed_images(self, images):
        self.calls += 1
        assert self.gate.wait(10)
        if self.fail:
            raise RuntimeError("out of memory")
        return np.ones((len(images), 4), dtype=np.float32)


def _worker(embedder, store, limit=2, batch_size=2):
    from index.batches import EmbedThreads, EmbedWorker, ModelLoader, StageClock

    model = ModelLoader(config=None, embedder=embedder)
    threads = EmbedThreads(workers=1)
    threads.bottleneck = "decode"  # no probe: every call is one batch
    return EmbedWorker(model, store, "ds", batch_size, threads, StageClock(), limit=lambda: limit, produce_pace=lambda: 0.1)


def test_embed_queue_is_bounded_and_drains_everything_in_order():
    import threading

    embedder, store = _GatedEmbedder(), _Store()
    worker = _worker(embedder, store, limit=2, batch_size=2)
    for i in range(3):  # one batch taken by the thread (blocked in the model), two queued: full
        worker.put(f"p{i}", "sig", [_Rendered(f"p{i}-a"), _Rendered(f"p{i}-b")])
    blocked = threading.Thread(target=worker.put, args=("p3", "sig", [_Rendered("p3-a")]))
    blocked.start()
    blocked.join(0.5)
    assert blocked.is_alive()  # the producer waits for the embedder: memory stays bounded
    embedder.gate.set()
    blocked.join(10)
    done = worker.drain()
    worker.close()
    assert [image_id for image_id, _, _ in done] == ["p0", "p1", "p2", "p3"]
    assert [n.node_id for n in store.nodes] == ["p0-a", "p0-b", "p1-a", "p1-b", "p2-a", "p2-b", "p3-a"]
    assert all(n.embedding == [1.0] * 4 for n in store.nodes)


def test_embed_thread_error_reaches_the_producer():
    embedder, store = _GatedEmbedder(fail=True), _Store()
    worker = _worker(embedder, store, batch_size=1)
    worker.put("p0", "sig", [_Rendered("p0-a")])
    embedder.gate.set()
    with pytest.raises(RuntimeError, match="out of memory"):
        worker.drain()
    worker.abort()
    assert store.nodes == []


def test_torch_gets_every_core_only_when_the_model_is_the_bottleneck():
    import os

    from index.batches import EmbedThreads

    cores = os.cpu_count() or 1
    heavy = EmbedThreads(workers=2)
    heavy.decide(embed_s_per_crop=1.4, crops_per_photo=4, produce_s_per_photo=0.15)  # DINOv2-base on a CPU
    assert (heavy.bottleneck, heavy.threads) == ("embed", cores)
    tiny = EmbedThreads(workers=2)
    tiny.decide(embed_s_per_crop=0.004, crops_per_photo=4, produce_s_per_photo=0.15)
    assert (tiny.bottleneck, tiny.threads) == ("decode", max(1, cores - 2))
    for threads in (heavy, tiny):
        threads.restore()


def test_batches_are_sized_for_a_gpu_unless_configured():
    from index.batches import GPU_BATCH_SIZE, batch_size_for_device

    default = EmbedderConfig(model="m")
    assert batch_size_for_device(default, cuda=True).batch_size == GPU_BATCH_SIZE
    assert batch_size_for_device(default, cuda=False) is default
    for kept in (EmbedderConfig(model="m", batch_size=8), EmbedderConfig(model="m", device="cpu")):
        assert batch_size_for_device(kept, cuda=True) is kept
