"""Command line of the offline side: ``python -m index <command>``.

The CLI alone decides what to print: progress and summaries on stderr, ``--json`` results
on stdout, one clear line (never a stack trace) for a user error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from index.config import ConfigError, DomainConfig, apply_overrides, load_config
from index.dataset.adapters import AdapterError

console = Console(stderr=True, soft_wrap=True)
DEFAULT_CONFIG = "configs/vehicle_damage.yaml"


class UserError(Exception):
    """An error caused by the user's input; printed as one line, exit code 2."""


class RateColumn(ProgressColumn):
    """Items per second."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """The task's current rate."""
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} {self.unit}/s" if speed else f"    ? {self.unit}/s", style="cyan")


@contextmanager
def progress_bar(description: str, unit: str = "files") -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """A rich progress bar (rate and ETA) on stderr; yields (advance, set_total)."""
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(description, total=None)
        yield (lambda n: progress.advance(task, n)), (lambda total: progress.update(task, total=total))


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The flags every command that reads the domain config shares."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML (default: %(default)s).")
    parser.add_argument("--dataset", type=Path, help="Dataset folder (overrides dataset.root).")
    parser.add_argument("--format", help="Annotation format, e.g. labelme or coco (overrides dataset.format).")


def config_from_args(args: argparse.Namespace, **extra: Any) -> DomainConfig:
    """Load the config named by ``--config`` and apply the command-line overrides."""
    config = load_config(args.config)
    overrides = {"dataset.root": getattr(args, "dataset", None), "dataset.format": getattr(args, "format", None)}
    overrides.update(extra)
    return apply_overrides(config, overrides)


def cmd_inspect(args: argparse.Namespace) -> int:
    """Read the dataset, plan its regions, report and draw a contact sheet."""
    from index.inspection import inspect_dataset

    overrides = {"dataset.verify_pixels": True} if args.verify else {}
    config = config_from_args(args, **overrides)
    out = args.out or Path("outputs/inspect") / config.name
    with progress_bar("Reading annotations") as (advance, set_total):
        result = inspect_dataset(
            config, out, limit=args.limit, seed=args.seed, contact_sheet=not args.no_contact_sheet,
            progress=advance, total=set_total,
        )
    report = result.report
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        _print_inspection(report)
    return 0


def _print_inspection(report: dict[str, Any]) -> None:
    table = Table(title=f"{report['dataset']}: {report['images']} images", show_edge=False)
    table.add_column("label")
    table.add_column("images", justify="right")
    table.add_column("annotations", justify="right")
    table.add_column("region nodes", justify="right")
    for key, regions in report["regions_by_label"].items():
        table.add_row(key, str(report["images_by_label"][key]), str(report["annotations_by_label"][key]), str(regions))
    console.print(table)
    console.print(f"nodes by kind: {report['nodes_by_kind']}  (merged regions: {report['merged_regions']})")
    console.print(f"annotation side px: {report['annotation_side_px']}")
    console.print(f"zones: {report['zones']}  vehicle groups: {report['vehicle_groups']}")
    console.print(f"doubtful: {report['doubtful']}  edited: {report['edited']}  excluded as incorrect: {report['excluded_incorrect']}")
    if report["skipped_by_reason"]:
        console.print(f"[yellow]skipped[/]: {report['skipped_by_reason']}")
        for issue in report["skipped"][:10]:
            console.print(f"  {issue['reason']}: {issue['message']}")
        if len(report["skipped"]) > 10:
            console.print(f"  … {len(report['skipped']) - 10} more in the report")
    if report["repaired_by_reason"]:
        console.print(f"[cyan]repaired[/]: {report['repaired_by_reason']}")
    console.print(f"report: {report['report']}" + (f"\ncontact sheet: {report['contact_sheet']}" if "contact_sheet" in report else ""))
    console.print(f"done in {report['seconds']:.2f}s (reading {report['read_seconds']:.2f}s)")


def cmd_synth(args: argparse.Namespace) -> int:
    """Write a synthetic dataset in the user's LabelMe layout (or COCO)."""
    from index.synth.dataset import parse_size, synthesize_coco, synthesize_labelme

    try:
        size = parse_size(args.size)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    with progress_bar("Drawing photos", "photos") as (advance, set_total):
        set_total(args.n)
        if args.format == "coco":
            labels = load_config(args.config).taxonomy.label_keys() if args.config else ["defect", "stain", "hole"]
            summary = synthesize_coco(args.out, args.n, categories=labels, size=size, seed=args.seed)
        else:
            summary = synthesize_labelme(args.out, args.n, size=size, seed=args.seed, progress=advance)
    result = {"out": str(args.out), "images": len(summary.images), "labels": dict(summary.label_counts), "seconds": round(summary.seconds, 2)}
    if args.json:
        print(json.dumps(result))
    else:
        console.print(f"wrote {result['images']} photos to {args.out} in {result['seconds']}s; marks per label: {result['labels']}")
    return 0


def _index_dir(args: argparse.Namespace, config: DomainConfig | None) -> Path:
    if getattr(args, "out", None):
        return Path(args.out)
    return Path(config.index.dir) if config else Path("outputs/vector_index")


def cmd_build(args: argparse.Namespace) -> int:
    """Build the index or bring it up to date."""
    from index.build import build_index

    config = config_from_args(args, **{"embedder.model": args.embedder, "index.type": args.index_type})
    index_dir = _index_dir(args, config)
    console.print(f"building {index_dir} from {config.dataset.root} with {config.embedder.model}")
    with progress_bar("Embedding photos", "images") as (advance, set_total):
        try:
            report = build_index(config, index_dir=index_dir, limit=args.limit, seed=args.seed,
                                 workers=args.workers, progress=advance, total=set_total)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/]: {index_dir} is unchanged; the next build resumes from its last checkpoint.")
            return 130
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    if report["rebuilt"]:
        console.print(f"[yellow]note[/]: {report['rebuilt']}")
    state = "already up to date" if report["up_to_date"] else (
        f"embedded {report['embedded_images']} photos, reused {report['reused_images']}, removed {report['removed_nodes']} stale nodes")
    console.print(f"{report['images']} images, {report['vectors']} vectors ({report['dim']}-d, {report['embedder']['model_id']}): {state}")
    console.print(f"nodes by kind: {report['nodes_by_kind']}")
    console.print(f"regions by label: {report['regions_by_label']}")
    if report["skipped_by_reason"]:
        console.print(f"[yellow]skipped[/]: {report['skipped_by_reason']} (details in {index_dir / 'build_report.json'})")
    if report["repaired_by_reason"]:
        console.print(f"[cyan]repaired[/]: {report['repaired_by_reason']}")
    console.print(f"done in {report['seconds']:.1f}s")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Describe a built index."""
    from index.search import index_info

    config = load_config(args.config) if Path(args.config).is_file() and not args.out else None
    info = index_info(_index_dir(args, config))
    if args.json:
        print(json.dumps(info, ensure_ascii=False))
        return 0
    console.print(f"{info['index_dir']}: {info['images']} images, {info['nodes']} nodes, {info['size_bytes'] / 1e6:.1f} MB")
    console.print(f"embedder {info['embedder']} ({info['embedder_family']}, {info['dim']}-d), {info['index_type']} index, built {info['built_at']}")
    console.print(f"nodes by kind: {info['nodes_by_kind']}")
    console.print(f"regions by label: {info['regions_by_label']}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Search the index with a photo."""
    from index.search import DamageIndex

    config = load_config(args.config) if Path(args.config).is_file() and not args.out else None
    if not Path(args.image).is_file():
        raise UserError(f"Query photo {args.image} does not exist.")
    index = DamageIndex.open(_index_dir(args, config), embedder_model=args.embedder)
    hits = index.search(args.image, k=args.k, label=args.label, kind=args.kind, zone=args.zone)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return 0
    table = Table(title=f"top {args.k} for {args.image}", show_edge=False)
    for column in ("similarity", "kind", "label", "zone", "source photo", "crop"):
        table.add_column(column)
    for hit in hits:
        table.add_row(f"{hit.similarity:.3f}", hit.kind, hit.label or ",".join(hit.labels) or "-", hit.zone or "-",
                      Path(hit.source_image).name, hit.crop_path)
    console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m index``."""
    parser = argparse.ArgumentParser(prog="python -m index", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="More log output (-vv for debug).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="Report what would be indexed, every skip and why, and a contact sheet.")
    add_config_args(p)
    p.add_argument("--limit", type=int, help="Inspect a stratified sample of N images (every label present).")
    p.add_argument("--seed", type=int, default=0, help="Seed of the sample.")
    p.add_argument("--out", type=Path, help="Folder for report.json and contact_sheet.png (default outputs/inspect/NAME).")
    p.add_argument("--verify", action="store_true", help="Decode every image to find corrupt files (slow).")
    p.add_argument("--no-contact-sheet", action="store_true", help="Skip the contact sheet.")
    p.add_argument("--json", action="store_true", help="Print the report as one JSON object on stdout.")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("synth", help="Write a synthetic dataset in the user's LabelMe layout.")
    p.add_argument("--out", type=Path, required=True, help="Folder to write into.")
    p.add_argument("--n", type=int, default=20, help="Number of photos.")
    p.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT (default %(default)s).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=["labelme", "coco"], default="labelme")
    p.add_argument("--config", help="For --format coco: take the categories from this config's taxonomy.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("build", help="Embed the planned crops into the FAISS index (incremental).")
    add_config_args(p)
    p.add_argument("--embedder", help="Model id or local path (overrides embedder.model).")
    p.add_argument("--index-type", choices=["flat", "hnsw", "ivf"], help="Overrides index.type.")
    p.add_argument("--out", type=Path, help="Index directory (overrides index.dir).")
    p.add_argument("--limit", type=int, help="Index a stratified sample of N images.")
    p.add_argument("--seed", type=int, default=0, help="Seed of the sample.")
    p.add_argument("--workers", type=int, help="Decoding threads (default: CPU cores).")
    p.add_argument("--json", action="store_true", help="Print the build report as JSON on stdout.")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("info", help="Counts, embedder and size of a built index.")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML, for its index.dir.")
    p.add_argument("--out", type=Path, help="Index directory.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("search", help="The most similar labelled examples to a photo.")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML, for its index.dir.")
    p.add_argument("--out", type=Path, help="Index directory.")
    p.add_argument("--image", required=True, help="Query photo.")
    p.add_argument("--label", help="Only this label (id, key, name or synonym: 'rayones' works).")
    p.add_argument("--kind", choices=["region", "image", "background", "tile"], help="Only this node kind.")
    p.add_argument("--zone", help="Only this zone.")
    p.add_argument("-k", type=int, default=5, help="Number of hits.")
    p.add_argument("--embedder", help="Query with this model (refused if it is not the index's).")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    from index.bench.indexing import add_bench_arguments

    p = sub.add_parser("bench", help="Indexing speed and memory: pipeline vs naive baseline vs decode floor.")
    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)

    from index.evaluation.retrieval import add_eval_arguments, cmd_eval

    p = sub.add_parser("eval", help="Retrieval evaluation: region strategies x embedders on a vehicle-grouped split.")
    add_eval_arguments(p)
    p.set_defaults(func=cmd_eval)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the indexing benchmark and print its table (or JSON)."""
    from index.bench.indexing import BenchError, format_table, run_benchmark

    try:
        result = run_benchmark(args, progress=lambda message: console.print(message, highlight=False))
    except BenchError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(result, ensure_ascii=False) if args.json else format_table(result))
    return 0


def _domain_errors() -> tuple[type[Exception], ...]:
    """Errors that are the user's to fix, printed as one line."""
    from index.embedders import EmbedderError
    from index.imaging.decode import ImageReadError
    from index.index_dir import IndexNotFoundError
    from index.search import EmbedderMismatchError
    from index.taxonomy import UnknownLabelError
    from index.vector_store.store import FilterError, VectorStoreFileError

    return (EmbedderError, EmbedderMismatchError, IndexNotFoundError, UnknownLabelError,
            VectorStoreFileError, FilterError, ImageReadError)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)])
    try:
        return args.func(args)
    except (UserError, ConfigError, AdapterError, *_domain_errors()) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
