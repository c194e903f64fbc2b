"""The package as a user installs it: a wheel carries the prompts and the configs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

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
