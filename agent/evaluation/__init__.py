"""The end-to-end evaluation (``python -m agent eval``): the modes scored against the annotations.

:func:`run_evaluation` builds (or reuses) a train-side index (:mod:`.train_index`), asks the
model about the test photos in every mode with cached answers (:mod:`.answers`), scores them
(:mod:`.scoring`, on :mod:`index.evaluation.metrics`) and writes the report (:mod:`.outputs`).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Exported name → the submodule defining it, imported on first use (``agent ask`` imports the
#: command line, which only needs :mod:`agent.evaluation.question`).
_EXPORTS = {
    "EvalOptions": "run", "check_endpoint": "run", "default_run_dir": "run", "run_evaluation": "run",
    "GroundTruth": "scoring", "Prediction": "scoring", "TruthRegion": "scoring", "compare_modes": "scoring",
    "score_mode": "scoring",
}

__all__ = [
    "EvalOptions",
    "GroundTruth",
    "Prediction",
    "TruthRegion",
    "check_endpoint",
    "compare_modes",
    "default_run_dir",
    "run_evaluation",
    "score_mode",
]


def __getattr__(name: str) -> Any:
    """The exported names, imported from their submodule on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"agent.evaluation.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
