"""Retrieval evaluation end to end on a synthetic dataset with tiny random DINOv2 models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from index.errors import EvaluationError
from index.evaluation import (
    evaluate_retrieval,
    parse_strategies,
    parse_strategy,
)
from tests.fixtures.datasets import with_root
from tests.fixtures.paths import REPO, VEHICLE_CONFIG

METRICS = ("precision_at_k", "hit_at_k", "map", "knn_macro_f1")
#: The keys every row of retrieval.json carries (what the README documents).
NAMED_KEYS = ("precision_at_k", "precision_at_k_ci", "chance_precision_at_k", "hit_at_k_ci", "map_ci",
              "knn_macro_f1", "knn_macro_f1_ci", "chance_knn_macro_f1", "queries")


@pytest.fixture(scope="module")
def eval_dataset(tmp_path_factory) -> Path:
    """Thirty small synthetic photos (several vehicles, so a vehicle split has two sides)."""
    from index.synth import synthesize_labelme

    root = tmp_path_factory.mktemp("eval_data")
    synthesize_labelme(root, 30, size=(640, 480), seed=3)
    return root


@pytest.fixture(scope="module")
def second_model(tmp_path_factory) -> Path:
    """Another tiny random DINOv2 (other weights), to compare two embedders."""
    from index.embedders.tiny import save_tiny_dinov2

    return save_tiny_dinov2(tmp_path_factory.mktemp("models2") / "tiny-dinov2-b", seed=1, layers=1)


@pytest.fixture(scope="module")
def config(eval_dataset, tiny_dinov2):
    from index.config import load_config

    return with_root(load_config(VEHICLE_CONFIG), eval_dataset, **{"embedder.model": str(tiny_dinov2)})


@pytest.fixture(scope="module")
def run(config, tiny_dinov2, second_model, tmp_path_factory):
    base = tmp_path_factory.mktemp("eval_run")
    calls: list[int] = []
    totals: list[int] = []
    result = evaluate_retrieval(
        config, strategies="default,image", embedders=[str(tiny_dinov2), str(second_model)], k=3,
        run_dir=base / "run", cache_dir=base / "cache", progress=calls.append, total=totals.append,
        resamples=500,
    )
    return result, base, sum(calls), totals


def test_rows_compare_strategies_and_embedders(run, tiny_dinov2, second_model):
    result, _, _, _ = run
    rows = result["rows"]
    assert [(r["strategy"], r["embedder"]) for r in rows] == [
        ("default", str(tiny_dinov2)), ("image", str(tiny_dinov2)),
        ("default", str(second_model)), ("image", str(second_model)),
    ]
    for row in rows:
        for key in METRICS:
            assert 0.0 <= row[key] <= 1.0
        assert row["precision_at_k"] <= row["hit_at_k"]
        assert row["queries"] > 0 and row["index_nodes"] > 0 and row["seconds"] >= 0 and not row["cached"]
        assert row["per_label"] and row["confusion"]["labels"]
        assert sum(map(sum, row["confusion"]["matrix"])) == row["queries"]
    default, image = rows[0], rows[1]
    assert default["kind"] == "region" and image["kind"] == "image"
    split = result["split"]
    assert split["shared_groups"] == 0 and split["train_images"] + split["test_images"] == 30
    assert image["index_nodes"] == split["train_images"]
    assert image["queries"] + image["unlabelled_skipped"] == split["test_images"]
    # One region node per train defect group; the same test regions for both embedders, paired.
    assert rows[0]["queries"] == rows[2]["queries"]
    assert {c["strategy"] for c in result["comparisons"]} == {"default", "image"}
    for comparison in result["comparisons"]:
        low, high = comparison["ci95"]
        if comparison["vehicles"] < 2:  # one test vehicle: nothing to resample, no interval
            assert low is None and high is None
        else:
            assert low <= comparison["difference"] <= high
    assert result["best"]["strategy"] == "default"  # chosen among region rows


def test_rows_carry_chance_lift_intervals_and_warnings(run):
    result, base, _, _ = run
    for row in result["rows"]:
        assert all(key in row for key in NAMED_KEYS)
        for key in METRICS:
            assert 0.0 <= row[f"chance_{key}"] <= 1.0
            assert row[f"lift_{key}"] == pytest.approx(row[key] - row[f"chance_{key}"], abs=2e-4)
            if row["vehicles"] < 2:  # this small split has one test vehicle: no interval, said so
                assert row[f"{key}_ci"] == row[f"lift_{key}_ci"] == [None, None]
                assert row["against_chance"].endswith("no interval (fewer than two test vehicles)")
                continue
            low, high = row[f"{key}_ci"]
            assert 0.0 <= low <= high <= 1.0
            lift_low, lift_high = row[f"lift_{key}_ci"]
            assert lift_low <= lift_high
        assert row["map_ci95"] == row["map_ci"]  # the older key still read
        assert row["vehicles"] <= result["split"]["test_groups"]
        assert row["chance_knn_label"] in row["index_nodes_by_label"]
        assert bool(row["warnings"]) == (row["queries"] < 50 or row["vehicles"] < 10)
        assert row["against_chance"].startswith(f"{row['strategy']} / ")
    assert result["warnings"] == [w for r in result["rows"] for w in r["warnings"]]
    assert result["bootstrap"]["unit"] == "test vehicle" and result["bootstrap"]["resamples"] == 500
    # Chance of P@k per region query = (train nodes of its label) / (train nodes), all k ranks in the index.
    row = result["rows"][0]
    lines = [json.loads(line) for line in (base / "run" / "retrieval_queries.jsonl").read_text().splitlines()]
    queries = [q for q in lines if q["strategy"] == "default" and q["embedder"] == row["embedder"]]
    assert len(queries) == row["queries"]
    for query in queries:
        relevant = sum(row["index_nodes_by_label"].get(label, 0) for label in query["labels"])
        assert query["chance_precision_at_k"] == pytest.approx(relevant / row["index_nodes"], abs=1e-4)
        assert query["vehicle"]
    assert row["chance_precision_at_k"] == pytest.approx(
        sum(q["chance_precision_at_k"] for q in queries) / len(queries), abs=1e-3)


def test_strategies_of_one_kind_are_compared_with_a_verdict(run, config, tiny_dinov2, capsys):
    from index.cli.evaluation import print_summary

    _, base, _, _ = run
    # Half the photos on the test side: two test vehicles, so there is something to resample.
    result = evaluate_retrieval(config, strategies="default,margin=1.0,image", embedders=[str(tiny_dinov2)], k=3,
                                run_dir=base / "pairs", cache_dir=base / "cache_pairs", resamples=300,
                                test_fraction=0.5)
    assert {r["vehicles"] for r in result["rows"]} == {2}
    for row in result["rows"]:
        for key in METRICS:
            low, high = row[f"{key}_ci"]
            assert low is not None and low <= high
    (pair,) = result["strategy_comparisons"]  # image rows are another kind: never paired with regions
    assert {pair["a"], pair["b"]} == {"default", "margin=1.0"} and pair["kind"] == "region"
    for metric in METRICS:
        diff = pair["metrics"][metric]
        assert diff["ci_low"] <= diff["ci_high"]
    assert pair["metrics"]["precision_at_k"]["diff"] >= 0  # the better P@k first
    assert result["verdicts"] == [pair["verdict"]]
    assert " beats " in pair["verdict"] or "no clear difference" in pair["verdict"]
    print_summary(result)
    printed = capsys.readouterr().err
    assert "value [CI]" in printed and "chance" in printed and "lift [CI]" in printed
    assert "verdict: region rows" in printed and "vs chance: default" in printed
    assert result["warnings"] and all(w[:40] in printed for w in result["warnings"])
    assert printed.count("warning:") == len(result["warnings"])
    markdown = (base / "pairs" / "retrieval.md").read_text()
    assert "## Strategies compared" in markdown and pair["verdict"] in markdown


def test_outputs_are_written(run):
    result, base, _, _ = run
    out = base / "run"
    for name in ("retrieval.json", "retrieval.md", "retrieval_queries.jsonl", "metrics.png", "confusion.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "retrieval.json").read_text())
    assert [r["map"] for r in saved["rows"]] == [r["map"] for r in result["rows"]]
    markdown = (out / "retrieval.md").read_text()
    assert "| strategy |" in markdown and "| default |" in markdown and "| image |" in markdown
    assert "Best row by map among region rows" in markdown and "Confusion matrix" in markdown
    assert "## Against chance" in markdown and "## How to read this" in markdown and "lift [CI]" in markdown
    for row in saved["rows"]:
        assert all(key in row for key in NAMED_KEYS)


def test_queries_never_retrieve_test_photos(run):
    result, base, photos, totals = run
    test_images = result["split"]["test_images"]
    lines = [json.loads(line) for line in (base / "run" / "retrieval_queries.jsonl").read_text().splitlines()]
    assert len(lines) == sum(r["queries"] for r in result["rows"])
    query_images = {q["image_id"] for q in lines}
    assert len(query_images) <= test_images
    for query in lines:
        assert query["top"] and len(query["top"]) <= 3
        assert not {hit["image_id"] for hit in query["top"]} & query_images
    assert totals == [photos] and photos == 4 * 30  # every photo of every row, once


def test_rerun_reuses_the_cached_indexes(run, config, tiny_dinov2):
    result, base, _, _ = run
    again = evaluate_retrieval(config, strategies="default,image", embedders=[str(tiny_dinov2)], k=3,
                               run_dir=base / "rerun", cache_dir=base / "cache", plots=False)
    assert all(r["cached"] for r in again["rows"])
    for before, after in zip(result["rows"][:2], again["rows"], strict=True):
        assert {k: after[k] for k in METRICS} == {k: before[k] for k in METRICS}
    opened = list((base / "cache").glob("default__*/index/manifest.json"))
    assert opened  # a regular index: DamageIndex.open reads it
    from index.search import DamageIndex, index_info

    assert index_info(opened[0].parent)["nodes_by_kind"].keys() == {"region"}
    assert DamageIndex.open(opened[0].parent).store.count() == result["rows"][0]["index_nodes"]


def test_strategy_names():
    assert parse_strategy("default").kind == "region"
    margin = parse_strategy("margin=1.0+no-merge")
    assert dict(margin.overrides) == {"context_margin": 1.0, "merge_distance": 0.0}
    assert parse_strategy("tile=2x3").overrides == (("tile_grid", (2, 3)),)
    assert parse_strategy("image").kind == "image"
    assert [s.name for s in parse_strategies("default, margin=0.25,default,tile")] == ["default", "margin=0.25", "tile"]
    for bad in ("bogus", "margin=abc", "margin=-1", "tile=3", ""):
        with pytest.raises(EvaluationError):
            parse_strategies(bad)


def test_command_line_json(run, eval_dataset, tiny_dinov2):
    _, base, _, _ = run
    argv = ["--config", str(VEHICLE_CONFIG), "--dataset", str(eval_dataset), "--embedder", str(tiny_dinov2),
            "--strategies", "default", "-k", "3", "--out", str(base / "cli"), "--cache-dir", str(base / "cache"),
            "--no-plots", "--json"]
    done = subprocess.run([sys.executable, "-m", "index", "eval", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    (row,) = result["rows"]
    assert row["strategy"] == "default" and row["embedder"] == str(tiny_dinov2)
    assert all(key in row for key in (*METRICS, "queries", "index_nodes", "seconds"))
    assert (base / "cli" / "retrieval.md").is_file()
