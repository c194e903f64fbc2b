"""Files written once, the same way everywhere: atomic writes and canonical-JSON digests.

An atomic write goes to a temporary file in the target's folder, is flushed to disk and then
renamed over the target, so a reader (or a crash) sees the old file or the new one, never half
of one. A digest is the sha256 of a value's canonical JSON (sorted keys, no spaces), so equal
data gives the equal digest in every process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from index.errors import DamageRagError, resource_error


def atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    """Write ``target`` atomically: ``write(tmp)`` fills a temporary file that replaces it.

    Args:
        target: The file to (re)place; its folder must exist.
        write: Writes the whole content to the path it is given.

    Raises:
        ResourceError: If the disk or the folder refuses the write (one sentence naming it).
    """
    target = Path(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise resource_error(exc, target.parent) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        # FAISS reports a failed write as RuntimeError("... write error in <file> ... (<reason>)").
        failed_write = isinstance(exc, OSError) and not isinstance(exc, DamageRagError)
        if failed_write or (isinstance(exc, RuntimeError) and "write error" in str(exc)):
            raise resource_error(exc, target) from exc
        raise


def write_text_atomic(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(target: Path, data: Any, *, indent: int | None = 1) -> None:
    """Write ``data`` as JSON (UTF-8, non-ASCII kept) to ``target`` atomically."""

    def dump(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=indent, ensure_ascii=False)

    atomic_write(target, dump)


def canonical_json(data: Any) -> str:
    """``data`` as canonical JSON: sorted keys, no spaces, unknown types as ``str``."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def digest(data: Any) -> str:
    """Hex sha256 of ``data``'s canonical JSON."""
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()
