"""Flags and helpers shared by the offline commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from index.config import DEFAULT_CONFIG, DomainConfig, apply_overrides, load_config

#: What ``--index`` says where the index directory is read.
INDEX_HELP = "Index directory (default: index.dir of --config, outputs/vector_index in the shipped configs)."


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The flags every command that reads the domain config shares."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML (default: %(default)s).")
    parser.add_argument("--dataset", type=Path, help="Dataset folder, or one COCO JSON / YOLO data.yaml (default: dataset.root of --config).")
    parser.add_argument("--format", help="Annotation format: labelme, coco, yolo or module:Class (default: dataset.format of --config).")


def add_index_arg(parser: argparse.ArgumentParser, help: str = INDEX_HELP) -> None:
    """``--index INDEX_DIR``, the index a command reads; ``--out`` stays as a hidden alias, the
    name these commands had before (so scripts keep working)."""
    parser.add_argument("--index", type=Path, metavar="INDEX_DIR", help=help)
    parser.add_argument("--out", type=Path, dest="index", help=argparse.SUPPRESS)


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    """``--config`` of a command that reads only the config's ``index.dir``."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML, for its index.dir (default: %(default)s).")


def config_from_args(args: argparse.Namespace, **extra: Any) -> DomainConfig:
    """Load the config named by ``--config`` and apply the command-line overrides."""
    config = load_config(args.config)
    overrides = {"dataset.root": getattr(args, "dataset", None), "dataset.format": getattr(args, "format", None)}
    overrides.update(extra)
    return apply_overrides(config, overrides)


def index_dir_of(args: argparse.Namespace, config: DomainConfig | None) -> Path:
    """The index directory: ``--index`` (or its alias) if given, else the config's ``index.dir``."""
    if getattr(args, "index", None):
        return Path(args.index)
    return Path(config.index.dir) if config else Path("outputs/vector_index")


def optional_config(args: argparse.Namespace) -> DomainConfig | None:
    """The config of ``--config`` when it is needed, i.e. without ``--index``. A config that is
    missing or wrong is an error then (one line), never silently replaced by a default folder."""
    return None if getattr(args, "index", None) else load_config(args.config)
