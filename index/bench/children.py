"""Child processes of the benchmarks: their environment, their peak memory, their JSON report.

The builds and the naive baseline run in child processes of their own, so that each one's
peak resident memory is its own (``os.wait4``); each prints its result as a JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.bench.errors import BenchError

#: The folder that holds the packages, put on the children's PYTHONPATH.
REPO = Path(__file__).resolve().parents[2]


@dataclass
class ChildRun:
    """What a child process did: exit code, output, wall time and peak resident memory."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_mb: float | None


def child_env() -> dict[str, str]:
    """This process's environment, offline and quiet, with the repository on ``PYTHONPATH``."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def run_child(cmd: list[str], timeout: float) -> ChildRun:
    """Run ``cmd`` and measure its own peak RSS (``os.wait4``; psutil polling elsewhere)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=child_env())
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                # Linux reports ru_maxrss in KiB, macOS in bytes.
                peak = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
            else:  # pragma: no cover - Windows
                peak = _poll_peak_rss(proc)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return ChildRun(proc.returncode, out.read().decode("utf-8", "replace"),
                        err.read().decode("utf-8", "replace"), wall, peak)


def _poll_peak_rss(proc: subprocess.Popen) -> float | None:  # pragma: no cover - Windows
    import psutil

    peak = 0
    try:
        handle = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak = max(peak, handle.memory_info().rss)
            time.sleep(0.05)
    except psutil.Error:
        pass
    proc.wait()
    return peak / 2**20 if peak else None


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON object on stdout")


def checked_json(run: ChildRun, what: str) -> dict[str, Any]:
    """The last JSON object ``run`` printed on stdout.

    Raises:
        BenchError: If the child failed (with the tail of its stderr) or printed no JSON.
    """
    if run.returncode != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-15:])
        raise BenchError(f"{what} failed (exit code {run.returncode}):\n{tail}")
    try:
        return _last_json(run.stdout)
    except ValueError as exc:
        raise BenchError(f"{what} printed no JSON report ({exc}); stderr:\n{run.stderr[-2000:]}") from None
