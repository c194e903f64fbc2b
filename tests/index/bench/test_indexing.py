"""End to end test of the indexing benchmark (index.bench.run_benchmark) at toy scale."""

from __future__ import annotations

import json

import pytest

from index.bench import BenchError, format_table, run_benchmark
from index.cli import build_parser
from index.cli.bench import options_from_args

KEYS = ("pipeline_images_per_s", "pipeline_own_images_per_s", "naive_images_per_s", "decode_floor_images_per_s",
        "peak_rss_mb", "first_build_s", "rerun_s")
TARGETS = ("speedup_vs_naive", "fraction_of_decode_floor", "peak_rss_mb", "rerun_fraction")
STAGES = ("scan", "model_load", "decode", "cut", "embed", "write_crops", "write_index")


@pytest.mark.slow
def test_benchmark_end_to_end(tmp_path, tiny_dinov2):
    args = build_parser().parse_args(["bench", "--n", "3", "--size", "800x600", "--naive-n", "2", "--reference-photos", "2",
                                      "--embed-photos", "1", "--workdir", str(tmp_path), "--model", str(tiny_dinov2),
                                      "--batch-size", "4", "--json"])
    stages: list[str] = []
    result = run_benchmark(options_from_args(args), progress=stages.append)

    json.loads(json.dumps(result))  # JSON-ready
    for key in KEYS:
        assert result[key] > 0, key
    assert result["n"] == 3 and result["size"] == [800, 600]
    assert result["naive_photos"] == 2 and result["naive_crops"] >= 2
    assert result["rerun_up_to_date"] is True
    assert result["images_indexed"] >= 1 and result["nodes"] >= result["images_indexed"]
    # the build's own stages, and what its threads did
    assert set(STAGES) <= set(result["stages"]) and all(v >= 0 for v in result["stages"].values())
    assert result["pipeline"]["bottleneck"] in ("decode", "embed")
    assert result["pipeline"]["embedded_crops"] == result["nodes"]
    # the embedder alone, and LlamaIndex's own ingestion over the same photos with the same embedder
    assert result["embedder_floor"]["crops"] >= 1 and result["embedder_floor"]["crops_per_s"] > 0
    assert result["embedder_floor"]["batch_size"] == 4
    peer = result["peer"]
    assert peer["photos"] == result["images_indexed"] and peer["vectors"] == peer["photos"]
    assert peer["images_per_s"] > 0 and result["pipeline_vs_peer"] > 0
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
    for row in ("pipeline", "naive", "decode-only floor", "embedder alone", "LlamaIndex peer", "stages"):
        assert row in table, row
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


def test_model_size_and_device_flags():
    args = build_parser().parse_args(["bench", "--model-size", "base", "--device", "cuda", "--peer-n", "0"])
    options = options_from_args(args)
    assert (options.model_size, options.device, options.peer_n) == ("base", "cuda", 0)
    for bad in (["--model-size", "huge"], ["--device", "tpu"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["bench", *bad])
    with pytest.raises(BenchError, match="model-size"):
        run_benchmark(model_size="huge")


def test_cuda_without_a_gpu_is_one_sentence_before_any_work(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(BenchError, match="--device cuda: .*no CUDA GPU"):
        run_benchmark(device="cuda", workdir=tmp_path, n=2)
    assert not any(tmp_path.iterdir())  # refused before the dataset was written
