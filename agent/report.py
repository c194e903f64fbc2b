"""The damage report: what the model must answer, how it is checked, and the final record.

The model is asked for :class:`ModelAnswer` (labels by key, boxes in Qwen's 0–1000
coordinates). :func:`parse_answer` finds the JSON in its text (bare or fenced, after the
reasoning of a thinking model), repairs what is unambiguous (see :func:`repair_answer_data`),
validates it against the taxonomy, and the engine turns it into a :class:`DamageReport`, adding
what only the program knows (label names, boxes in source pixels, examples shown, timings,
usage). A report that cannot be validated carries the error and the raw text instead of
invented fields.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from index.errors import DamageRagError
from index.taxonomy import LabelTaxonomy

Severity = Literal["minor", "moderate", "severe"]


class AnswerFinding(BaseModel):
    """One finding as the model writes it."""

    model_config = ConfigDict(extra="ignore")

    label: str = Field(description="Label key (or id / name / synonym) of the damage type.")
    location: str | None = Field(default=None, description="Where on the vehicle, in the model's words.")
    severity: Severity | None = Field(default=None, description="minor, moderate or severe.")
    confidence: float = Field(ge=0, le=1, description="Confidence 0–1.")
    bbox_2d: list[float] | None = Field(
        default=None, description="[x1, y1, x2, y2] in 0–1000 coordinates of the photo shown."
    )
    evidence: str | None = Field(default=None, description="What in the photo (or examples) supports it.")

    @field_validator("bbox_2d")
    @classmethod
    def _box(cls, box: list[float] | None) -> list[float] | None:
        if box is None:
            return None
        if len(box) != 4:
            raise ValueError("bbox_2d must be [x1, y1, x2, y2]")
        x1, y1, x2, y2 = box
        if not (0 <= x1 < x2 <= 1000 and 0 <= y1 < y2 <= 1000):
            raise ValueError("bbox_2d must satisfy 0 <= x1 < x2 <= 1000 and 0 <= y1 < y2 <= 1000")
        return box


class ModelAnswer(BaseModel):
    """The JSON object the model must produce."""

    model_config = ConfigDict(extra="ignore")

    damage_detected: bool = Field(description="Whether any damage of the taxonomy is visible.")
    findings: list[AnswerFinding] = Field(default_factory=list, description="One entry per damage found.")
    answer: str = Field(description="Answer to the user's question, in the user's language.")
    examples_used: list[str] = Field(
        default_factory=list, description="Ids of the retrieved examples that informed the answer."
    )

    # Filled by parse_answer; private, so neither the JSON schema the model sees nor a dump has it.
    _repairs: list[str] = PrivateAttr(default_factory=list)

    @property
    def repairs(self) -> list[str]:
        """What :func:`parse_answer` repaired in the model's JSON, one human-readable note each."""
        return self._repairs


class LabelRef(BaseModel):
    """A label as reports carry it."""

    id: str
    key: str
    name: str


class Finding(BaseModel):
    """One finding of the final report."""

    label: LabelRef
    location: str | None = None
    severity: Severity | None = None
    confidence: float
    bbox_2d: list[float] | None = Field(default=None, description="0–1000 relative box, as the model gave it.")
    bbox_px: list[int] | None = Field(default=None, description="The same box in pixels of the original photo.")
    evidence: str | None = None


class DamageReport(BaseModel):
    """The answer to one question about one photo, with everything needed to audit it."""

    damage_detected: bool | None = Field(description="None when the model's answer was invalid.")
    findings: list[Finding] = Field(default_factory=list)
    answer: str = ""
    examples_used: list[str] = Field(default_factory=list, description="Ids of the examples the model was shown.")
    examples_cited: list[str] = Field(default_factory=list, description="Shown examples the model says it used.")
    mode: str
    model: str
    trace_id: str
    question: str
    tool_calls: int = 0
    valid: bool = True
    error: str | None = None
    raw_text: str | None = Field(default=None, description="The model's text, kept when it was invalid.")
    repairs: list[str] = Field(
        default_factory=list, description="What was repaired in the model's answer (ModelAnswer.repairs)."
    )
    timings: dict[str, float] = Field(default_factory=dict)
    usage: dict[str, int] = Field(default_factory=dict)


class AnswerError(DamageRagError, ValueError):
    """The model's text holds no valid answer; the message says why, for a repair request."""


_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_THINK_END = "</think>"
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*")

BOX_SLACK = 100
"""How far outside 0–1000 a box coordinate may stray and still be clamped (10 % of the frame).

A coordinate in [-100, 1100] is a model rounding past the edge; one further out is not a box
of this photo, and stays an error.
"""


def strip_thinking(text: str) -> str:
    """The reply without the model's reasoning.

    Thinking variants of Qwen3-VL get ``<think>`` from the chat template, so their reply holds
    only the reasoning, then a lone ``</think>``, then the answer: everything up to the last
    ``</think>`` is dropped. A complete ``<think>…</think>`` block is dropped as well.
    """
    text = text or ""
    if _THINK_END in text:
        text = text.rpartition(_THINK_END)[2]
    return _THINK_BLOCK.sub("", text).strip()


def extract_json(text: str) -> dict[str, Any]:
    """The JSON object in a model's text: fenced, bare, or the outermost braces, after the reasoning.

    Raises:
        AnswerError: If there is no parseable JSON object.
    """
    text = strip_thinking(text)
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    candidates.append(text)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise AnswerError("the reply contains no JSON object")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A value as the model wrote it (integers without a trailing .0)."""
    if _is_number(value) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


def _repair_box(box: Any) -> tuple[list[float], str] | None:
    """A box clamped into 0–1000 with ordered corners, and what was done; None if nothing to do
    or nothing safe to do (not four numbers, beyond :data:`BOX_SLACK`, empty after clamping)."""
    if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
        return None
    if any(v < -BOX_SLACK or v > 1000 + BOX_SLACK for v in box):
        return None
    clamped = [min(1000, max(0, v)) for v in box]
    x1, y1, x2, y2 = clamped
    fixed = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
    if fixed[0] == fixed[2] or fixed[1] == fixed[3] or fixed == list(box):
        return None
    done = [word for word, changed in (("clamped", clamped != list(box)), ("ordered", fixed != clamped)) if changed]
    return fixed, " and ".join(done)


def _repair_confidence(value: Any) -> float | None:
    """A confidence written as a percentage (94, "94%", "94 %") as a fraction; None otherwise."""
    if isinstance(value, str):
        match = _PERCENT.fullmatch(value)
        if match is None:
            return None
        number, percent = float(match.group(1)), bool(match.group(2))
        if not percent and number <= 1:
            return None  # "0.9": a fraction already, validation reads it as is
    elif _is_number(value):
        number = float(value)
        if number <= 1:
            return None
    else:
        return None
    return round(number / 100, 6) if 0 <= number <= 100 else None


def repair_answer_data(data: dict[str, Any]) -> list[str]:
    """Repair, in place, what the model wrote unambiguously but out of form; returns one note per repair.

    - a ``bbox_2d`` at most :data:`BOX_SLACK` outside 0–1000 is clamped into it, and swapped
      corners are ordered ([x2, y2, x1, y1] → [x1, y1, x2, y2]); a box empty after that is left
      for validation to refuse;
    - a ``confidence`` above 1 and at most 100, or a string such as ``"94%"``, is read as a
      percentage (0.94).

    Nothing is added: a missing field stays missing, and validation reports it.
    Notes read e.g. ``finding 1: bbox_2d [1003, 10, 20, 5] clamped and ordered to [20, 5, 1000, 10]``.
    """
    notes: list[str] = []
    findings = data.get("findings")
    if not isinstance(findings, list):
        return notes
    for number, finding in enumerate(findings, start=1):
        if not isinstance(finding, dict):
            continue
        if "bbox_2d" in finding and (box := _repair_box(finding["bbox_2d"])) is not None:
            fixed, done = box
            notes.append(f"finding {number}: bbox_2d {_shown(finding['bbox_2d'])} {done} to {_shown(fixed)}")
            finding["bbox_2d"] = fixed
        if "confidence" in finding and (confidence := _repair_confidence(finding["confidence"])) is not None:
            notes.append(f"finding {number}: confidence {_shown(finding['confidence'])} read as a percentage: {confidence:g}")
            finding["confidence"] = confidence
    return notes


def parse_answer(text: str, taxonomy: LabelTaxonomy) -> ModelAnswer:
    """Validate the model's text as a :class:`ModelAnswer` with labels of the taxonomy.

    The reasoning of a thinking model is skipped (:func:`strip_thinking`) and unambiguous slips
    are repaired first (:func:`repair_answer_data`); the answer's ``repairs`` lists them.

    Raises:
        AnswerError: With a message listing what is wrong (for the repair request).
    """
    data = extract_json(text)
    repairs = repair_answer_data(data)
    try:
        answer = ModelAnswer.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise AnswerError(problems) from None
    unknown = [f.label for f in answer.findings if taxonomy.find(f.label) is None]
    if unknown:
        raise AnswerError(
            f"findings use unknown labels {unknown}; use one of: {', '.join(taxonomy.label_keys())}"
        )
    answer.repairs.extend(repairs)
    return answer


def to_findings(answer: ModelAnswer, taxonomy: LabelTaxonomy, size: tuple[int, int]) -> list[Finding]:
    """Resolve labels and convert boxes to pixels of the original photo (``size`` = width, height)."""
    width, height = size
    out = []
    for item in answer.findings:
        label = taxonomy.resolve(item.label)
        pixels = None
        if item.bbox_2d:
            x1, y1, x2, y2 = item.bbox_2d
            pixels = [round(x1 / 1000 * width), round(y1 / 1000 * height), round(x2 / 1000 * width), round(y2 / 1000 * height)]
        out.append(Finding(label=LabelRef(**label.brief()), location=item.location, severity=item.severity,
                           confidence=item.confidence, bbox_2d=item.bbox_2d, bbox_px=pixels, evidence=item.evidence))
    return out


def answer_schema(taxonomy: LabelTaxonomy) -> dict[str, Any]:
    """JSON schema of :class:`ModelAnswer` with labels restricted to the taxonomy's keys."""
    schema = ModelAnswer.model_json_schema()
    finding = schema["$defs"]["AnswerFinding"]
    finding["properties"]["label"] = {"type": "string", "enum": taxonomy.label_keys(),
                                      "description": finding["properties"]["label"]["description"]}
    return schema
