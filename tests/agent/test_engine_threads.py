"""One engine, many threads: the lazy loading of the index and the embedder is guarded.

The threads run in a fresh process (nothing imported yet), as a service starting up would.
"""

from __future__ import annotations

import os
import subprocess
import sys

from agent.testing import FakeOpenAIServer, Reply
from tests.fixtures.paths import REPO

ANSWER = {"damage_detected": False, "findings": [], "answer": "No damage.", "examples_used": []}

SCRIPT = """
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from agent.engine import DamageQueryEngine
from index.config import apply_overrides, load_config

config = apply_overrides(load_config(sys.argv[1]), {"model.api_base": sys.argv[2], "model.model": "qwen",
                                                     "agent.traces_dir": sys.argv[4]})
engine = DamageQueryEngine(config, index_dir=Path(sys.argv[3]))
photos = sorted(Path(sys.argv[5]).glob("*.jpg"))[:8]
with ThreadPoolExecutor(8) as pool:
    reports = list(pool.map(lambda p: engine.query(p, "Any damage?", mode="rag"), photos))
print(sum(r.valid and len(r.examples_used) == 3 for r in reports))
"""


def test_eight_threads_on_a_fresh_engine_all_succeed(synth_index_dir, synth_dataset, tmp_path):
    with FakeOpenAIServer() as server:
        server.responder = lambda body: Reply.json(ANSWER)
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(REPO / "configs" / "vehicle_damage.yaml"), server.base_url,
             str(synth_index_dir), str(tmp_path / "traces"), str(synth_dataset)],
            capture_output=True, text=True, timeout=300, cwd=REPO,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "8"
