"""The files of a retrieval evaluation run and how its figures are printed.

``retrieval.md`` (the table, per-label F1 and confusion matrix of the best row by mAP, among the
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


def short_model_name(model: str) -> str:
    """A model id or path as printed in tables: its last component."""
    return Path(model).name or model


def best_row(result: dict[str, Any]) -> dict[str, Any]:
    """The row ``result["best"]`` names."""
    best = result["best"]
    return next(r for r in result["rows"] if r["strategy"] == best["strategy"] and r["embedder"] == best["embedder"])


def format_markdown(result: dict[str, Any]) -> str:
    """The run as Markdown: the comparison table, then per-label F1 and confusion of the best row."""
    k = result["k"]
    split = result["split"]
    lines = [
        f"# Retrieval evaluation: {result['dataset']}",
        "",
        f"Split by vehicle (seed {result['seed']}, test fraction {result['test_fraction']}): "
        f"{split['train_images']} train images ({split['train_groups']} groups), "
        f"{split['test_images']} test images ({split['test_groups']} groups), "
        f"{split['shared_groups']} shared groups. k = {k}; AP depth = "
        f"{result['depth'] if result['depth'] > 0 else 'whole index'}.",
        "",
        f"| strategy | settings | embedder | queries | index nodes | P@{k} | hit@{k} | mAP | kNN macro-F1 | seconds |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['strategy']} | {row['settings']} | {short_model_name(row['embedder'])} | {row['queries']} | "
            f"{row['index_nodes']} | {format_metric(row['precision_at_k'])} | {format_metric(row['hit_at_k'])} | "
            f"{format_metric(row['map'])} | {format_metric(row['knn_macro_f1'])} | {row['seconds']:.1f} |")
    lines += ["", "Relevant = the retrieved node shares a label with the query. Region rows query "
              "test defects against train defects; `image` rows query whole photos; `tile` rows "
              "query labelled tiles. Compare rows of one kind with each other.", ""]
    if result.get("comparisons"):
        lines += ["## Embedders compared (paired bootstrap, 95%)", "",
                  "| strategy | embedder | minus | mAP difference | 95% interval |", "|---|---|---|---:|---|"]
        for c in result["comparisons"]:
            lines.append(f"| {c['strategy']} | {short_model_name(c['embedder'])} | {short_model_name(c['baseline'])} | "
                         f"{c['difference']:+.3f} | [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] |")
        lines.append("")
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
        files["plots"].append(str(plot_metrics(result["rows"], run_dir / "metrics.png", k=result["k"])))
        files["plots"].append(str(plot_confusion(
            best["confusion"]["labels"], best["confusion"]["matrix"], run_dir / "confusion.png",
            title=f"k-NN vote, {best['strategy']} / {short_model_name(best['embedder'])}")))
    return files
