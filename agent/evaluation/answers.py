"""What an evaluation asks and keeps: cache keys, stored answers and the photo as sent.

Every answer is stored as ``RUN_DIR/responses/<mode>/<photo>-<key>.json`` the moment it
arrives, under a key over (mode, image id, question, model, index fingerprint, setup), where
the setup covers what else shapes an answer (sampling parameters, pixel budgets, agent
settings, prompt files, taxonomy). A rerun with the same key reuses the stored answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.report import DamageReport
from index.config import DomainConfig
from index.files import digest, write_json_atomic

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def setup_key(config: DomainConfig) -> str:
    """A key over what else shapes an answer: sampling, pixel budgets, agent settings, prompts."""
    from agent.prompts import Prompts

    model = config.model.model_dump(mode="json", exclude={"api_base", "api_key_env", "timeout_s", "max_retries",
                                                          "retry_backoff_s"})
    agent = config.agent.model_dump(mode="json", include={"max_tool_calls", "k", "example_kind", "language"})
    prompts = {name: hashlib.sha1(data).hexdigest() for name, data in Prompts.for_config(config).files().items()}
    return digest({"model": model, "agent": agent, "prompts": prompts, "labels": config.taxonomy.model_dump(mode="json")})[:16]


def response_key(mode: str, image_id: str, question: str, model: str, index_fingerprint: str, setup: str) -> str:
    """The cache key of one answer. Zero-shot answers do not depend on the index, so they pass
    ``"-"`` as its fingerprint and are reused across index strategies."""
    return digest({"v": CACHE_VERSION, "mode": mode, "image_id": image_id, "question": question, "model": model,
                    "index": index_fingerprint, "setup": setup})


def slug(text: str) -> str:
    """A file-name-safe tail of ``text`` (at most 80 characters)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[-80:].strip("_") or "photo"


def load_cached(path: Path, key: str) -> DamageReport | None:
    """The stored answer at ``path`` when it is there, readable and for ``key``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        return DamageReport.model_validate(data["report"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring the unreadable stored answer %s (%s)", path, exc)
        return None


def store(path: Path, key: str, report: DamageReport, *, image_id: str, model: str) -> None:
    """Write one answer atomically, so an interrupted run keeps every finished answer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"key": key, "mode": report.mode, "image_id": image_id, "question": report.question, "model": model,
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "report": report.model_dump(mode="json")}
    write_json_atomic(path, data)


# --------------------------------------------------------------------------------------------
# photos


def photo_input(record: Any) -> tuple[Any, tuple[int, int]]:
    """What to send for a record (path, bytes or decoded image) and the frame it is in.

    The frame is the (width, height) the engine's ``bbox_px`` will refer to; it differs from
    the annotation frame when the annotation was drawn on a rescaled copy or ignores EXIF.
    """
    from index.imaging.decode import decode_image, embedded_image_bytes, read_header

    if record.embedded:
        data = embedded_image_bytes(record.image_path)
        return data, read_header(data, record.image_path.name).oriented_size
    if not record.exif_transpose:
        image, _ = decode_image(record.image_path, exif_transpose=False)
        return image, image.size
    return record.image_path, read_header(record.image_path).oriented_size


def photo_frame(record: Any) -> tuple[int, int]:
    """The frame of :func:`photo_input` without decoding pixels."""
    from index.imaging.decode import embedded_image_bytes, read_header

    if record.embedded:
        return read_header(embedded_image_bytes(record.image_path), record.image_path.name).oriented_size
    header = read_header(record.image_path)
    return header.oriented_size if record.exif_transpose else (header.width, header.height)
