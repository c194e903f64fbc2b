"""``python -m agent bench``: the time this project adds around the model, per query.

Everything but the model's own reply is measured: decoding and downscaling the query photo,
embedding it (or a region of it), the exact filtered search, reading and outlining the example
crops, building the prompt, and parsing and validating the answer. The model is the fake
OpenAI-compatible server answering instantly, so ``total - model`` is the overhead; the index
is grown to ≥ 10,000 region nodes (clones of real crops with random vectors) so the search is
measured at a realistic size.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ANSWER = {"damage_detected": True, "answer": "Sí, hay un arañazo.", "examples_used": [],
          "findings": [{"label": "scratch", "location": "door", "severity": "minor", "confidence": 0.8,
                        "bbox_2d": [100, 100, 300, 300], "evidence": "light line"}]}


def _grow(index: Any, regions: int, seed: int = 0) -> int:
    """Add clones of the index's region nodes (random unit vectors) until it holds ``regions``."""
    from llama_index.core.schema import ImageNode

    rng = np.random.default_rng(seed)
    store = index.store
    originals = [n for n in store.get_nodes(store.node_ids()) if n.metadata["kind"] == "region"]
    missing = regions - len(originals)
    batch = []
    for i in range(max(0, missing)):
        source = originals[i % len(originals)]
        vector = rng.standard_normal(store.dim).astype(np.float32)
        vector /= np.linalg.norm(vector)
        metadata = {**source.metadata, "image_id": f"bench/{i // 4}/{source.metadata['image_id']}",
                    "vehicle_group": f"bench-{i // 16}"}  # ~4 regions per photo, 4 photos per car
        batch.append(ImageNode(id_=f"r-bench{i:06d}", image_path=source.image_path, text=source.text,
                               metadata=metadata, embedding=vector.tolist()))
        if len(batch) == 2048:
            store.add(batch)
            batch = []
    if batch:
        store.add(batch)
    return sum(1 for n in store.get_nodes(store.node_ids()) if n.metadata["kind"] == "region")


def _responder(body: dict) -> Any:
    from agent.testing import Reply

    messages = body.get("messages", [])
    wants_tool = bool(body.get("tools")) and not any(m.get("role") == "tool" for m in messages)
    if wants_tool:
        return Reply.tool_calls([("search_similar_damage", {"region": [200, 200, 500, 500], "label": "rayones", "k": 3})])
    return Reply.json(ANSWER)


def run_benchmark(queries: int = 30, regions: int = 10_000, workdir: Path | None = None) -> dict[str, Any]:
    """Measure the per-query overhead of the agentic and rag modes.

    Args:
        queries: Queries per mode (after one warm-up each).
        regions: Region nodes in the searched index.
        workdir: Where the synthetic photos, tiny model and index live (default: a temp dir).

    Returns:
        Median and p95 overhead per mode in milliseconds, with the target.
    """
    from agent.engine import DamageQueryEngine
    from agent.testing import FakeOpenAIServer
    from index.build import build_index
    from index.config import DEFAULT_CONFIG, apply_overrides, load_config
    from index.embedders.tiny import save_tiny_dinov2
    from index.search import DamageIndex
    from index.synth import synthesize_labelme

    work = Path(workdir or tempfile.mkdtemp(prefix="agent-bench-"))
    data = work / "photos"
    if not any(data.glob("*.json")):
        synthesize_labelme(data, 16, size=(4000, 3000), seed=3)  # the user's 12 MP photos
    model = save_tiny_dinov2(work / "tiny-dinov2")
    config = apply_overrides(load_config(DEFAULT_CONFIG), {
        "dataset.root": str(data), "embedder.model": str(model), "agent.traces_dir": str(work / "traces"),
    })
    build_index(config, index_dir=work / "index")
    index = DamageIndex.open(work / "index")
    grown = _grow(index, regions)
    photos = sorted(data.glob("*.jpg"))
    result: dict[str, Any] = {"index_regions": grown, "queries_per_mode": queries, "target_median_ms": 150}
    with FakeOpenAIServer() as server:
        server.responder = _responder
        engine = DamageQueryEngine(apply_overrides(config, {"model.api_base": server.base_url}), index_dir=work / "index")
        engine._index = index
        for mode in ("agentic", "rag"):
            engine.query(photos[0], "¿Tiene rayones?", mode=mode)  # warm-up: imports, model load, connections
            overheads, models, totals = [], [], []
            for i in range(queries):
                report = engine.query(photos[i % len(photos)], "¿Tiene rayones en la puerta?", mode=mode)
                overheads.append(report.timings["overhead_s"] * 1000)
                models.append(report.timings["model_s"] * 1000)
                totals.append(report.timings["total_s"] * 1000)
            overheads.sort()
            result[mode] = {
                "overhead_median_ms": round(statistics.median(overheads), 1),
                "overhead_p95_ms": round(overheads[min(len(overheads) - 1, int(0.95 * len(overheads)))], 1),
                "fake_model_median_ms": round(statistics.median(models), 1),
                "total_median_ms": round(statistics.median(totals), 1),
                "pass": statistics.median(overheads) < 150,
            }
    return result


def format_table(result: dict[str, Any]) -> str:
    """The figures beside the target, one line per mode."""
    lines = [f"per-query overhead around the model, index of {result['index_regions']} regions, "
             f"{result['queries_per_mode']} queries per mode (target: median < {result['target_median_ms']} ms)"]
    for mode in ("agentic", "rag"):
        row = result[mode]
        lines.append(f"  {mode:8s} median {row['overhead_median_ms']:7.1f} ms   p95 {row['overhead_p95_ms']:7.1f} ms   "
                     f"(fake model {row['fake_model_median_ms']:.1f} ms)   {'PASS' if row['pass'] else 'MISS'}")
    return "\n".join(lines)
