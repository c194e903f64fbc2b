"""End to end test of the indexing benchmark (index.bench.run_benchmark) at toy scale."""

from __future__ import annotations

import json

import pytest

from index.bench import format_table, run_benchmark
from index.cli import build_parser
from index.cli.bench import options_from_args

KEYS = ("pipeline_images_per_s", "naive_images_per_s", "decode_floor_images_per_s", "peak_rss_mb",
        "first_build_s", "rerun_s")
TARGETS = ("speedup_vs_naive", "fraction_of_decode_floor", "peak_rss_mb", "rerun_fraction")


@pytest.mark.slow
def test_benchmark_end_to_end(tmp_path, tiny_dinov2):
    args = build_parser().parse_args(["bench", "--n", "3", "--size", "800x600", "--naive-n", "2", "--reference-photos", "2",
                              "--workdir", str(tmp_path), "--model", str(tiny_dinov2), "--json"])
    stages: list[str] = []
    result = run_benchmark(options_from_args(args), progress=stages.append)

    json.loads(json.dumps(result))  # JSON-ready
    for key in KEYS:
        assert result[key] > 0, key
    assert result["n"] == 3 and result["size"] == [800, 600]
    assert result["naive_photos"] == 2 and result["naive_crops"] >= 2
    assert result["rerun_up_to_date"] is True
    assert result["images_indexed"] >= 1 and result["nodes"] >= result["images_indexed"]
    assert set(TARGETS) <= set(result["targets"])
    for target in result["targets"].values():
        assert {"value", "target", "pass"} <= set(target)
        assert isinstance(target["pass"], bool)
    assert result["notes"] and stages
    # the dataset is cached with its completion marker; the index is removed
    data = tmp_path / "data_3_800x600"
    assert len(list(data.glob("*.jpg"))) == 3 and (data / ".bench_complete").is_file()
    assert not (tmp_path / "index_3_800x600").exists()

    table = format_table(result)
    assert "pipeline" in table and "naive" in table and "decode floor" in table
    assert table.count("PASS") + table.count("MISS") == len(result["targets"])
    assert len(table.splitlines()) <= 30


def test_dataset_is_reused(tmp_path):
    from index.bench import ensure_dataset

    seconds, reused = ensure_dataset(tmp_path / "d", 2, (320, 240), 0)
    assert not reused and seconds > 0
    assert ensure_dataset(tmp_path / "d", 2, (320, 240), 0) == (0.0, True)
    (tmp_path / "d" / ".bench_complete").write_text('{"n": 5}')  # another run's marker: redo
    assert ensure_dataset(tmp_path / "d", 2, (320, 240), 0)[1] is False


def test_unknown_parameter_is_refused():
    with pytest.raises(TypeError):
        run_benchmark(nonsense=1)
