"""zoom: the right pixels of the query photo at native resolution, within the budget."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.tools.helpers import write_square_photo
from tools import run_tool, zoom


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


def test_zoom_stays_within_budget_and_decodes_at_the_least_jpeg_scale(make_ctx, tmp_path, tools_config):
    photo = write_square_photo(tmp_path / "query.jpg")
    ctx = make_ctx(photo)
    result = run_tool(ctx, "zoom", {"region": "0, 0, 1000, 1000"})
    w, h = result.images[0].image.size
    assert w * h <= tools_config.model.zoom_max_pixels and w * h > 0.95 * tools_config.model.zoom_max_pixels
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
