"""Dataset commands: ``inspect`` (what would be indexed, and every skip) and ``synth``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from index.cli.common import add_config_args, config_from_args
from index.config import DEFAULT_CONFIG, load_config
from index.console import cells, console, flag, print_json, progress_bar, say
from index.errors import UserError


def register(sub: Any) -> None:
    """Add ``inspect`` and ``synth`` to the sub-command parsers ``sub``."""
    p = sub.add_parser("inspect", help="Report what would be indexed, every skip and why, and a contact sheet.",
                       example="python -m index inspect --config configs/vehicle_damage.yaml --dataset /path/to/photos")
    add_config_args(p)
    p.add_argument("--limit", type=int, help="Inspect a stratified sample of N images, every label present (default: all).")
    p.add_argument("--seed", type=int, default=0, help="Seed of the sample.")
    p.add_argument("--out", type=Path, help="Folder for report.json and contact_sheet.png (default outputs/inspect/NAME).")
    p.add_argument("--verify", action="store_true", help="Decode every image to find corrupt files (slow).")
    p.add_argument("--no-contact-sheet", action="store_true", help="Skip the contact sheet.")
    p.add_argument("--json", action="store_true", help="Print the report as one JSON object on stdout.")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("synth", help="Write a synthetic dataset in the user's LabelMe layout.",
                       example="python -m index synth --out data/synth --n 50")
    p.add_argument("--out", type=Path, required=True, help="Folder to write into; it must be empty or new (see --add).")
    p.add_argument("--n", type=int, default=20, help="Number of photos.")
    p.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT.")
    p.add_argument("--seed", type=int, default=0, help="Seed of the photos, marks and file names.")
    p.add_argument("--format", choices=["labelme", "coco"], default="labelme", help="Layout to write.")
    p.add_argument("--config", help="Taxonomy to name the labels with; for --format coco, the categories "
                                    f"(default: {DEFAULT_CONFIG} for LabelMe, defect/stain/hole for COCO).")
    p.add_argument("--add", action="store_true",
                   help="Write into a folder that already holds files, beside them (same names are overwritten).")
    p.add_argument("--json", action="store_true", help="Print the summary as one JSON object on stdout.")
    p.set_defaults(func=cmd_synth)


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
        print_json(report)
    else:
        _print_inspection(report)
    return 0


def _print_inspection(report: dict[str, Any]) -> None:
    table = Table(title=Text(f"{report['dataset']}: {report['images']} images"), show_edge=False)
    table.add_column("label")
    table.add_column("images", justify="right")
    table.add_column("annotations", justify="right")
    table.add_column("region nodes", justify="right")
    for key, regions in report["regions_by_label"].items():
        table.add_row(*cells(key, report["images_by_label"][key], report["annotations_by_label"][key], regions))
    console.print(table)
    _print_splits(report.get("splits") or {})
    say(f"nodes by kind: {report['nodes_by_kind']}  (merged regions: {report['merged_regions']})")
    say(f"annotation side px: {report['annotation_side_px']}")
    say(f"zones: {report['zones']}  vehicle groups: {report['vehicle_groups']}")
    say(f"doubtful: {report['doubtful']}  edited: {report['edited']}  excluded as incorrect: {report['excluded_incorrect']}")
    if report["skipped_by_reason"]:
        flag("skipped", "yellow", str(report["skipped_by_reason"]))
        for issue in report["skipped"][:10]:
            say(f"  {issue['reason']}: {issue['message']}")
        if len(report["skipped"]) > 10:
            say(f"  … {len(report['skipped']) - 10} more in the report")
    if report["repaired_by_reason"]:
        flag("repaired", "cyan", str(report["repaired_by_reason"]))
    say(f"report: {report['report']}" + (f"\ncontact sheet: {report['contact_sheet']}" if "contact_sheet" in report else ""))
    say(f"done in {report['seconds']:.2f}s (reading {report['read_seconds']:.2f}s)")


def _print_splits(splits: dict[str, dict[str, Any]]) -> None:
    """Images, annotations and region nodes per split, when the dataset records splits."""
    from index.inspection import NO_SPLIT

    if not splits or list(splits) == [NO_SPLIT]:
        return
    table = Table(title=Text(f"by split ({len(splits)})"), show_edge=False)
    for column in ("split", "images", "annotations", "region nodes", "without damage"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, entry in splits.items():
        table.add_row(*cells(split, entry["images"], entry["annotations"], entry["region_nodes"],
                             entry["images_without_damage"]))
    console.print(table)


def cmd_synth(args: argparse.Namespace) -> int:
    """Write a synthetic dataset in the user's LabelMe layout (or COCO).

    A folder that already holds files is refused unless ``--add``: the photos would mix with
    what is there (and same-named files of an earlier run be overwritten), and a later
    ``inspect`` or ``build`` would read both as one dataset."""
    from index.synth import parse_size, synthesize_coco, synthesize_labelme

    try:
        size = parse_size(args.size)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}.")
    _check_synth_folder(args.out, args.add)
    taxonomy = load_config(args.config or DEFAULT_CONFIG).taxonomy
    with progress_bar("Drawing photos", "photos") as (advance, set_total):
        set_total(args.n)
        if args.format == "coco":
            labels = taxonomy.label_keys() if args.config else ["defect", "stain", "hole"]
            summary = synthesize_coco(args.out, args.n, categories=labels, size=size, seed=args.seed)
        else:
            summary = synthesize_labelme(args.out, args.n, size=size, seed=args.seed, progress=advance)
    # LabelMe marks carry the taxonomy's ids ("1", as the user's files do): the summary names them
    keys = {str(label.id): label.key for label in taxonomy.labels} if args.format == "labelme" else {}
    by_key = {keys.get(label, label): count for label, count in summary.label_counts.items()}
    result = {"out": str(args.out), "images": len(summary.images), "labels": by_key, "seconds": round(summary.seconds, 2)}
    if args.json:
        print_json(result)
    else:
        marks = ", ".join(f"{key} {count}" for key, count in by_key.items())
        say(f"wrote {result['images']} photos to {args.out} in {result['seconds']}s; marks per label: {marks}")
    return 0


def _check_synth_folder(out: Path, add: bool) -> None:
    """Refuse a file, or a folder holding anything, as synth's output (unless ``add``)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder.")
    if add or not out.is_dir():
        return
    entries = sum(1 for _ in out.iterdir())
    if entries:
        raise UserError(f"{out} is not empty ({entries} entries): choose a new --out, or pass --add to write "
                        "the synthetic photos beside what is there.")
