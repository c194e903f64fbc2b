"""Tool geometry and pixel budgets: Qwen 0-1000 boxes, query crops, fitted images, QueryPhoto."""

from __future__ import annotations

import pytest
from PIL import Image

from index.config import apply_overrides
from tests.tools.helpers import write_square_photo
from tools import (
    BoxError,
    QueryPhoto,
    ToolContext,
    box_from_qwen,
    fit_to_pixels,
    query_crop_box,
    run_tool,
)


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


def test_query_photo_knows_full_size_without_decoding(tmp_path):
    path = write_square_photo(tmp_path / "q.jpg", size=(1600, 1200), square=(0, 0, 10, 10))
    photo = QueryPhoto(path)
    assert photo.size == (1600, 1200) and photo.decodes == 0
    view = photo.view(max_pixels=1024 * 768)
    assert view.width * view.height <= 1024 * 768 and photo.decodes == 1
    assert QueryPhoto(path.read_bytes()).size == (1600, 1200)


def test_config_overrides_change_budgets(tools_index, tools_config, tools_photos):
    small = apply_overrides(tools_config, {"model.example_max_pixels": 64 * 64, "agent.k": 4})
    ctx = ToolContext(index=tools_index, photo=tools_photos[0], model=small.model, agent=small.agent)
    result = run_tool(ctx, "search_similar_damage", {"region": [100, 100, 600, 600]})
    assert len(result.images) == 4
    assert all(img.image.width * img.image.height <= 64 * 64 for img in result.images)
