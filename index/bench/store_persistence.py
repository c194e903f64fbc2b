"""How the node store's files scale: persist, checkpoint and load at realistic sizes, format 2
(``metadata.sqlite``) beside format 1 (one ``metadata.json``) as the baseline.

Part of ``python -m index bench-store`` (:func:`measure_persistence`). The nodes are shaped as a
build makes them (:meth:`~index.regions.plan.RegionCrop.to_image_node` of synthetic photos: a
polygon of 8-24 points, the full metadata a build records), about 2 KB of JSON each. Per size:

- ``persist_s``: a store's first persist to a new directory (both files whole);
- ``checkpoint_s``: 200 nodes added, then persisted again to the same directory, as a build's
  checkpoint does (format 1 rewrote everything; format 2 rewrites the changed rows, and
  ``faiss.index``), of which ``faiss_s`` is writing ``faiss.index``, the same in both formats;
- ``load_s``, ``peak_mb`` and ``base_mb``: ``from_persist_dir`` in a fresh process, its peak
  resident memory and the resident memory before the load (the imports);
- ``first_filter_s``: the first filtered search after the load (``kind`` and ``labels``): format 2
  indexes a metadata key when a filter first uses it, format 1 indexed every key at load.

Format 1 is measured with a faithful copy of its code path (:func:`write_v1` and
:func:`load_v1`: the JSON file, each record parsed and anchored, every metadata key indexed),
kept here only for this comparison.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT_NODES = 200
_LABELS = [("1", "scratch", "Scratch"), ("2", "dent", "Dent"), ("3", "paint_peeling", "Paint peeling"),
           ("4", "large_scratch", "Large scratch"), ("5", "crack", "Crack")]


def realistic_nodes(n: int, dim: int, start: int = 0, seed: int = 0) -> list[Any]:
    """``n`` region ``ImageNode`` s as a build makes them (4 per photo), random unit vectors."""
    from index.dataset.records import ImageRecord, Region
    from index.regions.plan import RegionCrop

    rng = random.Random(seed + start)
    vectors = np.random.default_rng(seed + start).standard_normal((n, dim)).astype(np.float32)
    nodes = []
    for i in range(start, start + n):
        photo = i // 4
        label_id, key, name = _LABELS[i % len(_LABELS)]
        cx, cy = rng.uniform(200, 3800), rng.uniform(200, 2800)
        points = [(float(round(cx + rng.uniform(-80, 80))), float(round(cy + rng.uniform(-40, 40))))
                  for _ in range(rng.randint(8, 24))]
        xs, ys = [x for x, _ in points], [y for _, y in points]
        region = Region(label_id, key, name, "polygon", points, (min(xs), min(ys), max(xs), max(ys)), 5000.0,
                        {"piece": i % 9, "pixelated_type": 3})
        stem = f"zona1_ko_{photo % 7}_3_{1554183444427 + photo * 1000}_zona_{photo % 9}"
        record = ImageRecord(f"{stem}_imageDANO_original.jpg", Path(f"data/{stem}_imageDANO_original.jpg"),
                             Path(f"data/{stem}_labelDANO_modificado.json"), 4000, 3000, False, False, "RGB",
                             [region], {"zone": str(photo % 9), "captured_at": "2019-04-02T05:37:24+00:00",
                                        "doubtful": i % 5 == 0}, f"zona1_ko_{photo % 7}#{photo // 20}")
        box = (int(min(xs)) - 60, int(min(ys)) - 60, int(max(xs)) + 60, int(max(ys)) + 60)
        crop = RegionCrop(f"r-{i:012x}", "region", record, box, (224, 224), [region])
        node = crop.to_image_node("vehicle_damage", f"crops/r-{i:012x}_3fb550e0.jpg")
        node.embedding = vectors[i - start].tolist()
        nodes.append(node)
    return nodes


def write_v1(directory: Path, store: Any, records: dict[int, Any]) -> float:
    """Format 1's persist: ``faiss.index`` then the whole ``metadata.json``; returns the seconds
    spent on ``faiss.index``."""
    import faiss

    from index.files import atomic_write, write_json_atomic

    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    atomic_write(directory / "faiss.index", lambda tmp: faiss.write_index(store.client, str(tmp)))
    faiss_s = time.perf_counter() - t0
    payload = {"format": "damage_rag.faiss_node_store", "version": 1,
               "config": store.config.model_dump(mode="json"), "dim": store.dim, "index_kind": store.index_kind,
               "count": len(records), "nodes": {str(fid): rec.to_json() for fid, rec in records.items()}}
    write_json_atomic(directory / "metadata.json", payload, indent=None)
    return faiss_s


def load_v1(directory: Path) -> Any:
    """Format 1's load, as it was: parse the JSON, check and anchor every record, index every
    metadata key of every node, read ``faiss.index`` and compare the ids. Returns the index."""
    import faiss

    from index.vector_store.filters import MetadataIndex
    from index.vector_store.records import NodeRecord, node_id_to_faiss_id

    with open(directory / "metadata.json", encoding="utf-8") as fh:
        payload = json.load(fh)
    records, meta, base, parents = {}, MetadataIndex(), os.path.realpath(directory), {}
    for key, obj in payload["nodes"].items():
        record = NodeRecord.from_json(obj)
        if int(key) != node_id_to_faiss_id(record.node_id):
            raise ValueError(f"node {record.node_id!r} filed under {key}")
        record.anchor(base, parents)
        records[int(key)] = record
        meta.add(int(key), record.metadata)
    index = faiss.read_index(str(directory / "faiss.index"))
    ids = faiss.vector_to_array(faiss.downcast_index(index).id_map)
    if set(ids.tolist()) != set(records):
        raise ValueError("ids disagree")
    return meta, records


def _memory_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MB. Not ``ru_maxrss``: a child
    forked from a large benchmark process inherits the parent's high-water mark there."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1e3
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # elsewhere: the best there is


def load_child(directory: str, fmt: str) -> None:
    """In a fresh process: load ``directory`` in format ``fmt`` ("v1"/"v2") and print the figures."""
    from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

    from index.vector_store import FaissNodeStore

    base = _memory_mb("VmRSS")
    filters = MetadataFilters(filters=[MetadataFilter(key="kind", value="region"),
                                       MetadataFilter(key="labels", value="dent", operator=FilterOperator.CONTAINS)])
    t0 = time.perf_counter()
    if fmt == "v2":
        store = FaissNodeStore.from_persist_dir(directory)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.search(store.get_vector(store.node_ids()[0]), 5, filters)
    else:
        meta, records = load_v1(Path(directory))
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        meta.evaluate(filters, records.keys())
    first_filter_s = time.perf_counter() - t0
    peak = _memory_mb("VmHWM")
    print(json.dumps({"load_s": load_s, "first_filter_s": first_filter_s, "base_mb": base, "peak_mb": peak}))


def _load_in_child(directory: Path, fmt: str) -> dict[str, float]:
    from index.bench.children import checked_json, run_child

    code = f"from index.bench.store_persistence import load_child; load_child({str(directory)!r}, {fmt!r})"
    run = run_child([sys.executable, "-c", code], timeout=1800)
    return checked_json(run, f"loading the format-{fmt[1]} store in {directory}")


def _disk_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file()) / 1e6


def measure_persistence(n: int, dim: int, say: Any = None) -> list[dict[str, Any]]:
    """One row per format (v2, v1) for a store of ``n`` realistic nodes (see the module doc)."""
    import faiss

    from index.files import atomic_write
    from index.vector_store import FaissNodeStore
    from index.vector_store.persistence import INDEX_FILE
    from index.vector_store.records import NodeRecord

    say = say or (lambda message: None)
    say(f"persistence at {n:,} nodes: building {n + CHECKPOINT_NODES:,} ImageNodes shaped like a build's")
    nodes = realistic_nodes(n, dim)
    more = realistic_nodes(CHECKPOINT_NODES, dim, start=n)
    store = FaissNodeStore()
    for start in range(0, n, 2048):
        store.add(nodes[start:start + 2048])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        new, old = Path(tmp) / "v2", Path(tmp) / "v1"
        say(f"persistence at {n:,} nodes: format 2 (metadata.sqlite)")
        t0 = time.perf_counter()
        store.persist(new)
        persist_s = time.perf_counter() - t0
        store.add(more)
        t0 = time.perf_counter()
        store.persist(new)
        checkpoint_s = time.perf_counter() - t0
        t0 = time.perf_counter()  # what writing faiss.index alone costs (temp file, fsync, replace)
        atomic_write(Path(tmp) / INDEX_FILE, lambda path: faiss.write_index(store.client, str(path)))
        faiss_s = time.perf_counter() - t0
        rows.append({"n": n, "format": 2, "persist_s": persist_s, "checkpoint_s": checkpoint_s, "faiss_s": faiss_s,
                     **_load_in_child(new, "v2"), "disk_mb": _disk_mb(new)})

        say(f"persistence at {n:,} nodes: format 1 (metadata.json), the baseline")
        records = {store._table.fid_of(node.node_id): NodeRecord.from_node(node) for node in nodes}  # held by the old store
        t0 = time.perf_counter()
        write_v1(old, store, records)
        persist_s = time.perf_counter() - t0
        records.update((store._table.fid_of(node.node_id), NodeRecord.from_node(node)) for node in more)
        t0 = time.perf_counter()
        faiss_s = write_v1(old, store, records)
        checkpoint_s = time.perf_counter() - t0
        rows.append({"n": n, "format": 1, "persist_s": persist_s, "checkpoint_s": checkpoint_s, "faiss_s": faiss_s,
                     **_load_in_child(old, "v1"), "disk_mb": _disk_mb(old)})
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in rows]


def format_persistence(rows: list[dict[str, Any]], dim: int) -> list[str]:
    """The persistence rows as table lines (format 2 beside format 1 at each size)."""
    lines = [f"  persistence: ImageNodes shaped like a build's, {dim}-d; checkpoint = {CHECKPOINT_NODES} new nodes "
             "persisted to the same directory; load in a fresh process",
             f"    {'nodes':>7}  {'format':<20} {'persist':>8} {'checkpoint':>11} {'(faiss)':>8} {'load':>7} "
             f"{'1st filter':>10} {'peak RSS':>9} {'imports':>8} {'on disk':>8}"]
    for row in rows:
        name = "2 metadata.sqlite" if row["format"] == 2 else "1 metadata.json"
        lines.append(f"    {row['n']:>7,}  {name:<20} {row['persist_s']:7.2f}s {row['checkpoint_s']:10.2f}s "
                     f"{row['faiss_s']:7.2f}s {row['load_s']:6.2f}s {row['first_filter_s']:9.3f}s "
                     f"{row['peak_mb']:6,.0f} MB {row['base_mb']:5,.0f} MB {row['disk_mb']:5,.0f} MB")
    return lines
