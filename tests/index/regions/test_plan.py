"""Region planning: crop geometry, merging, backgrounds, tiles, metadata and the sampler."""

from __future__ import annotations

from pathlib import Path

from llama_index.core.schema import MetadataMode

from index.config import RegionStrategy
from index.dataset.records import ImageRecord, Region
from index.dataset.sampling import stratified_sample
from index.imaging import geometry
from index.regions.plan import merge_regions, plan_crops


def region(label: str, box: tuple[float, float, float, float], **attributes) -> Region:
    x0, y0, x1, y1 = box
    poly = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return Region(label, label, label.title(), "polygon", poly, box, geometry.polygon_area(poly), attributes)


def record(regions, size=(4000, 3000), image_id="a.jpg", **attributes) -> ImageRecord:
    return ImageRecord(image_id, Path(image_id), Path("a.json"), size[0], size[1], True, False, "RGB",
                       list(regions), attributes, vehicle_group="v1")


def test_tiny_region_gets_min_side_square_crop_centred():
    rec = record([region("scratch", (2000, 1500, 2020, 1510))])
    (crop,) = plan_crops(rec, RegionStrategy(kinds=["region"]), "d")
    x0, y0, x1, y1 = crop.crop_box
    assert x1 - x0 == y1 - y0 == 240  # 0.06 * 4000
    assert (x0 + x1) / 2 == 2010 and (y0 + y1) / 2 == 1505
    assert crop.output_size == (384, 384)


def test_large_region_gets_context_margin_and_is_clamped_inside():
    rec = record([region("dent", (3600, 2600, 4000, 3000))])
    (crop,) = plan_crops(rec, RegionStrategy(kinds=["region"], context_margin=0.5), "d")
    x0, y0, x1, y1 = crop.crop_box
    assert x1 - x0 == y1 - y0 == 800  # 400 * (1 + 2 * 0.5)
    assert (x1, y1) == (4000, 3000) and x0 >= 0 and y0 >= 0
    assert geometry.boxes_intersect(crop.crop_box, (3600, 2600, 4000, 3000))


def test_region_wider_than_the_image_is_tall_stays_inside():
    rec = record([region("misaligned_part", (100, 1000, 3900, 1400))])
    (crop,) = plan_crops(rec, RegionStrategy(kinds=["region"]), "d")
    x0, y0, x1, y1 = crop.crop_box
    assert x0 >= 0 and x1 <= 4000 and y0 >= 0 and y1 <= 3000
    assert x0 <= 100 and x1 >= 3900  # the whole defect is in view


def test_nearby_same_label_regions_merge_and_others_do_not():
    rec = record([
        region("scratch", (1000, 1000, 1020, 1010)),
        region("scratch", (1050, 1000, 1070, 1010)),  # 30 px away
        region("scratch", (3000, 2500, 3020, 2510)),  # far
        region("dent", (1030, 1000, 1045, 1010)),  # other label in between
    ])
    groups = merge_regions(rec, RegionStrategy(merge_distance=0.02))
    sizes = sorted((g[0].label_key, len(g)) for g in groups)
    assert sizes == [("dent", 1), ("scratch", 1), ("scratch", 2)]
    assert len(merge_regions(rec, RegionStrategy(merge_distance=0))) == 4
    crops = plan_crops(rec, RegionStrategy(kinds=["region"]), "d")
    merged = next(c for c in crops if len(c.regions) == 2)
    assert merged.metadata("d")["region_count"] == 2 and len(merged.metadata("d")["polygons"]) == 2


def test_merge_never_exceeds_max_side():
    scratches = [region("scratch", (100 + 60 * i, 100, 140 + 60 * i, 110)) for i in range(40)]
    groups = merge_regions(record(scratches), RegionStrategy(merge_distance=0.02, merge_max_side=0.25))
    for group in groups:
        box = geometry.union_box([r.bbox for r in group])
        assert box[2] - box[0] <= 1000
    assert 1 < len(groups) < 40


def test_backgrounds_avoid_annotations_and_are_deterministic():
    rec = record([region("dent", (1000, 1000, 2000, 2000))])
    strategy = RegionStrategy(kinds=["background"], background_per_image=3)
    crops = plan_crops(rec, strategy, "d")
    assert len(crops) == 3
    for crop in crops:
        assert not geometry.boxes_intersect(crop.crop_box, geometry.expand_box((1000, 1000, 2000, 2000), 80))
        assert crop.metadata("d")["labels"] == [] and crop.kind == "background"
    assert [c.crop_box for c in plan_crops(rec, strategy, "d")] == [c.crop_box for c in crops]


def test_image_node_carries_all_labels_and_tiles_the_ones_inside():
    rec = record([region("dent", (100, 100, 200, 200)), region("scratch", (3500, 2500, 3600, 2600))])
    crops = plan_crops(rec, RegionStrategy(kinds=["image", "tile"], tile_grid=(2, 2)), "d")
    image = next(c for c in crops if c.kind == "image")
    assert image.output_size == (1024, 768) and image.crop_box == (0, 0, 4000, 3000)
    assert image.metadata("d")["labels"] == ["dent", "scratch"]
    assert image.metadata("d")["label"] is None
    tiles = [c for c in crops if c.kind == "tile"]
    assert len(tiles) == 4 and [t.label_keys for t in tiles] == [["dent"], [], [], ["scratch"]]


def test_metadata_and_image_node():
    rec = record([region("scratch", (2000, 1500, 2100, 1600), piece=2, pixelated_type=1)], zone="5", doubtful=True)
    (crop,) = plan_crops(rec, RegionStrategy(kinds=["region"]), "vehicle_damage")
    meta = crop.metadata("vehicle_damage")
    assert meta["kind"] == "region" and meta["label"] == "scratch" and meta["labels"] == ["scratch"]
    assert meta["zone"] == "5" and meta["doubtful"] is True and meta["piece"] == 2
    assert meta["vehicle_group"] == "v1" and meta["dataset"] == "vehicle_damage"
    assert meta["area_fraction"] == round(10000 / 12e6, 6)
    assert meta["bbox"] == [2000, 1500, 2100, 1600]
    node = crop.to_image_node("vehicle_damage", image_path="crop.jpg")
    assert node.id_ == crop.node_id and node.image_path == "crop.jpg"
    for mode in (MetadataMode.LLM, MetadataMode.EMBED):
        text = node.get_metadata_str(mode)
        assert "polygons" not in text and "scratch" in text
    again = plan_crops(rec, RegionStrategy(kinds=["region"]), "vehicle_damage")[0]
    assert again.node_id == crop.node_id  # stable ids: derived from content, not a counter


def test_polygons_in_crop_coordinates():
    rec = record([region("dent", (1000, 1000, 1200, 1200))])
    (crop,) = plan_crops(rec, RegionStrategy(kinds=["region"], context_margin=0.5, crop_size=400), "d")
    (poly,) = crop.polygons_in_crop()
    assert poly[0] == (100.0, 100.0) and poly[2] == (300.0, 300.0)


def test_stratified_sample_covers_every_label():
    labels = ["scratch"] * 60 + ["dent"] * 30 + ["crack"] * 5 + ["missing_piece"] * 2
    records = [record([region(key, (10, 10, 50, 50))], image_id=f"{i}.jpg") for i, key in enumerate(labels)]
    records += [record([], image_id=f"clean{i}.jpg") for i in range(20)]
    # a label that only ever appears next to a rarer one
    records += [record([region("missing_piece", (10, 10, 50, 50)), region("paint_peeling", (99, 99, 120, 120))], image_id="pair.jpg")]
    sample = stratified_sample(records, 10, seed=1)
    assert len(sample) == 10 and len({r.image_id for r in sample}) == 10
    present = {k for r in sample for k in r.label_keys()}
    assert present == {"scratch", "dent", "crack", "missing_piece", "paint_peeling"}
    assert [r.image_id for r in stratified_sample(records, 10, seed=1)] == [r.image_id for r in sample]
    assert len(stratified_sample(records, 1000)) == len(records)
