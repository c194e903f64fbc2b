"""A malformed COCO file is read entry by entry: every bad entry is a counted, named skip.

Each fault is written into an otherwise good three-image COCO dataset; the read must complete,
the untouched images must still be read, and the fault must appear in ``scan.skipped`` with its
reason code. Whole-file faults are one ``AdapterError`` line (exit 2 through the CLI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from index.dataset.adapters import AdapterError
from index.dataset.ingest import DatasetScan, read_dataset
from tests.fixtures.datasets import make_photo, with_root
from tests.fixtures.paths import REPO, VEHICLE_CONFIG

SIZE = (64, 48)
RING = [8.0, 8.0, 40.0, 8.0, 40.0, 30.0, 8.0, 30.0]
NAN, INF = float("nan"), float("inf")


def coco_doc() -> dict[str, Any]:
    """Three images: a.png (polygon), b.jpg (bbox only), c.png (RLE, read as its box)."""
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": SIZE[0], "height": SIZE[1]},
            {"id": 2, "file_name": "b.jpg", "width": SIZE[0], "height": SIZE[1]},
            {"id": 3, "file_name": "c.png", "width": SIZE[0], "height": SIZE[1]},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "segmentation": [list(RING)], "bbox": [8, 8, 32, 22], "iscrowd": 0},
            {"id": 20, "image_id": 2, "category_id": 2, "segmentation": [], "bbox": [4, 4, 20, 20], "iscrowd": 0},
            {"id": 30, "image_id": 3, "category_id": 1, "segmentation": {"counts": "abc", "size": [48, 64]},
             "bbox": [10, 10, 30, 20], "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "scratch"}, {"id": 2, "name": "dent"}],
    }


def write_coco(root: Path, doc: dict[str, Any] | None = None) -> Path:
    """The three photos under ``root/images`` and ``doc`` as ``root/annotations.json``."""
    for name in ("a.png", "b.jpg", "c.png"):
        make_photo(root / "images" / name, SIZE)
    path = root / "annotations.json"
    path.write_text(json.dumps(coco_doc() if doc is None else doc), encoding="utf-8")
    return path


def read(root: Path, vehicle_config) -> DatasetScan:
    return read_dataset(with_root(vehicle_config, root, **{"dataset.format": "coco"}))


def ids(scan: DatasetScan) -> set[str]:
    return {record.image_id for record in scan.records}


def reasons(scan: DatasetScan) -> Counter:
    return Counter(issue.reason for issue in scan.skipped)


def test_a_good_file_reads_polygons_boxes_and_rle(tmp_path, vehicle_config):
    write_coco(tmp_path)
    scan = read(tmp_path, vehicle_config)
    assert scan.skipped == [] and ids(scan) == {"images/a.png", "images/b.jpg", "images/c.png"}
    by_id = {r.image_id: r for r in scan.records}
    assert [r.label_key for r in by_id["images/a.png"].regions] == ["scratch"]
    assert by_id["images/b.jpg"].regions[0].shape_type == "rectangle"
    assert by_id["images/c.png"].regions[0].attributes["segmentation"] == "rle (box used)"


def _set(section: str, index: int, key: str, value: Any) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        doc[section][index][key] = value
    return change


def _replace(section: str, index: int, value: Any) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        doc[section][index] = value
    return change


def _append(section: str, value: Any) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        doc[section].append(value)
    return change


def _whole(section: str, value: Any) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        doc[section] = value
    return change


ALL = {"images/a.png", "images/b.jpg", "images/c.png"}
NOT_A = ALL - {"images/a.png"}
NOT_B = ALL - {"images/b.jpg"}

# (fault, change to the document, reason expected in scan.skipped, images still read)
FAULTS = [
    ("image entry is a string", _append("images", "oops"), "malformed_image_entry", ALL),
    ("image entry is a number", _append("images", 7), "malformed_image_entry", ALL),
    ("image entry is null", _append("images", None), "malformed_image_entry", ALL),
    ("annotation is a string", _append("annotations", "oops"), "malformed_annotation", ALL),
    ("annotation is null", _append("annotations", None), "malformed_annotation", ALL),
    ("category is a string", _append("categories", "oops"), "malformed_category", ALL),
    ("category is a number", _append("categories", 3), "malformed_category", ALL),
    ("annotations is an object", _whole("annotations", {"10": {}}), "malformed_section", ALL),
    ("categories is an object", _whole("categories", {"1": "scratch"}), "malformed_section", ALL),
    ("annotations is a string", _whole("annotations", "none"), "malformed_section", ALL),
    ("bbox holds a string", _set("annotations", 1, "bbox", ["a", 4, 20, 20]), "malformed_annotation", ALL),
    ("bbox has three numbers", _set("annotations", 1, "bbox", [4, 4, 20]), "malformed_annotation", ALL),
    ("bbox holds NaN", _set("annotations", 1, "bbox", [4, NAN, 20, 20]), "malformed_annotation", ALL),
    ("bbox holds infinity", _set("annotations", 1, "bbox", [4, 4, INF, 20]), "malformed_annotation", ALL),
    ("bbox is a string", _set("annotations", 1, "bbox", "4,4,20,20"), "malformed_annotation", ALL),
    ("rle with a bad bbox", _set("annotations", 2, "bbox", [10, 10, None, 20]), "malformed_annotation", ALL),
    ("segmentation is a string", _set("annotations", 0, "segmentation", "oops"), "malformed_annotation", ALL),
    ("segmentation holds strings", _set("annotations", 0, "segmentation", ["oops"]), "malformed_annotation", ALL),
    ("segmentation is a flat ring", _set("annotations", 0, "segmentation", list(RING)), "malformed_annotation", ALL),
    ("ring of odd length", _set("annotations", 0, "segmentation", [RING[:-1]]), "malformed_annotation", ALL),
    ("ring holds a string", _set("annotations", 0, "segmentation", [["8", *RING[1:]]]), "malformed_annotation", ALL),
    ("ring holds NaN", _set("annotations", 0, "segmentation", [[NAN, *RING[1:]]]), "malformed_annotation", ALL),
    ("ring holds infinity", _set("annotations", 0, "segmentation", [[*RING[:-1], -INF]]), "malformed_annotation", ALL),
    ("ring holds a boolean", _set("annotations", 0, "segmentation", [[True, *RING[1:]]]), "malformed_annotation", ALL),
    ("one good ring, one bad", _set("annotations", 0, "segmentation", [list(RING), [1, 2, 3]]), "malformed_annotation", ALL),
    ("bad ring and bad bbox", lambda d: d["annotations"][0].update(segmentation=[[1, "x"]], bbox=None), "malformed_annotation", ALL),
    ("file_name of 5,000 characters", _set("images", 0, "file_name", "x" * 5000 + ".png"), "bad_file_name", NOT_A),
    ("file_name a lone surrogate", _set("images", 0, "file_name", "\ud800.png"), "bad_file_name", NOT_A),
    ("file_name a number", _set("images", 0, "file_name", 5), "missing_image", NOT_A),
    ("file_name empty", _set("images", 0, "file_name", ""), "missing_image", NOT_A),
    ("file_name null", _set("images", 0, "file_name", None), "missing_image", NOT_A),
    ("image id a list", _set("images", 0, "id", [1]), "malformed_image_entry", NOT_A),
    ("image id an object", _set("images", 1, "id", {"n": 2}), "malformed_image_entry", NOT_B),
    ("category id a list", _set("categories", 1, "id", [2]), "malformed_category", ALL),
    ("category id missing", _replace("categories", 1, {"name": "dent"}), "malformed_category", ALL),
    ("annotation image_id a list", _set("annotations", 0, "image_id", [1]), "malformed_annotation", ALL),
    ("annotation category_id a list", _set("annotations", 0, "category_id", [1]), "malformed_annotation", ALL),
    ("image listed twice", _append("images", {"id": 9, "file_name": "a.png"}), "duplicate_annotation", ALL),
    ("image not on disk", _append("images", {"id": 9, "file_name": "gone.png"}), "missing_image", ALL),
    ("category not among the categories", _set("annotations", 0, "category_id", 77), "unknown_category", ALL),
    ("annotation of no listed image", _set("annotations", 0, "image_id", 99), "orphan_annotation", ALL),
    ("file_name leads out of the folder", _set("images", 0, "file_name", "../../outside.png"), "outside_dataset", NOT_A),
]


@pytest.mark.parametrize(("change", "reason", "read_ok"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_a_bad_entry_is_a_counted_skip_and_the_read_goes_on(tmp_path, vehicle_config, change, reason, read_ok):
    doc = coco_doc()
    change(doc)
    root = tmp_path / "data"
    write_coco(root, doc)
    make_photo(tmp_path / "outside.png", SIZE)  # what '../../outside.png' names from root/images
    scan = read(root, vehicle_config)
    assert read_ok <= ids(scan)
    assert reasons(scan)[reason] >= 1, scan.skipped
    issue = next(i for i in scan.skipped if i.reason == reason)
    assert "annotations.json" in issue.file + issue.message
    assert len(issue.message) < 400 and "\n" not in issue.message
    issue.message.encode("utf-8")  # printable and JSON-writable, whatever the file held


def test_annotation_issues_name_the_annotation_and_its_image(tmp_path, vehicle_config):
    doc = coco_doc()
    doc["annotations"][1]["bbox"] = ["a", 4, 20, 20]
    doc["annotations"][0]["segmentation"] = [list(RING), [1, 2, 3]]
    write_coco(tmp_path, doc)
    scan = read(tmp_path, vehicle_config)
    messages = [i.message for i in scan.skipped]
    assert reasons(scan) == Counter(malformed_annotation=2)
    assert any("annotation 20 (image 'b.jpg')" in m and "annotation skipped" in m for m in messages)
    assert any("annotation 10 (image 'a.png')" in m and "ring 1" in m and "ring skipped" in m for m in messages)
    a = next(r for r in scan.records if r.image_id == "images/a.png")
    assert len(a.regions) == 1 and a.regions[0].shape_type == "polygon"


@pytest.mark.parametrize("segmentation", ["oops", [["8", 8, 40, 8, 40, 30]], [[1, 2, 3]], [[NAN, 8, 40, 8, 40, 30]]])
def test_no_usable_ring_falls_back_to_a_good_bbox(tmp_path, vehicle_config, segmentation):
    doc = coco_doc()
    doc["annotations"][0]["segmentation"] = segmentation
    write_coco(tmp_path, doc)
    scan = read(tmp_path, vehicle_config)
    (region,) = next(r for r in scan.records if r.image_id == "images/a.png").regions
    assert region.shape_type == "rectangle" and region.bbox == (8, 8, 40, 30)
    assert region.attributes["segmentation"] == "malformed (box used)"
    assert reasons(scan) == Counter(malformed_annotation=1)
    assert "the bbox is used instead" in scan.skipped[0].message


@pytest.mark.parametrize("width", ["wide", [800], True, -5, NAN, INF, 0, {"px": 64}])
def test_an_unusable_declared_size_is_unknown_and_the_header_gives_it(tmp_path, vehicle_config, width):
    doc = coco_doc()
    doc["images"][0]["width"] = width
    write_coco(tmp_path, doc)
    scan = read(tmp_path, vehicle_config)
    assert scan.skipped == [] and scan.repaired == [] and ids(scan) == ALL
    a = next(r for r in scan.records if r.image_id == "images/a.png")
    assert (a.width, a.height) == SIZE and len(a.regions) == 1


def test_a_digit_string_size_is_still_read(tmp_path, vehicle_config):
    doc = coco_doc()
    doc["images"][0].update(width="128", height="96")  # drawn on a copy twice the size
    write_coco(tmp_path, doc)
    scan = read(tmp_path, vehicle_config)
    assert [i.reason for i in scan.repaired] == ["rescaled"]


def test_an_outside_file_name_is_passed_on(tmp_path, vehicle_config):
    outside = make_photo(tmp_path / "elsewhere" / "x.png", SIZE)
    doc = coco_doc()
    doc["images"][0]["file_name"] = str(outside)
    doc["images"][1]["file_name"] = "../../elsewhere/x.png"
    write_coco(tmp_path / "data", doc)
    scan = read(tmp_path / "data", vehicle_config)  # ingestion judges where these point
    assert "images/c.png" in ids(scan)


def test_a_non_utf8_file_name_in_the_images_folder_is_a_counted_skip(tmp_path, vehicle_config):
    write_coco(tmp_path)
    make_photo(tmp_path / "images" / os.fsdecode(b"caf\xe9.png"), SIZE)
    scan = read(tmp_path, vehicle_config)
    assert ids(scan) == ALL and reasons(scan) == Counter(undecodable_name=1)
    assert "caf\\xe9.png" in scan.skipped[0].message


@pytest.mark.parametrize(("images", "expected"), [({}, "'images' is an object"), ("x", "'images' is a string"),
                                                   (None, "'images' is null")])
def test_images_not_a_list_is_one_adapter_error(tmp_path, vehicle_config, images, expected):
    doc = coco_doc()
    doc["images"] = images
    write_coco(tmp_path, doc)
    with pytest.raises(AdapterError, match=expected):
        read(tmp_path, vehicle_config)


@pytest.mark.parametrize("text", ["[1, 2]", "{\"annotations\": []}", "[" * 100_000, "{\"images\": [" + "1" * 5000 + "]}"])
def test_files_with_nothing_to_read_are_one_adapter_error(tmp_path, vehicle_config, text):
    write_coco(tmp_path)
    (tmp_path / "annotations.json").write_text(text)
    with pytest.raises(AdapterError, match="annotations.json"):
        read(tmp_path, vehicle_config)


# Through the command line, as a user meets it.

def run_inspect(config: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "index", "inspect", "--config", str(config), "--out", str(out),
                           "--no-contact-sheet"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def coco_config(tmp_path: Path, root: Path) -> Path:
    """The vehicle config, reading the COCO dataset at ``root``."""
    text = VEHICLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace("root: ${DAMAGE_DATASET:-data/vehicle_damage}", f"root: '{root}'")
    text = text.replace("format: labelme", "format: coco")
    assert f"root: '{root}'" in text and "format: coco" in text
    path = tmp_path / "coco.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_inspect_reads_a_coco_file_with_many_faults(tmp_path):
    data = tmp_path / "data"
    doc = coco_doc()
    doc["images"] += ["oops", {"id": [4], "file_name": "c.png"}, {"id": 5, "file_name": "y" * 5000}]
    doc["images"][1]["width"] = "wide"
    doc["annotations"] += [None, {"id": 40, "image_id": 1, "category_id": 1, "bbox": ["a", 1, 2, 3]}]
    doc["annotations"][0]["segmentation"] = [list(RING), [NAN, 1, 2, 3, 4, 5]]
    doc["categories"].append("oops")
    write_coco(data, doc)
    result = run_inspect(coco_config(tmp_path, data), tmp_path / "inspect")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    shown = result.stdout + result.stderr
    for reason in ("malformed_image_entry", "malformed_annotation", "malformed_category", "bad_file_name"):
        assert reason in shown
    report = json.loads((tmp_path / "inspect" / "report.json").read_text(encoding="utf-8"))
    assert report["images"] == 3
    assert report["skipped_by_reason"] == {"malformed_annotation": 3, "malformed_image_entry": 2,
                                           "malformed_category": 1, "bad_file_name": 1}


def test_inspect_with_images_an_object_is_one_line_exit_2(tmp_path):
    data = tmp_path / "data"
    doc = coco_doc()
    doc["images"] = {}
    annotations = write_coco(data, doc)
    result = run_inspect(coco_config(tmp_path, data), tmp_path / "inspect")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(annotations) in lines[0] and "'images'" in lines[0]
