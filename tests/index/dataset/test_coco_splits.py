"""COCO sets shipped as one file per split are read as one dataset, each image knowing its split.

Layouts: ``instances_{train,val,test}.json`` over one ``images/`` folder, Roboflow's
``{train,valid,test}/_annotations.coco.json`` beside their images, and the official
``annotations/instances_val2017.json`` beside ``val2017/``; ``--dataset`` may name one file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from index.config import load_config
from index.dataset.adapters import AdapterError, load_adapter
from index.dataset.ingest import DatasetScan, read_dataset
from index.dataset.records import RawImage
from tests.fixtures.datasets import make_photo, with_root
from tests.fixtures.paths import PCB_CONFIG, REPO

SIZE = (64, 48)
BOX = [8, 8, 32, 24]
#: The existing path that carries an adapter's raw attribute into the record (see test_split_reaches_the_record).
SPLIT_FIELD = [{"source": "split", "pattern": "^(?P<split>.+)$"}]


@pytest.fixture
def pcb_config():
    """The printed-circuit-board domain (a COCO dataset; configured annotations.json and images/)."""
    return load_config(PCB_CONFIG)


def coco(names: list[str], category: str = "short", first_id: int = 1) -> dict[str, Any]:
    """A COCO document listing ``names`` (ids from ``first_id``), one box of ``category`` each."""
    return {
        "images": [{"id": first_id + i, "file_name": n, "width": SIZE[0], "height": SIZE[1]} for i, n in enumerate(names)],
        "annotations": [{"id": 100 + i, "image_id": first_id + i, "category_id": 7, "bbox": BOX, "segmentation": [],
                         "iscrowd": 0} for i in range(len(names))],
        "categories": [{"id": 7, "name": category}],
    }


def write(path: Path, doc: dict[str, Any], images: Path | None = None) -> Path:
    """``doc`` as JSON at ``path``, and its listed photos in ``images`` (default: beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    for entry in doc["images"]:
        make_photo((images or path.parent) / entry["file_name"], SIZE)
    return path


def raw_images(config) -> list[RawImage]:
    return [item for item in load_adapter(config.dataset).read() if isinstance(item, RawImage)]


def splits(scan: DatasetScan) -> dict[str, str | None]:
    return {r.image_id: r.attributes.get("split") for r in scan.records}


def shared_folder(root: Path) -> Path:
    """instances_train/val/test.json over one images/ folder; every file's first image id is 1."""
    write(root / "instances_train.json", coco(["t1.jpg", "t2.jpg"], "short"), root / "images")
    write(root / "instances_val.json", coco(["v1.jpg"], "spur"), root / "images")
    write(root / "instances_test.json", coco(["x1.jpg"], "mouse bite"), root / "images")
    return root


def roboflow(root: Path) -> Path:
    """Roboflow's export: one folder per split, each with _annotations.coco.json and its images."""
    write(root / "train" / "_annotations.coco.json", coco(["a.jpg", "b.jpg"]))
    write(root / "valid" / "_annotations.coco.json", coco(["a.jpg"], "spur"))  # another a.jpg: another image
    write(root / "test" / "_annotations.coco.json", coco(["c.jpg"]))
    (root / "README.roboflow.txt").write_text("exported from roboflow", encoding="utf-8")
    return root


def test_split_files_over_one_images_folder_are_one_dataset(tmp_path, pcb_config):
    config = with_root(pcb_config, shared_folder(tmp_path), **{"dataset.fields": SPLIT_FIELD})
    scan = read_dataset(config)  # annotation_file: annotations.json is not there: the split files are read
    assert scan.skipped == []
    assert splits(scan) == {"images/t1.jpg": "train", "images/t2.jpg": "train", "images/v1.jpg": "val",
                            "images/x1.jpg": "test"}
    labels = {r.image_id: [g.label_key for g in r.regions] for r in scan.records}
    assert labels == {"images/t1.jpg": ["short"], "images/t2.jpg": ["short"], "images/v1.jpg": ["spur"],
                      "images/x1.jpg": ["mouse_bite"]}  # each file's category 7 is its own


def test_the_adapter_records_each_images_split(tmp_path, pcb_config):
    raws = raw_images(with_root(pcb_config, shared_folder(tmp_path)))
    assert Counter(r.attributes["split"] for r in raws) == Counter(train=2, val=1, test=1)
    assert {r.annotation_path.name for r in raws if r.attributes["split"] == "val"} == {"instances_val.json"}


def test_roboflow_split_folders(tmp_path, pcb_config):
    scan = read_dataset(with_root(pcb_config, roboflow(tmp_path), **{"dataset.fields": SPLIT_FIELD}))
    assert scan.skipped == []
    assert splits(scan) == {"train/a.jpg": "train", "train/b.jpg": "train", "valid/a.jpg": "val", "test/c.jpg": "test"}


def test_the_official_layout_finds_each_splits_image_folder(tmp_path, pcb_config):
    write(tmp_path / "annotations" / "instances_train2017.json", coco(["1.jpg"]), tmp_path / "train2017")
    write(tmp_path / "annotations" / "instances_val2017.json", coco(["2.jpg"]), tmp_path / "val2017")
    (tmp_path / "annotations" / "captions_val2017.json").write_text(json.dumps({"images": [], "annotations": []}))
    scan = read_dataset(with_root(pcb_config, tmp_path, **{"dataset.fields": SPLIT_FIELD}))
    assert scan.skipped == [] and splits(scan) == {"train2017/1.jpg": "train", "val2017/2.jpg": "val"}


def test_one_file_name_in_two_split_files_is_a_duplicate(tmp_path, pcb_config):
    write(tmp_path / "instances_train.json", coco(["same.jpg", "t.jpg"]), tmp_path / "images")
    write(tmp_path / "instances_val.json", coco(["same.jpg"], "spur"), tmp_path / "images")
    scan = read_dataset(with_root(pcb_config, tmp_path, **{"dataset.fields": SPLIT_FIELD}))
    (issue,) = scan.skipped
    assert issue.reason == "duplicate_annotation" and issue.file == str(tmp_path / "images" / "same.jpg")
    assert "instances_train.json (id 1)" in issue.message and "instances_val.json (id 1)" in issue.message
    assert splits(scan) == {"images/same.jpg": "train", "images/t.jpg": "train"}  # the first listing is kept


def test_one_entry_listed_twice_with_one_id_is_read_once(tmp_path, pcb_config):
    doc = coco(["a.jpg"])
    doc["images"].append(dict(doc["images"][0]))
    write(tmp_path / "annotations.json", doc, tmp_path / "images")
    scan = read_dataset(with_root(pcb_config, tmp_path))
    assert len(scan.records) == 1 and [i.reason for i in scan.skipped] == ["duplicate_annotation"]


def test_unlisted_images_and_stray_json_files_are_counted(tmp_path, pcb_config):
    shared_folder(tmp_path)
    make_photo(tmp_path / "images" / "stray.jpg", SIZE)
    (tmp_path / "labels_meta.json").write_text(json.dumps({"classes": ["short"]}))
    scan = read_dataset(with_root(pcb_config, tmp_path))
    assert len(scan.records) == 4
    by_reason = {i.reason: i for i in scan.skipped}
    assert set(by_reason) == {"no_annotation", "not_coco"}
    assert "any of the 3 annotation files" in by_reason["no_annotation"].message
    assert by_reason["not_coco"].file == str(tmp_path / "labels_meta.json")


def test_faults_in_one_split_file_stay_in_that_file(tmp_path, pcb_config):
    shared_folder(tmp_path)
    doc = coco(["v1.jpg"], "spur")
    doc["annotations"].append({"id": 9, "image_id": 1, "category_id": 7, "bbox": ["a", 1, 2, 3]})
    doc["annotations"].append({"id": 10, "image_id": 5, "category_id": 7, "bbox": BOX})
    write(tmp_path / "instances_val.json", doc, tmp_path / "images")
    scan = read_dataset(with_root(pcb_config, tmp_path))
    assert len(scan.records) == 4
    assert Counter(i.reason for i in scan.skipped) == Counter(malformed_annotation=1, orphan_annotation=1)
    assert all(i.file == str(tmp_path / "instances_val.json") for i in scan.skipped)


def test_a_single_json_file_is_the_dataset(tmp_path, pcb_config):
    shared_folder(tmp_path)
    config = with_root(pcb_config, tmp_path / "instances_val.json", **{"dataset.fields": SPLIT_FIELD})
    assert config.dataset.root == tmp_path and str(config.dataset.annotation_file) == "instances_val.json"
    scan = read_dataset(config)
    assert splits(scan) == {"images/v1.jpg": "val"}
    assert Counter(i.reason for i in scan.skipped) == Counter(no_annotation=3)  # the other splits' photos


def test_a_roboflow_split_file_finds_the_images_beside_it(tmp_path, pcb_config):
    roboflow(tmp_path)
    scan = read_dataset(with_root(pcb_config, tmp_path / "valid" / "_annotations.coco.json"))
    assert [r.image_id for r in scan.records] == ["a.jpg"] and scan.skipped == []  # images_dir: images is not there


def test_a_labelme_dataset_cannot_be_one_file(tmp_path, vehicle_config):
    path = write(tmp_path / "instances_val.json", coco(["v1.jpg"]))
    with pytest.raises(AdapterError, match="is a file, not a folder"):
        read_dataset(with_root(vehicle_config, path))


def test_no_annotation_file_anywhere_is_one_error(tmp_path, pcb_config, vehicle_config):
    make_photo(tmp_path / "images" / "a.jpg", SIZE)
    with pytest.raises(AdapterError, match="annotations.json does not exist"):
        read_dataset(with_root(pcb_config, tmp_path))
    with pytest.raises(AdapterError, match="no annotation JSON"):  # no annotation_file configured
        read_dataset(with_root(vehicle_config, tmp_path, **{"dataset.format": "coco"}))


def test_split_reaches_the_record(tmp_path, pcb_config):
    scan = read_dataset(with_root(pcb_config, shared_folder(tmp_path)))
    assert splits(scan)["images/v1.jpg"] == "val"


# Through the command line, as a user meets it.

def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "index", *args], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def split_config(tmp_path: Path, base: Path) -> Path:
    """``base`` with the split field pattern, written as a YAML file the CLI can read."""
    data = load_config(base).model_dump(mode="json")
    data["dataset"]["fields"] = data["dataset"]["fields"] + SPLIT_FIELD
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_inspect_reports_images_and_regions_per_split(tmp_path):
    data = roboflow(tmp_path / "data")
    config = split_config(tmp_path, PCB_CONFIG)
    out = tmp_path / "inspect"
    report = json.loads(run("inspect", "--config", str(config), "--dataset", str(data), "--out", str(out),
                            "--no-contact-sheet", "--json").stdout)
    assert report["images"] == 4 and report["skipped"] == []
    assert list(report["splits"]) == ["train", "val", "test"]
    assert {k: (v["images"], v["annotations"], v["region_nodes"]) for k, v in report["splits"].items()} == {
        "train": (2, 2, 2), "val": (1, 1, 1), "test": (1, 1, 1)}
    assert report["splits"]["val"]["annotations_by_label"] == {"spur": 1}
    printed = run("inspect", "--config", str(config), "--dataset", str(data), "--out", str(out), "--no-contact-sheet").stderr
    cells = [[c for c in line.split() if c != "│"] for line in printed.splitlines()]
    rows = {row[0]: row[1:] for row in cells if row[:1] in (["train"], ["val"])}
    assert "by split" in printed and rows == {"train": ["2", "2", "2", "0"], "val": ["1", "1", "1", "0"]}


def test_inspect_names_one_json_file(tmp_path):
    data = shared_folder(tmp_path / "data")
    report = json.loads(run("inspect", "--config", str(split_config(tmp_path, PCB_CONFIG)), "--dataset",
                            str(data / "instances_train.json"), "--out", str(tmp_path / "i"), "--no-contact-sheet",
                            "--json").stdout)
    assert report["images"] == 2 and report["root"] == str(data)
    assert {k: v["images"] for k, v in report["splits"].items()} == {"train": 2}
    assert report["skipped_by_reason"] == {"no_annotation": 2}


def test_an_image_in_train_and_test_is_kept_in_train(tmp_path, pcb_config):
    write(tmp_path / "instances_test.json", coco(["same.jpg"]), tmp_path / "images")  # read first by name
    write(tmp_path / "instances_train.json", coco(["same.jpg"], "spur"), tmp_path / "images")
    scan = read_dataset(with_root(pcb_config, tmp_path, **{"dataset.fields": SPLIT_FIELD}))
    assert splits(scan) == {"images/same.jpg": "train"} and [i.reason for i in scan.skipped] == ["duplicate_annotation"]
