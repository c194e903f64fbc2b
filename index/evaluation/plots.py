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


def plot_metrics(rows: Sequence[dict[str, Any]], path: Path, k: int | None = None) -> Path:
    """Grouped bar chart: one group per (strategy, embedder) row, one bar per metric.

    Args:
        rows: Rows of the evaluation (``strategy``, ``embedder`` and the four metrics).
        path: The PNG to write.
        k: The cut-off, shown in the legend.

    Returns:
        ``path``.
    """
    import numpy as np

    embedders = list(dict.fromkeys(r["embedder"] for r in rows))
    names = [r["strategy"] if len(embedders) == 1 else f"{r['strategy']}\n{Path(r['embedder']).name}" for r in rows]
    figure = _figure(max(6.0, 1.1 * len(rows) + 2), 4.2)
    axes = figure.add_subplot(1, 1, 1)
    x = np.arange(len(rows))
    width = 0.8 / len(METRICS)
    for i, (key, label) in enumerate(METRICS):
        values = [float(r[key]) for r in rows]
        shown = label.replace("@k", f"@{k}") if k else label
        bars = axes.bar(x + (i - (len(METRICS) - 1) / 2) * width, values, width, label=shown)
        if len(rows) <= 8:
            axes.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=6, padding=1)
    axes.set_xticks(x, names, fontsize=8, rotation=0 if len(rows) <= 6 else 30,
                    ha="center" if len(rows) <= 6 else "right")
    axes.set_ylim(0, 1.08)
    axes.set_ylabel("score")
    title = "Retrieval by region strategy" + (f" ({Path(embedders[0]).name})" if len(embedders) == 1 else " and embedder")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=7, ncols=len(METRICS), loc="upper center", bbox_to_anchor=(0.5, -0.14 if len(rows) <= 6 else -0.3))
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
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
