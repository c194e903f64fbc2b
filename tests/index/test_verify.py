"""``python -m index info --verify``: a whole index passes, each kind of damage is named (exit 1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from index.verify import verify_index
from tests.fixtures.paths import REPO
from tests.index.vector_store import metadata_file


def run_verify(index_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "index", "info", "--verify", "--out", str(index_dir), *extra],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


@pytest.fixture
def index_copy(synth_index_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session's index (the shared one must stay whole)."""
    copy = tmp_path / "[index]"  # brackets: the summary prints paths as text, not markup
    shutil.copytree(synth_index_dir, copy)
    return copy


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def _some_crop(index_dir: Path) -> Path:
    return index_dir / next(iter(_json(index_dir / "manifest.json")["images"].values()))["crops"][0]


def test_a_whole_index_verifies_clean(index_copy: Path) -> None:
    report = verify_index(index_copy)
    manifest = _json(index_copy / "manifest.json")
    assert report.ok and report.problems == [] and report.warnings == []
    assert report.checked["nodes"] == manifest["counts"]["nodes"] == report.checked["crops"]
    assert report.checked["images"] == len(manifest["images"])
    done = run_verify(index_copy)
    assert done.returncode == 0, done.stderr
    assert f"verified {index_copy}" in done.stderr and "no problems" in done.stderr
    as_json = run_verify(index_copy, "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["ok"] is True


def _delete_crop(d: Path) -> None:
    _some_crop(d).unlink()


def _crop_not_a_jpeg(d: Path) -> None:
    _some_crop(d).write_bytes(b"not an image at all")


def _crop_is_a_png(d: Path) -> None:
    Image.new("RGB", (8, 8)).save(_some_crop(d), format="PNG")


def _image_path_outside(target: str) -> Callable[[Path], None]:
    def corrupt(d: Path) -> None:
        (d.parent / "outside.jpg").write_bytes(_some_crop(d).read_bytes())  # exists, but not ours
        metadata_file.set_node(d, next(iter(metadata_file.records(d))), image_path=target)
    return corrupt


def _manifest_counts_wrong(d: Path) -> None:
    manifest = _json(d / "manifest.json")
    manifest["counts"]["nodes"] += 1
    _write(d / "manifest.json", manifest)


def _node_only_in_manifest(d: Path) -> None:
    manifest = _json(d / "manifest.json")
    next(iter(manifest["images"].values()))["nodes"].append("r-ghost")
    _write(d / "manifest.json", manifest)


def _crop_link_outside(d: Path) -> None:
    crop = _some_crop(d)
    (d.parent / "elsewhere.jpg").write_bytes(crop.read_bytes())
    crop.unlink()
    crop.symlink_to(d.parent / "elsewhere.jpg")


@pytest.mark.parametrize(("corrupt", "code"), [
    (_delete_crop, "missing_crop"),
    (_crop_not_a_jpeg, "bad_crop"),
    (_crop_is_a_png, "bad_crop"),
    (_image_path_outside("../outside.jpg"), "outside_index"),
    (_image_path_outside("/etc/passwd"), "outside_index"),
    (_image_path_outside("metadata.sqlite"), "outside_crops"),
    (_crop_link_outside, "outside_index"),
    (_manifest_counts_wrong, "count_mismatch"),
    (_node_only_in_manifest, "node_not_in_metadata"),
], ids=["deleted_crop", "crop_not_jpeg", "crop_is_png", "dotdot", "absolute", "not_in_crops", "symlink_out",
        "counts_wrong", "node_not_in_metadata"])
def test_each_corruption_is_named_and_exits_1(index_copy: Path, corrupt: Callable[[Path], None], code: str) -> None:
    corrupt(index_copy)
    done = run_verify(index_copy, "--json")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert code in {p["code"] for p in report["problems"]}, report["problems"]
    human = run_verify(index_copy)
    assert human.returncode == 1 and "Traceback" not in human.stderr
    assert f"problem {code}:" in human.stderr and "damaged" in human.stderr


def test_an_orphan_crop_is_a_warning_only(index_copy: Path) -> None:
    shutil.copy(_some_crop(index_copy), index_copy / "crops" / "stray.jpg")
    done = run_verify(index_copy, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["problems"] == []
    assert report["warnings"] == [{"code": "orphan_crop", "message": "crops/stray.jpg is in crops/ but nothing names it."}]


def test_a_node_missing_from_the_manifest_is_named(index_copy: Path) -> None:
    manifest = _json(index_copy / "manifest.json")
    dropped = next(iter(manifest["images"].values()))["nodes"].pop()
    _write(index_copy / "manifest.json", manifest)
    report = verify_index(index_copy)
    assert [p.code for p in report.problems] == ["node_not_in_manifest"]
    assert dropped in report.problems[0].message


@pytest.mark.parametrize(("fault", "code"), [("not_a_database", "store_corrupt"), ("row_not_json", "store_corrupt"),
                                             ("version_1", "store_old_format")])
def test_an_unreadable_store_is_a_problem_and_no_index_is_exit_2(index_copy: Path, tmp_path: Path, fault: str,
                                                                   code: str) -> None:
    if fault == "not_a_database":
        (index_copy / "metadata.sqlite").write_text('{"format": "damage_rag.faiss_node_store", "version": 1}')
    elif fault == "row_not_json":  # whole at a glance: found by verify's full read of every row
        metadata_file.execute(index_copy, "UPDATE bodies SET node = '{\"id_\": ,}' WHERE fid = (SELECT min(fid) FROM bodies)")
    else:
        (index_copy / "metadata.sqlite").unlink()
        (index_copy / "metadata.json").write_text('{"format": "damage_rag.faiss_node_store", "version": 1, "nodes": {}}')
    done = run_verify(index_copy, "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [p["code"] for p in json.loads(done.stdout)["problems"]] == [code]
    missing = run_verify(tmp_path / "nothing")
    assert missing.returncode == 2 and "No index at" in missing.stderr and "Traceback" not in missing.stderr
