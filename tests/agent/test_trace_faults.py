"""A trace that cannot be written never costs the answer: through ``python -m agent`` as a user
meets it (a file where the traces folder should be, a full disk), and the :class:`Trace` itself.

The full disk is a file-size limit (``RLIMIT_FSIZE``) set in the child before it runs the CLI,
with ``SIGXFSZ`` ignored so an oversized write fails with ``EFBIG`` ("File too large") instead
of killing the process: tests run as root, so a read-only folder made with chmod would not stop
a write.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from agent.testing import FakeOpenAIServer, Reply
from agent.trace import Trace
from tests.agent.test_endpoint_cli import ANSWER, write_config
from tests.fixtures.paths import REPO

QUESTION = "¿Tiene rayones?"

# Sets the limit in the child itself (no preexec_fn: the fake server's threads run in this
# process), then runs the CLI as ``python -m agent`` would.
_LIMITED = (
    "import resource, runpy, signal, sys\n"
    "limit = int(sys.argv.pop(1))\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "sys.argv[0] = 'agent'\n"
    "runpy.run_module('agent', run_name='__main__', alter_sys=True)\n"
)


@pytest.fixture
def photo(synth_dataset) -> Path:
    return sorted(Path(synth_dataset).glob("*.jpg"))[0]


def run_agent(*args: str, stdin: str | None = None, max_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    """``python -m agent ARGS``; with ``max_file_bytes``, no file it writes may grow past that."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "400"}
    command = [sys.executable, "-m", "agent", *args] if max_file_bytes is None else \
        [sys.executable, "-c", _LIMITED, str(max_file_bytes), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300, input=stdin)


def ask(config: Path, photo: Path, index_dir: Path, *extra: str, max_file_bytes: int | None = None):
    return run_agent("ask", "--config", str(config), "--image", str(photo), QUESTION, "--index", str(index_dir),
                     "--mode", "zero-shot", *extra, max_file_bytes=max_file_bytes)


def notes(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.strip().startswith("note:")]


def assert_answered_without_trace(result: subprocess.CompletedProcess, answer: str, reason: str) -> str:
    """Exit 0, the answer on stdout, one note on stderr naming the trace file and the reason."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert answer in result.stdout
    (note,) = notes(result.stderr)
    assert note.startswith("note: the trace could not be written to ") and f"({reason})" in note, note
    assert note.endswith("the answer is above")
    return note


def leftovers(traces_dir: Path) -> list[Path]:
    return sorted(traces_dir.rglob("*")) if traces_dir.is_dir() else []


# ------------------------------------------------------------------ a file where the folder should be


def test_ask_answers_when_the_traces_folder_is_a_file(tmp_path, photo, synth_index_dir):
    (tmp_path / "traces").write_text("not a folder\n")
    with FakeOpenAIServer() as server:
        server.script(Reply.json(ANSWER))
        result = ask(write_config(tmp_path, server), photo, synth_index_dir)
    note = assert_answered_without_trace(result, ANSWER["answer"], "File exists")
    assert str(tmp_path / "traces") in note and "trace: " not in result.stderr
    assert (tmp_path / "traces").read_text() == "not a folder\n"


def test_ask_json_says_there_is_no_trace_and_why(tmp_path, photo, synth_index_dir):
    (tmp_path / "traces").write_text("")
    with FakeOpenAIServer() as server:
        server.script(Reply.json(ANSWER))
        result = ask(write_config(tmp_path, server), photo, synth_index_dir, "--json")
    assert_answered_without_trace(result, "", "File exists")
    report = json.loads(result.stdout)
    assert report["valid"] and report["answer"] == ANSWER["answer"]
    assert report["trace"] is None and report["trace_error"] == "File exists"


def test_ask_json_names_the_trace_when_it_is_written(tmp_path, photo, synth_index_dir):
    with FakeOpenAIServer() as server:
        server.script(Reply.json(ANSWER))
        result = ask(write_config(tmp_path, server), photo, synth_index_dir, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["trace_error"] is None and Path(report["trace"]).is_file()
    assert Path(report["trace"]).stem == report["trace_id"] and not notes(result.stderr)


def test_chat_answers_every_question_when_the_traces_folder_is_a_file(tmp_path, photo, synth_index_dir):
    (tmp_path / "traces").write_text("")
    with FakeOpenAIServer() as server:
        server.script(Reply.json(ANSWER), Reply.json({**ANSWER, "answer": "En la puerta."}))
        stdin = f"/photo {photo}\n{QUESTION}\n¿Dónde?\n/trace\n/quit\n"
        result = run_agent("chat", "--config", str(write_config(tmp_path, server)), "--mode", "zero-shot",
                           "--index", str(synth_index_dir), stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert ANSWER["answer"] in result.stdout and "En la puerta." in result.stdout
    assert len(notes(result.stderr)) == 2
    assert "last trace: not written (File exists)" in result.stderr


# ------------------------------------------------------------------ a full disk


@pytest.mark.parametrize("max_file_bytes", [100, 16_384], ids=["first-write", "a-later-write"])
def test_ask_answers_when_the_disk_fills_during_a_trace_write(tmp_path, photo, synth_index_dir, max_file_bytes):
    """100 bytes: the query's first event does not fit. 16 KiB: the small photo copy and the
    first events fit, the report event (a 40 kB answer) does not."""
    answer = "Sí, un arañazo largo. " + "x" * 40_000
    with FakeOpenAIServer() as server:
        server.script(Reply.json({**ANSWER, "answer": answer}))
        config = write_config(tmp_path, server, **{"model.query_max_pixels": 160 * 120})
        result = ask(config, photo, synth_index_dir, "--json", max_file_bytes=max_file_bytes)
    assert_answered_without_trace(result, answer, "File too large")
    assert json.loads(result.stdout)["trace"] is None
    assert leftovers(tmp_path / "traces") == []  # no empty or half-written trace, no photo copy


# ------------------------------------------------------------------ the Trace itself


def test_a_trace_that_cannot_be_written_warns_once_and_goes_quiet(tmp_path, caplog):
    (tmp_path / "traces").write_text("")
    with caplog.at_level(logging.WARNING, logger="agent.trace"):
        trace = Trace(tmp_path / "traces", question="q")
        trace.event("report", report={})
        assert trace.save_image("query", Image.new("RGB", (8, 8))) is None
    assert not trace.written and trace.failure is not None and trace.failure.path == trace.path
    (warning,) = [r for r in caplog.records if r.name == "agent.trace"]
    assert str(trace.path) in warning.getMessage() and "File exists" in warning.getMessage()


def test_a_failed_write_removes_what_the_trace_wrote(tmp_path, monkeypatch):
    trace = Trace(tmp_path / "traces", question="q")
    trace.save_image("query", Image.new("RGB", (8, 8)))
    assert trace.path.is_file() and (tmp_path / "traces" / trace.id / "query.jpg").is_file()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "open", full)
    trace.event("report", report={})
    monkeypatch.undo()
    trace.event("after", ok=True)
    assert trace.failure is not None and trace.failure.reason == "No space left on device"
    assert leftovers(tmp_path / "traces") == []


def test_a_trace_id_already_taken_is_drawn_again(tmp_path, monkeypatch):
    import agent.trace as trace_module

    draws = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr(trace_module.secrets, "token_hex", lambda n: next(draws))
    noon = trace_module.datetime(2026, 1, 1, 12, tzinfo=trace_module.timezone.utc)
    monkeypatch.setattr(trace_module, "datetime", type("Frozen", (), {"now": staticmethod(lambda tz=None: noon)}))
    first = Trace(tmp_path / "traces", question="first")
    second = Trace(tmp_path / "traces", question="second")  # same second, same random bits: redrawn
    assert first.id.endswith("-aaaaaa") and second.id.endswith("-bbbbbb") and first.path != second.path
    first.event("report", report={})
    assert [json.loads(line)["type"] for line in first.path.read_text().splitlines()] == ["query", "report"]
    assert json.loads(second.path.read_text())["question"] == "second"
