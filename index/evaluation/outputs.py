"""The files of a retrieval evaluation run and how its figures are printed.

``retrieval.md`` (the table with intervals, chance and lift, the warnings, the verdicts against
chance and between rows, per-label F1 and confusion matrix of the best row by mAP, among the
region rows when there are any), ``retrieval_queries.jsonl`` (one line per query, for error
analysis), ``metrics.png`` and ``confusion.png``; ``retrieval.json`` is written by
:func:`index.evaluation.run.evaluate_retrieval` once these paths are known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import index.evaluation.metrics as metrics


def rounded_bounds(ci: metrics.Interval) -> list[float | None]:
    """An interval's bounds rounded for the report (None where there is no interval)."""
    return [None if v is None else round(v, 4) for v in (ci.low, ci.high)]


def format_metric(value: float) -> str:
    """A metric as printed in tables: three decimals."""
    return f"{value:.3f}"


def format_signed(value: float | None) -> str:
    """A difference or lift as printed: ``+0.086`` (``n/a`` for None)."""
    return "n/a" if value is None else f"{value:+.3f}"


def format_interval(interval: metrics.Interval, signed: bool = False) -> str:
    """``0.770 [0.741, 0.800]`` (``signed``: ``+0.086 [+0.052, +0.120]``); no brackets without bounds."""
    def show(value: float | None) -> str:
        if signed:
            return format_signed(value)
        return "n/a" if value is None else format_metric(value)

    if interval.low is None or interval.high is None:
        return show(interval.estimate)
    return f"{show(interval.estimate)} [{show(interval.low)}, {show(interval.high)}]"


def row_interval(row: dict[str, Any], key: str) -> metrics.Interval:
    """A row's ``key`` and ``key_ci`` (e.g. ``precision_at_k``, ``lift_map``) as an :class:`Interval`."""
    low, high = row.get(f"{key}_ci") or (None, None)
    return metrics.Interval(row.get(key), low, high)


def short_model_name(model: str) -> str:
    """A model id or path as printed in tables: its last component."""
    return Path(model).name or model


def best_row(result: dict[str, Any]) -> dict[str, Any]:
    """The row ``result["best"]`` names."""
    best = result["best"]
    return next(r for r in result["rows"] if r["strategy"] == best["strategy"] and r["embedder"] == best["embedder"])


METRIC_COLUMNS = (("precision_at_k", "P@{k}"), ("hit_at_k", "hit@{k}"), ("map", "mAP"),
                  ("knn_macro_f1", "kNN macro-F1"))

HOW_TO_READ = """\
- **Chance** is what a ranking that knows nothing scores on this index: for P@k, hit@k and mAP
  the expectation under a random ranking of the train index (neighbours drawn in proportion to
  the train side's label frequencies), averaged over the row's queries; for the k-NN vote, the
  macro F1 of always answering the train side's majority label. On a dataset dominated by one
  label chance is high, and a high P@k alone means little.
- **Lift** = metric - chance; its interval comes from the same resamples, so a lift interval
  above 0 says retrieval finds same-label examples more often than chance. `×` is metric /
  chance.
- **Intervals** are 95 % percentile-bootstrap intervals resampling **test vehicles** (every
  query of a drawn vehicle, as often as it is drawn): regions of one photo and photos of one
  car are alike, so they are not counted as independent evidence. With few vehicles the
  intervals are wide; a row with fewer than 50 queries is flagged.
- **Differences** between strategies (same embedder and kind) and between embedders (same
  strategy) are paired: both rows are scored on the same resampled vehicles. An interval that
  contains 0 is "no clear difference", not "equal". Many pairs are tested at once, so one
  borderline verdict among many deserves a rerun with another `--seed`.
- Rows of different kinds (region, image, tile) have different queries and relevance: compare
  them only within a kind.
"""


def _cells(row: dict[str, Any], key: str) -> list[str]:
    """``value [CI]``, chance and ``lift [CI]`` of one metric of a row."""
    chance = row.get(f"chance_{key}")
    return [format_interval(row_interval(row, key)), "n/a" if chance is None else format_metric(chance),
            format_interval(row_interval(row, f"lift_{key}"), signed=True)]


def format_markdown(result: dict[str, Any]) -> str:
    """The run as Markdown: the table with intervals and chance, verdicts, then the best row's details."""
    k = result["k"]
    split = result["split"]
    boot = result.get("bootstrap", {})
    heads = [name.format(k=k) for _, name in METRIC_COLUMNS]
    lines = [
        f"# Retrieval evaluation: {result['dataset']}",
        "",
        f"Split by vehicle (seed {result['seed']}, test fraction {result['test_fraction']}): "
        f"{split['train_images']} train images ({split['train_groups']} groups), "
        f"{split['test_images']} test images ({split['test_groups']} groups), "
        f"{split['shared_groups']} shared groups. k = {k}; AP depth = "
        f"{result['depth'] if result['depth'] > 0 else 'whole index'}. Intervals: "
        f"{100 * boot.get('confidence', 0.95):g} % bootstrap over test vehicles, "
        f"{boot.get('resamples', 2000)} resamples.",
        "",
        "| strategy | kind | embedder | queries | vehicles | index nodes | "
        + " | ".join(f"{h} [CI] | chance | lift [CI]" for h in heads) + " | seconds |",
        "|---|---|---|---:|---:|---:|" + "---:|" * (3 * len(heads)) + "---:|",
    ]
    for row in result["rows"]:
        metric_cells = [cell for key, _ in METRIC_COLUMNS for cell in _cells(row, key)]
        lines.append(
            f"| {row['strategy']} | {row['kind']} | {short_model_name(row['embedder'])} | {row['queries']} | "
            f"{row.get('vehicles', '')} | {row['index_nodes']} | " + " | ".join(metric_cells)
            + f" | {row['seconds']:.1f} |")
    lines += ["", "Relevant = the retrieved node shares a label with the query. Region rows query "
              "test defects against train defects; `image` rows query whole photos; `tile` rows "
              "query labelled tiles. Compare rows of one kind with each other.", ""]
    if result.get("warnings"):
        lines += ["## Warnings", "", *[f"- {w}" for w in result["warnings"]], ""]
    lines += ["## Against chance", "", *[f"- {r['against_chance']}" for r in result["rows"] if r.get("against_chance")], ""]
    if result.get("strategy_comparisons"):
        lines += ["## Strategies compared (same embedder and kind, paired over vehicles)", "",
                  *[f"- {c['verdict']}" for c in result["strategy_comparisons"]], ""]
    if result.get("comparisons"):
        lines += ["## Embedders compared (paired bootstrap over vehicles)", "",
                  "| strategy | embedder | minus | mAP difference | 95% interval |", "|---|---|---|---:|---|"]
        for c in result["comparisons"]:
            low, high = c["ci95"]
            shown = "" if low is None or high is None else f"[{low:+.3f}, {high:+.3f}]"
            lines.append(f"| {c['strategy']} | {short_model_name(c['embedder'])} | {short_model_name(c['baseline'])} | "
                         f"{c['difference']:+.3f} | {shown} |")
        lines += ["", *[f"- {c['verdict']}" for c in result["comparisons"] if c.get("verdict")], ""]
    best = best_row(result)
    lines += [f"## Best row by {result['best']['by']}: {best['strategy']} / {short_model_name(best['embedder'])}", "",
              "| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for key, v in best["per_label"].items():
        lines.append(f"| {key} | {format_metric(v['precision'])} | {format_metric(v['recall'])} | {format_metric(v['f1'])} | {v['support']} |")
    labels, matrix = best["confusion"]["labels"], best["confusion"]["matrix"]
    lines += ["", "Confusion matrix of the k-NN vote (rows: truth, columns: prediction):", "",
              "| truth \\ predicted | " + " | ".join(labels) + " |",
              "|---|" + "---:|" * len(labels)]
    for label, counts in zip(labels, matrix, strict=True):
        lines.append(f"| {label} | " + " | ".join(str(c) for c in counts) + " |")
    lines += ["", "## How to read this", "", HOW_TO_READ]
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], run_dir: Path, queries: list[dict[str, Any]] | None = None,
                  *, plots: bool = True) -> dict[str, Any]:
    """Write ``retrieval.md``, ``retrieval_queries.jsonl`` and the plots; returns their paths.

    ``retrieval.json`` is written by :func:`~index.evaluation.run.evaluate_retrieval` once the
    paths are known.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {"json": str(run_dir / "retrieval.json"), "markdown": str(run_dir / "retrieval.md")}
    (run_dir / "retrieval.md").write_text(format_markdown(result), encoding="utf-8")
    if queries is not None:
        path = run_dir / "retrieval_queries.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for item in queries:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        files["queries"] = str(path)
    files["plots"] = []
    if plots:
        from index.evaluation.plots import plot_confusion, plot_metrics

        best = best_row(result)
        files["plots"].append(str(plot_metrics(result["rows"], run_dir / "metrics.png", k=result["k"],
                                               confidence=result.get("bootstrap", {}).get("confidence", 0.95))))
        files["plots"].append(str(plot_confusion(
            best["confusion"]["labels"], best["confusion"]["matrix"], run_dir / "confusion.png",
            title=f"k-NN vote, {best['strategy']} / {short_model_name(best['embedder'])}")))
    return files
