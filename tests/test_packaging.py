"""The package as a user installs it: a wheel carries the prompts and the configs, and
pyproject.toml declares exactly what the code imports, within tested bounds."""

from __future__ import annotations

import ast
import functools
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from importlib import metadata

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

from tests.fixtures.paths import REPO


@pytest.mark.slow
def test_an_installed_wheel_finds_its_prompts_and_configs(tmp_path):
    source = tmp_path / "source"  # setuptools writes build/ beside the sources: keep the checkout clean
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "outputs", "data", "build", "*.egg-info", "__pycache__", ".ruff_cache", ".pytest_cache"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "prompts" / "system.md").is_file() and (site / "configs" / "vehicle_damage.yaml").is_file()
    code = (
        "import index, agent.prompts, index.config as c\n"
        f"assert index.__file__.startswith({str(site)!r}), index.__file__\n"
        "config = c.load_config('configs/vehicle_damage.yaml')\n"
        "prompts = agent.prompts.Prompts.for_config(config)\n"
        "print(config.name, sorted(prompts.files()) == sorted(p.name for p in "
        f"__import__('pathlib').Path({str(REPO / 'prompts')!r}).glob('*.md')))\n"
    )
    elsewhere = tmp_path / "elsewhere"  # no configs/ or prompts/ folder here
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["vehicle_damage", "True"]


# ---------------------------------------------------------------------------- declared = imported
SOURCES = ("index", "agent", "tools")
FIRST_PARTY = {*SOURCES, "prompts", "configs", "tests"}
#: Fast-moving libraries: capped at their next major (0.x: next minor), whose releases break us.
FAST_MOVING = {"llama-index-core", "llama-index-llms-openai-like", "transformers", "torch", "openai",
               "huggingface-hub", "faiss-cpu"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _requirements() -> tuple[list[Requirement], list[Requirement]]:
    """(the dependencies, the optional ones of every extra)."""
    project = _pyproject()["project"]
    extras = [Requirement(r) for group in project.get("optional-dependencies", {}).values() for r in group]
    return [Requirement(r) for r in project["dependencies"]], extras


class _Imports(ast.NodeVisitor):
    """The modules a file imports at any depth (lazily or not), but not those it can do without:
    an import under ``try: … except ImportError`` is optional and needs no declaration."""

    def __init__(self) -> None:
        self.modules: list[str] = []

    def visit_Try(self, node: ast.Try) -> None:
        caught = {getattr(h.type, "id", None) for h in node.handlers} | {
            getattr(e, "id", None) for h in node.handlers if isinstance(h.type, ast.Tuple) for e in h.type.elts}
        if caught & {"ImportError", "ModuleNotFoundError"}:
            for child in node.handlers + node.orelse + node.finalbody:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.modules += [alias.name for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self.modules.append(node.module)


def _imports() -> dict[str, set[str]]:
    """Every third-party module the sources need: {module: {file}}."""
    found: dict[str, set[str]] = {}
    for package in SOURCES:
        for path in sorted((REPO / package).rglob("*.py")):
            visitor = _Imports()
            visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
            for name in visitor.modules:
                if name.split(".")[0] not in sys.stdlib_module_names | FIRST_PARTY:
                    found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


@functools.cache
def _files_of(distribution: str) -> frozenset[str]:
    return frozenset(str(f) for f in metadata.distribution(distribution).files or ())


def _distribution(module: str, table: Mapping[str, list[str]]) -> str | None:
    """The distribution that installs ``module``; a namespace package (``llama_index``, spread over
    many distributions) is told apart by the deepest part of the module a single one has."""
    candidates = sorted(set(table.get(module.split(".")[0], [])))
    if len(candidates) == 1:
        return candidates[0]
    parts = module.split(".")
    for depth in range(len(parts), 1, -1):
        stem = "/".join(parts[:depth])
        owners = [d for d in candidates if {f"{stem}.py", f"{stem}/__init__.py"} & _files_of(d)]
        if len(owners) == 1:
            return owners[0]
    return None


def test_every_import_is_declared_and_every_dependency_imported():
    table = metadata.packages_distributions()
    dependencies, extras = _requirements()
    declared = {_canonical(r.name) for r in dependencies + extras}
    imported: dict[str, set[str]] = {}
    unknown, undeclared = [], []
    for module, files in sorted(_imports().items()):
        distribution = _distribution(module, table)
        if distribution is None:
            unknown.append(f"{module} ({', '.join(sorted(files))})")
            continue
        imported.setdefault(_canonical(distribution), set()).update(files)
        if _canonical(distribution) not in declared:
            undeclared.append(f"{distribution}: import {module} in {', '.join(sorted(files))}")
    assert not unknown, f"imported but not installed by any distribution: {unknown}"
    assert not undeclared, "imported but not declared in pyproject.toml:\n" + "\n".join(undeclared)
    unused = [r.name for r in dependencies if _canonical(r.name) not in imported]
    assert not unused, f"declared in [project] dependencies but imported nowhere in {SOURCES}: {unused}"


def test_the_installed_versions_satisfy_the_declared_bounds():
    """The lower bounds are tested ones: the environment running the suite meets them all."""
    dependencies, extras = _requirements()
    wrong = []
    for requirement in dependencies + extras:
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            if requirement in dependencies:
                wrong.append(f"{requirement.name} is not installed")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            wrong.append(f"{requirement} but {installed} is installed")
    assert not wrong, wrong


def test_fast_moving_libraries_are_capped_at_their_next_major():
    dependencies, _ = _requirements()
    by_name = {_canonical(r.name): r for r in dependencies}
    assert by_name.keys() >= FAST_MOVING, FAST_MOVING - by_name.keys()
    for name in sorted(FAST_MOVING):
        specs = {s.operator: Version(s.version) for s in by_name[name].specifier}
        assert ">=" in specs and "<" in specs, f"{by_name[name]}: needs a tested lower bound and an upper bound"
        low = specs[">="]
        cap = Version(f"0.{low.minor + 1}") if low.major == 0 else Version(f"{low.major + 1}")
        assert specs["<"] == cap, f"{by_name[name]}: cap at {cap}, the next major of {low}"
    for requirement in dependencies:
        lower = [s for s in requirement.specifier if s.operator == ">="]
        assert len(lower) <= 1 and not any(s.operator in ("==", "~=") for s in requirement.specifier), requirement
