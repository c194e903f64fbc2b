"""Each fault of the corpus ends in a named skip or repair and leaves the good photos readable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from index.dataset.ingest import read_dataset
from tests.fixtures.datasets import with_root
from tests.fixtures.paths import REPO
from tests.index.faults.corpus import CASES, GOOD_STEMS, write_corpus


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_fault_is_a_counted_skip_or_repair(case, tmp_path, vehicle_config):
    root = tmp_path / "data"
    write_corpus(root, [case])
    _, outcome, reason = CASES[case]
    scan = read_dataset(with_root(vehicle_config, root))
    good = {r.image_path.stem for r in scan.records} & set(GOOD_STEMS)
    assert good == set(GOOD_STEMS), f"{case}: a good photo was lost"
    issues = scan.skipped if outcome == "skipped" else scan.repaired
    if reason != "-":
        assert reason in {i.reason for i in issues}, [i.to_dict() for i in scan.skipped + scan.repaired]
    for issue in scan.skipped + scan.repaired:
        issue.file.encode("utf-8")  # every issue can be printed and written as JSON
        assert len(issue.message) < 600, issue.message


def test_nothing_outside_the_dataset_folder_unless_allowed(tmp_path, vehicle_config):
    root = tmp_path / "data"
    write_corpus(root, ["parent_path", "absolute_path"])
    allowed = read_dataset(with_root(vehicle_config, root, **{"dataset.allow_outside_root": True}))
    assert {r.image_path.name for r in allowed.records} >= {"outside.jpg", "elsewhere.jpg"}
    refused = read_dataset(with_root(vehicle_config, root))
    assert {r.image_path.name for r in refused.records}.isdisjoint({"outside.jpg", "elsewhere.jpg"})


def test_absolute_path_of_the_annotators_machine_finds_the_photo_inside(tmp_path, vehicle_config):
    """An absolute imagePath that exists outside loses to the same-named photo inside the folder."""
    from tests.index.faults.corpus import absolute_path

    root = tmp_path / "data"
    write_corpus(root, [])
    absolute_path(root)
    (root / "elsewhere.jpg").write_bytes((root.parent / "elsewhere.jpg").read_bytes())
    scan = read_dataset(with_root(vehicle_config, root))
    (record,) = [r for r in scan.records if r.image_path.name == "elsewhere.jpg"]
    assert record.image_path.parent == root


def test_max_image_pixels_skips_a_decodable_photo_without_decoding(tmp_path, vehicle_config):
    root = tmp_path / "data"
    write_corpus(root, [])
    scan = read_dataset(with_root(vehicle_config, root, **{"dataset.max_image_pixels": 100_000}))
    assert scan.records == []
    assert [i.reason for i in scan.skipped] == ["too_many_pixels"] * 2
    assert "0.1 MP" in scan.skipped[0].message


def test_a_named_pipe_does_not_block_the_read(tmp_path):
    """In a child process with a deadline: a blocked read would hang the whole suite."""
    root = tmp_path / "data"
    write_corpus(root, ["named_pipe"])
    code = ("import sys; from index.config import load_config, apply_overrides; "
            "from index.dataset.ingest import read_dataset; "
            f"c = apply_overrides(load_config({str(REPO / 'configs/vehicle_damage.yaml')!r}), {{'dataset.root': {str(root)!r}}}); "
            "print(len(read_dataset(c).records))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "index", *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


def test_the_whole_corpus_through_inspect_and_build(tmp_path, tiny_dinov2):
    """As the user meets it: every fault at once, one inspect and two builds, nothing but counted skips."""
    root = tmp_path / "data"
    write_corpus(root)
    config = str(REPO / "configs/vehicle_damage.yaml")
    inspect = _cli("inspect", "--config", config, "--dataset", str(root), "--out", str(tmp_path / "i"), "--json")
    assert inspect.returncode == 0 and "Traceback" not in inspect.stderr, inspect.stderr
    report = json.loads(inspect.stdout)
    expected = {reason for _, outcome, reason in CASES.values() if outcome == "skipped" and reason != "-"}
    assert expected <= {i["reason"] for i in report["skipped"]}
    out = tmp_path / "index"
    args = ("build", "--config", config, "--dataset", str(root), "--embedder", str(tiny_dinov2), "--out", str(out), "--json")
    first = _cli(*args)
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr
    built = json.loads(first.stdout)
    assert expected <= set(built["skipped_by_reason"]) and built["repaired_by_reason"]["malformed_size"] == 2
    assert {Path(i["file"]).name for i in built["skipped"]} >= {"bomb.png", "huge.png"}
    assert not (tmp_path / "index.staging").exists()
    again = _cli(*args)
    assert again.returncode == 0 and json.loads(again.stdout)["up_to_date"]


def test_a_broken_adapter_module_is_named_not_called_an_unknown_format(tmp_path, vehicle_config, monkeypatch):
    from index.dataset.adapters import AdapterError

    (tmp_path / "my_adapter.py").write_text("import not_installed_anywhere\nclass Adapter: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    root = tmp_path / "data"
    write_corpus(root, [])
    with pytest.raises(AdapterError, match="cannot be imported.*not_installed_anywhere"):
        read_dataset(with_root(vehicle_config, root, **{"dataset.format": "my_adapter:Adapter"}))
    with pytest.raises(AdapterError, match="Unknown dataset format 'no_such_format'"):
        read_dataset(with_root(vehicle_config, root, **{"dataset.format": "no_such_format"}))
