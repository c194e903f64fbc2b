"""One writer at a time: an exclusive lock beside the index directory.

A build holds ``<index>.lock`` (an OS file lock, so the lock of a process that died is
released with it and the next build simply takes it over) for as long as it writes the
staging area and swaps it in. The file also records who holds it, so a second build can say
which one is running. Readers take no lock: they only ever open a complete directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from index.errors import DamageRagError, resource_error

logger = logging.getLogger(__name__)

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


class IndexBusyError(DamageRagError, RuntimeError):
    """Another build is writing the same index directory."""


def lock_path(index_dir: Path) -> Path:
    """The lock file of ``index_dir`` (beside it: the directory itself is swapped)."""
    return index_dir.with_name(index_dir.name + ".lock")


def _holder(fd: int) -> str:
    """Who holds the lock, as the lock file records it."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        record = json.loads(os.read(fd, 4096).decode("utf-8"))
        return f"pid {record['pid']} on {record['host']}, started {record['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def writer_lock(index_dir: Path, *, wait: bool = False, poll_s: float = 0.5) -> Iterator[None]:
    """Hold the index's writer lock for the ``with`` block.

    Args:
        index_dir: The index directory to be written.
        wait: Wait for a running build to finish instead of refusing.
        poll_s: How often to retry while waiting.

    Raises:
        IndexBusyError: If another build holds the lock and ``wait`` is false.
        ResourceError: If the lock file cannot be created (a read-only folder, say).
    """
    path = lock_path(index_dir)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise resource_error(exc, path) from exc
    try:
        if not _try_lock(fd):
            holder = _holder(fd)
            if not wait:
                raise IndexBusyError(
                    f"Another build ({holder}) is writing {index_dir}; wait for it to finish, "
                    "or run this build with --wait.")
            logger.warning("waiting for the build that holds %s (%s)", path, holder)
            while not _try_lock(fd):
                time.sleep(poll_s)
        record = {"pid": os.getpid(), "host": os.uname().nodename if hasattr(os, "uname") else "",
                  "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv[:8]}
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(record).encode("utf-8"))
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (unlinking it would race a waiting build)
