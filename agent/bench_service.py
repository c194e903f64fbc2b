"""``python -m agent bench --service``: what the HTTP service adds around the engine, under load.

The service (``python -m agent serve``) runs in a subprocess on a synthetic index, in front of
the fake model server answering instantly, and receives ``requests`` questions at once, half
through ``POST /v1/inspect`` (multipart upload) and half through the OpenAI-compatible
``POST /v1/chat/completions`` (a data-URI image part). Each question carries its own tag,
which the fake model echoes in its answer, so the checks can tell a mixed-up reply or trace:
every request answered with its own tag, every ``X-Trace-Id`` distinct and naming a trace whose
question and report carry that tag.

Figures, side by side: latency p50 / p95 and throughput through the service, the same questions
asked of a :class:`~agent.engine.DamageQueryEngine` in-process with the same concurrency (the
baseline), and the service's overhead per request: its latency minus the engine's own time
(``report.timings.total_s``, read back from the request's trace).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger(__name__)

QUESTION = "¿Qué daños tiene el vehículo?"
_TAG = re.compile(r"\[req-\d+\]")


def tag(number: int) -> str:
    """The tag of the ``number``-th question, echoed by the fake model in its answer."""
    return f"[req-{number:03d}]"


def echo_responder(body: dict[str, Any]) -> Any:
    """The fake model of the benchmark: one ``search_similar_damage`` call when offered tools,
    then the canned answer carrying the tag of the question it was asked."""
    from agent.testing import Reply
    from agent.testing.scenarios import canned_answer

    texts = []
    for message in body.get("messages") or []:
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"text": content}]
        texts += [str(p.get("text") or "") for p in parts if isinstance(p, dict) and message.get("role") == "user"]
    found = next((m.group(0) for text in texts if (m := _TAG.search(text))), "[req-none]")
    if body.get("tools") and not any(m.get("role") == "tool" for m in body.get("messages") or []):
        return Reply.tool_calls([("search_similar_damage", {"k": 3})])
    answer = canned_answer(QUESTION)
    answer["answer"] = f"{answer['answer']} {found}"
    return Reply.json(answer)


class ServiceProcess:
    """``python -m agent serve`` in a subprocess on a free port, until :meth:`stop`.

    Its first stdout line is its URL; :meth:`start` waits for it and for ``/readyz`` to answer
    200. stderr goes to ``log`` (quoted when it fails to start).
    """

    def __init__(self, config: Path, index_dir: Path, api_base: str | None, traces_dir: Path | None, log: Path,
                 env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> None:
        """``api_base`` and ``traces_dir`` override the config's when given."""
        overrides = [*(["--api-base", api_base] if api_base else []),
                     *(["--traces-dir", str(traces_dir)] if traces_dir else [])]
        self.args = [sys.executable, "-m", "agent", "serve", "--config", str(config), "--index", str(index_dir),
                     *overrides, "--host", "127.0.0.1", "--port", "0", *(extra_args or [])]
        self.env, self.log = env, Path(log)
        self.process: subprocess.Popen | None = None
        self.base_url = ""

    def start(self, timeout: float = 180.0, headers: dict[str, str] | None = None) -> ServiceProcess:
        """Start it and wait until it is ready.

        Raises:
            RuntimeError: If it exits or is not ready within ``timeout`` seconds (with its log's tail).
        """
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as err:
            self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=err, env=self.env, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not lines or not lines[0].startswith("http"):
            self._fail(f"printed no URL within {timeout:g} s")
        self.base_url = lines[0].strip()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.base_url + "/readyz", headers=headers, timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._fail(f"was not ready within {timeout:g} s")
            time.sleep(0.2)

    def _fail(self, what: str) -> None:
        self.stop()
        tail = self.log.read_text(errors="replace")[-1500:] if self.log.is_file() else ""
        raise RuntimeError(f"`{' '.join(self.args[1:5])} ...` {what} (exit {self.process.poll()}); its log "
                           f"{self.log}:\n{tail}")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prepare(work: Path, photos: int = 8, size: tuple[int, int] = (4000, 3000),
            overrides: dict[str, Any] | None = None) -> tuple[Path, Path, list[Path]]:
    """A synthetic dataset, a tiny-DINOv2 index over it and a config YAML for the service.

    Reused when ``work`` already holds them (the build is incremental). Returns ``(config file, index dir, photos)``.
    """
    import yaml

    from index.build import build_index
    from index.config import DEFAULT_CONFIG, apply_overrides, load_config
    from index.embedders.tiny import save_tiny_dinov2
    from index.synth import synthesize_labelme

    data = work / "photos"
    if not any(data.glob("*.json")):
        synthesize_labelme(data, photos, size=size, seed=5)
    model = save_tiny_dinov2(work / "tiny-dinov2")
    config = apply_overrides(load_config(DEFAULT_CONFIG), {
        "dataset.root": str(data), "embedder.model": str(model), "agent.traces_dir": str(work / "traces"),
        "model.max_retries": 0, **(overrides or {})})
    build_index(config, index_dir=work / "index")  # incremental: a rerun on the same workdir re-embeds nothing
    path = work / "service.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path, work / "index", sorted(data.glob("*.jpg"))


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0–100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Outcome:
    """One request through the service: what was asked, how long it took, what came back."""

    number: int
    route: str
    seconds: float
    status: int
    answer: str = ""
    trace_id: str = ""
    engine_s: float | None = None
    problems: list[str] = field(default_factory=list)


async def _ask(client: httpx.AsyncClient, number: int, route: str, photo: bytes, mode: str) -> Outcome:
    question = f"{QUESTION} {tag(number)}"
    started = time.perf_counter()
    if route == "inspect":
        response = await client.post("/v1/inspect", files={"photo": ("photo.jpg", photo, "image/jpeg")},
                                     data={"question": question, "mode": mode})
    else:
        uri = "data:image/jpeg;base64," + base64.b64encode(photo).decode()
        response = await client.post("/v1/chat/completions", json={"model": f"damage-rag:{mode}", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri}},
                                         {"type": "text", "text": question}]}]})
    outcome = Outcome(number, route, time.perf_counter() - started, response.status_code,
                      trace_id=response.headers.get("x-trace-id", ""))
    if response.status_code != 200:
        outcome.problems.append(f"HTTP {response.status_code}: {response.text[:200]}")
        return outcome
    body = response.json()
    outcome.answer = body["answer"] if route == "inspect" else body["choices"][0]["message"]["content"]
    return outcome


async def _check_trace(client: httpx.AsyncClient, outcome: Outcome) -> None:
    """Read the request's trace back: its question and its report must carry the request's tag."""
    own = tag(outcome.number)
    if own not in outcome.answer:
        outcome.problems.append(f"answer without its tag {own}: {outcome.answer[-60:]!r}")
    if not outcome.trace_id:
        outcome.problems.append("no X-Trace-Id header")
        return
    response = await client.get(f"/v1/traces/{outcome.trace_id}")
    if response.status_code != 200:
        outcome.problems.append(f"trace {outcome.trace_id}: HTTP {response.status_code}")
        return
    events = response.json()["events"]
    report = next((e["report"] for e in events if e.get("type") == "report"), {})
    if own not in str(events[0].get("question", "")) or own not in str(report.get("answer", "")):
        outcome.problems.append(f"trace {outcome.trace_id} is another request's")
    outcome.engine_s = (report.get("timings") or {}).get("total_s")


async def _service_load(base_url: str, photos: list[bytes], requests: int, sequential: int,
                        mode: str) -> tuple[list[Outcome], float, list[Outcome]]:
    """``requests`` questions at once, then ``sequential`` one at a time; every answer and trace checked."""
    limits = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
    async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as client:
        await _ask(client, 0, "inspect", photos[0], mode)  # warm-up: the embedder's first call, connections
        started = time.perf_counter()
        load = await asyncio.gather(*(
            _ask(client, n, "inspect" if n % 2 else "chat", photos[n % len(photos)], mode)
            for n in range(1, requests + 1)))
        wall = time.perf_counter() - started
        alone = [await _ask(client, n, "inspect" if n % 2 else "chat", photos[n % len(photos)], mode)
                 for n in range(requests + 1, requests + 1 + sequential)]
        await asyncio.gather(*(_check_trace(client, o) for o in [*load, *alone] if o.status == 200))
    return list(load), wall, alone


async def _engine_load(engine: Any, photos: list[bytes], requests: int, sequential: int, concurrency: int,
                       mode: str) -> tuple[list[tuple[float, float]], float, list[tuple[float, float]]]:
    """The same questions in-process: ``(latency, engine's total_s)`` at once (``concurrency`` in
    flight, the rest waiting as in the service's queue) and one at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(number: int) -> tuple[float, float]:
        started = time.perf_counter()
        async with gate:
            report = await engine.aquery(photos[number % len(photos)], f"{QUESTION} {tag(number)}", mode=mode)
        if tag(number) not in report.answer:
            raise RuntimeError(f"in-process query {number} got another answer: {report.answer[-60:]!r}")
        return time.perf_counter() - started, report.timings["total_s"]

    await one(0)  # warm-up
    started = time.perf_counter()
    load = await asyncio.gather(*(one(n) for n in range(1, requests + 1)))
    wall = time.perf_counter() - started
    alone = [await one(n) for n in range(requests + 1, requests + 1 + sequential)]
    return list(load), wall, alone


def _stats(seconds: list[float], wall: float | None = None) -> dict[str, float | None]:
    """p50 and p95 in milliseconds (None without values), and the throughput over ``wall``."""
    row: dict[str, float | None] = {
        "p50_ms": round(percentile(seconds, 50) * 1000, 1) if seconds else None,
        "p95_ms": round(percentile(seconds, 95) * 1000, 1) if seconds else None}
    if wall:
        row["throughput_rps"] = round(len(seconds) / wall, 2)
    return row


def _figures(outcomes: list[Outcome], engine: list[tuple[float, float]], wall: float | None,
             engine_wall: float | None) -> dict[str, Any]:
    """Latency per route and in-process, and latency minus the engine's own time for both."""
    def minus_engine(route: str | None) -> list[float]:
        return [o.seconds - o.engine_s for o in outcomes
                if o.engine_s is not None and route in (None, o.route)]

    return {"service": _stats([o.seconds for o in outcomes], wall),
            "inspect": _stats([o.seconds for o in outcomes if o.route == "inspect"]),
            "chat": _stats([o.seconds for o in outcomes if o.route == "chat"]),
            "in_process": _stats([latency for latency, _ in engine], engine_wall),
            "service_minus_engine": _stats(minus_engine(None)),
            "inspect_minus_engine": _stats(minus_engine("inspect")),
            "chat_minus_engine": _stats(minus_engine("chat")),
            "in_process_minus_engine": _stats([latency - own for latency, own in engine])}


def run_service_benchmark(requests: int = 50, concurrency: int = 4, mode: str = "agentic", sequential: int = 10,
                          workdir: Path | None = None, photo_size: tuple[int, int] = (4000, 3000),
                          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Load the service with ``requests`` questions at once and compare it with the engine in-process.

    Args:
        requests: Questions sent at once (half /v1/inspect, half /v1/chat/completions).
        concurrency: Questions the service answers at once (``service.max_concurrent``; the rest
            queue, ``service.max_queue`` = ``requests``); the in-process baseline runs as many.
        mode: The engine's mode for every question.
        sequential: Questions then asked one at a time, for the overhead with no queue.
        workdir: Where the synthetic photos, tiny model, index and traces live (default: a temp dir).
        photo_size: Size of the synthetic photos (default: the user's 12 MP).
        progress: Called with a line as each phase starts.

    Returns:
        ``load`` and ``one_at_a_time`` figures (p50/p95 ms, throughput), and ``checks``.
    """
    from agent.engine import DamageQueryEngine
    from agent.testing import FakeOpenAIServer
    from index.config import apply_overrides, load_config

    say = progress or (lambda line: logger.info("%s", line))
    work = Path(workdir or tempfile.mkdtemp(prefix="agent-bench-service-"))
    say(f"preparing the synthetic index in {work}")
    config_path, index_dir, photo_paths = prepare(work, size=photo_size, overrides={
        "service.max_concurrent": concurrency, "service.max_queue": requests})
    photos = [p.read_bytes() for p in photo_paths]
    result: dict[str, Any] = {"requests": requests, "concurrency": concurrency, "mode": mode, "sequential": sequential,
                              "photo_size": list(photo_size), "photo_kb": round(statistics.mean(map(len, photos)) / 1024)}
    with FakeOpenAIServer() as fake:
        fake.responder = echo_responder
        say("starting python -m agent serve")
        env = {k: v for k, v in os.environ.items() if k != load_config(config_path).service.api_key_env}  # no token
        with ServiceProcess(config_path, index_dir, fake.base_url, work / "traces", work / "service.log",
                            env=env) as service:
            say(f"{requests} requests at once to {service.base_url}, then {sequential} one at a time")
            load, wall, alone = asyncio.run(_service_load(service.base_url, photos, requests, sequential, mode))
        say("the same questions asked of the engine in-process")
        engine = DamageQueryEngine(apply_overrides(load_config(config_path), {"model.api_base": fake.base_url}),
                                   index_dir=index_dir)
        engine_load, engine_wall, engine_alone = asyncio.run(
            _engine_load(engine, photos, requests, sequential, concurrency, mode))
    result["load"] = _figures(load, engine_load, wall, engine_wall)
    result["one_at_a_time"] = _figures(alone, engine_alone, None, None)
    everything = [*load, *alone]
    answered = [o for o in everything if o.status == 200]
    problems = [f"request {o.number} ({o.route}): {p}" for o in everything for p in o.problems]
    result["checks"] = {"sent": len(everything), "answered": len(answered),
                        "own_answer_and_trace": sum(1 for o in answered if not o.problems),
                        "distinct_trace_ids": len({o.trace_id for o in answered if o.trace_id}),
                        "problems": problems[:20], "pass": not problems and len(answered) == len(everything)}
    return result


def _line(name: str, row: dict[str, Any], note: str = "") -> str:
    def ms(value: float | None) -> str:
        return f"{value:9.1f}" if value is not None else f"{'-':>9s}"

    rate = f"{row['throughput_rps']:8.2f}" if "throughput_rps" in row else f"{'':8s}"
    return f"  {name:34s} {ms(row['p50_ms'])} {ms(row['p95_ms'])} {rate}{'   ' + note if note else ''}"


def format_service_table(result: dict[str, Any]) -> str:
    """The service's figures beside the in-process baseline, then the checks."""
    width, height = result["photo_size"]
    lines = [f"agent serve: {result['requests']} requests at once, then {result['sequential']} one at a time (half "
             f"/v1/inspect, half /v1/chat/completions); service.max_concurrent {result['concurrency']}, mode "
             f"{result['mode']}, instant fake model, {width}x{height} photos (~{result['photo_kb']} KB)",
             f"  {'':34s} {'p50 ms':>9s} {'p95 ms':>9s} {'req/s':>8s}"]
    for title, key in ((f"{result['requests']} at once", "load"), ("one at a time", "one_at_a_time")):
        figures = result[key]
        lines += [f" {title}",
                  _line("service, all requests", figures["service"]),
                  _line("  POST /v1/inspect", figures["inspect"]),
                  _line("  POST /v1/chat/completions", figures["chat"]),
                  _line("in-process engine (baseline)", figures["in_process"]),
                  _line("service minus engine's own time", figures["service_minus_engine"],
                        "HTTP, upload, checks" + (", queue" if key == "load" else "")),
                  _line("  /v1/inspect", figures["inspect_minus_engine"]),
                  _line("  /v1/chat/completions", figures["chat_minus_engine"]),
                  _line("in-process minus engine's own time", figures["in_process_minus_engine"],
                        "queue" if key == "load" else "")]
    checks = result["checks"]
    lines.append(f"checks: {checks['answered']}/{checks['sent']} answered, {checks['own_answer_and_trace']} with "
                 f"their own answer and trace, {checks['distinct_trace_ids']} distinct trace ids: "
                 + ("PASS" if checks["pass"] else "FAIL"))
    lines += [f"  {problem}" for problem in checks["problems"]]
    return "\n".join(lines)
