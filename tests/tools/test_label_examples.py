"""get_label_examples and the diversity of the examples it picks."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.tools.helpers import region_nodes
from tools import run_tool
from tools.diversity import Candidate, select_diverse


def test_label_examples_are_diverse_and_deterministic(make_ctx, tools_index):
    candidates = region_nodes(tools_index, "scratch")
    assert len(candidates) > 3
    first = run_tool(make_ctx(), "get_label_examples", {"label": "rayón", "k": 3})
    again = run_tool(make_ctx(), "get_label_examples", {"label": "scratch", "k": 3})
    assert not first.error and first.data["ids"] == again.data["ids"]
    hits = tools_index.get(first.data["ids"])
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


def test_label_examples_for_a_label_without_examples_is_not_an_error(make_ctx, tools_index):
    image_ids = sorted({n.metadata["image_id"] for n in region_nodes(tools_index, "crack")})
    result = run_tool(make_ctx(exclude_images=image_ids), "get_label_examples", {"label": "grieta"})
    assert not result.error and result.data["ids"] == [] and "no examples of crack" in result.text
