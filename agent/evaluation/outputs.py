"""Outputs of ``python -m agent eval``: ``agent_eval.json``, ``agent_eval.md`` and PNG plots.

Plots are drawn with matplotlib's Agg canvas directly (no pyplot, no global backend switch):
``per_label_f1.png`` (grouped bars, one group per label, one bar per mode),
``confusion_<mode>.png`` (truth × prediction co-occurrence and per-label TP / FP / FN) and
``differences.png`` (each pair's differences with their intervals).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agent.evaluation.scoring import DIFF_METRICS, format_interval
from index.files import write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

MODE_COLOURS = {"zero-shot": "#9e9e9e", "rag": "#1f77b4", "agentic": "#d62728"}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def write_outputs(result: dict[str, Any], run_dir: Path, *, plots: bool = True) -> dict[str, str]:
    """Write the JSON, the Markdown and (unless ``plots`` is False) the PNGs; returns their paths.

    The paths are also recorded in ``result["files"]`` before the JSON is written.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": str(run_dir / "agent_eval.json"), "markdown": str(run_dir / "agent_eval.md")}
    if plots:
        files.update(draw_plots(result, run_dir))
    result["files"] = files
    write_text_atomic(run_dir / "agent_eval.md", markdown(result))
    write_json_atomic(run_dir / "agent_eval.json", result)
    logger.info("wrote %s", ", ".join(files.values()))
    return files


# --------------------------------------------------------------------------------------------
# text


def _rows_table(rows: list[dict[str, Any]], iou: float) -> list[str]:
    head = ["mode", "detected acc.", "macro F1", "micro F1", "photo F1", f"regions hit (IoU≥{iou:g})",
            "mean best IoU", "valid reports", "tool calls/query", "latency p50", "latency p95", "tokens/query"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"**{r['mode']}**", _fmt(r["detected_accuracy"]), _fmt(r["macro_f1"]), _fmt(r["micro_f1"]),
                 _fmt(r["photo_f1"]), _pct(r["localisation_hit_rate"]), _fmt(r["mean_best_iou"]),
                 f"{_pct(r['valid_report_rate'])} ({r['invalid_reports']} invalid)", _fmt(r["tool_calls_per_query"], 2),
                 f"{_fmt(r['latency_p50_s'], 2)} s", f"{_fmt(r['latency_p95_s'], 2)} s", _fmt(r["tokens_per_query"], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _label_table(result: dict[str, Any]) -> list[str]:
    modes = [r["mode"] for r in result["rows"]]
    head = ["label", "photos", *[f"{m} P / R / F1" for m in modes]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in result["labels"]:
        stats = [r["per_label"][key] for r in result["rows"]]
        cells = [key, str(stats[0]["support"] if stats else 0)]
        cells += [f"{_fmt(s['precision'], 2)} / {_fmt(s['recall'], 2)} / **{_fmt(s['f1'], 2)}**" for s in stats]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _differences_table(differences: list[dict[str, Any]]) -> list[str]:
    head = ["a − b", *DIFF_METRICS.values(), "photos whose F1 changed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in differences:
        cells = [d["pair"], *[format_interval(d["metrics"][k]) + (" *" if d["metrics"][k]["significant"] else "")
                             for k in DIFF_METRICS], f"{d['photos_changed']} of {d['n']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


HOW_TO_READ = """\
- **Ground truth** is the user's annotations: the set of labels a photo's polygons carry (a
  photo can have several) and each polygon's bounding box. An undamaged photo has no label.
- **detected acc.**: share of photos where the report's `damage_detected` matches whether the
  photo has any annotated region.
- **Per-label precision / recall / F1** count photos: a label is a true positive on a photo when
  both the annotations and the report's findings hold it. **macro F1** averages F1 over the labels
  present in the sample (each counts equally, rare ones too); **micro F1** pools all labels;
  **photo F1** is the mean over photos of the F1 between the true and predicted label sets (1
  when both are empty).
- **regions hit**: share of annotated regions overlapped at the IoU threshold by a predicted box
  of the same label (`bbox_px`, in source pixels); **mean best IoU** averages each region's best
  overlap with such a box (0 when none). Annotators draw one polygon per mark, the model often
  one box per damaged area, so these are conservative.
- **valid reports**: answers that passed validation (after the one repair request). An invalid
  answer, or a request the server refused, counts as predicting nothing.
- **latency** is each query's own wall time (`timings.total_s`) with `concurrency` queries in
  flight, so it includes time spent waiting for the server; **tokens** are prompt + completion
  as the server reported them.
- **Differences** are a − b on the same photos. The interval is a paired bootstrap (photos
  resampled with replacement, the same resamples for every pair); `*` marks an interval that
  excludes 0. With about 100 photos an interval of ±0.1 is normal: a difference whose interval
  contains 0 is not evidence either way. Several metrics and pairs are tested at once, so one
  borderline `*` among many deserves a second run with other photos (`--seed`).
- Retrieval never returns the query photo or any photo of its vehicle, and the index holds the
  train side of the split only (no vehicle on both sides), so examples are never near-copies.
"""


def markdown(result: dict[str, Any]) -> str:
    """The Markdown report."""
    split, index, boot = result["split"], result["index"], result["bootstrap"]
    modes = [r["mode"] for r in result["rows"]]
    lines = [
        f"# Does retrieval help? Agent evaluation on `{result['config']}`",
        "",
        f"Model `{result['model']}` at `{result['api_base']}`, asked about **{result['n']} test photos** "
        f"(stratified: every label present) in modes {', '.join(f'`{m}`' for m in modes)}, with one question:",
        "",
        f"> {result['question']}",
        "",
        f"Split by vehicle (test fraction {result['test_fraction']:g}, seed {result['seed']}): "
        f"{split['train_images']} train photos ({split['train_groups']} vehicles) in the retrieval index, "
        f"{split['test_images']} test photos ({split['test_groups']} vehicles), {split['shared_groups']} vehicles "
        f"on both sides. Index `{Path(index['dir']).name}` ({index['embedder']}; node kinds "
        f"{', '.join(index['kinds'])}).",
        "",
        "## Verdicts",
        "",
        *[f"- {v}" for v in result["verdicts"]],
        *(["- (one mode only: nothing to compare)"] if not result["verdicts"] else []),
        "",
        "## Results per mode",
        "",
        *_rows_table(result["rows"], result["iou_threshold"]),
        "",
        f"## Differences between modes (paired bootstrap, {boot['resamples']} resamples, "
        f"{100 * boot['confidence']:g} % interval)",
        "",
        *_differences_table(result["differences"]),
        "",
        "## Per label",
        "",
        *_label_table(result),
        "",
    ]
    files = result.get("files", {})
    if "per_label_f1" in files:
        lines += ["![per-label F1 per mode](per_label_f1.png)", ""]
    if "differences" in files:
        lines += ["![differences between modes](differences.png)", ""]
    confusion = [m for m in modes if f"confusion_{m}" in files]
    if confusion:
        lines += ["## Confusions", "",
                  "Left: photos whose annotations hold the row label and whose report holds the column label "
                  "(`(none)`: undamaged photo / nothing predicted). Right: per-label true positives, false "
                  "positives and false negatives.", ""]
        lines += [f"![{m}](confusion_{m}.png)" for m in confusion] + [""]
    requests = result["requests"]
    lines += ["## How to read this", "", HOW_TO_READ,
              f"Run folder `{result['run_dir']}`: {requests['asked']} requests asked in this run, "
              f"{requests['cached']} answers reused from `responses/`, {requests['rejected']} refused by the server; "
              f"{result.get('seconds', 0):g} s. Per-photo truths and predictions are in `agent_eval.json` "
              "(`photos`), each answer's trace id with it.", ""]
    return "\n".join(lines)


def format_summary(result: dict[str, Any]) -> str:
    """A short plain-text summary for the terminal."""
    lines = [f"{result['n']} photos · model {result['model']} · run {result['run_dir']}"]
    for r in result["rows"]:
        lines.append(f"  {r['mode']:<10} detected acc {_fmt(r['detected_accuracy'])}  macro F1 {_fmt(r['macro_f1'])}  "
                     f"photo F1 {_fmt(r['photo_f1'])}  valid {_pct(r['valid_report_rate'])}  "
                     f"p50 {_fmt(r['latency_p50_s'], 2)} s")
    lines += [f"  {v}" for v in result["verdicts"]]
    lines.append(f"report: {result['files']['markdown']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# plots


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _heatmap(ax: Any, matrix: list[list[int]], rows: list[str], cols: list[str], title: str, cmap: str) -> None:
    import numpy as np

    data = np.array(matrix, dtype=float).reshape(len(rows), len(cols))
    ax.imshow(data, cmap=cmap, aspect="auto", vmin=0, vmax=max(1.0, float(data.max()) if data.size else 1.0))
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title(title, fontsize=10)
    top = data.max() if data.size else 0
    for i in range(len(rows)):
        for j in range(len(cols)):
            if data[i, j]:
                ax.text(j, i, f"{int(data[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if data[i, j] > top / 2 else "black")


def draw_plots(result: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """Draw every plot into ``run_dir``; returns name → path."""
    import numpy as np

    files: dict[str, str] = {}
    rows, labels = result["rows"], result["labels"]
    fig = _figure(max(6.0, 1.0 + 0.9 * len(labels)), 4.2)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(labels))
    for i, row in enumerate(rows):
        values = [row["per_label"][k]["f1"] for k in labels]
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, values, width, label=f"{row['mode']} (macro {_fmt(row['macro_f1'], 2)})",
               color=MODE_COLOURS.get(row["mode"]))
    ax.set_xticks(x, [f"{k} ({rows[0]['per_label'][k]['support']})" if rows else k for k in labels], fontsize=8,
                  rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1 (photos)")
    ax.set_title(f"Per-label F1 per mode, {result['n']} test photos (photos with the label in brackets)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    files["per_label_f1"] = _save(fig, run_dir / "per_label_f1.png")

    for row in rows:
        co = row["cooccurrence"]
        fig = _figure(12, 5.2)
        left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        _heatmap(left, co["matrix"], co["rows"], co["cols"], f"{row['mode']}: truth (rows) × prediction (columns)", "Blues")
        left.set_xlabel("predicted")
        left.set_ylabel("annotated")
        counts = [[row["per_label"][k][c] for c in ("tp", "fp", "fn")] for k in labels]
        _heatmap(right, counts, labels, ["TP", "FP", "FN"], f"{row['mode']}: per-label TP / FP / FN (photos)", "Oranges")
        fig.tight_layout()
        files[f"confusion_{row['mode']}"] = _save(fig, run_dir / f"confusion_{row['mode']}.png")

    if result["differences"]:
        diffs = result["differences"]
        fig = _figure(7.5, 1.2 + 0.55 * len(diffs) * len(DIFF_METRICS))
        ax = fig.add_subplot()
        ticks, names = [], []
        y = 0
        for d in diffs:
            for k, name in DIFF_METRICS.items():
                m = d["metrics"][k]
                if m["diff"] is not None:
                    low, high = m["ci_low"] if m["ci_low"] is not None else m["diff"], m["ci_high"] if m["ci_high"] is not None else m["diff"]
                    colour = "#2ca02c" if m["significant"] and low > 0 else "#d62728" if m["significant"] else "#555555"
                    ax.errorbar(m["diff"], y, xerr=[[m["diff"] - low], [high - m["diff"]]], fmt="o", color=colour, capsize=3)
                ticks.append(y)
                names.append(f"{d['pair']}: {name}")
                y -= 1
            y -= 0.5
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(ticks, names, fontsize=8)
        ax.set_xlabel(f"a − b with {100 * result['bootstrap']['confidence']:g} % paired bootstrap interval")
        fig.tight_layout()
        files["differences"] = _save(fig, run_dir / "differences.png")
    return files


def _save(fig: Any, path: Path) -> str:
    fig.savefig(path)
    return str(path)
