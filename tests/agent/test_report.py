"""The model's answer as Qwen3-VL really writes it: reasoning first, boxes past the edge, percentages."""

from __future__ import annotations

import json

import pytest

from agent.report import AnswerError, DamageReport, answer_schema, parse_answer, to_findings
from index.config import load_config
from tests.fixtures.paths import VEHICLE_CONFIG


@pytest.fixture(scope="module")
def taxonomy():
    return load_config(VEHICLE_CONFIG).taxonomy


def answer(**finding) -> dict:
    base = {"label": "scratch", "location": "hood", "severity": "minor", "confidence": 0.9,
            "bbox_2d": [100, 200, 300, 400], "evidence": "thin light line"}
    base.update(finding)
    return {"damage_detected": True, "findings": [{k: v for k, v in base.items() if v is not ...}],
            "answer": "Sí, hay un rayón en el capó.", "examples_used": []}


def text(**finding) -> str:
    return json.dumps(answer(**finding), ensure_ascii=False)


def test_clean_answer_has_no_repairs(taxonomy):
    parsed = parse_answer(text(), taxonomy)
    assert parsed.findings[0].bbox_2d == [100, 200, 300, 400]
    assert parsed.repairs == []


def test_lone_closing_think_with_braces_in_the_reasoning(taxonomy):
    reply = ("The user asks about {the hood}; the example {id: 3} shows a scratch like this one.\n"
             "So the answer is a scratch.\n</think>\n\n" + text())
    parsed = parse_answer(reply, taxonomy)
    assert parsed.damage_detected is True
    assert parsed.findings[0].label == "scratch"


def test_full_think_block_before_a_fenced_answer(taxonomy):
    reply = "<think>\nA {brace} and ```code``` in the reasoning.\n</think>\n```json\n" + text() + "\n```"
    assert parse_answer(reply, taxonomy).findings[0].confidence == 0.9


def test_box_slightly_outside_is_clamped(taxonomy):
    parsed = parse_answer(text(bbox_2d=[-2, 10, 1003, 500]), taxonomy)
    assert parsed.findings[0].bbox_2d == [0, 10, 1000, 500]
    assert parsed.repairs == ["finding 1: bbox_2d [-2, 10, 1003, 500] clamped to [0, 10, 1000, 500]"]


def test_swapped_corners_are_ordered(taxonomy):
    parsed = parse_answer(text(bbox_2d=[300, 400, 100, 200]), taxonomy)
    assert parsed.findings[0].bbox_2d == [100, 200, 300, 400]
    assert parsed.repairs == ["finding 1: bbox_2d [300, 400, 100, 200] ordered to [100, 200, 300, 400]"]


def test_clamped_and_ordered_note(taxonomy):
    parsed = parse_answer(text(bbox_2d=[1003, 10, 20, 5]), taxonomy)
    assert parsed.findings[0].bbox_2d == [20, 5, 1000, 10]
    assert parsed.repairs == ["finding 1: bbox_2d [1003, 10, 20, 5] clamped and ordered to [20, 5, 1000, 10]"]


@pytest.mark.parametrize("written", [94, "94%", "94 %"])
def test_percentage_confidence(taxonomy, written):
    parsed = parse_answer(text(confidence=written), taxonomy)
    assert parsed.findings[0].confidence == pytest.approx(0.94)
    assert parsed.repairs == [f"finding 1: confidence {json.dumps(written)} read as a percentage: 0.94"]


def test_fraction_confidence_is_left_alone(taxonomy):
    assert parse_answer(text(confidence="0.8"), taxonomy).repairs == []
    assert parse_answer(text(confidence=1), taxonomy).findings[0].confidence == 1


@pytest.mark.parametrize("box", [[0, 0, 1200, 500], [-150, 0, 300, 400], [1001, 10, 1050, 20], [100, 200, 100, 400]],
                         ids=["far-right", "far-left", "empty-after-clamping", "zero-width"])
def test_box_still_invalid(taxonomy, box):
    with pytest.raises(AnswerError, match="bbox_2d"):
        parse_answer(text(bbox_2d=box), taxonomy)


@pytest.mark.parametrize("confidence", [150, -5, "150%", "high"])
def test_confidence_still_invalid(taxonomy, confidence):
    with pytest.raises(AnswerError, match="confidence"):
        parse_answer(text(confidence=confidence), taxonomy)


def test_missing_field_is_never_invented(taxonomy):
    with pytest.raises(AnswerError, match="confidence"):
        parse_answer(text(confidence=..., bbox_2d=[1003, 10, 20, 5]), taxonomy)
    data = answer()
    del data["answer"]
    with pytest.raises(AnswerError, match="answer"):
        parse_answer("reasoning </think>" + json.dumps(data), taxonomy)


def test_repairs_stay_out_of_the_schema_and_the_dump(taxonomy):
    parsed = parse_answer(text(confidence="94%"), taxonomy)
    assert "repairs" not in parsed.model_dump()
    assert "repairs" not in json.dumps(answer_schema(taxonomy))
    injected = answer()
    injected["repairs"] = ["made up"]
    assert parse_answer(json.dumps(injected), taxonomy).repairs == []


def test_repaired_box_reaches_pixels(taxonomy):
    parsed = parse_answer(text(bbox_2d=[1003, 500, 500, -1]), taxonomy)
    findings = to_findings(parsed, taxonomy, (2000, 1000))
    assert findings[0].bbox_px == [1000, 0, 2000, 500]
    report = DamageReport(damage_detected=True, findings=findings, mode="rag", model="m", trace_id="t",
                          question="q", repairs=parsed.repairs)
    assert report.repairs == parsed.repairs
