"""The HNSW-vs-flat benchmark (``python -m index.bench.hnsw``) at a tiny size, and its recall."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from index.bench import BenchError
from index.bench.clustered_vectors import ClusteredVectors, chunk_bounds, recall_at_k
from index.bench.hnsw import HnswBenchOptions, format_hnsw_table, main

TINY = ["--n", "2000", "--dim", "32", "--queries", "40", "--flat-queries", "10", "--chunk", "700",
        "--ef-search", "8", "128"]


def test_recall_at_k_on_a_known_answer():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(truth, truth, 3) == 1.0
    found = np.array([[3, 9, 1], [7, 8, -1]])  # 2 of 3, then 0 of 3 (order does not matter)
    assert recall_at_k(found, truth, 3) == pytest.approx(2 / 6)
    assert recall_at_k(np.array([[2, 1, 8], [4, 7, 7]]), truth, 2) == pytest.approx(3 / 4)  # only the top-2 count
    assert recall_at_k(np.array([[-1, -1, -1], [-1, -1, -1]]), np.array([[-1, 0, 1], [2, 3, 4]]), 3) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(found[:1], truth, 3)


def test_clustered_vectors_are_reproducible_unit_and_held_out():
    data = ClusteredVectors(dim=32, clusters=10, seed=3)
    a, b = data.chunk(1, 50), data.chunk(1, 50)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(data.chunk(0, 50), a)
    assert not (data.queries(20)[:, None, :] == a[None, :, :]).all(axis=2).any()
    assert chunk_bounds(5, 2) == [(0, 0, 2), (1, 2, 4), (2, 4, 5)]
    # clustered: a point's nearest neighbour is much closer than on the uniform sphere
    nearest = {}
    for distribution in ("clustered", "isotropic"):
        x = ClusteredVectors(dim=64, clusters=20, seed=0, distribution=distribution).chunk(0, 2000)
        sims = x @ x.T
        np.fill_diagonal(sims, -2)
        nearest[distribution] = float(np.sqrt(2 - 2 * sims.max(axis=1)).mean())
    assert nearest["clustered"] < 0.6 * nearest["isotropic"], nearest

def test_main_prints_flat_and_hnsw_side_by_side(capsys):
    assert main(TINY) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("HNSW vs flat at 2,000 x 32 float32, k=10")
    assert "clustered synthetic" in lines[1]
    flat = [line for line in lines if line.startswith("flat (exact)")]
    hnsw = [line for line in lines if line.startswith("hnsw M=32 efC=80 ef=")]
    assert len(flat) == 1 and len(hnsw) == 2
    assert "ef=128 (default)" in hnsw[1]
    for line in flat + hnsw:
        recall = float(re.search(r"(\d\.\d{3})(\s+(PASS|MISS))?$", line).group(1))
        assert 0.0 <= recall <= 1.0, line
    assert flat[0].split()[-1] == "1.000"  # flat is exact: its own top-10 against the batched exact one
    assert "targets p50 < 5 ms and recall@10 >= 0.95" in captured.out
    assert "timing hnsw ef_search=8" in captured.err  # progress on stderr


def test_main_json_result_has_every_figure(capsys):
    assert main([*TINY, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 2000 and result["ef_search"] == [8, 128] and result["k"] == 10
    for part in ("flat", "hnsw"):
        assert result[part]["build_s"] > 0 and result[part]["index_bytes"] >= 2000 * 32 * 4, part
    assert result["hnsw"]["index_bytes"] > result["flat"]["index_bytes"]  # the graph's links
    assert [row["ef_search"] for row in result["hnsw_query"]] == [8, 128]
    peaks = result["peak_rss_after"]
    assert list(peaks) == ["flat_build", "exact_topk", "flat_queries", "hnsw_build"]
    assert 0 < peaks["flat_build"] <= peaks["hnsw_build"] <= result["peak_rss_bytes"]
    for row in [result["flat_query"], *result["hnsw_query"]]:
        assert 0 < row["p50_ms"] <= row["p95_ms"] and 0.0 <= row["recall"] <= 1.0
    assert result["hnsw_query"][1]["recall"] >= result["hnsw_query"][0]["recall"]
    assert len(format_hnsw_table(result).splitlines()) == 4 + 1 + 2 + 3  # header, flat, 2 ef rows, notes


def test_bad_options_are_one_line_and_exit_2(capsys):
    assert main(["--n", "5"]) == 2
    assert capsys.readouterr().err.strip() == "python -m index.bench.hnsw: --n must be at least 10 (recall@10)"
    with pytest.raises(BenchError, match="ef-search"):
        HnswBenchOptions(ef_search=())
    assert main(["--n", "100000000000", "--dim", "768"]) == 2
    assert "GB is available" in capsys.readouterr().err
