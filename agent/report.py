"""The damage report: what the model must answer, how it is checked, and the final record.

The model is asked for :class:`ModelAnswer` (labels by key, boxes in Qwen's 0–1000
coordinates). :func:`parse_answer` finds the JSON in its text (:func:`extract_json`: fenced or
not, among prose and other objects, after the reasoning of a thinking model, with single quotes,
Python literals or trailing commas), repairs what is unambiguous (see :func:`repair_answer_data`),
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

    def to_simple(self) -> dict[str, Any]:
        """The user's own JSON shape: the verdict, the most confident finding, and the answer.

        ``damage_type`` is that finding's label key, ``location`` its location as the model wrote
        it, ``confidence`` its confidence (all None without findings); ``similar_examples_used``
        counts the examples shown to the model. An invalid report keeps ``damage_detected: None``
        rather than claiming either way.
        """
        top = max(self.findings, key=lambda f: f.confidence, default=None)  # the first of equals
        return {"damage_detected": self.damage_detected, "damage_type": top.label.key if top else None,
                "location": top.location if top else None, "confidence": top.confidence if top else None,
                "similar_examples_used": len(self.examples_used), "analysis": self.answer}


class AnswerError(DamageRagError, ValueError):
    """The model's text holds no valid answer; the message says why, for a repair request."""


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


#: The fields of :class:`ModelAnswer`: of several objects in a reply, the answer is the one with most.
REPORT_KEYS = ("damage_detected", "findings", "answer", "examples_used")
_MAX_STARTS = 200  # candidate "{" positions tried per reply (a reply is a few kB)
_LITERALS = {"True": "true", "False": "false", "None": "null"}
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u201d": "\u201d", "\u201e": "\u201d",
           "\u2018": "\u2019", "\u2019": "\u2019"}  # opening quote -> its closing quote
_SINGLE_END = re.compile(r"\s*[,:}\]]")  # what may follow the quote that ends a single-quoted string
_TRAILING_COMMA = re.compile(r",\s*[}\]]")
_WORD = re.compile(r"\w+")


def _string_end(text: str, i: int, closer: str = '"') -> int | None:
    """The index of the quote closing the string opened at ``i`` (None if it never closes); a
    single quote closes only when ``, : } ]`` follows, so an apostrophe inside stays."""
    escaped = False
    for j in range(i + 1, len(text)):
        if escaped:
            escaped = False
        elif text[j] == "\\" and closer == '"':
            escaped = True
        elif text[j] == closer and (closer not in "'\u2019" or _SINGLE_END.match(text, j + 1)):
            return j
    return None


def _closing_brace(text: str, start: int) -> int | None:
    """The index of the ``}`` closing the ``{`` at ``start`` (braces in "strings" skipped), or
    None when it never closes: a reply cut short is not completed."""
    depth, i = 0, start
    while i is not None and i < len(text):
        if text[i] == '"':
            i = _string_end(text, i)
        elif text[i] in "{}":
            depth += 1 if text[i] == "{" else -1
            if depth == 0:
                return i
        i = None if i is None else i + 1
    return None


def _loosen(text: str) -> str | None:
    """``text`` as strict JSON, or None: what a model writes unambiguously but out of form.

    Single or typographic quotes delimit strings as double ones do (see :func:`_string_end`);
    ``True``/``False``/``None`` outside strings become JSON's literals; a comma before ``}`` or
    ``]`` is dropped. Nothing is added: an unterminated string gives None.
    """
    out, i = [], 0
    while i < len(text):
        char, closer = text[i], _QUOTES.get(text[i])
        if closer is not None:
            j = _string_end(text, i, closer)
            if j is None:
                return None
            inner = text[i : j + 1] if char == '"' else json.dumps(text[i + 1 : j].replace("\\'", "'"))
            out.append(inner)
            i = j + 1
        elif char.isalpha() or char == "_":
            word = _WORD.match(text, i).group()  # type: ignore[union-attr]
            out.append(_LITERALS.get(word, word))
            i += len(word)
        else:
            out.append("" if char == "," and _TRAILING_COMMA.match(text, i) else char)
            i += 1
    return "".join(out)


def _load_object(candidate: str) -> dict[str, Any] | None:
    """``candidate`` parsed as a JSON object, strictly first, then loosened; None if neither."""
    for loosen in (False, True):
        attempt = _loosen(candidate) if loosen else candidate
        try:
            value = json.loads(attempt, strict=False) if attempt else None  # raw newlines in strings
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def extract_json(text: str) -> dict[str, Any]:
    """The answer object in a model's text, after the reasoning (:func:`strip_thinking`).

    Every balanced ``{…}`` is a candidate, whatever surrounds it: a fence with or without a
    language, prose before or after, other objects. Each is parsed as JSON, then loosened
    (:func:`_loosen`: single or typographic quotes, Python's ``True``/``False``/``None``,
    trailing commas). Of the objects found, the one with most of :data:`REPORT_KEYS` wins (the
    last of equals: a model's final answer comes after its drafts). Nothing is completed or
    made up: a truncated object is no candidate, and its complete inner parts (a finding) do
    not pass for the answer.

    Raises:
        AnswerError: If there is no JSON object with any of the report's fields.
    """
    text = strip_thinking(text)
    starts = [i for i, char in enumerate(text) if char == "{"][:_MAX_STARTS]
    best, best_score, found, cut = None, 0, False, False
    for start in starts:
        end = _closing_brace(text, start)
        cut = cut or end is None
        value = _load_object(text[start : end + 1]) if end is not None else None
        if value is None:
            continue
        found = True
        score = sum(key in value for key in REPORT_KEYS)
        if score and score >= best_score:
            best, best_score = value, score
    if best is None:
        fields = ", ".join(REPORT_KEYS)
        if cut:
            raise AnswerError(f"the reply's JSON object is incomplete (cut short?); write the whole object ({fields})")
        raise AnswerError(f"the reply contains no JSON object with the report's fields ({fields})" if found
                          else "the reply contains no JSON object")
    return best


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
