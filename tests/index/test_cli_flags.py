"""``python -m index`` flags as a new user meets them: one name per thing, defaults in the help,
-v anywhere, --version, mistakes said before any model loads, synth never mixing datasets."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.paths import REPO

COMMANDS = ["inspect", "synth", "build", "info", "search", "bench", "bench-store", "eval"]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "index", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


def lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()]


def test_version():
    from index.console import package_version

    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"python -m index {package_version()}"
    assert re.fullmatch(r"\d+\.\d+.*", package_version())


def test_help_shows_defaults_an_example_and_no_markup():
    top = run("--help").stdout
    description = top.split("positional arguments")[0]
    assert all(command in top for command in COMMANDS) and "evaluate" in description and "benchmark" in description
    for command in COMMANDS:
        text = run(command, "--help").stdout
        assert "example:" in text or "examples:" in text, command
        assert "``" not in text and not re.search(r":(class|func|mod|data|meth):", text), command
        assert "-v, --verbose" in text, command
    synth = run("synth", "--help").stdout
    assert "Number of photos (default: 20)" in synth and "(default: 4000x3000)" in synth and "(default: 0)" in synth
    search = run("search", "--help").stdout
    assert "Number of hits (default: 5)" in search and "--index INDEX_DIR" in search
    assert "--out" not in search  # the old name is a hidden alias
    build = run("build", "--help").stdout
    assert "--index INDEX_DIR, --out INDEX_DIR" in build
    bench = run("bench", "--help").stdout
    assert "--embedder" in bench and not re.search(r"--model(?!-size)", bench)  # --model is a hidden alias


def test_v_after_the_sub_command_and_index_or_its_old_name(synth_index_dir):
    for args in (["info", "-v", "--index", str(synth_index_dir), "--json"],
                 ["-v", "info", "--index", str(synth_index_dir), "--json"],
                 ["info", "--out", str(synth_index_dir), "--json"]):  # scripts written for the old flag
        result = run(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert json.loads(result.stdout)["images"] == 12


def test_bench_takes_embedder_and_its_old_name_model(tmp_path):
    from index.cli import build_parser
    from index.cli.bench import options_from_args

    for flag in ("--embedder", "--model"):
        args = build_parser().parse_args(["bench", flag, str(tmp_path)])
        assert options_from_args(args).model == tmp_path


def test_an_unknown_label_is_one_line_before_any_model_loads(synth_index_dir, synth_dataset, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(synth_index_dir, index)
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["embedder"]["config"]["model"] = str(tmp_path / "no-such-model")  # loading it would fail
    (index / "manifest.json").write_text(json.dumps(manifest))
    photo = next(Path(synth_dataset).glob("*.jpg"))

    started = time.monotonic()
    result = run("search", "--index", str(index), "--image", str(photo), "--label", "rayonez")
    seconds = time.monotonic() - started
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = lines(result.stderr)
    assert "Unknown label 'rayonez'" in line and "scratch" in line
    assert "no-such-model" not in result.stderr and seconds < 30

    for bad, said in ((["-k", "0"], "-k must be at least 1"), (["--image", str(tmp_path / "none.jpg")], "does not exist")):
        args = ["search", "--index", str(index), "--image", str(photo), "--label", "rayones", *bad]
        result = run(*args)
        assert result.returncode == 2 and said in lines(result.stderr)[0] and len(lines(result.stderr)) == 1
    # the control: with a known label the search goes on to load the recorded model, and fails there
    loaded = run("search", "--index", str(index), "--image", str(photo), "--label", "rayones")
    assert loaded.returncode != 0 and "no-such-model" in loaded.stderr


def test_search_without_index_with_a_missing_config_says_so(tmp_path):
    photo = tmp_path / "p.jpg"
    from tests.fixtures.datasets import make_photo

    make_photo(photo)
    result = run("search", "--config", str(tmp_path / "nope.yaml"), "--image", str(photo))
    assert result.returncode == 2 and "nope.yaml" in result.stderr and len(lines(result.stderr)) == 1


def test_search_prints_whole_paths_when_piped(synth_index_dir, synth_dataset, tmp_path):
    photo = sorted(Path(synth_dataset).glob("*.jpg"))[0]
    result = run("search", "--index", str(synth_index_dir), "--image", str(photo), "-k", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    hits = json.loads(run("search", "--index", str(synth_index_dir), "--image", str(photo), "-k", "3", "--json").stdout)
    for hit in hits:
        assert hit["crop_path"] in result.stderr and hit["source_image"] in result.stderr


def test_synth_refuses_a_folder_that_is_not_empty_unless_add(tmp_path):
    data = tmp_path / "cars"
    first = run("synth", "--out", str(data), "--n", "3", "--size", "320x240")
    assert first.returncode == 0, first.stderr
    assert "scratch" in first.stderr and "'1'" not in first.stderr  # label keys, not the files' ids
    written = sorted(p.name for p in data.iterdir())

    again = run("synth", "--out", str(data), "--n", "3", "--size", "320x240", "--seed", "7")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    (line,) = lines(again.stderr)
    assert "not empty" in line and "--add" in line
    assert sorted(p.name for p in data.iterdir()) == written  # nothing written

    added = run("synth", "--out", str(data), "--n", "3", "--size", "320x240", "--seed", "7", "--add", "--json")
    assert added.returncode == 0, added.stderr
    summary = json.loads(added.stdout)
    assert summary["images"] == 3 and set(summary["labels"]) <= {
        "scratch", "dent", "paint_peeling", "large_scratch", "crack", "missing_piece", "missing_accessory",
        "misaligned_part"}
    assert len(list(data.iterdir())) > len(written)
