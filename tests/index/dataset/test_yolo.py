"""YOLO datasets: data.yaml class names, one normalised label file per image, split folders.

The adapter is one new file (index/dataset/adapters/yolo.py): these tests read YOLO sets through
the unchanged ingestion, inspect and build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from PIL import Image

from index.config import load_config
from index.dataset.adapters import AdapterError, load_adapter
from index.dataset.adapters.yolo import label_path
from index.dataset.ingest import DatasetScan, read_dataset
from index.dataset.records import RawImage
from tests.fixtures.datasets import make_photo, with_root
from tests.fixtures.paths import REPO, VEHICLE_CONFIG

SIZE = (64, 48)
NAMES = ["scratch", "dent", "crack"]
BOX = "0 0.5 0.5 0.4 0.4"  # scratch, (19.2, 14.4)-(44.8, 33.6) on 64x48
POLYGON = "1 0.1 0.1 0.5 0.1 0.5 0.6"  # dent, a triangle
SPLIT_FIELD = [{"source": "split", "pattern": "^(?P<split>.+)$"}]


def yolo(config, root: Path, **overrides) -> object:
    return with_root(config, root, **{"dataset.format": "yolo", **overrides})


def photo(root: Path, relative: str, rows: list[str] | None, size: tuple[int, int] = SIZE) -> Path:
    """An image at ``root/relative`` and, unless ``rows`` is None, its label file."""
    image = make_photo(root / relative, size)
    if rows is not None:
        label = label_path(image, root)
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(f"{row}\n" for row in rows), encoding="utf-8")
    return image


def data_yaml(root: Path, **fields: object) -> Path:
    path = root / "data.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"names": NAMES, "nc": len(NAMES), **fields}), encoding="utf-8")
    return path


def ultralytics(root: Path) -> Path:
    """images/{train,val} beside labels/{train,val}; data.yaml names the folders."""
    data_yaml(root, path=".", train="images/train", val="images/val")
    photo(root, "images/train/t1.jpg", [BOX, POLYGON])
    photo(root, "images/train/t2.jpg", [POLYGON])
    photo(root, "images/val/v1.jpg", [BOX])
    photo(root, "images/val/empty.jpg", [])
    return root


def roboflow(root: Path) -> Path:
    """Roboflow's export: {train,valid,test}/{images,labels}, data.yaml entries with '../'."""
    (root).mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\n"
                                    "nc: 2\nnames: {0: rayón, 1: abolladura}\n", encoding="utf-8")
    photo(root, "train/images/a.jpg", ["0 0.5 0.5 0.2 0.2"])
    photo(root, "train/images/b.jpg", ["1 0.5 0.5 0.2 0.2", "0 0.2 0.2 0.1 0.1"])
    photo(root, "valid/images/a.jpg", ["1 0.5 0.5 0.2 0.2"])
    photo(root, "test/images/c.jpg", [])
    return root


def raws(config) -> list[RawImage]:
    return [item for item in load_adapter(config.dataset).read() if isinstance(item, RawImage)]


def reasons(scan: DatasetScan) -> Counter:
    return Counter(i.reason for i in scan.skipped)


def test_boxes_and_polygons_become_pixel_regions(tmp_path, vehicle_config):
    scan = read_dataset(yolo(vehicle_config, ultralytics(tmp_path)))
    assert scan.skipped == []
    by_id = {r.image_id: r for r in scan.records}
    assert set(by_id) == {"images/train/t1.jpg", "images/train/t2.jpg", "images/val/v1.jpg", "images/val/empty.jpg"}
    box, triangle = by_id["images/train/t1.jpg"].regions
    assert (box.label_key, box.shape_type, box.bbox) == ("scratch", "rectangle", (19.2, 14.4, 44.8, 33.6))
    assert (triangle.label_key, triangle.shape_type) == ("dent", "polygon")
    assert triangle.polygon == [(6.4, 4.8), (32.0, 4.8), (32.0, 28.8)]
    assert by_id["images/val/empty.jpg"].regions == []  # an empty label file: no objects
    assert by_id["images/train/t1.jpg"].annotation_path == tmp_path / "labels/train/t1.txt"


def test_each_image_records_its_split(tmp_path, vehicle_config):
    found = {r.image_ref: r.attributes.get("split") for r in raws(yolo(vehicle_config, ultralytics(tmp_path)))}
    assert found == {"images/train/t1.jpg": "train", "images/train/t2.jpg": "train", "images/val/v1.jpg": "val",
                     "images/val/empty.jpg": "val"}
    scan = read_dataset(yolo(vehicle_config, tmp_path, **{"dataset.fields": SPLIT_FIELD}))
    assert Counter(r.attributes["split"] for r in scan.records) == Counter(train=2, val=2)


def test_roboflow_layout_with_a_names_mapping_and_synonyms(tmp_path, vehicle_config):
    scan = read_dataset(yolo(vehicle_config, roboflow(tmp_path), **{"dataset.fields": SPLIT_FIELD}))
    assert scan.skipped == []
    assert {r.image_id: (r.attributes["split"], r.label_keys()) for r in scan.records} == {
        "train/images/a.jpg": ("train", ["scratch"]), "train/images/b.jpg": ("train", ["dent", "scratch"]),
        "valid/images/a.jpg": ("val", ["dent"]), "test/images/c.jpg": ("test", [])}


def test_yaml_entries_name_the_split_of_oddly_named_folders(tmp_path, vehicle_config):
    data_yaml(tmp_path, train="images/fold_a", val="images/fold_b", test=["images/extra"])
    photo(tmp_path, "images/fold_a/1.jpg", [BOX])
    photo(tmp_path, "images/fold_b/2.jpg", [BOX])
    photo(tmp_path, "images/extra/3.jpg", [BOX])
    found = {r.image_ref: r.attributes.get("split") for r in raws(yolo(vehicle_config, tmp_path))}
    assert found == {"images/fold_a/1.jpg": "train", "images/fold_b/2.jpg": "val", "images/extra/3.jpg": "test"}


def test_a_list_file_and_darknet_labels_beside_the_images(tmp_path, vehicle_config):
    (tmp_path / "classes.txt").write_text("scratch\ndent\n", encoding="utf-8")
    (tmp_path / "data.yaml").write_text("train: train.txt\nnames: null\n", encoding="utf-8")
    for name in ("a.jpg", "b.jpg"):
        photo(tmp_path, f"obj/{name}", [BOX])
    (tmp_path / "train.txt").write_text("obj/a.jpg\nobj/gone.jpg\n", encoding="utf-8")
    scan = read_dataset(yolo(vehicle_config, tmp_path, **{"dataset.fields": SPLIT_FIELD}))
    assert {r.image_id: r.attributes.get("split") for r in scan.records} == {"obj/a.jpg": "train", "obj/b.jpg": None}
    assert reasons(scan) == Counter(missing_image=1) and "gone.jpg" in scan.skipped[0].message


def test_an_images_folder_above_the_dataset_is_not_the_labels_pair(tmp_path, vehicle_config):
    root = tmp_path / "images" / "set"  # darknet labels beside the photos, inside someone's images/ folder
    data_yaml(root)
    photo(root, "a.jpg", [BOX])
    assert label_path(root / "a.jpg", root) == root / "a.txt"
    (record,) = read_dataset(yolo(vehicle_config, root)).records
    assert record.label_keys() == ["scratch"]


def test_data_yaml_itself_can_be_the_dataset(tmp_path, vehicle_config):
    ultralytics(tmp_path)
    config = yolo(vehicle_config, tmp_path / "data.yaml")
    assert config.dataset.root == tmp_path and str(config.dataset.annotation_file) == "data.yaml"
    assert len(read_dataset(config).records) == 4


def test_pose_rows_are_read_as_their_box(tmp_path, vehicle_config):
    data_yaml(tmp_path, kpt_shape=[2, 3])
    photo(tmp_path, "images/p.jpg", ["0 0.5 0.5 0.4 0.4 0.5 0.5 2 0.6 0.6 1"])
    (record,) = read_dataset(yolo(vehicle_config, tmp_path)).records
    assert record.regions[0].bbox == (19.2, 14.4, 44.8, 33.6)


def test_labels_are_normalised_against_the_exif_oriented_frame(tmp_path, vehicle_config):
    data_yaml(tmp_path)
    stored = Image.new("RGB", (48, 64), (40, 40, 40))  # stored portrait; EXIF turns it landscape 64x48
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "images").mkdir()
    stored.save(tmp_path / "images" / "r.jpg", exif=exif)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "r.txt").write_text(BOX + "\n")
    (record,) = read_dataset(yolo(vehicle_config, tmp_path)).records
    assert (record.width, record.height) == SIZE and record.exif_transpose
    assert record.regions[0].bbox == (19.2, 14.4, 44.8, 33.6)  # not (14.4, 19.2, 33.6, 44.8), the stored frame's


BAD_ROWS = [
    ("too few columns", "0 0.5 0.5 0.4"),
    ("odd polygon", "0 0.1 0.1 0.5 0.1 0.5"),
    ("six numbers after the class", "0 0.5 0.5 0.4 0.4 0.9"),
    ("class only", "2"),
    ("a word", "0 0.5 wide 0.4 0.4"),
    ("nan", "0 nan 0.5 0.4 0.4"),
    ("infinity", "0 0.5 0.5 inf 0.4"),
    ("class out of range", "3 0.5 0.5 0.4 0.4"),
    ("negative class", "-1 0.5 0.5 0.4 0.4"),
    ("class a word", "scratch 0.5 0.5 0.4 0.4"),
    ("class a fraction", "0.5 0.5 0.5 0.4 0.4"),
    ("pixel coordinates", "0 32 24 16 16"),
    ("negative width", "0 0.5 0.5 -0.4 0.4"),
]


@pytest.mark.parametrize("row", [r[1] for r in BAD_ROWS], ids=[r[0] for r in BAD_ROWS])
def test_a_malformed_row_is_a_counted_skip_and_the_read_goes_on(tmp_path, vehicle_config, row):
    data_yaml(tmp_path)
    photo(tmp_path, "images/a.jpg", [BOX, row, POLYGON])
    photo(tmp_path, "images/b.jpg", [BOX])
    scan = read_dataset(yolo(vehicle_config, tmp_path))
    assert reasons(scan) == Counter(malformed_annotation=1)
    (issue,) = scan.skipped
    assert issue.file == str(tmp_path / "labels" / "a.txt") and "line 2" in issue.message and "row skipped" in issue.message
    assert {r.image_id: len(r.regions) for r in scan.records} == {"images/a.jpg": 2, "images/b.jpg": 1}


def test_file_faults_are_counted(tmp_path, vehicle_config):
    data_yaml(tmp_path)
    photo(tmp_path, "images/good.jpg", [BOX])
    photo(tmp_path, "images/unlabelled.jpg", None)
    photo(tmp_path, "images/twin.jpg", [BOX])
    make_photo(tmp_path / "images" / "twin.png", SIZE)  # shares labels/twin.txt
    (tmp_path / "labels" / "ghost.txt").write_text(BOX + "\n")
    (tmp_path / "labels" / "latin.txt").write_bytes(b"0 0.5 0.5 0.4 0.4 \xe9\n")
    make_photo(tmp_path / "images" / "latin.jpg", SIZE)
    photo(tmp_path, "images/" + os.fsdecode(b"caf\xe9.jpg"), [BOX])
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a photo")
    (tmp_path / "labels" / "broken.txt").write_text(BOX + "\n")
    scan = read_dataset(yolo(vehicle_config, tmp_path))
    assert {r.image_id for r in scan.records} == {"images/good.jpg", "images/twin.jpg"}
    assert reasons(scan) == Counter(no_annotation=1, duplicate_annotation=1, missing_image=1, malformed_annotation=1,
                                    undecodable_name=2, corrupt_image=1)
    by_reason = {i.reason: i for i in scan.skipped}
    assert by_reason["missing_image"].file == str(tmp_path / "labels" / "ghost.txt")
    assert by_reason["no_annotation"].file == str(tmp_path / "images" / "unlabelled.jpg")
    assert "twin.txt" in by_reason["duplicate_annotation"].message
    for issue in scan.skipped:
        json.dumps(issue.to_dict()).encode("utf-8")  # printable and JSON-writable


def test_class_names_that_are_not_text_skip_their_rows(tmp_path, vehicle_config):
    (tmp_path / "data.yaml").write_text("names: [scratch, null, dent]\n", encoding="utf-8")
    photo(tmp_path, "images/a.jpg", [BOX, "1 0.5 0.5 0.1 0.1", "2 0.5 0.5 0.1 0.1"])
    scan = read_dataset(yolo(vehicle_config, tmp_path))
    assert reasons(scan) == Counter(malformed_category=1, malformed_annotation=1)
    assert scan.records[0].label_keys() == ["scratch", "dent"]


def test_an_unknown_class_name_is_ingestions_unknown_label(tmp_path, vehicle_config):
    (tmp_path / "data.yaml").write_text("names: {0: scratch, 1: rust}\n", encoding="utf-8")
    photo(tmp_path, "images/a.jpg", [BOX, "1 0.5 0.5 0.1 0.1"])
    assert reasons(read_dataset(yolo(vehicle_config, tmp_path))) == Counter(unknown_label=1)


@pytest.mark.parametrize(("text", "expected"), [
    ("train: images\n", "no class names"),
    ("names: scratch\n", "not a list or an"),
    ("names: {zero: scratch}\n", "is not a class index"),
    ("names: [scratch\n", "cannot be read"),
    ("- just\n- a list\n", "is not a mapping"),
])
def test_a_data_yaml_with_nothing_to_read_is_one_error(tmp_path, vehicle_config, text, expected):
    (tmp_path / "data.yaml").write_text(text, encoding="utf-8")
    photo(tmp_path, "images/a.jpg", [BOX])
    with pytest.raises(AdapterError, match=expected):
        read_dataset(yolo(vehicle_config, tmp_path))


# Through the command line, as a user meets it.

def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "index", *args], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def split_config(tmp_path: Path) -> Path:
    """The vehicle config with the split field pattern, as a file the CLI reads."""
    data = load_config(VEHICLE_CONFIG).model_dump(mode="json")
    data["dataset"]["fields"] = data["dataset"]["fields"] + SPLIT_FIELD
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_inspect_a_yolo_set_per_split(tmp_path):
    data = roboflow(tmp_path / "data")
    (data / "train" / "labels" / "b.txt").write_text("0 0.5 0.5 0.2 0.2\n1 nan 0.5 0.2 0.2\n", encoding="utf-8")
    args = ["inspect", "--config", str(split_config(tmp_path)), "--dataset", str(data), "--format", "yolo",
            "--out", str(tmp_path / "inspect"), "--no-contact-sheet"]
    report = json.loads(run(*args, "--json").stdout)
    assert report["format"] == "yolo" and report["images"] == 4
    assert {k: (v["images"], v["annotations"]) for k, v in report["splits"].items()} == {
        "train": (2, 2), "val": (1, 1), "test": (1, 0)}
    assert report["splits"]["test"]["images_without_damage"] == 1
    assert report["skipped_by_reason"] == {"malformed_annotation": 1}
    printed = run(*args).stderr
    assert "by split" in printed and "malformed_annotation" in printed and "train/labels/b.txt line 2" in printed


@pytest.mark.slow
def test_build_a_yolo_set_end_to_end(tmp_path, tiny_dinov2):
    data = ultralytics(tmp_path / "data")
    out = tmp_path / "index"
    build = json.loads(run("build", "--config", str(VEHICLE_CONFIG), "--dataset", str(data), "--format", "yolo",
                           "--embedder", str(tiny_dinov2), "--out", str(out), "--json").stdout)
    assert build["images"] == 4
    info = json.loads(run("info", "--out", str(out), "--json").stdout)
    assert info["regions_by_label"]["scratch"] >= 2 and info["regions_by_label"]["dent"] >= 1
