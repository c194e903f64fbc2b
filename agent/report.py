"""The damage report: what the model must answer, how it is checked, and the final record.

The model is asked for :class:`ModelAnswer` (labels by key, boxes in Qwen's 0–1000
coordinates). :func:`parse_answer` finds the JSON in its text (bare or fenced), validates it
against the taxonomy, and the engine turns it into a :class:`DamageReport`, adding what only
the program knows (label names, boxes in source pixels, examples shown, timings, usage). A
report that cannot be validated carries the error and the raw text instead of invented fields.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    timings: dict[str, float] = Field(default_factory=dict)
    usage: dict[str, int] = Field(default_factory=dict)


class AnswerError(DamageRagError, ValueError):
    """The model's text holds no valid answer; the message says why, for a repair request."""


_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


def extract_json(text: str) -> dict[str, Any]:
    """The JSON object in a model's text: fenced, bare, or the outermost braces.

    Raises:
        AnswerError: If there is no parseable JSON object.
    """
    text = re.sub(r"<think>.*?</think>", "", text or "", flags=re.DOTALL).strip()
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


def parse_answer(text: str, taxonomy: LabelTaxonomy) -> ModelAnswer:
    """Validate the model's text as a :class:`ModelAnswer` with labels of the taxonomy.

    Raises:
        AnswerError: With a message listing what is wrong (for the repair request).
    """
    data = extract_json(text)
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
