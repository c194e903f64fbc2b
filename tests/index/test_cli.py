"""``python -m index`` as a user runs it: synth, inspect (LabelMe and COCO), build, info, search."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.fixtures.paths import PCB_CONFIG, REPO, VEHICLE_CONFIG


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "index", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stderr}")
    return result


def test_synth_then_inspect_json(tmp_path):
    data = tmp_path / "cars"
    synth = json.loads(run("synth", "--out", str(data), "--n", "10", "--size", "640x480", "--seed", "3", "--json").stdout)
    assert synth["images"] == 10
    (data / "broken_labelDANO_modificado.json").write_text("{not json")
    out = tmp_path / "inspect"
    report = json.loads(run("inspect", "--config", str(VEHICLE_CONFIG), "--dataset", str(data), "--out", str(out), "--json").stdout)
    assert report["images"] == 10 - report["excluded_incorrect"]
    assert set(report["regions_by_label"]) == {"scratch", "dent", "paint_peeling", "large_scratch", "crack",
                                               "missing_piece", "missing_accessory", "misaligned_part"}
    assert set(report["nodes_by_kind"]) == {"region", "image", "background"}
    assert {"file": str(data / "broken_labelDANO_modificado.json"), "reason": "malformed_json"}.items() <= report["skipped"][0].items()
    assert (out / "report.json").is_file()
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width > 600 and sheet.height > 8 * 192


def test_inspect_limit_draws_a_stratified_sample(tmp_path):
    data = tmp_path / "cars"
    run("synth", "--out", str(data), "--n", "30", "--size", "640x480", "--seed", "5")
    report = json.loads(run("inspect", "--config", str(VEHICLE_CONFIG), "--dataset", str(data), "--limit", "9",
                            "--out", str(tmp_path / "i"), "--no-contact-sheet", "--json").stdout)
    assert report["images"] == 9 and len(report["sample"]) == 9
    assert all(count > 0 for count in report["images_by_label"].values())


def test_inspect_a_coco_dataset_with_the_second_domain(tmp_path):
    data = tmp_path / "pcb"
    run("synth", "--out", str(data), "--n", "8", "--size", "512x384", "--format", "coco", "--config", str(PCB_CONFIG))
    report = json.loads(run("inspect", "--config", str(PCB_CONFIG), "--dataset", str(data), "--out", str(tmp_path / "i"), "--json").stdout)
    assert report["format"] == "coco" and report["images"] == 8
    assert set(report["regions_by_label"]) == {"missing_hole", "mouse_bite", "open_circuit", "short", "spur", "spurious_copper"}
    assert sum(report["regions_by_label"].values()) > 0 and report["nodes_by_kind"]["background"] > 0


def test_user_errors_are_one_line_without_traceback(tmp_path):
    missing = run("inspect", "--config", str(VEHICLE_CONFIG), "--dataset", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(VEHICLE_CONFIG.read_text().replace("context_margin:", "context_margn:"))
    result = run("inspect", "--config", str(bad), check=False)
    assert result.returncode == 2 and "unknown key 'regions.context_margn'" in result.stderr
    no_index = run("info", "--index", str(tmp_path / "none"), "--json", check=False)
    assert no_index.returncode == 2 and "No index at" in no_index.stderr and "Traceback" not in no_index.stderr


@pytest.mark.slow
def test_build_info_search_cli(tmp_path, synth_dataset, tiny_dinov2):
    out = tmp_path / "index"
    build = json.loads(run("build", "--config", str(VEHICLE_CONFIG), "--dataset", str(synth_dataset), "--embedder", str(tiny_dinov2),
                           "--index", str(out), "--json").stdout)
    assert build["images"] == 12
    info = json.loads(run("info", "--index", str(out), "--json").stdout)
    assert info["dim"] == 32 and info["embedder"] == str(tiny_dinov2)
    assert set(info["nodes_by_kind"]) == {"region", "image", "background"} and info["regions_by_label"]["scratch"] > 0
    photo = next(Path(synth_dataset).glob("*.jpg"))
    hits = json.loads(run("search", "--index", str(out), "--image", str(photo), "--label", "abolladura", "-k", "2", "--json").stdout)
    assert len(hits) == 2
    for hit in hits:
        assert {"id", "kind", "label", "similarity", "source_image", "crop_path"} <= hit.keys()
        assert "dent" in hit["labels"] and Path(hit["crop_path"]).is_file()
    unknown = run("search", "--index", str(out), "--image", str(photo), "--label", "rust", check=False)
    assert unknown.returncode == 2 and "Unknown label 'rust'" in unknown.stderr


def test_search_with_a_corrupt_query_photo_is_one_line(tmp_path, synth_dataset, tiny_dinov2):
    from index.build import build_index
    from index.config import apply_overrides, load_config

    out = tmp_path / "index"
    config = apply_overrides(load_config(VEHICLE_CONFIG), {"dataset.root": str(synth_dataset), "embedder.model": str(tiny_dinov2)})
    build_index(config, index_dir=out, limit=2)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    result = run("search", "--index", str(out), "--image", str(bad), check=False)
    assert result.returncode == 2 and "bad.jpg" in result.stderr and "Traceback" not in result.stderr


def test_search_marks_the_query_photos_own_hits_self(tmp_path, synth_dataset, tiny_dinov2):
    from index.build import build_index
    from index.config import apply_overrides, load_config

    out = tmp_path / "index"
    config = apply_overrides(load_config(VEHICLE_CONFIG), {"dataset.root": str(synth_dataset), "embedder.model": str(tiny_dinov2)})
    build_index(config, index_dir=out, limit=3)
    indexed = sorted(json.loads((out / "manifest.json").read_text())["images"])
    photo = Path(synth_dataset) / indexed[0]
    copy = tmp_path / "renamed.jpg"
    copy.write_bytes(photo.read_bytes())
    for query in (photo, copy):  # the same file, and the same bytes under another name
        hits = json.loads(run("search", "--index", str(out), "--image", str(query), "--kind", "image", "-k", "3", "--json").stdout)
        assert [h["image_id"] for h in hits if h["self"]] == [indexed[0]], query
        assert hits[0]["self"] is True and not any(h["self"] for h in hits[1:])
    table = run("search", "--index", str(out), "--image", str(photo), "--kind", "image", "-k", "3").stderr
    assert "(self)" in table and "the query photo is in the index" in table
    outside = next(p for p in sorted(Path(synth_dataset).glob("*.jpg")) if p.relative_to(synth_dataset).as_posix() not in indexed)
    hits = json.loads(run("search", "--index", str(out), "--image", str(outside), "--kind", "image", "--json").stdout)
    assert hits and not any(h["self"] for h in hits)
