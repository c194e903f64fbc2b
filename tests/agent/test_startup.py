"""A query path that starts fast: zero-shot imports no torch, transformers or faiss and opens no
index; rag and agentic open the index and its embedder in a background thread (one load however
many ask for it, its error raised where the index is first needed, then tried again); a query
that has to wait for it says so (``on_event("waiting")``, the trace's ``index_wait``), and so does
the first ``chat`` question."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.engine import DamageQueryEngine
from agent.testing import Reply
from agent.trace import load_trace
from index.index_dir import IndexNotFoundError
from tests.fixtures.paths import REPO

ANSWER = {"damage_detected": False, "answer": "No veo daños.", "findings": [], "examples_used": []}
HEAVY = ("torch", "transformers", "faiss")

#: Runs ``python -m agent ARGS`` and writes which heavy modules the process imported (and whether
#: it imported the index's search module) to the file named by its first argument.
PROBE = f"""
import json, runpy, sys
dump = sys.argv.pop(1)
code = 0
try:
    runpy.run_module("agent", run_name="__main__", alter_sys=True)
except SystemExit as exit_:
    code = exit_.code
finally:
    loaded = sorted(m for m in {HEAVY + ("index.search",)!r} if m in sys.modules)
    with open(dump, "w") as handle:
        json.dump({{"code": code, "loaded": loaded}}, handle)
"""


@pytest.fixture
def slow_open(monkeypatch):
    """Every index load takes 0.4 s longer and is counted, with the thread it ran on (request it
    before the engine: the engine binds its loader when it is made)."""
    calls: list[str] = []
    original = DamageQueryEngine._open_index

    def slow(self):
        calls.append(threading.current_thread().name)
        time.sleep(0.4)
        return original(self)

    monkeypatch.setattr(DamageQueryEngine, "_open_index", slow)
    return calls


def probe(tmp_path: Path, *args: str) -> dict:
    dump = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    result = subprocess.run([sys.executable, "-c", PROBE, str(dump), *args], capture_output=True, text=True,
                            cwd=REPO, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert dump.is_file(), result.stderr
    return {**json.loads(dump.read_text()), "stdout": result.stdout, "stderr": result.stderr}


def test_zero_shot_ask_imports_no_torch_transformers_or_faiss_and_needs_no_index(fake, photo, tmp_path,
                                                                                 synth_index_dir):
    fake.script(Reply.json(ANSWER))
    common = ["--image", str(photo), "Any damage?", "--json", "--api-base", fake.base_url,
              "--traces-dir", str(tmp_path / "traces")]
    zero = probe(tmp_path, "ask", "--mode", "zero-shot", "--index", str(tmp_path / "no-index"), *common)
    assert zero["code"] == 0, zero["stderr"]
    assert json.loads(zero["stdout"])["answer"] == "No veo daños."
    assert zero["loaded"] == []  # nor index.search: no index was opened (there is none at --index)

    # The probe sees them when they are imported: rag opens the index and its embedder.
    fake.script(Reply.json(ANSWER))
    rag = probe(tmp_path, "ask", "--mode", "rag", "--index", str(synth_index_dir), *common)
    assert rag["code"] == 0, rag["stderr"]
    assert {"torch", "transformers", "faiss", "index.search"} <= set(rag["loaded"])


def test_start_loading_is_one_background_load_however_many_threads_ask(slow_open, engine):
    threads = [threading.Thread(target=engine.start_loading) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.start_loading()
    indexes = {id(engine.index) for _ in range(3)}
    assert slow_open == ["damage-index-load"] and len(indexes) == 1
    engine.start_loading()  # open already: nothing more
    assert len(slow_open) == 1


def test_a_rag_query_loads_the_index_in_the_background_and_says_it_waits(slow_open, engine, fake, photo):
    fake.script(Reply.json(ANSWER))
    events: list[tuple[str, dict]] = []
    report = engine.query(photo, "¿Tiene rayones?", mode="rag", on_event=lambda kind, data: events.append((kind, data)))
    assert report.valid and len(report.examples_used) == engine.config.agent.k
    assert slow_open == ["damage-index-load"]  # started by the query itself, not on its thread
    kinds = [kind for kind, _ in events]
    assert kinds.index("waiting") < kinds.index("ready") < kinds.index("tool_call")
    waiting = dict(events)["waiting"]["message"]
    regions = engine.index.manifest["counts"]["nodes_by_kind"]["region"]
    assert waiting == f"loading the index ({regions:,} regions) and the embedder " \
                      f"{engine.index.manifest['embedder']['model_id']}"
    waited = [e for e in load_trace(engine.config.agent.traces_dir, report.trace_id) if e["type"] == "index_wait"]
    assert len(waited) == 1 and waited[0]["message"] == waiting and waited[0]["seconds"] > 0

    fake.script(Reply.json(ANSWER))
    events.clear()
    engine.query(photo, "¿Y abolladuras?", mode="rag", on_event=lambda kind, data: events.append((kind, data)))
    assert "waiting" not in [kind for kind, _ in events] and len(slow_open) == 1  # loaded once


def test_a_zero_shot_query_starts_no_load(slow_open, engine, fake, photo):
    fake.script(Reply.json(ANSWER))
    events: list[str] = []
    assert engine.query(photo, "Any damage?", mode="zero-shot", on_event=lambda kind, data: events.append(kind)).valid
    assert slow_open == [] and "waiting" not in events and engine._index is None


def test_a_failed_background_load_is_the_queries_error_and_is_tried_again(slow_open, engine, fake, photo, tmp_path):
    engine.index_dir = engine._loading.index_dir = tmp_path / "not-built-yet"
    engine.start_loading()  # fails in its thread, silently
    with pytest.raises(IndexNotFoundError) as first:
        engine.query(photo, "¿Tiene rayones?", mode="rag")
    assert str(first.value).startswith(f"No index at {tmp_path / 'not-built-yet'}: build one with")
    assert len(slow_open) == 1
    with pytest.raises(IndexNotFoundError) as second:  # a new attempt, the same one line
        _ = engine.index
    assert str(second.value) == str(first.value) and len(slow_open) == 2


def test_the_first_chat_question_says_what_it_waits_for(slow_open, fake, photo, synth_index_dir, tmp_path,
                                                         monkeypatch, capsys):
    from agent.cli import main

    fake.script(Reply.json(ANSWER), Reply.json(ANSWER))
    typed = iter(["¿Tiene rayones?", "¿Y abolladuras?", "/quit"])  # asked at once: the index is still loading
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    code = main(["chat", "--mode", "rag", "--image", str(photo), "--api-base", fake.base_url,
                 "--index", str(synth_index_dir), "--traces-dir", str(tmp_path / "traces")])
    err = capsys.readouterr().err
    assert code == 0, err
    regions = json.loads((synth_index_dir / "manifest.json").read_text())["counts"]["nodes_by_kind"]["region"]
    assert err.count(f"loading the index ({regions:,} regions) and the embedder ") == 1  # the first question only
    assert err.index("loading the index") < err.index("ready after") < err.index("search_similar_damage")
    assert slow_open == ["damage-index-load"]


def test_an_agentic_query_asks_the_model_while_the_index_loads(slow_open, engine, fake, photo):
    fake.script(Reply.tool_calls([("search_similar_damage", {"k": 2})]), Reply.json(ANSWER))
    events: list[str] = []
    report = engine.query(photo, "¿Tiene rayones?", mode="agentic", on_event=lambda kind, data: events.append(kind))
    assert report.valid and report.tool_calls == 1 and len(report.examples_used) == 2
    # the first reply needs no index: it came back before the load ended, the tool waited for it
    assert events.index("model") < events.index("waiting") < events.index("ready") < events.index("tool_call")
    assert slow_open == ["damage-index-load"]
