"""Index commands: ``build`` (incremental), ``info`` (``--verify``: is the index whole?) and ``search``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from index.cli.common import (
    add_config_arg,
    add_config_args,
    add_index_arg,
    config_from_args,
    index_dir_of,
    optional_config,
)
from index.console import cells, flag, print_json, progress_bar, say, show_table
from index.errors import UserError


def register(sub: Any) -> None:
    """Add ``build``, ``info`` and ``search`` to the sub-command parsers ``sub``."""
    p = sub.add_parser("build", help="Embed the planned crops into the FAISS index (incremental).",
                       example="python -m index build --dataset data/synth --embedder efficientnet-lite0 --index outputs/synth-index")
    add_config_args(p)
    p.add_argument("--embedder", help="Model id or local path (default: embedder.model of --config).")
    p.add_argument("--index-type", choices=["flat", "hnsw", "ivf"], help="Overrides index.type (default: the config's, flat in the shipped ones).")
    p.add_argument("--index", "--out", type=Path, dest="index", metavar="INDEX_DIR",
                   help="Index directory to write or bring up to date (default: index.dir of --config, "
                        "outputs/vector_index in the shipped configs).")
    p.add_argument("--limit", type=int, help="Index a stratified sample of N images (default: all).")
    p.add_argument("--seed", type=int, default=0, help="Seed of the sample.")
    p.add_argument("--workers", type=int, help="Decoding threads (default: CPU cores).")
    p.add_argument("--json", action="store_true", help="Print the build report as JSON on stdout.")
    p.add_argument("--wait", action="store_true", help="If another build is writing this index, wait for it instead of refusing.")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("info", help="Counts, embedder and size of a built index.",
                       example="python -m index info --index outputs/synth-index --verify")
    add_config_arg(p)
    add_index_arg(p)
    p.add_argument("--verify", action="store_true",
                   help="Cross-check manifest, vectors and crops; exit 1 if the index is damaged.")
    p.add_argument("--json", action="store_true", help="Print the result as one JSON object on stdout.")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("search", help="The most similar labelled examples to a photo.",
                       example="python -m index search --index outputs/synth-index --image photo.jpg --label rayones -k 3")
    add_config_arg(p)
    add_index_arg(p)
    p.add_argument("--image", required=True, help="Query photo.")
    p.add_argument("--label", help="Only this label (id, key, name or synonym: 'rayones' works; default: any).")
    p.add_argument("--kind", choices=["region", "image", "background", "tile"], help="Only this node kind (default: any).")
    p.add_argument("--zone", help="Only this zone (default: any).")
    p.add_argument("-k", type=int, default=5, help="Number of hits.")
    p.add_argument("--embedder", help="Query with this model (default: the one the index manifest records; "
                                      "another model is refused).")
    p.add_argument("--json", action="store_true", help="Print the hits as one JSON list on stdout.")
    p.set_defaults(func=cmd_search)


def cmd_build(args: argparse.Namespace) -> int:
    """Build the index or bring it up to date."""
    from index.build import build_index

    config = config_from_args(args, **{"embedder.model": args.embedder, "index.type": args.index_type})
    index_dir = index_dir_of(args, config)
    say(f"building {index_dir} from {config.dataset.root} with {config.embedder.model}")
    with progress_bar("Embedding photos", "images") as (advance, set_total):
        try:
            report = build_index(config, index_dir=index_dir, limit=args.limit, seed=args.seed,
                                 workers=args.workers, progress=advance, total=set_total, wait=args.wait)
        except KeyboardInterrupt:
            flag("interrupted", "yellow", f"{index_dir} is unchanged; the next build resumes from its last checkpoint.")
            return 130
    if args.json:
        print_json(report)
        return 0
    if report["rebuilt"]:
        flag("note", "yellow", str(report["rebuilt"]))
    if report.get("recut_images"):
        flag("repaired", "cyan", f"{report['recut_images']} photos had crop files missing on disk; cut and embedded again")
    state = "already up to date" if report["up_to_date"] else (
        f"embedded {report['embedded_images']} photos, reused {report['reused_images']}, removed {report['removed_nodes']} stale nodes")
    say(f"{report['images']} images, {report['vectors']} vectors ({report['dim']}-d, {report['embedder']['model_id']}): {state}")
    say(f"nodes by kind: {report['nodes_by_kind']}")
    say(f"regions by label: {report['regions_by_label']}")
    if report["skipped_by_reason"]:
        flag("skipped", "yellow", f"{report['skipped_by_reason']} (details in {index_dir / 'build_report.json'})")
    if report["repaired_by_reason"]:
        flag("repaired", "cyan", str(report["repaired_by_reason"]))
    say(f"done in {report['seconds']:.1f}s")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Describe a built index."""
    from index.search import index_info

    config = optional_config(args)
    index_dir = index_dir_of(args, config)
    if args.verify:
        return _verify(index_dir, args.json)
    info = index_info(index_dir)
    if args.json:
        print_json(info)
        return 0
    say(f"{info['index_dir']}: {info['images']} images, {info['nodes']} nodes, {info['size_bytes'] / 1e6:.1f} MB")
    say(f"embedder {info['embedder']} ({info['embedder_family']}, {info['dim']}-d), {info['index_type']} index, built {info['built_at']}")
    say(f"nodes by kind: {info['nodes_by_kind']}")
    say(f"regions by label: {info['regions_by_label']}")
    return 0


def _verify(index_dir: Path, as_json: bool, shown_per_code: int = 10) -> int:
    """``info --verify``: the report on stderr (or JSON on stdout); exit 1 if there are problems."""
    from index.verify import verify_index

    report = verify_index(index_dir)
    if as_json:
        print_json(report.to_dict())
        return 0 if report.ok else 1
    checked = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in report.checked.items())
    say(f"verified {index_dir}: {checked}")
    for word, style, findings in (("problem", "red", report.problems), ("warning", "yellow", report.warnings)):
        shown: dict[str, int] = {}
        for finding in findings:
            shown[finding.code] = shown.get(finding.code, 0) + 1
            if shown[finding.code] <= shown_per_code:
                flag(f"{word} {finding.code}", style, finding.message)
        for code, n in shown.items():
            if n > shown_per_code:
                flag(f"{word} {code}", style, f"... and {n - shown_per_code} more (all of them with --json)")
    warnings = _plural(len(report.warnings), "warning")
    if report.ok:
        flag("ok", "green", f"no problems ({warnings})")
        return 0
    if {finding.code for finding in report.problems} == {"missing_crop"}:
        flag("damaged", "red", f"{_plural(len(report.problems), 'problem')}, {warnings}: run `python -m index build "
             f"--index {index_dir}`; it cuts missing crops again.")
        return 1
    # other damage (edited paths, counts that disagree) is in files an incremental build trusts
    flag("damaged", "red", f"{_plural(len(report.problems), 'problem')}, {warnings}: rebuild from scratch "
         f"(move {index_dir} aside, then `python -m index build`).")
    return 1


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def cmd_search(args: argparse.Namespace) -> int:
    """Search the index with a photo. Every mistake that needs no model (a missing or unreadable
    photo, an unknown label, a bad -k, no index) is reported before the embedder loads."""
    from index.imaging.decode import read_header
    from index.index_dir import read_manifest
    from index.search import DamageIndex
    from index.taxonomy import LabelTaxonomy

    config = optional_config(args)
    index_dir = index_dir_of(args, config)
    if args.k < 1:
        raise UserError(f"-k must be at least 1, got {args.k}.")
    if not Path(args.image).is_file():
        raise UserError(f"Query photo {args.image} does not exist.")
    read_header(Path(args.image))
    manifest = read_manifest(index_dir)
    if args.label is not None:
        LabelTaxonomy.model_validate(manifest["config"]["taxonomy"]).resolve(args.label)
    index = DamageIndex.open(index_dir, embedder_model=args.embedder)
    own = index.image_ids_of(args.image)  # the query photo is itself indexed: mark its hits "self"
    hits = index.search(args.image, k=args.k, label=args.label, kind=args.kind, zone=args.zone, self_ids=own)
    if args.json:
        print_json([h.to_dict() for h in hits])
        return 0
    table = Table(title=Text(f"top {args.k} for {args.image}"), show_edge=False)
    for column in ("similarity", "kind", "label", "zone"):
        table.add_column(column, no_wrap=True)
    for column in ("source photo", "crop"):  # whole paths, folded rather than cut at the terminal's width
        table.add_column(column, overflow="fold")
    for hit in hits:
        row = cells(f"{hit.similarity:.3f}", hit.kind, hit.label or ",".join(hit.labels) or "-", hit.zone or "-",
                    _shown_path(hit.source_image), _shown_path(hit.crop_path))
        if hit.is_self:
            row[4] = Text.assemble(("(self) ", "bold yellow"), row[4])
        table.add_row(*row)
    show_table(table)
    if not hits:
        flag("note", "yellow", "no example matches these filters.")
    if own:
        flag("note", "yellow", f"the query photo is in the index ({', '.join(own)}); its own hits are marked (self).")
    return 0


def _shown_path(path: str) -> str:
    """``path`` relative to the working directory when it lies inside it, else as stored."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return path
