"""No self-matches: a query photo that is one of the indexed photos gets no example cut from itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from index.search import DamageIndex
from tests.tools.helpers import region_nodes, write_square_photo
from tools import ToolContext, run_tool


def own_image_id(index, photo: Path) -> str:
    """The image id the index records for ``photo``, read from the nodes' metadata."""
    ids = {n.metadata["image_id"] for n in index.store.get_nodes()
           if Path(n.metadata["source_image"]).resolve() == photo.resolve()}
    assert len(ids) == 1
    return ids.pop()


@pytest.fixture
def photo(tools_index, synth_dataset) -> Path:
    """An indexed photo with a region of a label it shares with other photos."""
    for node in region_nodes(tools_index):
        others = [n for n in region_nodes(tools_index, node.metadata["label"])
                  if n.metadata["image_id"] != node.metadata["image_id"]]
        if others:
            return synth_dataset / node.metadata["image_id"]
    raise AssertionError("no label is shared by two photos")


def image_ids(index, result) -> set[str]:
    return {h.metadata["image_id"] for h in index.get(result.data["ids"])}


def own_label(index, image_id: str) -> str:
    return next(n.metadata["label"] for n in region_nodes(index) if n.metadata["image_id"] == image_id)


def ask_everything(ctx: ToolContext, label: str) -> list:
    """A whole-photo search, a region search and label examples, as many as the tools give."""
    return [run_tool(ctx, "search_similar_damage", {"k": 10}),
            run_tool(ctx, "search_similar_damage", {"region": [0, 0, 1000, 1000], "k": 10}),
            run_tool(ctx, "get_label_examples", {"label": label, "k": 10})]


@pytest.mark.parametrize("given", ["path", "bytes", "copy", "pil"])
def test_a_photo_of_the_index_gets_no_example_from_itself(make_ctx, tools_index, photo, tmp_path, given):
    own = own_image_id(tools_index, photo)
    if given == "path":
        source = photo
    elif given == "bytes":
        source = photo.read_bytes()
    elif given == "copy":
        source = Path(shutil.copy(photo, tmp_path / "another_name.jpg"))
    else:
        source = Image.open(photo)  # keeps the file name it was opened from
    ctx = make_ctx(source)
    assert ctx.query_photo_ids() == [own]
    for result in ask_everything(ctx, own_label(tools_index, own)):
        assert not result.error, result.text
        assert result.data["ids"], "the other photos still give examples"
        assert own not in image_ids(tools_index, result)
        assert not any(h["self"] for h in result.data["hits"])
        assert result.data["query_photo"] == {"in_index": True, "image_ids": [own], "excluded": True}
    assert ctx.trace()["query_photo"]["excluded"] is True


def test_not_excluded_when_the_option_is_off(tools_index, tools_config, photo):
    own = own_image_id(tools_index, photo)
    agent = tools_config.agent.model_copy(update={"exclude_query_photo": False})
    ctx = ToolContext(index=tools_index, photo=photo, model=tools_config.model, agent=agent)
    whole, region, examples = ask_everything(ctx, own_label(tools_index, own))
    top = whole.data["hits"][0]
    assert top["image_id"] == own and top["self"] is True and top["similarity"] > 0.99
    assert whole.data["query_photo"] == {"in_index": True, "image_ids": [own], "excluded": False}
    assert own in image_ids(tools_index, region)
    assert all(h["self"] == (h["image_id"] == own) for r in (whole, region, examples) for h in r.data["hits"])
    on = run_tool(ToolContext(index=tools_index, photo=photo, model=tools_config.model, agent=tools_config.agent),
                  "get_label_examples", {"label": own_label(tools_index, own), "k": 10})
    mine = [n for n in region_nodes(tools_index, own_label(tools_index, own)) if n.metadata["image_id"] == own]
    assert examples.data["candidates"] == on.data["candidates"] + len(mine)


def test_exclusions_merge_with_exclude_images(make_ctx, tools_index, photo, tools_photos):
    own = own_image_id(tools_index, photo)
    other = own_image_id(tools_index, next(p for p in tools_photos if p != photo))
    ctx = make_ctx(photo, exclude_images=[other, own])
    assert ctx.excluded_images() == [other, own]
    result = run_tool(ctx, "search_similar_damage", {"k": 10})
    assert not {own, other} & image_ids(tools_index, result)
    assert ctx.trace()["exclude_images"] == [other, own]


def test_a_photo_outside_the_index_excludes_nothing(make_ctx, tools_index, tmp_path):
    ctx = make_ctx(write_square_photo(tmp_path / "new.jpg"))
    result = run_tool(ctx, "search_similar_damage", {"k": 3})
    assert result.data["query_photo"] == {"in_index": False, "image_ids": [], "excluded": False}
    assert len(result.data["ids"]) == 3 and ctx.excluded_images() == []
    assert make_ctx(None).query_photo_data() is None
    assert tools_index.image_ids_of(Image.new("RGB", (64, 48))) == []  # bare pixels: nothing to match


def test_an_index_without_recorded_signatures_matches_by_path_only(tools_index, photo, tmp_path):
    own = own_image_id(tools_index, photo)
    assert tools_index.manifest["images"][own]["pixels"]
    images = {i: {k: v for k, v in state.items() if k != "pixels"} for i, state in tools_index.manifest["images"].items()}
    old = DamageIndex(tools_index.index_dir, {**tools_index.manifest, "images": images}, tools_index.store,
                      tools_index.embedder)
    assert old.image_ids_of(photo) == [own]
    assert old.image_ids_of(photo.read_bytes()) == []
    assert old.image_ids_of(shutil.copy(photo, tmp_path / "copy.jpg")) == []
