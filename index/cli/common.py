"""Flags and helpers shared by the offline commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from index.config import DEFAULT_CONFIG, DomainConfig, apply_overrides, load_config


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The flags every command that reads the domain config shares."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="Domain YAML (default: %(default)s).")
    parser.add_argument("--dataset", type=Path, help="Dataset folder, or one COCO JSON / YOLO data.yaml (overrides dataset.root).")
    parser.add_argument("--format", help="Annotation format: labelme, coco, yolo or module:Class (overrides dataset.format).")


def config_from_args(args: argparse.Namespace, **extra: Any) -> DomainConfig:
    """Load the config named by ``--config`` and apply the command-line overrides."""
    config = load_config(args.config)
    overrides = {"dataset.root": getattr(args, "dataset", None), "dataset.format": getattr(args, "format", None)}
    overrides.update(extra)
    return apply_overrides(config, overrides)


def index_dir_of(args: argparse.Namespace, config: DomainConfig | None) -> Path:
    """The index directory: ``--out`` if given, else the config's ``index.dir``."""
    if getattr(args, "out", None):
        return Path(args.out)
    return Path(config.index.dir) if config else Path("outputs/vector_index")


def optional_config(args: argparse.Namespace) -> DomainConfig | None:
    """The config of ``--config`` when it is needed (no ``--out``) and exists."""
    return load_config(args.config) if Path(args.config).is_file() and not args.out else None
