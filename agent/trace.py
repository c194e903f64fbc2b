"""Every query writes a trace: JSON lines under ``outputs/traces/``, one event per line.

Events: ``query`` (question, mode, model, photo), ``model_request`` (messages summarised, image
sizes, latency, token usage), ``tool_call`` (arguments, result ids and scores, errors),
``images_sent`` (the example crops and zooms shown to the model), ``protocol`` (fallbacks),
``report``. The run record *is* the trace: ``trace show`` and the HTML page read it back.
API keys never enter a trace: requests are summarised, never dumped.
"""

from __future__ import annotations

import base64
import errno
import html
import io
import json
import logging
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from index.errors import DamageRagError

logger = logging.getLogger(__name__)

_KEY_HINTS = ("api_key", "authorization", "apikey", "secret", "token=")
#: How many trace ids a trace draws before giving up on finding a free one (each clash is 1 in 2**24).
_ID_ATTEMPTS = 16


class TraceNotFoundError(DamageRagError, FileNotFoundError):
    """No trace with that id."""


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<redacted>" if any(h in k.lower() for h in _KEY_HINTS) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


@dataclass(frozen=True)
class TraceWriteFailure:
    """Why a query's trace could not be written: the trace file and the operating system's reason."""

    path: Path
    reason: str

    def note(self) -> str:
        """One line for the user, after the answer."""
        return f"the trace could not be written to {self.path} ({self.reason}); the answer is above"


def trace_file(traces_dir: Path, trace_id: str) -> Path:
    """The JSON-lines file of a trace."""
    return Path(traces_dir) / f"{trace_id}.jsonl"


class Trace:
    """Writes one query's events as they happen (a crash still leaves a readable trace).

    Writing a trace never costs the answer: the first write that fails (a read-only or full
    disk, a file where the folder should be) logs one warning, removes what this trace wrote
    (no empty or half-written file is left) and turns every later write of this trace into a
    no-op; :attr:`failure` then says why. The file is created exclusively by the first write:
    an id another trace already holds is redrawn, so two queries never share a file.
    """

    def __init__(self, traces_dir: Path, **query: Any) -> None:
        self.dir = Path(traces_dir)
        self._draw_id()
        self._created = False  # whether this trace's file exists (created exclusively by the first write)
        self.failure: TraceWriteFailure | None = None
        self.started = time.perf_counter()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(exc)
        self.event("query", **query)

    def _draw_id(self) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        self.id = f"{stamp}-{secrets.token_hex(3)}"
        self.path = trace_file(self.dir, self.id)

    def _write(self, line: str) -> None:
        """Append ``line``; the first write creates the file exclusively, drawing a new id while
        the drawn one is taken (two queries in the same second must not share a file)."""
        if self._created:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
            return
        for _ in range(_ID_ATTEMPTS):
            try:
                handle = self.path.open("x", encoding="utf-8")
            except FileExistsError:
                logger.debug("trace id %s is taken; drawing another", self.id)
                self._draw_id()
                continue
            self._created = True
            with handle:
                handle.write(line)
            return
        raise FileExistsError(errno.EEXIST, f"no free trace id after {_ID_ATTEMPTS} draws")

    @property
    def written(self) -> bool:
        """Whether the trace is being kept (no write has failed)."""
        return self.failure is None

    def event(self, kind: str, **data: Any) -> None:
        """Append one event (nothing once a write has failed)."""
        if self.failure is not None:
            return
        record = {"type": kind, "t": round(time.perf_counter() - self.started, 4), **_scrub(data)}
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        try:
            self._write(line)
        except OSError as exc:
            self._fail(exc)

    def save_image(self, name: str, image: Image.Image) -> str | None:
        """Keep a small copy of an image next to the trace; returns its path (None once a write
        has failed)."""
        if self.failure is not None:
            return None
        path = self.dir / self.id / f"{name}.jpg"
        copy = image.copy()
        copy.thumbnail((1024, 1024))
        try:
            path.parent.mkdir(exist_ok=True)
            copy.convert("RGB").save(path, "JPEG", quality=85)
        except OSError as exc:
            self._fail(exc)
            return None
        return str(path)

    def _fail(self, exc: OSError) -> None:
        """Stop writing this trace: warn once, remove its file and its image folder."""
        reason = exc.strerror or str(exc) or type(exc).__name__
        self.failure = TraceWriteFailure(self.path, reason)
        logger.warning("the trace %s could not be written (%s); no trace is kept for this query", self.path, reason)
        if not self._created:  # nothing of this trace's is on disk (a file of that name is another's)
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError as cleanup:
            logger.debug("could not remove the partial trace %s: %s", self.path, cleanup)
        shutil.rmtree(self.dir / self.id, ignore_errors=True)


def summarise_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Role, text (shortened) and image sizes of each LlamaIndex chat message."""
    from llama_index.core.base.llms.types import ImageBlock, TextBlock

    out = []
    for message in messages:
        texts, images = [], []
        for block in message.blocks:
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ImageBlock) and block.image is not None:
                try:
                    with Image.open(io.BytesIO(block.resolve_image().read())) as img:
                        images.append(f"{img.width}x{img.height}")
                except Exception:  # a block we cannot measure is still listed
                    images.append("?")
        text = "\n".join(texts)
        item: dict[str, Any] = {"role": str(message.role.value), "text": text if len(text) <= 600 else text[:600] + "…"}
        if images:
            item["images"] = images
        calls = message.additional_kwargs.get("tool_calls")
        if calls:
            item["tool_calls"] = len(calls)
        out.append(item)
    return out


def list_traces(traces_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """One summary per trace, newest first (the newest ``limit`` only, when given: the others
    are not read)."""
    out = []
    for path in sorted(Path(traces_dir).glob("*.jsonl"), reverse=True)[:limit]:
        events = load_trace(traces_dir, path.stem)
        query = events[0] if events else {}
        report = next((e for e in reversed(events) if e["type"] == "report"), {}).get("report", {})
        error = next((e for e in reversed(events) if e["type"] == "error"), None)
        out.append({
            "id": path.stem,
            "question": query.get("question"),
            "mode": query.get("mode"),
            "photo": query.get("photo"),
            "tool_calls": sum(1 for e in events if e["type"] == "tool_call"),
            "damage_detected": report.get("damage_detected"),
            "valid": report.get("valid"),
            "status": trace_status(report, error),
            "seconds": (report.get("timings") or {}).get("total_s") if report else (error or {}).get("seconds"),
            "error": (error or {}).get("message"),
        })
    return out


def trace_status(report: dict[str, Any], error: dict[str, Any] | None) -> str:
    """``ok`` (a valid report), ``invalid`` (an answer that stayed invalid) or ``failed`` (no report)."""
    if not report:
        return "failed" if error else "incomplete"
    return "ok" if report.get("valid", True) else "invalid"


def load_trace(traces_dir: Path, trace_id: str) -> list[dict[str, Any]]:
    """All events of a trace.

    Raises:
        TraceNotFoundError: If there is no such trace.
    """
    path = trace_file(traces_dir, trace_id)
    if not path.is_file():
        raise TraceNotFoundError(f"No trace '{trace_id}' in {traces_dir}; `python -m agent trace list` shows the ids.")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _data_uri(path: str | None, boxes: list[list[int]] | None = None) -> str:
    if not path or not Path(path).is_file():
        return ""
    with Image.open(path) as img:
        img = img.convert("RGB")
        if boxes:
            from PIL import ImageDraw

            draw = ImageDraw.Draw(img)
            for box in boxes:
                x1, y1, x2, y2 = (v / 1000 * s for v, s in zip(box, (img.width, img.height, img.width, img.height), strict=True))
                draw.rectangle((x1, y1, x2, y2), outline=(255, 40, 40), width=max(2, img.width // 200))
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def render_html(events: list[dict[str, Any]], out: Path) -> Path:
    """Write :func:`trace_html` of ``events`` to ``out``; returns ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(trace_html(events), encoding="utf-8")
    return out


def trace_html(events: list[dict[str, Any]]) -> str:
    """A self-contained page: the photo with report boxes, tool calls in order, crops shown, report."""
    esc = html.escape
    query = events[0]
    report = next((e["report"] for e in reversed(events) if e["type"] == "report"), {})
    boxes = [f["bbox_2d"] for f in report.get("findings", []) if f.get("bbox_2d")]
    photo = next((e for e in events if e["type"] == "photo"), {})
    parts = [
        "<!doctype html><meta charset='utf-8'><title>trace</title>",
        "<style>body{font:14px sans-serif;margin:24px;max-width:1100px}img{max-width:100%;border:1px solid #ccc}"
        ".crops img{width:200px;margin:4px}.ev{border-left:3px solid #888;padding:4px 12px;margin:8px 0}"
        "pre{background:#f5f5f5;padding:8px;white-space:pre-wrap}</style>",
        f"<h1>{esc(str(query.get('question', '')))}</h1>",
        f"<p>mode <b>{esc(str(query.get('mode')))}</b> · model {esc(str(query.get('model')))} · photo {esc(str(query.get('photo')))}</p>",
        f"<img src='{_data_uri(photo.get('photo_copy'), boxes)}' alt='query photo'>",
        "<h2>Steps</h2>",
    ]
    for event in events[1:]:
        kind = event["type"]
        if kind == "model_request":
            parts.append(f"<div class='ev'>model request {event.get('step')} · {event.get('latency_s', 0):.2f}s · "
                         f"usage {esc(json.dumps(event.get('usage', {})))} · images {esc(str(event.get('image_sizes', [])))}</div>")
        elif kind == "tool_call":
            parts.append(f"<div class='ev'><b>{esc(event['name'])}</b>({esc(json.dumps(event.get('arguments', {}), ensure_ascii=False))})"
                         f"{' <b style=color:red>error</b>' if event.get('error') else ''}<pre>{esc(str(event.get('result_text', '')))}</pre></div>")
        elif kind == "images_sent":
            crops = "".join(f"<figure style='display:inline-block'><img src='{_data_uri(i.get('path'))}'><figcaption>{esc(i.get('caption', ''))}</figcaption></figure>"
                            for i in event.get("images", []))
            parts.append(f"<div class='ev crops'>images shown to the model:<br>{crops}</div>")
        elif kind == "error":
            parts.append(f"<div class='ev' style='border-color:#d22'><b style=color:#d22>failed</b> "
                         f"({esc(str(event.get('problem', '')))}): {esc(str(event.get('message', '')))}</div>")
        elif kind in ("protocol", "budget", "answer_repair"):
            text = event.get("message") or "; ".join(event.get("omitted") or event.get("repairs") or [])
            parts.append(f"<div class='ev'>{esc(kind)}: {esc(str(text))}</div>")
    parts.append("<h2>Report</h2><pre>" + esc(json.dumps(report, indent=2, ensure_ascii=False)) + "</pre>")
    return "\n".join(parts)
