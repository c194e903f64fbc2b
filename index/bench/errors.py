"""The benchmarks' error: a step that failed or an option out of range."""

from __future__ import annotations

from index.errors import DamageRagError


class BenchError(DamageRagError, RuntimeError):
    """A benchmark step failed; the message says which and how."""
