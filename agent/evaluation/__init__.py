"""The end-to-end evaluation (``python -m agent eval``): the modes scored against the annotations.

:func:`run_evaluation` builds (or reuses) a train-side index (:mod:`.train_index`), asks the
model about the test photos in every mode with cached answers (:mod:`.answers`), scores them
(:mod:`.scoring`, on :mod:`index.evaluation.metrics`) and writes the report (:mod:`.outputs`).
"""

from agent.evaluation.run import EvalOptions, check_endpoint, default_run_dir, run_evaluation
from agent.evaluation.scoring import GroundTruth, Prediction, TruthRegion, compare_modes, score_mode

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
