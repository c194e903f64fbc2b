"""The index never lies: one writer at a time, crops on disk checked, bad files and full disks are sentences."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.build import build_index
from index.lock import lock_path, writer_lock
from tests.fixtures.datasets import with_root
from tests.fixtures.paths import REPO, VEHICLE_CONFIG
from tests.index.vector_store import metadata_file


@pytest.fixture
def config(vehicle_config, synth_dataset, tiny_dinov2):
    return with_root(vehicle_config, synth_dataset, **{"embedder.model": str(tiny_dinov2)})


def index_cli(*args: str, preexec=None) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "index", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO, preexec_fn=preexec)


def build_args(out: Path, synth_dataset: Path, tiny_dinov2: Path, *extra: str) -> list[str]:
    return ["build", "--config", str(VEHICLE_CONFIG), "--dataset", str(synth_dataset), "--embedder", str(tiny_dinov2),
            "--out", str(out), *extra]


def finish(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def assert_whole(out: Path, nodes: int) -> None:
    """Every crop the metadata and the manifest name exists, and the index has ``nodes`` nodes."""
    metadata = metadata_file.records(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(metadata) == nodes == manifest["counts"]["nodes"] == metadata_file.header(out)["count"]
    named = {record["node"]["image_path"] for record in metadata.values()}
    named |= {crop for state in manifest["images"].values() for crop in state["crops"]}
    missing = [name for name in named if not (out / name).is_file()]
    assert not missing, f"{len(missing)} crops named but absent"


@pytest.fixture(scope="module")
def clean_nodes(synth_index_dir) -> int:
    return len(metadata_file.records(synth_index_dir))


def test_a_second_build_refuses_naming_the_running_one(tmp_path, synth_dataset, tiny_dinov2):
    out = tmp_path / "index"
    with writer_lock(out):
        code, _, stderr = finish(index_cli(*build_args(out, synth_dataset, tiny_dinov2)))
    assert code == 2 and "Traceback" not in stderr
    assert f"pid {os.getpid()}" in stderr and "--wait" in stderr
    assert not out.exists() and not (tmp_path / "index.staging").exists()


def test_with_wait_a_second_build_waits_then_runs(tmp_path, synth_dataset, tiny_dinov2, clean_nodes):
    out = tmp_path / "index"
    with writer_lock(out):
        waiting = index_cli(*build_args(out, synth_dataset, tiny_dinov2, "--wait"))
        time.sleep(3)
        assert waiting.poll() is None, "the build did not wait for the lock"
        assert not out.exists()
    code, _, stderr = finish(waiting)
    assert code == 0, stderr
    assert_whole(out, clean_nodes)


def test_two_builds_at_once_leave_one_whole_index(tmp_path, synth_dataset, tiny_dinov2, clean_nodes):
    out = tmp_path / "index"
    builds = [index_cli(*build_args(out, synth_dataset, tiny_dinov2, "--wait", "--json")) for _ in range(2)]
    results = [finish(b) for b in builds]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    reports = sorted((json.loads(stdout) for _, stdout, _ in results), key=lambda r: r["up_to_date"])
    assert [r["up_to_date"] for r in reports] == [False, True]
    assert_whole(out, clean_nodes)
    assert not (tmp_path / "index.staging").exists()


def test_a_lock_left_by_a_dead_build_is_taken_over(tmp_path, config, clean_nodes):
    out = tmp_path / "index"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock_path(out).write_text(json.dumps({"pid": int(dead.stdout), "host": "x", "started": "then"}))
    build_index(config, index_dir=out)
    assert_whole(out, clean_nodes)


def test_deleted_crops_are_cut_again(tmp_path, synth_index_dir, config, clean_nodes):
    out = Path(shutil.copytree(synth_index_dir, tmp_path / "index"))
    shutil.rmtree(out / "crops")
    report = build_index(config, index_dir=out)
    assert not report["up_to_date"] and report["recut_images"] == report["images"]
    assert_whole(out, clean_nodes)
    assert build_index(config, index_dir=out)["up_to_date"]


def test_a_checkpoint_with_empty_crops_is_not_resumed_as_if_whole(tmp_path, synth_index_dir, config, clean_nodes):
    """The measured failure: a staging checkpoint whose crops/ was emptied gave an index missing most crops."""
    out = tmp_path / "index"
    staging = Path(shutil.copytree(synth_index_dir, tmp_path / "index.staging"))
    manifest = json.loads((staging / "manifest.json").read_text())
    (staging / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    for crop in (staging / "crops").iterdir():
        crop.unlink()
    report = build_index(config, index_dir=out)
    assert report["recut_images"] == report["images"]
    assert_whole(out, clean_nodes)


BAD_MANIFESTS = {
    "no_counts": lambda m: {k: v for k, v in m.items() if k != "counts"},
    "no_embedder": lambda m: {k: v for k, v in m.items() if k != "embedder"},
    "bad_taxonomy": lambda m: {**m, "config": {**m["config"], "taxonomy": {"labels": 5}}},
    "images_list": lambda m: {**m, "images": []},
    "not_an_object": lambda m: [m],
}


@pytest.mark.parametrize("fault", sorted(BAD_MANIFESTS))
def test_a_wrongly_shaped_manifest_is_one_line_for_readers_and_a_rebuild_for_build(
        fault, tmp_path, synth_index_dir, config, clean_nodes):
    out = Path(shutil.copytree(synth_index_dir, tmp_path / "index"))
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(BAD_MANIFESTS[fault](manifest)))
    code, _, stderr = finish(index_cli("info", "--out", str(out)))
    assert code == 2 and "Traceback" not in stderr and "manifest.json" in stderr
    assert len(stderr.strip().splitlines()) <= 2  # rich may wrap the one sentence
    report = build_index(config, index_dir=out)
    assert report["rebuilt"] and not report["up_to_date"]
    assert_whole(out, clean_nodes)


def test_an_index_of_format_1_is_one_line_for_readers_and_a_rebuild_for_build(tmp_path, synth_index_dir, config,
                                                                             clean_nodes):
    """An index built before metadata.sqlite: its manifest says format 1 and it holds metadata.json."""
    out = Path(shutil.copytree(synth_index_dir, tmp_path / "index"))
    (out / "metadata.sqlite").unlink()
    (out / "metadata.json").write_text(json.dumps({"format": "damage_rag.faiss_node_store", "version": 1, "nodes": {}}))
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    photo = next(p for p in sorted((out / "crops").iterdir()))
    for command in (("info", "--out", str(out)), ("search", "--out", str(out), "--image", str(photo))):
        code, _, stderr = finish(index_cli(*command))
        assert code == 2 and "Traceback" not in stderr, stderr
        assert "format version 1" in stderr and "python -m index build" in stderr
        assert len(stderr.strip().splitlines()) <= 2  # rich may wrap the one sentence
    report = build_index(config, index_dir=out)
    assert "format version 1" in report["rebuilt"] and report["rebuilt"].endswith("rebuilt from scratch")
    assert not (out / "metadata.json").exists()
    assert_whole(out, clean_nodes)


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_during_a_build_is_one_line_and_the_old_index_stays(tmp_path, synth_index_dir, synth_dataset,
                                                                       tiny_dinov2, clean_nodes):
    """A file-size limit stands in for a full disk: every write past it fails as a full disk's would."""
    out = Path(shutil.copytree(synth_index_dir, tmp_path / "index"))
    before = (out / "metadata.sqlite").read_bytes()
    args = build_args(out, synth_dataset, tiny_dinov2, "--index-type", "hnsw")  # a changed index: everything rewritten
    code, _, stderr = finish(index_cli(*args, preexec=_file_size_limit(20_000)))
    assert code == 1 and "Traceback" not in stderr, stderr
    assert "Cannot write" in stderr and "File too large" in stderr
    assert (out / "metadata.sqlite").read_bytes() == before
    assert_whole(out, clean_nodes)


def test_a_build_into_a_folder_that_cannot_be_made_is_one_line(tmp_path, synth_dataset, tiny_dinov2):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    code, _, stderr = finish(index_cli(*build_args(blocker / "index", synth_dataset, tiny_dinov2)))
    assert code == 1 and "Traceback" not in stderr and str(blocker) in stderr


def test_readers_read_an_interrupted_swap_and_rename_nothing(tmp_path, synth_index_dir, synth_dataset, clean_nodes):
    old = Path(shutil.copytree(synth_index_dir, tmp_path / "index.old"))
    out = tmp_path / "index"
    code, stdout, stderr = finish(index_cli("info", "--out", str(out), "--json"))
    assert code == 0, stderr
    assert json.loads(stdout)["nodes"] == clean_nodes
    photo = next(synth_dataset.glob("*.jpg"))
    code, stdout, stderr = finish(index_cli("search", "--out", str(out), "--image", str(photo), "--json"))
    assert code == 0, stderr
    hits = json.loads(stdout)
    assert hits and all(Path(h["crop_path"]).is_file() for h in hits)
    assert old.is_dir() and not out.exists()
