"""Paths read from an index stay inside it, and no path of this machine reaches the model.

A metadata.sqlite edited by hand (a node's ``image_path`` of ``../../etc/something.jpg``, an
absolute path, a crop replaced by a symlink pointing out) must not make the agent read a file
from elsewhere and send it to the model; nor may a tool's text, caption or error carry an
absolute path. ``source_image`` (the original photo) is never opened at all.
"""

from __future__ import annotations

import builtins
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.testing import FakeOpenAIServer, Reply, decode_data_uri, image_parts
from index.search import DamageIndex
from tests.agent.test_endpoint_cli import ANSWER, write_config
from tests.fixtures.paths import REPO
from tests.index.vector_store import metadata_file
from tools import ToolContext, run_tool
from tools.examples import present_examples
from tools.recording import without_paths

MAGENTA = (255, 0, 255)
EDITS = ("dotdot", "absolute", "symlink", "intact")


def _secret(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (96, 96), MAGENTA).save(path, "JPEG", quality=95)
    return path


@pytest.fixture
def edited(tmp_path, synth_index_dir) -> dict:
    """A copy of the session index whose nodes, in turn, have an ``image_path`` climbing out
    with ``..``, an absolute one, a crop that is a symlink pointing out, or an intact one; every
    node's ``source_image`` names a file outside the dataset. Every outside file exists and is a
    solid magenta JPEG, so an image read from one would be recognised."""
    index_dir = tmp_path / "a" / "b" / "index"
    shutil.copytree(synth_index_dir, index_dir)
    secrets = {"dotdot": _secret(tmp_path / "a" / "etc" / "something.jpg"),
               "absolute": _secret(tmp_path / "secret" / "absolute.jpg"),
               "symlink": _secret(tmp_path / "secret" / "linked.jpg"),
               "source": _secret(tmp_path / "secret" / "source.jpg")}
    how: dict[str, str] = {}
    for i, (node_id, record) in enumerate(sorted(metadata_file.records(index_dir).items())):
        edit = EDITS[i % len(EDITS)]
        how[node_id] = edit
        metadata_file.set_metadata(index_dir, node_id, source_image=str(secrets["source"]))
        if edit == "dotdot":
            metadata_file.set_node(index_dir, node_id, image_path="../../etc/something.jpg")
        elif edit == "absolute":
            metadata_file.set_node(index_dir, node_id, image_path=str(secrets["absolute"]))
        elif edit == "symlink":
            crop = index_dir / record["node"]["image_path"]
            crop.unlink()
            crop.symlink_to(secrets["symlink"])
    return {"dir": index_dir, "how": how, "secrets": secrets, "tmp": tmp_path}


@pytest.fixture
def edited_index(edited, tools_index) -> DamageIndex:
    return DamageIndex.open(edited["dir"], embedder=tools_index.embedder)


def is_secret(image: Image.Image) -> bool:
    """Mostly the secrets' magenta (an outline drawn on it would not hide it)."""
    arr = np.asarray(image.convert("RGB")).astype(int)
    near = (np.abs(arr - np.asarray(MAGENTA)) < 40).all(axis=-1)
    return bool(near.mean() > 0.5)


def test_crop_paths_outside_the_index_are_refused_and_warned_once_per_node(edited, edited_index, caplog):
    ids = sorted(edited["how"])
    with caplog.at_level(logging.WARNING, logger="index.search"):
        hits = edited_index.get(ids)
        edited_index.get(ids)  # a second look-up warns no more
    for hit in hits:
        if edited["how"][hit.id] == "intact":
            assert Path(hit.crop_path).is_file() and Path(hit.crop_path).resolve().is_relative_to(edited["dir"].resolve())
        else:
            assert hit.crop_path == "", (edited["how"][hit.id], hit.crop_path)
    # The store already drops relative paths that lead out ('..', symlinks) when it first returns a
    # node, with one warning of its own; search warns once per node for what reaches it (absolute paths).
    warnings = [r.getMessage() for r in caplog.records if r.name == "index.search"]
    assert 0 < len(warnings) == len(set(warnings)) <= len([i for i in ids if edited["how"][i] != "intact"])
    assert not any(str(edited["tmp"]) in w or "etc/something" in w for w in warnings)


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Every path given to ``open`` or ``PIL.Image.open`` from now on, resolved."""
    paths: list[str] = []
    real_open, real_image_open = builtins.open, Image.open

    def spy_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            paths.append(os.path.realpath(file))
        return real_open(file, *args, **kwargs)

    def spy_image_open(fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)):
            paths.append(os.path.realpath(fp))
        return real_image_open(fp, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(Image, "open", spy_image_open)
    return paths


def test_no_tool_opens_or_shows_a_file_from_outside(edited, edited_index, tools_config, tools_photos, opened):
    agent = tools_config.agent.model_copy(update={"exclude_query_photo": False})
    ctx = ToolContext(index=edited_index, photo=tools_photos[0], model=tools_config.model, agent=agent)
    results = [run_tool(ctx, "search_similar_damage", {"k": 10}),
               run_tool(ctx, "search_similar_damage", {"region": [200, 200, 700, 700], "k": 10}),
               run_tool(ctx, "zoom", {"region": [100, 100, 600, 600]}),
               run_tool(ctx, "get_label_definitions", {"labels": ["scratch", "dent"]})]
    results += [run_tool(ctx, "get_label_examples", {"label": key, "k": 10}) for key in edited_index.taxonomy.label_keys()]
    assert not any(r.error for r in results), [r.text for r in results if r.error]
    secrets = {os.path.realpath(p) for p in edited["secrets"].values()}
    assert not secrets & set(opened)
    shown = [img for r in results for img in r.images]
    assert shown and not any(is_secret(img.image) for img in shown)
    assert {img.node_id for img in shown if img.node_id} <= {i for i, how in edited["how"].items() if how == "intact"}
    for text in [r.text for r in results] + [img.caption for img in shown]:
        assert str(edited["tmp"]) not in text and "etc/something" not in text and "secret" not in text
    assert "(image unavailable)" in "\n".join(r.text for r in results)


def test_an_unreadable_crop_inside_the_index_is_shown_as_text_without_its_path(edited, edited_index, tools_config,
                                                                              caplog):
    node_id = next(i for i, how in sorted(edited["how"].items()) if how == "intact" and i.startswith("r-"))
    (hit,) = edited_index.get([node_id])
    Path(hit.crop_path).write_bytes(b"not a jpeg at all")
    ctx = ToolContext(index=edited_index, photo=None, model=tools_config.model, agent=tools_config.agent)
    with caplog.at_level(logging.WARNING, logger="tools.examples"):
        lines, images, _ = present_examples(ctx, [hit])
    assert images == [] and lines[0].endswith("(image unavailable)") and str(edited["tmp"]) not in lines[0]
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "tools.examples"]
    assert node_id in warning and Path(hit.crop_path).name in warning and str(edited["tmp"]) not in warning


def test_a_tool_error_names_a_file_never_its_path(make_ctx, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "/srv/private data/crops/r-1.jpg")

    monkeypatch.setattr("tools.label_examples.present_examples", broken)
    result = run_tool(make_ctx(), "get_label_examples", {"label": "scratch", "k": 2})
    assert result.error and "r-1.jpg" in result.text and "/srv" not in result.text and "private" not in result.text
    unreadable = tmp_path / "private" / "photo.jpg"
    unreadable.parent.mkdir()
    Image.effect_noise((800, 600), 60).convert("RGB").save(unreadable, "JPEG")
    unreadable.write_bytes(unreadable.read_bytes()[:2000])  # the header reads, the pixels do not
    result = run_tool(make_ctx(unreadable), "zoom", {"region": [0, 0, 500, 500]})
    assert result.error and "photo.jpg" in result.text and str(tmp_path) not in result.text


@pytest.mark.parametrize(("text", "expected"), [
    ("cannot identify image file '/tmp/x y/crops/a.jpg'", "cannot identify image file 'a.jpg'"),
    ("[Errno 2] No such file or directory: /etc/hosts.", "[Errno 2] No such file or directory: hosts."),
    ("C:\\Users\\me\\a.jpg is broken", "a.jpg is broken"),
    ("(~/photos/car.jpg)", "(car.jpg)"),
    ("see http://host:8000/v1/chat, 1/2 of the door, zone front/left", "see http://host:8000/v1/chat, 1/2 of the door, zone front/left"),
])
def test_without_paths_keeps_file_names_only(text, expected):
    assert without_paths(text) == expected


# ------------------------------------------------------------------ through the CLI


def _absolute_paths_in(body: dict, roots: list[str]) -> list[str]:
    """Which of ``roots`` (or a /etc path) the JSON of a request body mentions."""
    dumped = json.dumps(body, ensure_ascii=False)
    return [root for root in [*roots, "/etc/"] if root in dumped]


def test_ask_sends_no_image_and_no_path_from_outside_the_index(edited, synth_dataset, tools_photos):
    with FakeOpenAIServer() as server:
        server.script(Reply.tool_calls([("search_similar_damage", {"k": 10})]),
                      Reply.tool_calls([("get_label_examples", {"label": "scratch", "k": 10})]),
                      Reply.tool_calls([("get_label_examples", {"label": "dent", "k": 10})]),
                      Reply.json(ANSWER))
        config = write_config(edited["tmp"], server)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "400"}
        result = subprocess.run([sys.executable, "-m", "agent", "ask", "--config", str(config), "--image",
                                 str(tools_photos[0]), "¿Tiene rayones?", "--index", str(edited["dir"]),
                                 "--mode", "agentic", "--json"],
                                capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
        requests = server.chat_requests
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["valid"] and len(requests) == 4
    roots = [str(edited["tmp"]), str(synth_dataset), str(REPO), str(Path.home())]
    assert not [found for r in requests if (found := _absolute_paths_in(r.body, roots))]
    images = [Image.open(io.BytesIO(decode_data_uri(part["image_url"]["url"])[1]))
              for part in image_parts(requests[-1])]
    assert len(images) > 1 and not any(is_secret(img) for img in images)  # the photo and intact examples only
    assert "points outside the index directory" in result.stderr
    assert str(edited["tmp"] / "secret") not in result.stderr and "etc/something" not in result.stderr
