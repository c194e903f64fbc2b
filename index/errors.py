"""The project's error family: every error raised on purpose derives from :class:`DamageRagError`.

Each error carries the exit code the command line ends with, and its message is one sentence
that names the file, folder or endpoint at fault. Library code raises; only the CLIs
(:func:`index.console.run_cli`) catch, print that sentence and exit. Each subclass also keeps
a builtin base (``ValueError``, ``FileNotFoundError``, ``RuntimeError``...), so callers that
catch builtin exceptions keep working.
"""

from __future__ import annotations


def json_kind(value: object) -> str:
    """How a message names a JSON value of the wrong type: "an object", "a list", "null"..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


class DamageRagError(Exception):
    """Base of the project's errors; printed by the CLI as one line, exit ``exit_code``."""

    exit_code: int = 2

    def __str__(self) -> str:
        # KeyError-based subclasses would otherwise print their message in quotes.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UserError(DamageRagError, ValueError):
    """Input the user must fix (a missing folder, a bad flag value); exit 2."""


class EvaluationError(DamageRagError, ValueError):
    """An evaluation that cannot run as asked (too few photos, an unknown mode or strategy)."""


class ResourceError(DamageRagError, OSError):
    """The disk or a folder refused a write (full, read-only, a file in the way); exit 1."""

    exit_code = 1


def resource_error(exc: OSError | RuntimeError, target: object = None, verb: str = "write") -> ResourceError:
    """One sentence for a failed write: which path, and the system's reason.

    Args:
        exc: The error of the write (an ``OSError``, or FAISS's ``RuntimeError`` for one).
        target: The path being written (default: the one the error names).
        verb: What was being done to it ("write", "use").
    """
    path = target or getattr(exc, "filename", None) or "a file"
    reason = getattr(exc, "strerror", None) or str(exc).rsplit("(", 1)[-1].rstrip(")") or type(exc).__name__
    return ResourceError(f"Cannot {verb} {path}: {reason}.")
