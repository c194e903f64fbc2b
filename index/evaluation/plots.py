"""PNG plots of the retrieval evaluation (matplotlib, Agg canvas; no display needed).

Figures are drawn on :class:`matplotlib.figure.Figure` with an Agg canvas, never through
``pyplot``, so nothing global (backend, current figure) changes and plotting is thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

METRICS = (("precision_at_k", "P@k"), ("hit_at_k", "hit@k"), ("map", "mAP"), ("knn_macro_f1", "kNN macro-F1"))


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _queries_text(rows: Sequence[dict[str, Any]]) -> str:
    counts = sorted({int(r.get("queries", 0)) for r in rows})
    return f"n = {counts[0]} queries" if len(counts) == 1 else f"n = {counts[0]}–{counts[-1]} queries"


def metrics_figure(rows: Sequence[dict[str, Any]], k: int | None = None, confidence: float = 0.95) -> Any:
    """The metrics figure: one panel per node kind (their rows are not comparable), in row order.

    In a panel, one group of bars per (strategy, embedder) row, one bar per metric, the
    bootstrap interval (``<metric>_ci``) as an error bar and the chance level
    (``chance_<metric>``) as a black line across the bar; the number of queries is in the
    panel title and under each group.

    Args:
        rows: Rows of the evaluation (``strategy``, ``embedder``, ``kind``, ``queries``, the four
            metrics and, when present, their ``_ci`` and ``chance_`` keys).
        k: The cut-off, shown in the legend.
        confidence: The coverage of the intervals, shown in the titles.

    Returns:
        A :class:`matplotlib.figure.Figure` (Agg canvas) with one axis per kind.
    """
    import numpy as np

    kinds = list(dict.fromkeys(r.get("kind", "region") for r in rows)) or ["region"]
    embedders = list(dict.fromkeys(r["embedder"] for r in rows))
    widest = max([sum(1 for r in rows if r.get("kind", "region") == kind) for kind in kinds] or [1])
    figure = _figure(max(6.0, 1.1 * widest + 2), 3.8 * len(kinds) + 0.6)
    width = 0.8 / len(METRICS)
    for n, kind in enumerate(kinds):
        members = [r for r in rows if r.get("kind", "region") == kind]
        axes = figure.add_subplot(len(kinds), 1, n + 1)
        x = np.arange(len(members))
        for i, (key, label) in enumerate(METRICS):
            values = np.asarray([float(r[key]) for r in members])
            bounds = [r.get(f"{key}_ci") or [None, None] for r in members]
            low = np.asarray([v if b[0] is None else b[0] for v, b in zip(values, bounds, strict=True)], dtype=float)
            high = np.asarray([v if b[1] is None else b[1] for v, b in zip(values, bounds, strict=True)], dtype=float)
            where = x + (i - (len(METRICS) - 1) / 2) * width
            shown = label.replace("@k", f"@{k}") if k else label
            bars = axes.bar(where, values, width, label=shown,
                            yerr=np.vstack([np.clip(values - low, 0, None), np.clip(high - values, 0, None)]),
                            capsize=2, error_kw={"elinewidth": 0.8, "alpha": 0.8})
            chance = [r.get(f"chance_{key}") for r in members]
            for j, (position, level) in enumerate(zip(where, chance, strict=True)):
                if level is not None:
                    axes.hlines(float(level), position - width / 2, position + width / 2, colors="black",
                                linewidth=1.6, label="chance" if i == j == 0 else None)
            if len(members) <= 6:
                axes.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=6, padding=1)
        names = [(r["strategy"] if len(embedders) == 1 else f"{r['strategy']}\n{Path(r['embedder']).name}")
                 + f"\nn={r.get('queries', '?')}" for r in members]
        axes.set_xticks(x, names, fontsize=7, rotation=0 if len(members) <= 6 else 30,
                        ha="center" if len(members) <= 6 else "right")
        axes.set_ylim(0, 1.12)
        axes.set_ylabel("score")
        axes.set_title(f"{kind} rows ({_queries_text(members)})", fontsize=9)
        axes.set_xlim(-0.6, max(len(members), widest, 2) - 0.4)  # one bar width in every panel
        axes.grid(axis="y", alpha=0.3)
        if n == 0:
            axes.legend(fontsize=7, ncols=len(METRICS) + 1, loc="lower center", bbox_to_anchor=(0.5, 1.12))
    title = "Retrieval by region strategy" + (f" ({Path(embedders[0]).name})" if len(embedders) == 1 else " and embedder")
    figure.suptitle(f"{title}\nerror bars: {100 * confidence:g} % interval over test vehicles; black line: chance",
                    fontsize=9)
    figure.tight_layout()
    return figure


def plot_metrics(rows: Sequence[dict[str, Any]], path: Path, k: int | None = None,
                 confidence: float = 0.95) -> Path:
    """Write :func:`metrics_figure` (one panel per node kind) to the PNG ``path``; returns ``path``."""
    figure = metrics_figure(rows, k, confidence)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def plot_confusion(labels: Sequence[str], matrix: Sequence[Sequence[int]], path: Path, title: str = "") -> Path:
    """Confusion-matrix heatmap: colour is the row-normalised share, text the count.

    Args:
        labels: Row and column labels (truth rows, predicted columns).
        matrix: Counts, ``matrix[i][j]`` = truth ``labels[i]`` predicted ``labels[j]``.
        path: The PNG to write.
        title: Figure title.

    Returns:
        ``path``.
    """
    import numpy as np

    counts = np.asarray(matrix, dtype=float).reshape(len(labels), len(labels))
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = max(4.0, 0.6 * len(labels) + 2.0)
    figure = _figure(side + 1.0, side)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true label")
    ticks = range(len(labels))
    axes.set_xticks(ticks, labels, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(ticks, labels, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("truth")
    for i in ticks:
        for j in ticks:
            if counts[i, j]:
                axes.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                          color="white" if shares[i, j] > 0.5 else "black")
    if title:
        axes.set_title(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
