"""The one-screen plain-text table of an indexing benchmark result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from index.bench.indexing import (
    TARGET_FLOOR_FRACTION,
    TARGET_PEAK_RSS_MB,
    TARGET_RERUN_FRACTION,
    TARGET_RSS_AT_N,
    TARGET_SPEEDUP,
)


def _mark(target: dict[str, Any]) -> str:
    return "PASS" if target["pass"] else "MISS"


def format_table(result: dict[str, Any]) -> str:
    """A one-screen plain-text table: each figure beside its baseline or target, PASS/MISS."""
    t = result["targets"]
    w, h = result["size"]
    emb = result.get("embedder") or {}
    title = (f"Indexing benchmark: {result['n']} photos {w}x{h}, {result['cpu_count']} CPU cores, "
             f"embedder {Path(str(emb.get('model_id', result.get('model', '?')))).name} ({emb.get('dim', '?')}-d)")
    rows: list[tuple[str, str, str, str]] = [
        ("pipeline", f"{result['pipeline_images_per_s']:.2f} img/s",
         f"{result['crops_per_photo']:.1f} crops/photo, {result['pipeline_crops_per_s']:.1f} crops/s", ""),
        ("  vs naive baseline", f"x{t['speedup_vs_naive']['value']:.2f}" if t["speedup_vs_naive"]["value"] else "-",
         f"naive {result['naive_images_per_s'] or 0:.2f} img/s; target >= x{TARGET_SPEEDUP:g}",
         _mark(t["speedup_vs_naive"])),
        ("  vs decode-only floor", f"{t['fraction_of_decode_floor']['value'] * 100:.0f} %",
         f"floor {result['decode_floor_images_per_s']:.2f} img/s; target >= {TARGET_FLOOR_FRACTION * 100:.0f} %",
         _mark(t["fraction_of_decode_floor"])),
        ("peak RSS (first build)", f"{result['peak_rss_mb']:.0f} MB" if result["peak_rss_mb"] is not None else "-",
         f"target < {TARGET_PEAK_RSS_MB:.0f} MB at {TARGET_RSS_AT_N} photos"
         + ("" if result["n"] == TARGET_RSS_AT_N else f" (measured at {result['n']})"),
         _mark(t["peak_rss_mb"])),
        ("first build", f"{result['first_build_s']:.2f} s", f"{result['first_build_wall_s']:.2f} s with start-up", ""),
        ("rerun, unchanged data", f"{result['rerun_s']:.2f} s",
         f"{t['rerun_fraction']['value'] * 100:.1f} % of first build; target < {TARGET_RERUN_FRACTION * 100:.0f} %"
         + ("" if result["rerun_up_to_date"] else " (NOT up to date)"),
         _mark(t["rerun_fraction"])),
        ("naive baseline", f"{result['naive_images_per_s'] or 0:.2f} img/s",
         f"subset {result['naive_photos']} photos / {result['naive_crops']} crops, {result['naive_ms_per_crop']} ms/crop", ""),
        ("naive peak RSS", f"{result['naive_peak_rss_mb']:.0f} MB" if result["naive_peak_rss_mb"] is not None else "-", "", ""),
        ("decode floor", f"{result['decode_floor_images_per_s']:.2f} img/s",
         f"full decode, {result['decode_threads']} threads; photos {result.get('photo_file_mb', 0):.1f} MB each", ""),
        ("decode, 1 core", f"{result['decode_full_ms_single_core']:.1f} ms",
         f"1/2 {result['decode_half_ms_single_core']:.1f} ms, 1/4 {result['decode_quarter_ms_single_core']:.1f} ms, "
         f"1/8 {result['decode_eighth_ms_single_core']:.1f} ms per photo", ""),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [title, "-" * min(100, max(len(title), sum(widths) + 12))]
    for name, value, ref, mark in rows:
        lines.append(f"{name:<{widths[0]}}  {value:>{widths[1]}}  {ref:<{widths[2]}}  {mark}".rstrip())
    passed = sum(1 for x in t.values() if x["pass"])
    lines.append(f"targets met: {passed}/{len(t)}")
    lines.extend(f"* {note}" for note in result["notes"])
    return "\n".join(lines)

