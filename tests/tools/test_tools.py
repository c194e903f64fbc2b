"""The agent's retrieval tools over a real small index (synthetic photos, tiny random DINOv2)."""

from __future__ import annotations

import asyncio
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from index.build import build_index
from index.config import apply_overrides, load_config
from index.search import DamageIndex
from tests.fixtures.datasets import with_root
from tests.fixtures.paths import VEHICLE_CONFIG
from tools import (
    TOOL_NAMES,
    BoxError,
    QueryPhoto,
    ToolContext,
    ToolResult,
    box_from_qwen,
    fit_to_pixels,
    get_label_definitions,
    get_label_examples,
    make_tools,
    query_crop_box,
    run_tool,
    search_similar_damage,
    zoom,
)
from tools.diversity import Candidate, select_diverse
from tools.examples import polygon_labels, polygons_in_image, render_example

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def config(synth_dataset, tiny_dinov2):
    return with_root(load_config(VEHICLE_CONFIG), synth_dataset, **{"embedder.model": str(tiny_dinov2)})


@pytest.fixture(scope="module")
def index(config, tmp_path_factory) -> DamageIndex:
    out = tmp_path_factory.mktemp("tools") / "index"
    build_index(config, index_dir=out, embedder=None)
    return DamageIndex.open(out)


@pytest.fixture(scope="module")
def photos(synth_dataset) -> list[Path]:
    return sorted(synth_dataset.glob("*.jpg"))


@pytest.fixture
def make_ctx(index, config):
    def make(photo=None, **kwargs) -> ToolContext:
        return ToolContext(index=index, photo=photo, model=config.model, agent=config.agent, **kwargs)

    return make


def region_nodes(index, label=None):
    nodes = [n for n in index.store.get_nodes() if n.metadata["kind"] == "region"]
    if label:
        nodes = [n for n in nodes if n.metadata["label"] == label]
    return sorted(nodes, key=lambda n: n.node_id)


def to_qwen(box, width, height) -> list[float]:
    """Pixels -> 0-1000 (the inverse of box_from_qwen, unrounded)."""
    x0, y0, x1, y1 = box
    return [x0 / width * 1000, y0 / height * 1000, x1 / width * 1000, y1 / height * 1000]


def write_square_photo(path: Path, size=(2000, 1500), square=(1000, 600, 1400, 900), colour=(230, 20, 20)) -> Path:
    img = Image.new("RGB", size, (128, 128, 128))
    img.paste(colour, square)
    img.save(path, "JPEG", quality=95)
    return path


# --------------------------------------------------------------------------- geometry helpers


def test_box_from_qwen_converts_relative_to_original_pixels():
    assert box_from_qwen([100, 200, 300, 400], 4000, 3000) == (400, 600, 1200, 1200)
    assert box_from_qwen([0, 0, 1000, 1000], 800, 600) == (0, 0, 800, 600)
    assert box_from_qwen([250.5, 100, 500, 999.9], 1000, 1000) == (250, 100, 500, 1000)
    # a one-unit box still covers at least one pixel
    x0, y0, x1, y1 = box_from_qwen([500, 500, 501, 501], 100, 100)
    assert x1 > x0 and y1 > y0


@pytest.mark.parametrize("box", [[1, 2, 3], [1, 2, 3, 4, 5], "1,2,3,4", [10, 10, 5, 20], [10, 10, 20, 10],
                                 [-5, 0, 10, 10], [0, 0, 1001, 10], [0, "a", 1, 2], [True, 0, 1, 2]])
def test_box_from_qwen_rejects_bad_boxes_with_a_usable_message(box):
    with pytest.raises(BoxError) as info:
        box_from_qwen(box, 800, 600)
    message = str(info.value)
    assert "[x1, y1, x2, y2]" in message and "0-1000" in message and "e.g. [" in message


def test_query_crop_box_adds_margin_and_squares_like_index_crops():
    # 800x600 photo, box [250, 250, 500, 500] -> pixels (200, 150, 400, 300): 200x150.
    pixels = box_from_qwen([250, 250, 500, 500], 800, 600)
    assert pixels == (200, 150, 400, 300)
    # margin 0.5 each side -> 400x300, square -> 400x400 centred on (300, 225)
    assert query_crop_box(pixels, 800, 600, context_margin=0.5, min_side=0.06) == (100, 25, 500, 425)
    # at the corner: 160x160 square shifted inside the photo
    assert query_crop_box((0, 0, 80, 60), 800, 600, context_margin=0.5, min_side=0.06) == (0, 0, 160, 160)
    # a tiny mark gets the minimum side: 0.06 * 800 = 48 px around its centre (402, 301.5)
    assert query_crop_box((400, 300, 404, 303), 800, 600, context_margin=0.5, min_side=0.06) == (378, 278, 426, 326)
    # not square: margins only
    assert query_crop_box(pixels, 800, 600, context_margin=0.5, min_side=0.06, square=False) == (100, 75, 500, 375)


def test_fit_to_pixels_keeps_aspect_within_budget_and_never_upscales():
    img = Image.new("RGB", (1000, 500))
    fitted = fit_to_pixels(img, 65536)
    assert fitted.width * fitted.height <= 65536
    assert abs(fitted.width / fitted.height - 2.0) < 0.02
    small = Image.new("RGB", (100, 50))
    assert fit_to_pixels(small, 65536) is small


# --------------------------------------------------------------------------- search_similar_damage


def test_search_region_queries_the_same_crop_the_index_stored(make_ctx, index, synth_dataset):
    node = region_nodes(index)[0]
    meta = node.metadata
    photo = synth_dataset / meta["image_id"]
    ctx = make_ctx(photo)
    region = to_qwen(meta["bbox"], meta["image_width"], meta["image_height"])
    result = search_similar_damage(ctx, region=region, k=3)
    assert not result.error, result.text
    query = result.data["query"]
    assert query["box_px"] == [round(v) for v in meta["bbox"]]
    assert query["crop_box"] == meta["crop_box"]
    assert query["crop_size"] == [384, 384]
    assert result.data["kind"] == "region"
    assert all(h["kind"] == "region" for h in result.data["hits"])
    assert node.node_id in result.data["ids"]  # its own stored crop is among the nearest
    assert result.data["scores"] == sorted(result.data["scores"], reverse=True)


def test_search_result_text_and_images(make_ctx, photos, config):
    ctx = make_ctx(photos[0])
    result = run_tool(ctx, "search_similar_damage", {"region": [300, 300, 700, 700], "k": 2})
    assert not result.error and len(result.images) == 2 and len(result.data["ids"]) == 2
    lines = result.text.splitlines()
    assert "next user message" in lines[0]
    for n, (line, hit_id, shown) in enumerate(zip(lines[1:], result.data["ids"], result.images, strict=True), 1):
        assert line.startswith(f"Example {n} · id {hit_id}") and "similarity" in line and "zone" in line
        assert "% of photo" in line
        assert shown.node_id == hit_id and shown.caption.startswith(f"Example {n} · id {hit_id}")
        assert shown.image.width * shown.image.height <= config.model.example_max_pixels
    assert ctx.examples_used == result.data["ids"]


def test_whole_photo_search_compares_photos_with_photos(make_ctx, photos):
    result = run_tool(make_ctx(photos[1]), "search_similar_damage", {})
    assert not result.error and result.data["kind"] == "image"
    assert result.data["hits"] and all(h["kind"] == "image" for h in result.data["hits"])
    assert len(result.data["ids"]) == 3  # the configured agent.k


def test_cli_search_and_the_tool_embed_the_same_pixels_of_one_photo(make_ctx, index, synth_dataset, tmp_path):
    """A 12 MP photo searched by ``index search`` (a path) and by ``search_similar_damage``
    (the agent's QueryPhoto) gives the same ids and the same scores: one decoder, one view."""
    source = Image.open(sorted(synth_dataset.glob("*.jpg"))[0]).resize((4000, 3000))
    big = tmp_path / "big.jpg"
    source.save(big, "JPEG", quality=92)
    result = run_tool(make_ctx(photo=big), "search_similar_damage", {"k": 5})
    assert not result.error and result.data["kind"] == "image"
    for given in (big, big.read_bytes(), QueryPhoto(big)):
        hits = index.search(given, k=5, kind="image")
        assert [h.id for h in hits] == result.data["ids"]
        assert [h.similarity for h in hits] == result.data["scores"]
    # within the whole-image nodes' side (regions.image_max_side 1024): the 1/4-scale JPEG decode as is
    assert index.query_image(big).size == (1000, 750)


def test_sixteen_bit_photos_convert_one_way_for_the_index_and_the_embedder(tmp_path):
    from index.embedders.base import load_image
    from index.imaging.decode import decode_image

    deep = np.linspace(0, 40000, 64 * 48, dtype=np.uint16).reshape(48, 64)
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path)
    decoded, _ = decode_image(path)
    for pixels in (decoded, load_image(path), load_image(Image.open(path)), QueryPhoto(path).view()):
        assert pixels.mode == "RGB"
        assert np.array_equal(np.asarray(pixels), np.asarray(decoded))
    assert np.asarray(decoded).max() == int(40000 / 65535 * 255)  # scaled by the full 16-bit range


@pytest.mark.parametrize("label, key", [("rayones", "scratch"), ("Abolladura", "dent"), ("4", "large_scratch"),
                                        ("Crack", "crack"), ("pintura levantada", "paint_peeling")])
def test_label_filter_is_exact_and_accepts_synonyms(make_ctx, photos, label, key):
    ctx = make_ctx(photos[2])
    result = run_tool(ctx, "search_similar_damage", {"region": [200, 200, 800, 800], "label": label, "k": 10})
    assert not result.error, result.text
    assert result.data["arguments"]["label"] == key
    assert result.data["hits"], "every label has examples in the synthetic set"
    assert all(key in h["labels"] and h["kind"] == "region" for h in result.data["hits"])
    expected = sum(1 for n in ctx.index.store.get_nodes() if n.metadata["kind"] == "region" and key in n.metadata["labels"])
    assert len(result.data["hits"]) == min(10, expected)


def test_k_is_coerced_and_clamped(make_ctx, photos):
    ctx = make_ctx(photos[0])
    assert len(run_tool(ctx, "search_similar_damage", {"region": "[100, 100, 600, 600]", "k": "2"}).data["ids"]) == 2
    big = run_tool(ctx, "search_similar_damage", {"region": [100, 100, 600, 600], "k": 50})
    assert not big.error and big.data["k_clamped"] and len(big.data["ids"]) == 10 and "limited to 10" in big.text
    assert len(run_tool(ctx, "search_similar_damage", {"k": 0}).data["ids"]) == 1
    as_dict = run_tool(ctx, "search_similar_damage", {"region": {"bbox_2d": [100, 100, 600, 600], "label": "x"}, "k": 1.0})
    assert not as_dict.error and as_dict.data["arguments"]["region"] == [100, 100, 600, 600]


def test_exclude_images_and_groups_are_respected(make_ctx, photos):
    args = {"region": [200, 200, 800, 800], "k": 10}
    first = run_tool(make_ctx(photos[3]), "search_similar_damage", args)
    top = first.data["hits"][0]
    ctx = make_ctx(photos[3])
    image_id = ctx.index.get([top["id"]])[0].metadata["image_id"]
    group = ctx.index.get([top["id"]])[0].metadata["vehicle_group"]
    by_image = run_tool(make_ctx(photos[3], exclude_images=[image_id]), "search_similar_damage", args)
    ids = by_image.data["ids"]
    assert ids and top["id"] not in ids
    assert all(h.metadata["image_id"] != image_id for h in ctx.index.get(ids))
    by_group = run_tool(make_ctx(photos[3], exclude_groups=[group]), "search_similar_damage", args)
    assert all(h.metadata["vehicle_group"] != group for h in ctx.index.get(by_group.data["ids"]))
    examples = run_tool(make_ctx(None, exclude_images=[image_id]), "get_label_examples", {"label": "scratch", "k": 10})
    assert all(h.metadata["image_id"] != image_id for h in ctx.index.get(examples.data["ids"]))


# --------------------------------------------------------------------------- get_label_examples


def test_label_examples_are_diverse_and_deterministic(make_ctx, index):
    candidates = region_nodes(index, "scratch")
    assert len(candidates) > 3
    first = run_tool(make_ctx(), "get_label_examples", {"label": "rayón", "k": 3})
    again = run_tool(make_ctx(), "get_label_examples", {"label": "scratch", "k": 3})
    assert not first.error and first.data["ids"] == again.data["ids"]
    hits = index.get(first.data["ids"])
    assert len(hits) == 3 and all(h.label == "scratch" for h in hits)
    available_images = {n.metadata["image_id"] for n in candidates}
    available_zones = {n.metadata["zone"] for n in candidates}
    assert len({h.metadata["image_id"] for h in hits}) == min(3, len(available_images))
    assert len({h.metadata["zone"] for h in hits}) == min(3, len(available_zones))
    assert len(first.images) == 3 and "typical" in first.text
    assert "similarity" not in first.text.splitlines()[1]


def test_select_diverse_spreads_groups_zones_and_sizes_regardless_of_input_order():
    rng = np.random.default_rng(0)
    cands = [Candidate(f"n{i:02d}", f"img{i // 2}", f"veh{i // 4}", str(i % 3), 0.001 * (i + 1)) for i in range(12)]
    vectors = rng.normal(size=(12, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    picked = select_diverse(cands, vectors, 3)
    assert len({cands[i].group for i in picked}) == 3 and len({cands[i].zone for i in picked}) == 3
    order = list(range(12))
    random.Random(1).shuffle(order)
    shuffled = select_diverse([cands[i] for i in order], vectors[order], 3)
    assert [cands[order[i]].node_id for i in shuffled] == [cands[i].node_id for i in picked]
    # without vectors it still works and still spreads
    no_vec = select_diverse(cands, None, 3)
    assert len({cands[i].group for i in no_vec}) == 3
    assert select_diverse(cands, vectors, 20) and len(select_diverse(cands, vectors, 20)) == 12
    assert select_diverse([], None, 3) == []


@pytest.mark.parametrize("attribute", ["group", "image_id", "zone"])
def test_select_diverse_prefers_another_vehicle_photo_or_zone_over_embedding_distance(attribute):
    # x1 is the most typical; x2 is farther in embedding space but shares x1's `attribute`;
    # x3 is closer but differs in it: x3 must come second.
    base = {"group": "g", "image_id": None, "zone": "1"}
    cands = []
    for i, value in enumerate(["a", "a", "b"], 1):
        fields = dict(base, image_id=f"img{i}")
        fields[attribute] = value
        cands.append(Candidate(f"x{i}", fields["image_id"], fields["group"], fields["zone"], 0.01))
    vectors = np.array([[1, 0, 0], [0, 1, 0], [0.8, -0.6, 0]], dtype=np.float32)
    assert select_diverse(cands, vectors, 2) == [0, 2]
    same = [Candidate(c.node_id, f"img{i}", "g", "1", 0.01) for i, c in enumerate(cands)]
    assert select_diverse(same, vectors, 2) == [0, 1]  # otherwise the farthest one wins


def test_size_bands_share_a_band_for_equal_areas():
    from tools.diversity import size_bands

    assert size_bands([0.1, 0.1, 0.1, 0.1]) == [0, 0, 0, 0]
    assert size_bands([0.3, 0.1, 0.2]) == [2, 0, 1]


def test_label_examples_for_a_label_without_examples_is_not_an_error(make_ctx, index):
    image_ids = sorted({n.metadata["image_id"] for n in region_nodes(index, "crack")})
    result = run_tool(make_ctx(exclude_images=image_ids), "get_label_examples", {"label": "grieta"})
    assert not result.error and result.data["ids"] == [] and "no examples of crack" in result.text


# --------------------------------------------------------------------------- get_label_definitions


def test_definitions_all_and_some(make_ctx, config):
    ctx = make_ctx()
    everything = run_tool(ctx, "get_label_definitions", {})
    assert not everything.error
    keys = config.taxonomy.label_keys()
    assert [r["key"] for r in everything.data["labels"]] == keys
    for label in config.taxonomy.labels:
        assert any(line.startswith(f"{label.key} (id {label.id}; {label.name}") for line in everything.text.splitlines())
    scratch = everything.data["labels"][0]
    assert scratch["source_name"] == "Arañazo general" and "large scratch" in scratch["definition"]
    some = run_tool(ctx, "get_label_definitions", {"labels": ["grieta", "scratch", "rayones"]})
    assert [r["key"] for r in some.data["labels"]] == ["crack", "scratch"]
    as_text = get_label_definitions(ctx, labels="dent, large_scratch")
    assert [r["key"] for r in as_text.data["labels"]] == ["dent", "large_scratch"]
    long_name = get_label_definitions(ctx, labels="Falta algo genérico del coche (tapón, marca, letras…)")
    assert [r["key"] for r in long_name.data["labels"]] == ["missing_accessory"]


# --------------------------------------------------------------------------- zoom


def test_zoom_returns_the_right_pixels_at_native_resolution(make_ctx, tmp_path):
    photo = write_square_photo(tmp_path / "query.jpg")
    ctx = make_ctx(photo)
    # the red square is pixels (1000, 600)-(1400, 900) of 2000x1500 = [500, 400, 700, 600] in 0-1000
    result = zoom(ctx, region=[500, 400, 700, 600])
    assert not result.error, result.text
    assert result.data["box_px"] == [1000, 600, 1400, 900]
    image = result.images[0].image
    assert image.size == (400, 300) and result.data["scale"] == 1.0
    arr = np.asarray(image, dtype=np.int32)
    inner = arr[5:-5, 5:-5]
    assert inner[..., 0].min() > 200 and inner[..., 1].max() < 60 and inner[..., 2].max() < 60
    assert "(1000, 600)-(1400, 900)" in result.text and "2000x1500" in result.text
    assert result.images[0].node_id is None


def test_zoom_stays_within_budget_and_decodes_at_the_least_jpeg_scale(make_ctx, tmp_path, config):
    photo = write_square_photo(tmp_path / "query.jpg")
    ctx = make_ctx(photo)
    result = run_tool(ctx, "zoom", {"region": "0, 0, 1000, 1000"})
    w, h = result.images[0].image.size
    assert w * h <= config.model.zoom_max_pixels and w * h > 0.95 * config.model.zoom_max_pixels
    assert abs(w / h - 4 / 3) < 0.01
    # 512x512 budget on 2000x1500 needs scale ~0.296: a 1/2 DCT decode, not a full one
    assert result.data["decode_scale"] == 0.5
    # the square lands where it should in the downscaled crop
    sx = w / 2000
    centre = result.images[0].image.getpixel((round(1200 * sx), round(750 * sx)))
    assert centre[0] > 200 and centre[1] < 60
    # a second zoom needing no more resolution reuses the decode
    decodes = ctx.photo.decodes
    run_tool(ctx, "zoom", {"region": [0, 0, 900, 900]})
    assert ctx.photo.decodes == decodes


@pytest.mark.parametrize("kind", ["bytes", "pil"])
def test_zoom_on_photos_given_as_bytes_or_pil(make_ctx, tmp_path, kind):
    path = write_square_photo(tmp_path / "query.jpg")
    source = path.read_bytes() if kind == "bytes" else Image.open(path).convert("RGB")
    result = zoom(make_ctx(source), region=[500, 400, 700, 600])
    assert not result.error and result.data["box_px"] == [1000, 600, 1400, 900]
    assert np.asarray(result.images[0].image)[150, 200, 0] > 200


# --------------------------------------------------------------------------- example images


def _has_colour_near(arr: np.ndarray, xy, colour, radius: int = 2) -> bool:
    x, y = round(xy[0]), round(xy[1])
    h, w = arr.shape[:2]
    patch = arr[max(0, y - radius):min(h, y + radius + 1), max(0, x - radius):min(w, x + radius + 1)]
    return bool((patch == np.asarray(colour)).all(axis=-1).any())


def test_example_images_show_the_annotation_outline_in_the_label_colour(make_ctx, index, config):
    ctx = make_ctx()
    hit = index.get([region_nodes(index, "dent")[0].node_id])[0]
    shown, drawn = render_example(ctx, hit, 1)
    assert shown is not None and "dent" in drawn
    assert shown.image.width * shown.image.height <= config.model.example_max_pixels
    colour = ctx.colour_of("dent")
    arr = np.asarray(shown.image)
    plain = np.asarray(fit_to_pixels(Image.open(hit.crop_path).convert("RGB"), config.model.example_max_pixels))
    assert (arr == colour).all(axis=-1).sum() > 50
    assert (plain == colour).all(axis=-1).sum() < 5
    polygon = polygons_in_image(hit.metadata["polygons"], hit.metadata["crop_box"], shown.image.size)[0]
    inside = [pt for pt in polygon if 2 <= pt[0] < shown.image.width - 2 and 2 <= pt[1] < shown.image.height - 2]
    assert inside and all(_has_colour_near(arr, pt, colour) for pt in inside)


def test_image_node_examples_outline_every_polygon_with_its_own_label(make_ctx, index):
    ctx = make_ctx()
    multi = next(n for n in index.store.get_nodes() if n.metadata["kind"] == "image" and len(n.metadata["labels"]) > 1)
    labels = polygon_labels(ctx, multi.metadata)
    assert len(labels) == len(multi.metadata["polygons"]) and None not in labels
    assert set(labels) == set(multi.metadata["labels"])
    hit = index.get([multi.node_id])[0]
    shown, drawn = render_example(ctx, hit, 1)
    assert set(drawn) == set(multi.metadata["labels"])
    arr = np.asarray(shown.image)
    for label in drawn:
        assert (arr == ctx.colour_of(label)).all(axis=-1).sum() > 0


def test_examples_never_decode_the_source_photo(make_ctx, index, monkeypatch):
    opened: list[str] = []
    real_open = Image.open

    def spy(fp, *args, **kwargs):
        opened.append(str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    result = run_tool(make_ctx(), "get_label_examples", {"label": "scratch", "k": 3})
    assert not result.error and len(result.images) == 3
    sources = {n.metadata["source_image"] for n in index.store.get_nodes()}
    assert opened and not sources.intersection(opened)
    assert all("/crops/" in path for path in opened)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "name, arguments, expected",
    [
        ("search_similar_damage", {"label": "óxido"}, "valid labels are: scratch (1), dent (2)"),
        ("get_label_examples", {"label": "nonsense"}, 'e.g. label="scratch"'),
        ("get_label_examples", {}, "needs label"),
        ("get_label_definitions", {"labels": ["dent", "blah"]}, "'blah'"),
        ("zoom", {}, "needs region"),
        ("zoom", {"region": [1, 2, 3]}, "not 4 numbers"),
        ("zoom", {"region": "[10, 10, 5, 50]"}, "x2 must exceed x1"),
        ("zoom", {"region": [0, 0, 1200, 500]}, "outside 0-1000"),
        ("zoom", {"region": [0.1, 0.2, 0.5, 0.6]}, "looks like 0-1 fractions; multiply by 1000"),
        ("zoom", {"region": "the left door"}, "e.g. [250, 300, 600, 700]"),
        ("search_similar_damage", {"k": "three"}, "k must be a whole number from 1 to 10"),
        ("search_similar_damage", {"k": 2.5}, "k must be a whole number"),
        ("search_similar_damage", {"k": True}, "k must be a whole number"),
        ("get_label_examples", {"label": "dent", "zone": 5}, "does not take 'zone'; it accepts only: label, k"),
        ("crop_photo", {}, "the tools are: search_similar_damage, get_label_examples"),
        ("zoom", "{not json", "not valid JSON"),
        ("zoom", "[1, 2, 3, 4]", "JSON object"),
    ],
)
def test_bad_arguments_give_actionable_errors_not_exceptions(make_ctx, photos, name, arguments, expected):
    ctx = make_ctx(photos[0])
    result = run_tool(ctx, name, arguments)
    assert isinstance(result, ToolResult) and result.error
    assert expected in result.text, result.text
    assert ctx.calls[-1].error and ctx.calls[-1].tool == name
    assert not result.images and ctx.examples_used == []


def test_direct_calls_with_bad_arguments_do_not_raise(make_ctx, photos):
    ctx = make_ctx(photos[0])
    assert search_similar_damage(ctx, region=[5, 5], k=3).error
    assert get_label_examples(ctx, label="nope").error
    assert zoom(ctx, region=None).error
    assert get_label_definitions(ctx, labelz=["dent"]).error  # type: ignore[call-arg]
    assert len(ctx.calls) == 4 and all(call.error for call in ctx.calls)


def test_tools_needing_a_photo_say_so_without_one(make_ctx):
    ctx = make_ctx(None)
    for name, args in (("search_similar_damage", {}), ("zoom", {"region": [0, 0, 500, 500]})):
        result = run_tool(ctx, name, args)
        assert result.error and "No query photo" in result.text and "get_label_examples" in result.text
    assert not run_tool(ctx, "get_label_definitions", {}).error


# --------------------------------------------------------------------------- tool objects and record


def test_make_tools_schemas_have_no_ctx_and_the_right_required_arguments(make_ctx, photos):
    tools = make_tools(make_ctx(photos[0]))
    assert [t.metadata.name for t in tools] == TOOL_NAMES == [
        "search_similar_damage", "get_label_examples", "get_label_definitions", "zoom"]
    specs = {t.metadata.name: t.metadata.to_openai_tool() for t in tools}
    json.dumps(specs)
    expected = {
        "search_similar_damage": ({"region", "label", "k"}, []),
        "get_label_examples": ({"label", "k"}, ["label"]),
        "get_label_definitions": ({"labels"}, []),
        "zoom": ({"region"}, ["region"]),
    }
    for name, (properties, required) in expected.items():
        function = specs[name]["function"]
        params = function["parameters"]
        assert set(params["properties"]) == properties and params.get("required", []) == required
        assert "ctx" not in json.dumps(params) and "ToolContext" not in function["description"]
        assert function["description"].startswith(f"{name}(") and len(function["description"]) <= 1024
        assert all(p.get("description") for p in params["properties"].values())
    region = specs["zoom"]["function"]["parameters"]["properties"]["region"]
    assert region["type"] == "array" and region["items"] == {"type": "integer"}
    assert "0-1000" in region["description"]


def test_function_tools_run_through_run_tool_and_carry_images(make_ctx, photos):
    ctx = make_ctx(photos[0])
    tools = {t.metadata.name: t for t in make_tools(ctx)}
    output = tools["search_similar_damage"].call(region="[100, 100, 600, 600]", k="2")
    assert not output.is_error and isinstance(output.raw_output, ToolResult)
    kinds = [type(b).__name__ for b in output.blocks]
    assert kinds == ["TextBlock", "ImageBlock", "ImageBlock"]
    assert output.blocks[0].text == output.raw_output.text
    bad = asyncio.run(tools["zoom"].acall(region=[1, 2]))
    assert bad.is_error and "not 4 numbers" in bad.content
    assert [c.tool for c in ctx.calls] == ["search_similar_damage", "zoom"]


def test_calls_and_examples_are_recorded_for_the_trace(make_ctx, photos):
    ctx = make_ctx(photos[0])
    a = run_tool(ctx, "search_similar_damage", {"region": [100, 100, 600, 600], "k": 2})
    b = run_tool(ctx, "get_label_examples", {"label": "dent", "k": 2})
    run_tool(ctx, "zoom", {"region": [0, 0, 10]})
    assert [c.tool for c in ctx.calls] == ["search_similar_damage", "get_label_examples", "zoom"]
    assert [c.error for c in ctx.calls] == [False, False, True]
    expected = list(dict.fromkeys(a.data["ids"] + b.data["ids"]))
    assert ctx.examples_used == expected
    assert ctx.calls[0].arguments == {"region": [100, 100, 600, 600], "k": 2}
    assert ctx.calls[0].data["ids"] == a.data["ids"] and ctx.calls[0].seconds >= 0
    trace = json.loads(json.dumps(ctx.trace()))
    assert trace["examples_used"] == expected and len(trace["calls"]) == 3
    # the same example shown again keeps its number
    again = run_tool(ctx, "search_similar_damage", {"region": [100, 100, 600, 600], "k": 2})
    assert again.text.splitlines()[1].startswith("Example 1 ·") and ctx.examples_used == expected


def test_user_message_blocks_interleave_captions_and_jpeg_images(make_ctx, photos):
    result = run_tool(make_ctx(photos[0]), "get_label_examples", {"label": "scratch", "k": 2})
    blocks = result.user_message_blocks()
    assert [type(b).__name__ for b in blocks] == ["TextBlock", "ImageBlock"] * 2
    assert blocks[0].text == result.images[0].caption
    decoded = Image.open(io.BytesIO(result.images[0].jpeg_bytes()))
    assert decoded.format == "JPEG" and decoded.size == result.images[0].image.size


def test_query_photo_knows_full_size_without_decoding(tmp_path):
    path = write_square_photo(tmp_path / "q.jpg", size=(1600, 1200), square=(0, 0, 10, 10))
    photo = QueryPhoto(path)
    assert photo.size == (1600, 1200) and photo.decodes == 0
    view = photo.view(max_pixels=1024 * 768)
    assert view.width * view.height <= 1024 * 768 and photo.decodes == 1
    assert QueryPhoto(path.read_bytes()).size == (1600, 1200)


def test_config_overrides_change_budgets(index, config, photos):
    small = apply_overrides(config, {"model.example_max_pixels": 64 * 64, "agent.k": 4})
    ctx = ToolContext(index=index, photo=photos[0], model=small.model, agent=small.agent)
    result = run_tool(ctx, "search_similar_damage", {"region": [100, 100, 600, 600]})
    assert len(result.images) == 4
    assert all(img.image.width * img.image.height <= 64 * 64 for img in result.images)
