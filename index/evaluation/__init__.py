"""Retrieval evaluation: which region strategy and which embedder retrieve the right examples?

``python -m index eval`` (:func:`evaluate_retrieval`) answers it with numbers, without any model
server:

1. **Split.** The dataset is read once (optionally a stratified sample of ``--limit`` images)
   and split by vehicle group, so a near-duplicate of a test photo is never in the index it is
   evaluated against.
2. **Index per row.** For every (strategy, embedder) row, an exact FAISS index of the crops
   planned on the **train** images with that row's region strategy, cached by (strategy,
   embedder fingerprint, split content) so a rerun reuses it.
3. **Queries.** The same strategy plans crops on the **test** images; every labelled crop of
   the row's kind is one query, searched in the train index restricted to that kind.
4. **Metrics.** Precision@k, hit@k, mAP (AP at ``--depth``) and the macro F1 of a k-NN vote,
   relevance being "shares a label with the query"; each with its chance level (a random
   ranking; the label-prior vote), its lift over chance, and a bootstrap interval over the test
   vehicles. Paired intervals over the same resampled vehicles compare strategies within one
   embedder and kind, and embedders within one strategy, each with a verdict line.

Outputs (``--out RUN_DIR``, default ``outputs/eval/retrieval-<time>``): ``retrieval.json`` (what
``--json`` prints), ``retrieval.md``, ``retrieval_queries.jsonl``, ``metrics.png`` and
``confusion.png``.

Modules, each with one job:

- :mod:`~index.evaluation.strategies`: the named region strategies (:class:`StrategySpec`);
- :mod:`~index.evaluation.context`: what every row of one run shares (:class:`RunContext`);
- :mod:`~index.evaluation.embedding`: rendering and embedding planned crops;
- :mod:`~index.evaluation.split_index`: a row's train index and query vectors, built or cached;
- :mod:`~index.evaluation.rows`: scoring one row (relevance and metrics in detail);
- :mod:`~index.evaluation.chance`: the chance level of each metric (closed forms);
- :mod:`~index.evaluation.intervals`: intervals, lifts, warnings and verdicts of rows;
- :mod:`~index.evaluation.run`: the whole run (:func:`evaluate_retrieval`);
- :mod:`~index.evaluation.outputs`: the Markdown report, the query log and how figures print;
- :mod:`~index.evaluation.plots`: the PNG plots;
- :mod:`~index.evaluation.metrics`: the pure metrics, shared with the end-to-end evaluation
  of the agent; :mod:`~index.evaluation.bootstrap`: the one bootstrap (items or vehicles).

torch, FAISS, LlamaIndex and matplotlib are imported only when a run needs them.
"""

from index.evaluation.context import Progress, RunContext
from index.evaluation.embedding import embed_plan
from index.evaluation.intervals import (
    MIN_QUERIES,
    RowScores,
    compare_rows,
    strategy_comparisons,
    summarise,
)
from index.evaluation.outputs import (
    best_row,
    format_interval,
    format_markdown,
    format_metric,
    rounded_bounds,
    row_interval,
    short_model_name,
    write_outputs,
)
from index.evaluation.plots import metrics_figure, plot_confusion, plot_metrics
from index.evaluation.rows import evaluate_row
from index.evaluation.run import DEFAULT_OUT_DIR, evaluate_retrieval
from index.evaluation.split_index import (
    CACHE_VERSION,
    DEFAULT_CACHE_DIR,
    PreparedRow,
    build_split_index,
    prepare_row,
)
from index.evaluation.strategies import (
    DEFAULT_STRATEGIES,
    STRATEGY_NAMES_HELP,
    StrategySpec,
    parse_strategies,
    parse_strategy,
)

__all__ = [
    "CACHE_VERSION",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_OUT_DIR",
    "DEFAULT_STRATEGIES",
    "MIN_QUERIES",
    "STRATEGY_NAMES_HELP",
    "PreparedRow",
    "Progress",
    "RowScores",
    "RunContext",
    "StrategySpec",
    "best_row",
    "build_split_index",
    "compare_rows",
    "embed_plan",
    "evaluate_retrieval",
    "evaluate_row",
    "format_interval",
    "format_markdown",
    "format_metric",
    "metrics_figure",
    "parse_strategies",
    "parse_strategy",
    "plot_confusion",
    "plot_metrics",
    "prepare_row",
    "rounded_bounds",
    "row_interval",
    "short_model_name",
    "strategy_comparisons",
    "summarise",
    "write_outputs",
]
