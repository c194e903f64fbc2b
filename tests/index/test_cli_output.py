"""What the offline CLI prints is text: labels, paths and messages with brackets are shown as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.fixtures.datasets import polygon, write_pair
from tests.fixtures.paths import REPO, VEHICLE_CONFIG


def test_inspect_prints_a_bracketed_label_and_path_as_text(tmp_path):
    data = tmp_path / "[cars]"
    write_pair(data, "zona1_ko_2_3_1554114337244_zona_5", [polygon("1", [[10, 10], [200, 10], [200, 200]]),
                                                            polygon("[/]", [[300, 300], [400, 300], [400, 400]])])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "300"}
    done = subprocess.run([sys.executable, "-m", "index", "inspect", "--config", str(VEHICLE_CONFIG), "--dataset",
                           str(data), "--out", str(tmp_path / "[out]"), "--no-contact-sheet"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "(label '[/]')" in done.stderr and "[out]/report.json" in done.stderr  # label and folder, verbatim
    report = json.loads((tmp_path / "[out]" / "report.json").read_text())
    assert report["skipped_by_reason"] or report["repaired_by_reason"]
