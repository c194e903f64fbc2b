"""``index.backend: qdrant`` through the command line: the same photos built with each backend
(``python -m index build``) answer ``python -m index search`` alike, and the Qdrant index verifies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.paths import REPO, VEHICLE_CONFIG

pytest.importorskip("qdrant_client")


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "index", *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def config_file(tmp_path: Path, index: dict[str, Any]) -> Path:
    config = yaml.safe_load(VEHICLE_CONFIG.read_text(encoding="utf-8"))
    config["index"] = index
    path = tmp_path / f"{index['backend']}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def search(index_dir: Path, photo: Path, *flags: str) -> list[tuple[str, float]]:
    hits = json.loads(run("search", "--index", str(index_dir), "--image", str(photo), "--json", *flags).stdout)
    return [(h["id"], round(h["similarity"], 5)) for h in hits]


def test_a_qdrant_index_built_by_the_cli_searches_like_the_faiss_one(tmp_path, synth_dataset, tiny_dinov2):
    built = {}
    for backend, extra in (("faiss", {}), ("qdrant", {"qdrant": {"path": str(tmp_path / "qdrant-data"), "collection": "synth"}})):
        config = config_file(tmp_path, {"backend": backend, "type": "flat", "dir": str(tmp_path / backend), **extra})
        report = json.loads(run("build", "--config", str(config), "--dataset", str(synth_dataset), "--embedder",
                                str(tiny_dinov2), "--index", str(tmp_path / backend), "--json").stdout)
        built[backend] = report
    assert built["qdrant"]["vectors"] == built["faiss"]["vectors"] > 30
    assert not (tmp_path / "qdrant" / "faiss.index").exists()
    pointer = json.loads((tmp_path / "qdrant" / "qdrant.json").read_text())
    assert pointer["collection"].startswith("synth-") and pointer["count"] == built["faiss"]["vectors"]
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(tmp_path / "qdrant-data"))  # before anything opens the index
    try:  # the build itself moved the alias, for other Qdrant clients
        assert {a.alias_name: a.collection_name for a in client.get_aliases().aliases} == {"synth": pointer["collection"]}
    finally:
        client.close()

    photos = sorted(Path(synth_dataset).glob("*.jpg"))
    by_cli = search(tmp_path / "qdrant", photos[1], "--label", "abolladura", "-k", "4")  # a subprocess: it locks the folder
    assert len(by_cli) == 4

    from index.search import DamageIndex
    from index.verify import verify_index

    faiss_index, qdrant_index = DamageIndex.open(tmp_path / "faiss"), DamageIndex.open(tmp_path / "qdrant")
    assert by_cli == [(h.id, round(h.similarity, 5)) for h in faiss_index.search(photos[1], k=4, label="abolladura")]
    queries = [{"k": 50, "kind": "image"}, {"k": 8}, {"k": 3, "label": "rayones"}, {"k": 6, "kind": "region"},
               {"k": 5, "exclude_images": [p.name for p in photos[:4]]}]
    compared = 0
    for photo in photos[:6]:
        vector = faiss_index.embed(photo)
        for query in queries:
            want = [(h.id, round(h.similarity, 5)) for h in faiss_index.search(vector=vector, **query)]
            got = [(h.id, round(h.similarity, 5)) for h in qdrant_index.search(vector=vector, **query)]
            assert [s for _, s in got] == [s for _, s in want]
            assert sorted(got, key=lambda h: (-h[1], h[0])) == sorted(want, key=lambda h: (-h[1], h[0]))  # ties in any order
            compared += len(want)
    assert compared > 200

    report = verify_index(tmp_path / "qdrant")
    assert report.ok, report.problems
    assert report.checked["nodes"] == built["faiss"]["vectors"]
