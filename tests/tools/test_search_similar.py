"""search_similar_damage over a real small index: region and whole-photo queries, filters, k."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.tools.helpers import region_nodes
from tools import QueryPhoto, ToolContext, run_tool, search_similar_damage


def to_qwen(box, width, height) -> list[float]:
    """Pixels -> 0-1000 (the inverse of box_from_qwen, unrounded)."""
    x0, y0, x1, y1 = box
    return [x0 / width * 1000, y0 / height * 1000, x1 / width * 1000, y1 / height * 1000]


def test_search_region_queries_the_same_crop_the_index_stored(tools_index, tools_config, synth_dataset):
    node = region_nodes(tools_index)[0]
    meta = node.metadata
    photo = synth_dataset / meta["image_id"]
    agent = tools_config.agent.model_copy(update={"exclude_query_photo": False})  # the photo is indexed
    ctx = ToolContext(index=tools_index, photo=photo, model=tools_config.model, agent=agent)
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


def test_search_result_text_and_images(make_ctx, tools_photos, tools_config):
    ctx = make_ctx(tools_photos[0])
    result = run_tool(ctx, "search_similar_damage", {"region": [300, 300, 700, 700], "k": 2})
    assert not result.error and len(result.images) == 2 and len(result.data["ids"]) == 2
    lines = result.text.splitlines()
    assert "shown after the tool results" in lines[0]
    for n, (line, hit_id, shown) in enumerate(zip(lines[1:], result.data["ids"], result.images, strict=True), 1):
        assert line.startswith(f"Example {n} · id {hit_id}") and "similarity" in line and "zone" in line
        assert "% of photo" in line
        assert shown.node_id == hit_id and shown.caption.startswith(f"Example {n} · id {hit_id}")
        assert shown.image.width * shown.image.height <= tools_config.model.example_max_pixels
    assert ctx.examples_used == result.data["ids"]


def test_whole_photo_search_compares_photos_with_photos(make_ctx, tools_photos):
    result = run_tool(make_ctx(tools_photos[1]), "search_similar_damage", {})
    assert not result.error and result.data["kind"] == "image"
    assert result.data["hits"] and all(h["kind"] == "image" for h in result.data["hits"])
    assert len(result.data["ids"]) == 3  # the configured agent.k


def test_cli_search_and_the_tool_embed_the_same_pixels_of_one_photo(make_ctx, tools_index, synth_dataset, tmp_path):
    """A 12 MP photo searched by ``index search`` (a path) and by ``search_similar_damage``
    (the agent's QueryPhoto) gives the same ids and the same scores: one decoder, one view."""
    source = Image.open(sorted(synth_dataset.glob("*.jpg"))[0]).resize((4000, 3000))
    big = tmp_path / "big.jpg"
    source.save(big, "JPEG", quality=92)
    result = run_tool(make_ctx(photo=big), "search_similar_damage", {"k": 5})
    assert not result.error and result.data["kind"] == "image"
    for given in (big, big.read_bytes(), QueryPhoto(big)):
        hits = tools_index.search(given, k=5, kind="image")
        assert [h.id for h in hits] == result.data["ids"]
        assert [h.similarity for h in hits] == result.data["scores"]
    # within the whole-image nodes' side (regions.image_max_side 1024): the 1/4-scale JPEG decode as is
    assert tools_index.query_image(big).size == (1000, 750)


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
def test_label_filter_is_exact_and_accepts_synonyms(make_ctx, tools_photos, label, key):
    ctx = make_ctx(tools_photos[2])
    result = run_tool(ctx, "search_similar_damage", {"region": [200, 200, 800, 800], "label": label, "k": 10})
    assert not result.error, result.text
    assert result.data["arguments"]["label"] == key
    assert result.data["hits"], "every label has examples in the synthetic set"
    assert all(key in h["labels"] and h["kind"] == "region" for h in result.data["hits"])
    expected = sum(1 for n in ctx.index.store.get_nodes() if n.metadata["kind"] == "region" and key in n.metadata["labels"]
                   and n.metadata["image_id"] not in ctx.query_photo_ids())  # the query photo's own are excluded
    assert len(result.data["hits"]) == min(10, expected)


def test_k_is_coerced_and_clamped(make_ctx, tools_photos):
    ctx = make_ctx(tools_photos[0])
    assert len(run_tool(ctx, "search_similar_damage", {"region": "[100, 100, 600, 600]", "k": "2"}).data["ids"]) == 2
    big = run_tool(ctx, "search_similar_damage", {"region": [100, 100, 600, 600], "k": 50})
    assert not big.error and big.data["k_clamped"] and len(big.data["ids"]) == 10 and "limited to 10" in big.text
    assert len(run_tool(ctx, "search_similar_damage", {"k": 0}).data["ids"]) == 1
    as_dict = run_tool(ctx, "search_similar_damage", {"region": {"bbox_2d": [100, 100, 600, 600], "label": "x"}, "k": 1.0})
    assert not as_dict.error and as_dict.data["arguments"]["region"] == [100, 100, 600, 600]


def test_exclude_images_and_groups_are_respected(make_ctx, tools_photos):
    args = {"region": [200, 200, 800, 800], "k": 10}
    first = run_tool(make_ctx(tools_photos[3]), "search_similar_damage", args)
    top = first.data["hits"][0]
    ctx = make_ctx(tools_photos[3])
    image_id = ctx.index.get([top["id"]])[0].metadata["image_id"]
    group = ctx.index.get([top["id"]])[0].metadata["vehicle_group"]
    by_image = run_tool(make_ctx(tools_photos[3], exclude_images=[image_id]), "search_similar_damage", args)
    ids = by_image.data["ids"]
    assert ids and top["id"] not in ids
    assert all(h.metadata["image_id"] != image_id for h in ctx.index.get(ids))
    by_group = run_tool(make_ctx(tools_photos[3], exclude_groups=[group]), "search_similar_damage", args)
    assert all(h.metadata["vehicle_group"] != group for h in ctx.index.get(by_group.data["ids"]))
    examples = run_tool(make_ctx(None, exclude_images=[image_id]), "get_label_examples", {"label": "scratch", "k": 10})
    assert all(h.metadata["image_id"] != image_id for h in ctx.index.get(examples.data["ids"]))
