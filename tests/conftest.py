"""Test configuration: no network, the shared fixtures as plugins (tests/fixtures/), and a check
that the tests write only under temporary folders, never into the repository's ``outputs/``."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = [
    "tests.fixtures.datasets",
    "tests.fixtures.embedders",
    "tests.fixtures.models",
    "tests.fixtures.indexes",
    "tests.fixtures.tools",
    "tests.fixtures.vector_store",
]

#: Where the commands write by default (traces, indexes, reports): a test that writes here left a
#: default path (``agent.traces_dir``, ``index.dir``, ``--out``) unset.
REPO_OUTPUTS = Path(__file__).resolve().parents[1] / "outputs"
_BEFORE = pytest.StashKey[set]()


def _files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()} if root.is_dir() else set()


def pytest_sessionstart(session):
    session.config.stash[_BEFORE] = _files_under(REPO_OUTPUTS)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    before = config.stash.get(_BEFORE, None)
    if before is None:
        return
    new = sorted(_files_under(REPO_OUTPUTS) - before)
    if new:
        shown = ", ".join(str(path.relative_to(REPO_OUTPUTS.parent)) for path in new[:5])
        terminalreporter.write_line(
            f"warning: {len(new)} file(s) appeared under {REPO_OUTPUTS} during the tests ({shown}"
            f"{', ...' if len(new) > 5 else ''}): a test left a default output path unset, or another "
            "process wrote there.", yellow=True)
