"""The project's error family: every error raised on purpose derives from :class:`DamageRagError`.

Each error carries the exit code the command line ends with, and its message is one sentence
that names the file, folder or endpoint at fault. Library code raises; only the CLIs
(:func:`index.console.run_cli`) catch, print that sentence and exit. Each subclass also keeps
a builtin base (``ValueError``, ``FileNotFoundError``, ``RuntimeError``...), so callers that
catch builtin exceptions keep working.
"""

from __future__ import annotations


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
