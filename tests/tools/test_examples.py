"""Example images: crops with the annotated polygons outlined in each label's colour."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.tools.helpers import region_nodes
from tools import fit_to_pixels, run_tool
from tools.examples import polygon_labels, polygons_in_image, render_example


def _has_colour_near(arr: np.ndarray, xy, colour, radius: int = 2) -> bool:
    x, y = round(xy[0]), round(xy[1])
    h, w = arr.shape[:2]
    patch = arr[max(0, y - radius):min(h, y + radius + 1), max(0, x - radius):min(w, x + radius + 1)]
    return bool((patch == np.asarray(colour)).all(axis=-1).any())


def test_example_images_show_the_annotation_outline_in_the_label_colour(make_ctx, tools_index, tools_config):
    ctx = make_ctx()
    hit = tools_index.get([region_nodes(tools_index, "dent")[0].node_id])[0]
    shown, drawn = render_example(ctx, hit, 1)
    assert shown is not None and "dent" in drawn
    assert shown.image.width * shown.image.height <= tools_config.model.example_max_pixels
    colour = ctx.colour_of("dent")
    arr = np.asarray(shown.image)
    plain = np.asarray(fit_to_pixels(Image.open(hit.crop_path).convert("RGB"), tools_config.model.example_max_pixels))
    assert (arr == colour).all(axis=-1).sum() > 50
    assert (plain == colour).all(axis=-1).sum() < 5
    polygon = polygons_in_image(hit.metadata["polygons"], hit.metadata["crop_box"], shown.image.size)[0]
    inside = [pt for pt in polygon if 2 <= pt[0] < shown.image.width - 2 and 2 <= pt[1] < shown.image.height - 2]
    assert inside and all(_has_colour_near(arr, pt, colour) for pt in inside)


def test_image_node_examples_outline_every_polygon_with_its_own_label(make_ctx, tools_index):
    ctx = make_ctx()
    multi = next(n for n in tools_index.store.get_nodes() if n.metadata["kind"] == "image" and len(n.metadata["labels"]) > 1)
    labels = polygon_labels(ctx, multi.metadata)
    assert len(labels) == len(multi.metadata["polygons"]) and None not in labels
    assert set(labels) == set(multi.metadata["labels"])
    hit = tools_index.get([multi.node_id])[0]
    shown, drawn = render_example(ctx, hit, 1)
    assert set(drawn) == set(multi.metadata["labels"])
    arr = np.asarray(shown.image)
    for label in drawn:
        assert (arr == ctx.colour_of(label)).all(axis=-1).sum() > 0


def test_examples_never_decode_the_source_photo(make_ctx, tools_index, monkeypatch):
    opened: list[str] = []
    real_open = Image.open

    def spy(fp, *args, **kwargs):
        opened.append(str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    result = run_tool(make_ctx(), "get_label_examples", {"label": "scratch", "k": 3})
    assert not result.error and len(result.images) == 3
    sources = {n.metadata["source_image"] for n in tools_index.store.get_nodes()}
    assert opened and not sources.intersection(opened)
    assert all("/crops/" in path for path in opened)
