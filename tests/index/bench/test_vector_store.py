"""The FAISS node store benchmark (``python -m index bench-store``) at a tiny size, its file-format
comparison (format 2 beside format 1) included."""

from __future__ import annotations

import json

import pytest

from index.bench import BenchError, StoreBenchOptions, format_store_table
from index.cli import main

NAMES = ["search, unfiltered", "search, EQ kind", "search, CONTAINS label",
         "query (LlamaIndex), unfiltered", "query (LlamaIndex), EQ kind"]


def test_bench_store_json_has_its_figures(capsys):
    code = main(["bench-store", "--n", "2000", "--dim", "16", "--queries", "5", "--k", "3", "--persist-n", "300",
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)
    assert (result["n"], result["dim"], result["type"], result["k"], result["queries"]) == (2000, 16, "flat", 3, 5)
    assert result["faiss_version"] and result["omp_threads"] >= 1 and result["index_kind"]
    for key in ("nodes_s", "add_s", "persist_s", "load_s", "disk_mb"):
        assert result[key] > 0, key
    assert [row["name"] for row in result["latencies"]] == NAMES
    for row in result["latencies"]:
        assert 0 < row["median_ms"] <= row["p95_ms"], row["name"]
    allowed = {row["name"]: row["allowed"] for row in result["latencies"]}
    assert allowed["search, unfiltered"] == 2000
    assert allowed["search, EQ kind"] == allowed["query (LlamaIndex), EQ kind"] == 200  # kind3 of 10 kinds
    assert 0 < allowed["search, CONTAINS label"] < 2000
    assert "timing search, unfiltered" in captured.err  # progress on stderr, the JSON alone on stdout
    rows = result["persistence"]
    assert [(row["n"], row["format"]) for row in rows] == [(300, 2), (300, 1)]
    for row in rows:
        for key in ("persist_s", "checkpoint_s", "faiss_s", "load_s", "first_filter_s", "disk_mb"):
            assert row[key] > 0, (row["format"], key)
        assert row["peak_mb"] > row["base_mb"] > 0

    table = format_store_table(result)
    assert table.startswith("FaissNodeStore[flat] 2,000 x 16, k=3")
    assert "search, EQ kind (200 allowed)" in table and "MB on disk" in table
    assert len(table.splitlines()) == 3 + len(NAMES) + 1 + 2 + len(rows)
    assert "2 metadata.sqlite" in table and "1 metadata.json" in table


def test_bench_store_table_is_printed_without_json(capsys):
    assert main(["bench-store", "--n", "300", "--dim", "8", "--queries", "2", "--persist-n", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FaissNodeStore[flat] 300 x 8, k=5") and "query (LlamaIndex), EQ kind" in out


def test_bench_store_options_are_checked(capsys):
    with pytest.raises(BenchError):
        StoreBenchOptions(n=0)
    assert main(["bench-store", "--queries", "0"]) == 2
    assert "--queries must be at least 1" in capsys.readouterr().err
    with pytest.raises(BenchError, match="--persist-n"):
        StoreBenchOptions(persist_sizes=(-5,))
