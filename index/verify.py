"""Check that a built index directory is whole: ``python -m index info --verify``.

:func:`verify_index` reads the manifest, the vector store and the crops of an index directory
(layout in :mod:`index.index_dir`) and cross-checks them without loading a model:

- the FAISS ids are the metadata's ids and the vectors' dimension is the manifest's
  (``store_*``, ``ids_mismatch``, ``dim_mismatch``: the store's own checks on load, which also
  check every row of ``metadata.sqlite``; ``store_old_format``: a ``metadata.json`` of format
  version 1, to rebuild);
- the manifest's ``counts["nodes"]`` is the number of stored nodes (``count_mismatch``);
- the node ids the manifest lists per image are the stored node ids (``node_not_in_metadata``,
  ``node_not_in_manifest``);
- every crop the manifest or a node names is a relative path inside ``crops/``
  (``outside_index``, ``outside_crops``, ``bad_crop_path``, ``no_crop``), exists
  (``missing_crop``) and is a readable JPEG (``bad_crop``);
- files in ``crops/`` that nothing names are ``orphan_crop`` warnings.

A wrongly shaped manifest entry is a ``manifest_shape`` problem. Nothing is repaired: the
report says what to rebuild. The library logs; the CLI prints the report.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from index.index_dir import CROPS, read_manifest
from index.vector_store.file_names import METADATA_FILE

logger = logging.getLogger(__name__)


class Finding(NamedTuple):
    """One thing wrong with an index: a stable ``code`` and a sentence naming what."""

    code: str
    message: str


@dataclass
class VerifyReport:
    """What :func:`verify_index` found: problems (the index is damaged), warnings, counts."""

    index_dir: str
    problems: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    #: how many of each thing were checked: nodes, images, crop files, files in crops/
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no problems were found (warnings allowed)."""
        return not self.problems

    def problem(self, code: str, message: str) -> None:
        """Record a problem."""
        self.problems.append(Finding(code, message))

    def warn(self, code: str, message: str) -> None:
        """Record a warning."""
        self.warnings.append(Finding(code, message))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "index_dir": self.index_dir,
            "ok": self.ok,
            "problems": [f._asdict() for f in self.problems],
            "warnings": [f._asdict() for f in self.warnings],
            "checked": dict(self.checked),
        }


def verify_index(index_dir: Path) -> VerifyReport:
    """Cross-check the manifest, vector store and crops of the index at ``index_dir``.

    Args:
        index_dir: A built index directory.

    Returns:
        The report; ``report.ok`` is False when the index is damaged.

    Raises:
        IndexNotFoundError: If there is no readable manifest (no index to verify).
    """
    from index.vector_store import VectorStoreFileError, store_records

    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    report = VerifyReport(str(index_dir))
    if manifest.get("complete") is False:
        report.warn(
            "incomplete_build", f"{index_dir}/manifest.json is a checkpoint of an unfinished build."
        )
    images = _manifest_images(report, manifest)
    report.checked["images"] = len(images)

    try:
        dim, records = store_records(index_dir, _index_config(manifest))
    except VectorStoreFileError as exc:
        report.problem(exc.code, str(exc))
        nodes: dict[str, str | None] | None = None
    else:
        nodes = {r.node_id: r.data.get("image_path") for r in records}
        report.checked["nodes"] = len(nodes)
        _check_counts(report, manifest, len(nodes), dim)
        _check_node_sets(report, images, nodes)

    named = _check_crop_names(report, index_dir, images, nodes)
    _check_crop_files(report, index_dir, named)
    logger.info(
        "verified %s: %d problems, %d warnings",
        index_dir,
        len(report.problems),
        len(report.warnings),
    )
    return report


def _index_config(manifest: dict[str, Any]) -> Any:
    """The index configuration the manifest records (its backend says where the vectors are);
    ``None`` (FAISS files) when it records none that this program reads."""
    from index.vector_store import VectorIndexConfig

    try:
        return VectorIndexConfig.model_validate(manifest["config"].get("index") or {})
    except ValueError:
        return None


def _manifest_images(
    report: VerifyReport, manifest: dict[str, Any]
) -> dict[str, tuple[list[str], list[str]]]:
    """``{image id: (node ids, crop names)}`` from ``manifest["images"]``; bad entries are problems."""
    raw = manifest.get("images")
    if not isinstance(raw, dict):
        report.problem(
            "manifest_shape", f"manifest 'images' is {type(raw).__name__}, not an object."
        )
        return {}
    images: dict[str, tuple[list[str], list[str]]] = {}
    for image_id, state in raw.items():
        if not isinstance(state, dict):
            report.problem(
                "manifest_shape",
                f"manifest image {image_id!r} is {type(state).__name__}, not an object.",
            )
            continue
        lists = []
        for key in ("nodes", "crops"):
            value = state.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                report.problem(
                    "manifest_shape",
                    f"manifest image {image_id!r}: {key!r} is not a list of strings.",
                )
                value = [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
            lists.append(value)
        images[image_id] = (lists[0], lists[1])
    return images


def _check_counts(
    report: VerifyReport, manifest: dict[str, Any], n_nodes: int, store_dim: int | None
) -> None:
    """Manifest node count and dimension against the store's."""
    counts = manifest.get("counts")
    recorded = counts.get("nodes") if isinstance(counts, dict) else None
    if isinstance(recorded, bool) or not isinstance(recorded, int):
        report.problem(
            "manifest_shape", f"manifest counts['nodes'] is {recorded!r}, not an integer."
        )
    elif recorded != n_nodes:
        report.problem(
            "count_mismatch",
            f"the manifest counts {recorded} nodes, {METADATA_FILE} holds {n_nodes}.",
        )
    dim = manifest.get("dim")
    if store_dim is not None and dim != store_dim:
        report.problem(
            "dim_mismatch", f"the manifest says {dim!r}-d vectors, faiss.index holds {store_dim}-d."
        )


def _check_node_sets(
    report: VerifyReport,
    images: dict[str, tuple[list[str], list[str]]],
    nodes: dict[str, str | None],
) -> None:
    """The node ids the manifest lists per image against the stored ones."""
    owner: dict[str, str] = {}
    for image_id, (node_ids, _) in images.items():
        for node_id in node_ids:
            owner.setdefault(node_id, image_id)
    for node_id in sorted(set(owner) - set(nodes)):
        report.problem(
            "node_not_in_metadata",
            f"node {node_id!r} of image {owner[node_id]!r} is in the manifest but not in {METADATA_FILE}.",
        )
    for node_id in sorted(set(nodes) - set(owner)):
        report.problem(
            "node_not_in_manifest",
            f"node {node_id!r} is in {METADATA_FILE} but no manifest image lists it.",
        )


def _check_crop_names(
    report: VerifyReport,
    index_dir: Path,
    images: dict[str, tuple[list[str], list[str]]],
    nodes: dict[str, str | None] | None,
) -> dict[Path, str]:
    """Check every named crop path; return ``{resolved file: name}`` of those inside ``crops/``."""
    root = index_dir.resolve()
    crops_root = root / CROPS
    named: dict[Path, str] = {}
    sources: list[tuple[str, Any]] = [
        (f"manifest image {image_id!r}", name)
        for image_id, (_, crops) in images.items()
        for name in crops
    ]
    for node_id, image_path in (nodes or {}).items():
        if image_path is None:
            report.problem("no_crop", f"node {node_id!r} in {METADATA_FILE} names no crop file.")
        else:
            sources.append((f"node {node_id!r}", image_path))
    for owner, name in sources:
        if not isinstance(name, str) or not name or "\x00" in name:
            report.problem("bad_crop_path", f"{owner} names the crop {name!r}, not a file path.")
            continue
        target = Path(os.path.realpath(root / name))  # absolute names replace root; links followed
        if not target.is_relative_to(root):
            report.problem(
                "outside_index", f"{owner} names the crop {name!r}, which is outside {index_dir}."
            )
        elif not target.is_relative_to(crops_root):
            report.problem(
                "outside_crops", f"{owner} names the crop {name!r}, which is not in {CROPS}/."
            )
        elif not target.is_file():
            report.problem(
                "missing_crop", f"{owner} names the crop {name!r}, which does not exist."
            )
        else:
            named.setdefault(target, name)
    return named


def _check_crop_files(report: VerifyReport, index_dir: Path, named: dict[Path, str]) -> None:
    """Every named crop is a readable JPEG; files in ``crops/`` that nothing names are warnings."""
    from PIL import Image

    for target, name in sorted(named.items(), key=lambda item: item[1]):
        try:
            with Image.open(target) as img:
                kind = img.format
                img.verify()
        except Exception as exc:  # a damaged file: PIL raises OSError, SyntaxError, struct.error...
            report.problem(
                "bad_crop", f"crop {name} is not a readable image ({' '.join(str(exc).split())})."
            )
            continue
        if kind != "JPEG":
            report.problem("bad_crop", f"crop {name} is a {kind} image, not a JPEG.")
    report.checked["crops"] = len(named)
    crops_dir = index_dir / CROPS
    present = (
        sorted(p for p in crops_dir.rglob("*") if p.is_file() or p.is_symlink())
        if crops_dir.is_dir()
        else []
    )
    report.checked["files_in_crops"] = len(present)
    for path in present:
        if Path(os.path.realpath(path)) not in named:
            report.warn(
                "orphan_crop",
                f"{path.relative_to(index_dir).as_posix()} is in {CROPS}/ but nothing names it.",
            )
