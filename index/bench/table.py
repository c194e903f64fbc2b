"""The one-screen plain-text table of an indexing benchmark result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from index.bench.result import (
    TARGET_PEAK_RSS_MB,
    TARGET_RERUN_FRACTION,
    TARGET_RSS_AT_N,
    busy_fractions,
)


def _mark(targets: dict[str, Any], name: str) -> str:
    target = targets.get(name)
    return "" if target is None else ("PASS" if target["pass"] else "MISS")


def _stage_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    stages = result.get("stages") or {}
    pipe = result.get("pipeline") or {}

    def sec(*names: str) -> float:
        return sum(float(stages.get(name, 0.0)) for name in names)

    busy = result.get("busy") or busy_fractions(stages, pipe, float(result["first_build_s"]))

    def pct(value: float | None) -> str:
        return f"{value * 100:.0f} %" if value is not None else "-"

    return [
        ("bottleneck kept busy", f"{pct(busy['embedder'] if pipe.get('bottleneck') == 'embed' else busy['decoders'])}",
         f"embedder busy {pct(busy['embedder'])} of the build once loaded, decoders {pct(busy['decoders'])} of theirs", ""),
        ("stages, s (summed over threads)",
         f"scan {sec('scan'):.1f}", f"model load {sec('model_load'):.1f} (LlamaIndex import {sec('import_llama_index'):.1f}), "
         f"decode {sec('decode'):.1f}, cut {sec('cut'):.1f}, embed {sec('embed'):.1f}, "
         f"write {sec('write_crops', 'write_index', 'store_add'):.1f}", ""),
        ("  waits, s", f"{sec('embed_waits_for_input'):.1f}",
         f"embedder waiting for crops; {sec('embed_waits_for_model'):.1f} for the model; decoders waiting for the "
         f"embedder {sec('decode_waits_for_embed'):.1f}; {pipe.get('bottleneck') or '?'}-bound, "
         f"{pipe.get('decode_workers')} decode threads, {pipe.get('torch_threads')} torch", ""),
    ]


def format_table(result: dict[str, Any]) -> str:
    """A one-screen plain-text table: each figure beside its floor, baseline, peer or target, PASS/MISS."""
    t = result["targets"]
    w, h = result["size"]
    emb = result.get("embedder") or {}
    floor = result.get("embedder_floor") or {}
    peer = result.get("peer")
    by_vectors = result.get("pipeline_vs_peer_vectors") or (
        result["nodes"] / result["first_build_wall_s"] / peer["vectors_per_s"] if peer and peer.get("vectors_per_s") else None)
    title = (f"Indexing benchmark: {result['n']} photos {w}x{h}, {result['cpu_count']} CPU cores, "
             f"embedder {Path(str(emb.get('model_id', result.get('model', '?')))).name} ({emb.get('dim', '?')}-d, "
             f"{result.get('model_size', '?')}), device {result.get('device', 'auto')}")
    rows: list[tuple[str, str, str, str]] = [
        ("pipeline", f"{result['pipeline_images_per_s']:.2f} img/s",
         f"wall time, start-up included; {result['pipeline_own_images_per_s']:.2f} img/s over its own seconds; "
         f"{result['crops_per_photo']:.1f} crops/photo, {result['pipeline_crops_per_s']:.1f} crops/s", ""),
        ("  vs decode-only floor", f"{result['fraction_of_decode_floor'] * 100:.0f} %",
         f"floor {result['decode_floor_images_per_s']:.2f} img/s; {result['fraction_of_decode_floor_own'] * 100:.0f} % over "
         "own seconds" + ("; target >= 60 %" if "fraction_of_decode_floor" in t else ""), _mark(t, "fraction_of_decode_floor")),
        ("  vs embedder alone",
         f"{result['fraction_of_embedder'] * 100:.0f} %" if result.get("fraction_of_embedder") is not None else "-",
         f"embedder {floor.get('crops_per_s') or 0:.2f} crops/s ({floor.get('ms_per_crop') or 0:.0f} ms/crop) on pre-cut crops; "
         f"whole build {(result.get('fraction_of_embedder_whole_build') or 0) * 100:.0f} %"
         + ("; target >= 90 % once loaded" if "fraction_of_embedder" in t else ""), _mark(t, "fraction_of_embedder")),
        ("  vs LlamaIndex peer", f"x{result['pipeline_vs_peer']:.2f}" if result.get("pipeline_vs_peer") else "-",
         (f"peer {peer['images_per_s']:.2f} img/s, {peer['vectors_per_s']:.2f} vectors/s (1 per photo; ours "
          + (f"x{by_vectors:.2f} in vectors/s" if by_vectors else "?") + "), "
          f"peak {peer['peak_rss_mb'] or 0:.0f} MB, {peer['photos']} photos") if peer else "not run (--peer-n 0)", ""),
        ("  vs naive baseline", f"x{result['speedup_vs_naive']:.2f}" if result.get("speedup_vs_naive") else "-",
         f"naive {result['naive_images_per_s'] or 0:.2f} img/s, {result['naive_ms_per_crop']} ms/crop, "
         f"{result['naive_photos']} photos" + ("; target >= x4" if "speedup_vs_naive" in t else ""),
         _mark(t, "speedup_vs_naive")),
        *_stage_rows(result),
        ("peak RSS (first build)", f"{result['peak_rss_mb']:.0f} MB" if result["peak_rss_mb"] is not None else "-",
         f"target < {TARGET_PEAK_RSS_MB:.0f} MB at {TARGET_RSS_AT_N} photos"
         + ("" if result["n"] == TARGET_RSS_AT_N else f" (measured at {result['n']})"), _mark(t, "peak_rss_mb")),
        ("first build", f"{result['first_build_wall_s']:.2f} s", f"wall; {result['first_build_s']:.2f} s its own", ""),
        ("rerun, unchanged data", f"{result['rerun_s']:.2f} s",
         f"{t['rerun_fraction']['value'] * 100:.1f} % of first build; target < {TARGET_RERUN_FRACTION * 100:.0f} %"
         + ("" if result["rerun_up_to_date"] else " (NOT up to date)"), _mark(t, "rerun_fraction")),
        ("decode, 1 core", f"{result['decode_full_ms_single_core']:.1f} ms",
         f"1/2 {result['decode_half_ms_single_core']:.1f}, 1/4 {result['decode_quarter_ms_single_core']:.1f}, "
         f"1/8 {result['decode_eighth_ms_single_core']:.1f} ms per photo; photos {result.get('photo_file_mb', 0):.1f} MB each", ""),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [title, "-" * min(110, max(len(title), sum(widths) + 12))]
    for name, value, ref, mark in rows:
        lines.append(f"{name:<{widths[0]}}  {value:>{widths[1]}}  {ref:<{widths[2]}}  {mark}".rstrip())
    passed = sum(1 for x in t.values() if x["pass"])
    lines.append(f"targets met: {passed}/{len(t)}")
    lines.extend(f"* {note}" for note in result["notes"])
    return "\n".join(lines)
