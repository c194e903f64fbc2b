"""``python -m agent eval``: scoring by hand, and whole runs against the fake OpenAI server."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from agent.cli import main
from agent.evaluation.run import EvalOptions, run_evaluation
from agent.evaluation.scoring import (
    GroundTruth,
    Prediction,
    TruthRegion,
    compare_modes,
    cooccurrence,
    indicator_matrix,
    localisation,
    ordered_pairs,
    paired_macro_f1_difference,
    paired_mean_difference,
    prediction_from_report,
    score_mode,
    set_f1,
)
from agent.report import DamageReport, Finding, LabelRef
from agent.testing import FakeOpenAIServer, Reply
from index.config import apply_overrides, load_config
from index.evaluation.metrics import bootstrap_indices, box_iou
from tests.fixtures.paths import VEHICLE_CONFIG
from tests.index.vector_store import metadata_file

LABELS = ["scratch", "dent", "crack"]


def truth(image_id: str, *regions: tuple[str, tuple[float, float, float, float]], size=(1000, 500)) -> GroundTruth:
    regs = tuple(TruthRegion(label, box) for label, box in regions)
    return GroundTruth(image_id, frozenset(r.label for r in regs), regs, size[0], size[1])


def pred(*labels: str, boxes=(), valid: bool = True, detected: bool | None = None) -> Prediction:
    return Prediction(valid=valid, detected=bool(labels) if detected is None else detected,
                      labels=frozenset(labels), boxes=tuple(boxes))


def report(*findings: tuple[str, list[float] | None], valid: bool = True, detected: bool | None = True) -> DamageReport:
    made = [Finding(label=LabelRef(id=key, key=key, name=key), confidence=0.9, bbox_2d=box,
                    bbox_px=[round(v) for v in box] if box else None) for key, box in findings]
    return DamageReport(damage_detected=detected if valid else None, findings=made if valid else [], mode="rag",
                        model="qwen", trace_id="t", question="q", valid=valid, tool_calls=2,
                        timings={"total_s": 1.5}, usage={"prompt_tokens": 100, "completion_tokens": 20})


# --------------------------------------------------------------------------------------------
# scoring by hand


def test_box_iou_known_values():
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_region_hit_at_iou_threshold_needs_the_same_label():
    gt = truth("a", ("scratch", (0, 0, 100, 100)), ("dent", (200, 200, 300, 300)))
    # IoU of (0,0,100,100) and (0,0,100,40) = 0.4; of (0,0,100,100) and (0,0,100,25) = 0.25
    hit = pred("scratch", boxes=[("scratch", (0, 0, 100, 40))])
    loc = localisation(gt, hit, 0.3)
    assert loc["hit"] == [1.0, 0.0] and loc["best_iou"] == pytest.approx([0.4, 0.0])
    assert localisation(gt, pred("scratch", boxes=[("scratch", (0, 0, 100, 25))]), 0.3)["hit"] == [0.0, 0.0]
    wrong_label = pred("crack", boxes=[("crack", (0, 0, 100, 100))])
    loc = localisation(gt, wrong_label, 0.3)
    assert loc["hit"] == [0.0, 0.0] and loc["hit_any_label"] == [1.0, 0.0]


def test_bbox_px_is_rescaled_from_the_frame_the_photo_was_sent_in():
    gt = GroundTruth("a", frozenset({"dent"}), (TruthRegion("dent", (100, 100, 200, 200)),), 1000, 1000, frame=(500, 500))
    p = prediction_from_report(report(("dent", [100, 100, 200, 200])), gt)  # bbox_px [100..200] in a 500 px frame
    assert p.boxes[0][1] == (200, 200, 400, 400)


def test_multi_label_f1_by_hand():
    truths = [truth("1", ("scratch", (0, 0, 1, 1)), ("dent", (0, 0, 1, 1))),
              truth("2", ("dent", (0, 0, 1, 1))),
              truth("3")]
    preds = [pred("scratch"), pred("dent", "crack"), pred()]
    assert [set_f1(t.labels, p.labels) for t, p in zip(truths, preds, strict=True)] == [pytest.approx(2 / 3), pytest.approx(2 / 3), 1.0]
    row = score_mode("rag", truths, preds, LABELS)
    # scratch: TP 1; dent: TP 1, FN 1; crack: FP 1 (no support: left out of macro F1)
    assert row["per_label"]["scratch"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1, "tp": 1, "fp": 0, "fn": 0}
    assert row["per_label"]["dent"]["recall"] == 0.5 and row["per_label"]["dent"]["f1"] == pytest.approx(2 / 3)
    assert row["per_label"]["crack"]["fp"] == 1 and row["per_label"]["crack"]["f1"] == 0.0
    assert row["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert row["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert row["detected_accuracy"] == 1.0 and row["photo_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_invalid_reports_predict_nothing_and_lower_the_valid_rate():
    gt = truth("1", ("scratch", (0, 0, 10, 10)))
    invalid = prediction_from_report(report(valid=False), gt)
    assert not invalid.valid and not invalid.detected and invalid.labels == frozenset() and invalid.boxes == ()
    row = score_mode("zero-shot", [gt, gt], [invalid, prediction_from_report(report(("scratch", None)), gt)], LABELS)
    assert row["valid_report_rate"] == 0.5 and row["invalid_reports"] == 1 and row["detected_accuracy"] == 0.5
    assert row["tool_calls_per_query"] == 2 and row["tokens_per_query"] == 120 and row["latency_p50_s"] == 1.5


def test_cooccurrence_counts_confusions_and_none():
    co = cooccurrence([truth("1", ("scratch", (0, 0, 1, 1))), truth("2")], [pred("crack"), pred()], LABELS)
    m = dict(zip(co["rows"], co["matrix"], strict=True))
    assert m["scratch"][co["cols"].index("crack")] == 1 and m["(none)"][co["cols"].index("(none)")] == 1


def test_paired_bootstrap_interval():
    same = paired_mean_difference([1.0] * 50 + [0.0] * 50, [1.0] * 50 + [0.0] * 50)
    assert same.estimate == 0 and same.low == 0 and same.high == 0 and not same.significant
    better = paired_mean_difference([1.0] * 80 + [0.0] * 20, [1.0] * 40 + [0.0] * 60, resamples=1000, seed=1)
    assert better.estimate == pytest.approx(0.4) and 0.25 < better.low < 0.4 < better.high < 0.55 and better.significant
    assert paired_mean_difference([1.0], [0.0]).low is None  # one photo: no interval


def test_macro_f1_interval_shares_the_resamples():
    truths = [truth(str(i), (LABELS[i % 3], (0, 0, 1, 1))) for i in range(30)]
    a = indicator_matrix([t.labels for t in truths], LABELS)
    b = indicator_matrix([frozenset() for _ in truths], LABELS)
    interval = paired_macro_f1_difference(a, a, b, bootstrap_indices(30, 200, 0))
    assert interval.estimate == 1.0 and interval.low == interval.high == 1.0 and interval.significant


def test_compare_modes_orders_pairs_and_words_verdicts():
    assert ordered_pairs(["zero-shot", "rag", "agentic"]) == [("rag", "zero-shot"), ("agentic", "zero-shot"), ("agentic", "rag")]
    truths = [truth(str(i), (LABELS[i % 3], (0, 0, 1, 1))) for i in range(60)]
    right = [pred(*t.labels) for t in truths]
    wrong = [pred("crack") if i % 3 != 2 else pred("scratch") for i in range(60)]
    diffs = compare_modes(truths, {"zero-shot": wrong, "rag": right, "agentic": right}, LABELS, resamples=300)
    by = {d["pair"]: d for d in diffs}
    assert by["rag vs zero-shot"]["metrics"]["macro_f1"]["diff"] == pytest.approx(1.0)
    assert by["rag vs zero-shot"]["metrics"]["photo_f1"]["significant"]
    assert "retrieval helps" in by["rag vs zero-shot"]["verdict"]
    assert by["agentic vs rag"]["verdict"].endswith("no significant difference")


# --------------------------------------------------------------------------------------------
# whole runs against the fake server

KEYS = ["scratch", "dent", "paint_peeling", "large_scratch", "crack", "missing_piece", "missing_accessory", "misaligned_part"]


def _texts(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


def _photo_hash(body: dict) -> int:
    for message in body["messages"]:
        for part in message.get("content") or []:
            if isinstance(part, dict) and part.get("type") == "image_url":
                return int(hashlib.sha1(part["image_url"]["url"].encode()).hexdigest(), 16)
    return 0


def _answer(labels: list[str]) -> Reply:
    findings = [{"label": k, "confidence": 0.8, "bbox_2d": [100 * i, 100, 100 * i + 300, 500]} for i, k in enumerate(labels[:3])]
    return Reply.json({"damage_detected": bool(findings), "findings": findings, "answer": "ok", "examples_used": []})


def _mentioned(text: str) -> list[str]:
    return [k for k in KEYS if re.search(rf"\b{k}\b", text)]


def responder(body: dict) -> Reply:
    """Agentic: one tool call, then the labels the tool result names. Rag: the labels of the
    examples shown. Zero-shot: always a scratch, and no valid JSON for a quarter of the photos."""
    messages = body["messages"]
    if body.get("tools"):
        tool_texts = [_texts(m) for m in messages if m["role"] == "tool"]
        if not tool_texts:
            return Reply.tool_calls([("search_similar_damage", {"k": 2})])
        return _answer(_mentioned(" ".join(tool_texts))[:1])
    if "Labelled examples" in json.dumps(messages):
        shown = next(_texts(m) for m in messages if m["role"] == "user" and "Labelled examples" in _texts(m))
        return _answer(_mentioned(shown))
    if _photo_hash(body) % 4 == 0:  # also to the repair request: the report stays invalid
        return Reply.text("I cannot tell.")
    return _answer(["scratch"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from index.synth import synthesize_labelme

    root = tmp_path_factory.mktemp("eval_data")
    synthesize_labelme(root, 30, size=(640, 480))
    return root


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as fake:
        fake.responder = responder
        yield fake


@pytest.fixture(scope="module")
def config():
    return apply_overrides(load_config(VEHICLE_CONFIG), {"model.max_retries": 0, "model.timeout_s": 20})


def _options(config, dataset, tiny_dinov2, server, out: Path, **extra) -> EvalOptions:
    base = {"config": config, "dataset": dataset, "embedder": str(tiny_dinov2), "api_base": server.base_url,
            "model": "qwen", "n": 10, "test_fraction": 0.5, "out": out, "resamples": 200, "concurrency": 3}
    return EvalOptions(**{**base, **extra})


@pytest.fixture(scope="module")
def first_run(config, dataset, tiny_dinov2, server, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_run") / "run"
    before = len(server.chat_requests)
    result = run_evaluation(_options(config, dataset, tiny_dinov2, server, out))
    return out, result, len(server.chat_requests) - before


def test_end_to_end_rows_differences_and_files(first_run, server):
    out, result, asked = first_run
    on_disk = json.loads((out / "agent_eval.json").read_text())
    assert on_disk["rows"] == result["rows"] and result["n"] == 10
    rows = {r["mode"]: r for r in on_disk["rows"]}
    assert list(rows) == ["zero-shot", "rag", "agentic"]
    for row in rows.values():
        assert {"detected_accuracy", "macro_f1", "valid_report_rate", "latency_p50_s", "latency_p95_s",
                "tokens_per_query", "tool_calls_per_query", "localisation_hit_rate", "mean_best_iou",
                "per_label", "cooccurrence"} <= row.keys()
        assert 0 <= row["detected_accuracy"] <= 1 and row["latency_p50_s"] > 0 and row["tokens_per_query"] > 0
    assert rows["rag"]["valid_report_rate"] == 1.0 and rows["agentic"]["tool_calls_per_query"] == 1.0
    assert rows["zero-shot"]["tool_calls_per_query"] == 0 and rows["rag"]["tool_calls_per_query"] == 1.0
    invalid = sum(1 for p in on_disk["photos"] if not p["zero-shot"]["valid"])
    assert rows["zero-shot"]["valid_report_rate"] == pytest.approx(1 - invalid / 10)
    assert all(p["zero-shot"]["labels"] in ([], ["scratch"]) for p in on_disk["photos"])
    pairs = {d["pair"]: d for d in on_disk["differences"]}
    assert set(pairs) == {"rag vs zero-shot", "agentic vs zero-shot", "agentic vs rag"}
    for d in pairs.values():
        for metric in ("macro_f1", "photo_f1", "detected_accuracy"):
            m = d["metrics"][metric]
            assert m["ci_low"] <= m["diff"] <= m["ci_high"]
        assert d["verdict"].startswith(d["pair"] + ": macro F1")
    # every photo was asked in every mode, each answer stored; rag and agentic never saw the photo's vehicle
    assert on_disk["requests"] == {"asked": 30, "cached": 0, "rejected": 0}
    assert len(list((out / "responses").rglob("*.json"))) == 30
    assert asked >= 30 + 10  # agentic takes two requests
    index = Path(on_disk["index"]["dir"])
    assert index.parent == out and index.name.startswith("index_") and on_disk["index"]["built"]
    nodes = json.dumps(metadata_file.records(index))
    assert on_disk["split"]["shared_groups"] == 0 and on_disk["index"]["images"] == on_disk["split"]["train_images"]
    for photo in on_disk["photos"]:  # the index holds the train side only
        assert f'"{photo["image_id"]}"' not in nodes and f'"{photo["vehicle_group"]}"' not in nodes
    md = (out / "agent_eval.md").read_text()
    assert "## Results per mode" in md and "rag vs zero-shot: macro F1" in md and "How to read this" in md
    for name in ("per_label_f1", "confusion_zero-shot", "confusion_rag", "confusion_agentic", "differences"):
        png = out / f"{name}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_second_run_uses_the_cache(first_run, config, dataset, tiny_dinov2, server):
    out, result, _ = first_run
    before = len(server.chat_requests)
    again = run_evaluation(_options(config, dataset, tiny_dinov2, server, out))
    assert len(server.chat_requests) == before
    assert again["requests"] == {"asked": 0, "cached": 30, "rejected": 0}
    strip = ("cached", "asked")
    assert [{k: v for k, v in r.items() if k not in strip} for r in again["rows"]] == \
           [{k: v for k, v in r.items() if k not in strip} for r in result["rows"]]


def test_refused_requests_count_as_invalid_and_the_run_goes_on(first_run, config, dataset, tiny_dinov2, server):
    out, _, _ = first_run
    server.when(lambda body: _photo_hash(body) % 3 == 0, Reply.http_error(400, "prompt too long"))
    try:
        result = run_evaluation(_options(config, dataset, tiny_dinov2, server, out, modes=("zero-shot",),
                                         use_cache=False))
    finally:
        server.reset()
        server.responder = responder
    (row,) = result["rows"]
    assert result["requests"]["rejected"] == row["rejected"] > 0
    assert row["invalid_reports"] >= row["rejected"] and row["valid_report_rate"] < 1
    assert not result["differences"] and "nothing to compare" in (out / "agent_eval.md").read_text()


def _eval(*argv: str) -> int:
    return main(["eval", *argv])


def test_cli_json_and_unreachable_endpoint(first_run, dataset, tiny_dinov2, server, tmp_path, capsys):
    out, result, _ = first_run
    before = len(server.chat_requests)
    code = _eval("--config", str(VEHICLE_CONFIG), "--dataset", str(dataset), "--embedder", str(tiny_dinov2),
                          "--n", "10", "--test-fraction", "0.5", "--modes", "zero-shot,rag,agentic", "--api-base",
                          server.base_url, "--model", "qwen", "--out", str(out), "--bootstrap", "200", "--json")
    captured = capsys.readouterr()
    assert code == 0 and len(server.chat_requests) == before  # all answers stored by the first run
    printed = json.loads(captured.out)
    assert [r["mode"] for r in printed["rows"]] == ["zero-shot", "rag", "agentic"]
    assert printed["rows"][1]["macro_f1"] == result["rows"][1]["macro_f1"]

    code = _eval("--config", str(VEHICLE_CONFIG), "--dataset", str(dataset), "--embedder", str(tiny_dinov2),
                          "--n", "3", "--test-fraction", "0.5", "--modes", "zero-shot", "--api-base",
                          "http://127.0.0.1:9/v1", "--out", str(tmp_path / "down"), "--json")
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert "127.0.0.1:9/v1" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert _eval("--config", str(VEHICLE_CONFIG), "--dataset", str(dataset), "--modes", "zero-shot,magic",
                          "--out", str(tmp_path / "bad")) == 2


def test_concurrency_bounds_requests_in_flight(config, dataset, tiny_dinov2, server, tmp_path):
    import threading
    import time

    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def slow(body: dict) -> Reply:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return _answer(["dent"])

    server.responder = slow
    try:
        result = run_evaluation(_options(config, dataset, tiny_dinov2, server, tmp_path / "run", n=6,
                                         modes=("zero-shot",), concurrency=2, plots=False))
    finally:
        server.responder = responder
    assert result["requests"]["asked"] == 6 and state["most"] == 2
    assert not (tmp_path / "run" / "per_label_f1.png").exists()


def test_a_failing_server_is_recorded_per_photo_and_the_run_finishes(config, dataset, tiny_dinov2, server, tmp_path):
    server.when(lambda body: True, Reply.http_error(503, "overloaded"))
    try:
        result = run_evaluation(_options(config, dataset, tiny_dinov2, server, tmp_path / "run", n=3,
                                         modes=("zero-shot",), plots=False))
    finally:
        server.reset()
        server.responder = responder
    (row,) = result["rows"]
    assert result["requests"]["rejected"] == row["rejected"] == 3 and row["valid_report_rate"] == 0
    assert (tmp_path / "run" / "agent_eval.json").is_file()
    assert not list((tmp_path / "run" / "responses").rglob("*.json"))  # failures are not cached: a rerun asks again


def test_an_unreachable_endpoint_stops_the_run(config, dataset, tiny_dinov2, server, tmp_path):
    from agent.llm import ModelEndpointError

    config = apply_overrides(config, {"model.max_retries": 0})
    with pytest.raises(ModelEndpointError, match="127.0.0.1:9"):
        run_evaluation(replace(_options(config, dataset, tiny_dinov2, server, tmp_path / "run", n=3,
                                        modes=("zero-shot",)), api_base="http://127.0.0.1:9/v1"))
    assert not (tmp_path / "run" / "agent_eval.json").exists()
