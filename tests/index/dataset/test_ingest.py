"""Reading LabelMe data as it is, and every bad-input case ending in a named skip or repair."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from index.dataset.ingest import read_dataset
from index.imaging.decode import decode_image
from index.imaging.drawing import cut_crop
from tests.fixtures.datasets import labelme_json, make_photo, polygon, with_root, write_pair

SQUARE = [[100, 100], [200, 100], [200, 200], [100, 200]]


def reasons(issues):
    return [i.reason for i in issues]


def test_pairs_through_image_path_not_stem(tmp_path, vehicle_config):
    stem = "zona1_ko_2_3_1554114337244_zona_5"
    write_pair(tmp_path, stem, [polygon("1", SQUARE, piece=2, pixelated_type=2)], dudosa=True, editada=True)
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    assert scan.skipped == []
    (record,) = scan.records
    assert record.image_path.name == f"{stem}_imageDANO_original.jpg"
    assert record.annotation_path.name == f"{stem}_labelDANO_modificado.json"
    assert record.attributes["zone"] == "5"
    assert record.attributes["timestamp"] == "1554114337244"
    assert record.attributes["captured_at"].startswith("2019-04-01")
    assert record.attributes["doubtful"] is True and record.attributes["edited"] is True
    (region,) = record.regions
    assert (region.label_key, region.label_id, region.label_name) == ("scratch", "1", "Scratch")
    assert region.attributes == {"piece": 2, "pixelated_type": 2}
    assert region.bbox == (100, 100, 200, 200) and region.area == 10000


def test_image_without_json_and_json_without_image(tmp_path, vehicle_config):
    make_photo(tmp_path / "orphan_photo.jpg")
    (tmp_path / "lonely_labelDANO.json").write_text(json.dumps(labelme_json("gone.jpg", [polygon("1", SQUARE)])))
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    assert scan.records == []
    assert sorted(reasons(scan.skipped)) == ["missing_image", "no_annotation"]
    missing = next(i for i in scan.skipped if i.reason == "missing_image")
    assert "gone.jpg" in missing.message and missing.file.endswith("lonely_labelDANO.json")


def test_malformed_json_is_skipped_and_named(tmp_path, vehicle_config):
    write_pair(tmp_path, "good", [polygon("2", SQUARE)])
    (tmp_path / "broken_labelDANO.json").write_text('{"shapes": [')
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    assert len(scan.records) == 1
    assert reasons(scan.skipped) == ["malformed_json"]
    assert "broken_labelDANO.json" in scan.skipped[0].message


def test_truncated_and_corrupt_images(tmp_path, vehicle_config):
    image, _ = write_pair(tmp_path, "trunc", [polygon("1", SQUARE)])
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    bad, _ = write_pair(tmp_path, "garbage", [polygon("1", SQUARE)])
    bad.write_bytes(b"this is not a jpeg at all" * 10)
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    assert scan.records == []
    assert sorted(reasons(scan.skipped)) == ["corrupt_image", "truncated_image"]
    assert all(i.file.endswith(".jpg") for i in scan.skipped)


def test_corrupt_pixel_data_found_by_decoder_when_verifying(tmp_path, vehicle_config):
    image, _ = write_pair(tmp_path, "bad_huffman", [polygon("1", SQUARE)])
    data = bytearray(image.read_bytes())
    table = data.index(b"\xff\xc4")  # a Huffman table: the header still reads, pixels do not
    data[table + 5 : table + 21] = b"\xff" * 16
    image.write_bytes(bytes(data))
    assert len(read_dataset(with_root(vehicle_config, tmp_path)).records) == 1
    scan = read_dataset(with_root(vehicle_config, tmp_path, **{"dataset.verify_pixels": True}))
    assert scan.records == [] and reasons(scan.skipped) == ["corrupt_image"]


def test_bad_polygons_and_unknown_label(tmp_path, vehicle_config):
    shapes = [
        polygon("1", [[10, 10], [50, 50]]),  # two points
        polygon("2", [[10, 10], [50, 50], [90, 90]]),  # collinear: zero area
        polygon("3", [[600, 400], [700, 400], [700, 520], [600, 520]]),  # partly outside 640x480
        polygon("4", [[800, 600], [900, 600], [900, 700]]),  # wholly outside
        polygon("99", SQUARE),  # unknown label
        polygon("rayones", SQUARE),  # a synonym still resolves
        {"label": "1", "points": [["a", 1], [2, 3], [4, 5]], "shape_type": "polygon"},
    ]
    write_pair(tmp_path, "shapes", shapes)
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    (record,) = scan.records
    assert [r.label_key for r in record.regions] == ["paint_peeling", "scratch"]
    clipped = record.regions[0]
    assert clipped.bbox == (600, 400, 640, 480)
    assert sorted(reasons(scan.skipped)) == sorted(
        ["degenerate_polygon", "zero_area", "outside_image", "unknown_label", "malformed_shape"]
    )
    assert reasons(scan.repaired) == ["clipped_to_image"]
    unknown = next(i for i in scan.skipped if i.reason == "unknown_label")
    assert "'99'" in unknown.message and "scratch" in unknown.message


def test_other_shape_types_are_handled(tmp_path, vehicle_config):
    shapes = [
        {"label": "2", "points": [[100, 100], [200, 150]], "shape_type": "rectangle"},
        {"label": "5", "points": [[300, 300], [320, 300]], "shape_type": "circle"},
        {"label": "1", "points": [[10, 400], [100, 420], [200, 410]], "shape_type": "linestrip"},
        {"label": "1", "points": [[500, 50]], "shape_type": "point"},
        {"label": "1", "points": [[1, 1], [2, 2], [3, 1]], "shape_type": "weird"},
    ]
    write_pair(tmp_path, "types", shapes)
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    regions = scan.records[0].regions
    assert [r.shape_type for r in regions] == ["rectangle", "circle", "linestrip", "point"]
    assert regions[0].bbox == (100, 100, 200, 150)
    assert regions[1].area == pytest.approx(np.pi * 400, rel=0.02)
    assert all(r.area > 0 for r in regions)
    assert reasons(scan.skipped) == ["unsupported_shape"]


def test_incorrect_excluded_by_default_and_configurable(tmp_path, vehicle_config):
    write_pair(tmp_path, "wrong", [polygon("1", SQUARE)], incorrecta=True)
    write_pair(tmp_path, "right", [polygon("1", SQUARE)])
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    assert len(scan.records) == 1 and reasons(scan.skipped) == ["marked_incorrect"]
    kept = read_dataset(with_root(vehicle_config, tmp_path, **{"dataset.exclude_incorrect": False}))
    assert len(kept.records) == 2 and kept.skipped == []


def test_two_jsons_claiming_one_image(tmp_path, vehicle_config):
    image, ann = write_pair(tmp_path, "dup", [polygon("1", SQUARE)])
    (tmp_path / "dup_copy_labelDANO.json").write_text(ann.read_text())
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    assert len(scan.records) == 1
    assert reasons(scan.skipped) == ["duplicate_annotation"]
    assert image.name in scan.skipped[0].message


def test_embedded_image_data(tmp_path, vehicle_config):
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 200, 10)).save(buffer, "PNG")
    doc = labelme_json("not_on_disk.png", [polygon("2", SQUARE)], imageData=base64.b64encode(buffer.getvalue()).decode())
    (tmp_path / "embedded.json").write_text(json.dumps(doc))
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    (record,) = scan.records
    assert record.embedded and record.image_id.endswith("#imageData")
    pixels, _ = decode_image(record.image_path, embedded=True)
    assert pixels.size == (640, 480) and pixels.getpixel((5, 5)) == (10, 200, 10)


def _rotated_photo(path, orientation_size=(480, 640)):
    """A photo whose EXIF says 'rotate 90°', with a red square at (100..200, 100..200) once rotated."""
    oriented = Image.new("RGB", orientation_size, (40, 40, 40))
    oriented.paste((255, 0, 0), (100, 100, 200, 200))
    stored = oriented.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, exif=exif, quality=95)


@pytest.mark.parametrize("declared, expect_repair", [((480, 640), None), ((240, 320), "rescaled")])
def test_exif_rotated_photo_crops_the_right_pixels(tmp_path, vehicle_config, declared, expect_repair):
    image = tmp_path / "rot_imageDANO_original.jpg"
    _rotated_photo(image)
    scale = declared[0] / 480
    square = [[v * scale for v in p] for p in SQUARE]
    doc = labelme_json(image.name, [polygon("2", square)], size=declared)
    (tmp_path / "rot_labelDANO_modificado.json").write_text(json.dumps(doc))
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    (record,) = scan.records
    assert (record.width, record.height) == (480, 640) and record.exif_transpose
    assert reasons(scan.repaired) == ([expect_repair] if expect_repair else [])
    photo, photo_scale = decode_image(record.image_path, exif_transpose=record.exif_transpose)
    crop = np.asarray(cut_crop(photo, record.regions[0].bbox, (50, 50), photo_scale))
    assert crop[..., 0].mean() > 200 and crop[..., 1].mean() < 60


def test_exif_ignored_when_annotation_matches_stored_pixels(tmp_path, vehicle_config):
    image = tmp_path / "raw_imageDANO_original.jpg"
    _rotated_photo(image)
    doc = labelme_json(image.name, [polygon("2", SQUARE)], size=(640, 480))
    (tmp_path / "raw_labelDANO_modificado.json").write_text(json.dumps(doc))
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    assert reasons(scan.repaired) == ["exif_ignored"]
    assert not scan.records[0].exif_transpose


def test_size_mismatch_is_skipped(tmp_path, vehicle_config):
    write_pair(tmp_path, "mismatch", [polygon("1", SQUARE)], imageWidth=1000, imageHeight=1000)
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    assert scan.records == [] and reasons(scan.skipped) == ["size_mismatch"]


@pytest.mark.parametrize("mode, fmt", [("CMYK", "JPEG"), ("L", "PNG"), ("I;16", "PNG"), ("RGBA", "PNG")])
def test_unusual_pixel_modes_decode_to_rgb(tmp_path, vehicle_config, mode, fmt):
    ext = ".jpg" if fmt == "JPEG" else ".png"
    image = make_photo(tmp_path / f"m_imageDANO_original{ext}", mode=mode)
    doc = labelme_json(image.name, [polygon("1", SQUARE)])
    (tmp_path / "m_labelDANO_modificado.json").write_text(json.dumps(doc))
    scan = read_dataset(with_root(vehicle_config, tmp_path))
    (record,) = scan.records
    assert record.mode == mode
    assert reasons(scan.repaired) == ([] if mode == "L" else ["converted_mode"])
    pixels, _ = decode_image(record.image_path)
    assert pixels.mode == "RGB" and pixels.size == (640, 480)
    assert np.asarray(pixels).std() > 10  # not flattened to one colour


def test_vehicle_groups_follow_prefix_and_time_window(tmp_path, vehicle_config):
    t = 1554114337244
    for stem in (f"car_a_{t}_zona_1", f"car_a_{t + 120_000}_zona_2", f"car_a_{t + 7_200_000}_zona_3", f"car_b_{t}_zona_1"):
        write_pair(tmp_path, stem, [polygon("1", SQUARE)])
    records = {r.image_id: r.vehicle_group for r in read_dataset(with_root(vehicle_config, tmp_path)).records}
    groups = [records[f"{s}_imageDANO_original.jpg"] for s in (f"car_a_{t}_zona_1", f"car_a_{t + 120_000}_zona_2", f"car_a_{t + 7_200_000}_zona_3", f"car_b_{t}_zona_1")]
    assert groups[0] == groups[1]
    assert len(set(groups)) == 3
