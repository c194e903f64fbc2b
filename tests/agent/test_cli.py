"""``python -m agent`` as a new user meets it: the fake server to try it with no model, the flags
(--version, -v anywhere, defaults in the help), ``ask --simple``, and an endpoint that is down."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.endpoint_errors import UNREACHABLE_HINT
from agent.report import DamageReport
from tests.fixtures.paths import REPO

COMMANDS = ["ask", "chat", "trace", "eval", "bench", "fake-server", "serve"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "COLUMNS": "200"}


def agent(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, env=ENV,
                          cwd=REPO, timeout=timeout, input=stdin)


def lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def photo(synth_dataset) -> Path:
    return sorted(Path(synth_dataset).glob("*.jpg"))[0]


def start_fake_server(*args: str) -> tuple[subprocess.Popen, str]:
    """``python -m agent fake-server ARGS`` in the background, and the URL it prints first."""
    server = subprocess.Popen([sys.executable, "-m", "agent", "fake-server", "--port", "0", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO)
    url = server.stdout.readline().strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url), (url, server.stderr.read() if server.poll() else "")
    return server, url


@pytest.fixture
def fake_server() -> Iterator[tuple[subprocess.Popen, str]]:
    server, url = start_fake_server()
    try:
        yield server, url
    finally:
        server.terminate()
        server.wait(timeout=30)


def ask(url: str, photo: Path, index_dir: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return agent("ask", "--api-base", url, "--index", str(index_dir), "--traces-dir", str(tmp_path / "traces"),
                 "--image", str(photo), "¿Tiene rayones en el capó?", *extra)


def test_ask_end_to_end_against_the_fake_server(fake_server, photo, synth_index_dir, tmp_path):
    server, url = fake_server
    result = ask(url, photo, synth_index_dir, tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] and report["damage_detected"] and report["tool_calls"] == 1
    assert report["findings"][0]["label"]["key"] == "scratch" and len(report["examples_used"]) == 3
    assert "servidor de prueba" in report["answer"]  # canned, in the question's language
    assert Path(report["trace"]).is_file() and Path(report["trace"]).is_relative_to(tmp_path)

    readable = ask(url, photo, synth_index_dir, tmp_path, "-v", "--mode", "rag")  # -v after the sub-command
    assert readable.returncode == 0, readable.stderr
    assert "servidor de prueba" in readable.stdout and "damage detected" in readable.stderr
    server.terminate()
    _, said = server.communicate(timeout=30)
    assert "request 1: tool call search_similar_damage" in said and "stopped" in said


@pytest.mark.skipif(not hasattr(DamageReport, "to_simple"), reason="DamageReport.to_simple() is not there yet")
def test_ask_simple_prints_the_short_shape(fake_server, photo, synth_index_dir, tmp_path):
    _, url = fake_server
    result = ask(url, photo, synth_index_dir, tmp_path, "--simple", "--mode", "rag")
    assert result.returncode == 0, result.stderr
    simple = json.loads(result.stdout)
    assert list(simple) == ["damage_detected", "damage_type", "location", "confidence", "similar_examples_used",
                            "analysis"]
    assert simple["damage_detected"] is True and simple["damage_type"] == "scratch"
    assert simple["similar_examples_used"] == 3 and "servidor de prueba" in simple["analysis"]


def test_chat_against_the_fake_server(fake_server, photo, synth_index_dir, tmp_path):
    _, url = fake_server
    stdin = f"/photo {photo}\n¿Tiene rayones?\n¿Dónde?\n/quit\n"
    result = agent("chat", "--api-base", url, "--index", str(synth_index_dir), "--traces-dir",
                   str(tmp_path / "traces"), stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("servidor de prueba") == 2 and "warning" not in result.stderr


@pytest.mark.parametrize("scenario, expect", [("invalid", "no valid answer"), ("hermes", "damage detected")])
def test_other_scenarios(scenario, expect, photo, synth_index_dir, tmp_path):
    server, url = start_fake_server("--scenario", scenario)
    try:
        result = ask(url, photo, synth_index_dir, tmp_path, "--mode", "agentic")
    finally:
        server.terminate()
        _, said = server.communicate(timeout=30)
    assert result.returncode == 0, result.stderr
    assert expect in result.stderr
    if scenario == "hermes":
        assert "HTTP 400" in said and "<tool_call> text" in said


def test_an_endpoint_that_is_down_is_one_fast_line_saying_what_to_do(photo, synth_index_dir, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    result = ask(url, photo, synth_index_dir, tmp_path)
    seconds = time.monotonic() - started
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
    (line,) = lines(result.stderr)
    assert url in line and "unreachable" in line and UNREACHABLE_HINT in line
    assert "--api-base" in line and "VLM_API_BASE" in line and "docs/serving.md" in line and "fake-server" in line
    assert seconds < 30 and not (tmp_path / "traces").exists()  # nothing loaded, nothing asked
    chat = agent("chat", "--api-base", url, "--index", str(synth_index_dir), "--traces-dir", str(tmp_path / "t"),
                 stdin="/quit\n")
    assert chat.returncode == 0 and "warning" in chat.stderr and "fake-server" in chat.stderr


def test_a_busy_port_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = agent("fake-server", "--port", str(taken.getsockname()[1]), timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = lines(result.stderr)
    assert "Cannot listen" in line and "--port" in line


def test_version_help_and_flags():
    from index.console import package_version

    version = agent("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"python -m agent {package_version()}"
    top = agent("--help").stdout
    assert all(command in top for command in COMMANDS)
    for command in COMMANDS:
        text = agent(command, "--help").stdout
        assert "example:" in text or "examples:" in text, command
        assert "``" not in text and not re.search(r":(class|func|mod|data|meth):", text), command
        assert "-v, --verbose" in text, command
    ask_help = agent("ask", "--help").stdout
    assert "(default: configs/vehicle_damage.yaml)" in ask_help and "$VLM_API_BASE" in ask_help
    assert "http://localhost:8000/v1" in ask_help and "--index INDEX_DIR" in ask_help and "--simple" in ask_help
    eval_help = agent("eval", "--help").stdout
    assert "--cache-dir" in eval_help and "--index-root" not in eval_help and "(default: 100)" not in eval_help
    assert "(default 100)" in eval_help


def test_eval_takes_cache_dir_and_its_old_name(tmp_path):
    from agent.cli import build_parser
    from agent.cli.evaluation import options_from_args

    for flag in ("--cache-dir", "--index-root"):
        args = build_parser().parse_args(["eval", flag, str(tmp_path)])
        assert options_from_args(args).index_root == tmp_path
    assert build_parser().parse_args(["eval", "-vv"]).verbose == 2
    assert build_parser().parse_args(["-v", "eval"]).verbose == 1
