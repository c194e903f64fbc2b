"""The service's parts without a server: how a chat request is read, the queue's gate, the
statuses errors get, and the checks on request values (no subprocess, milliseconds each)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from agent.endpoint_errors import ModelEndpointError, ModelRequestRejected, Problem, ServerAnswer
from agent.service.errors import ServiceError, status_of
from agent.service.openai_door import Unsupported, engine_chat
from agent.service.state import InferenceGate
from agent.service.traces import checked_trace_id
from agent.service.uploads import decode_image_field
from index.index_dir import IndexNotFoundError
from index.taxonomy import UnknownLabelError
from index.vector_store.store_errors import VectorStoreFileError
from tests.agent.service.running import data_uri, user_message

LIMITS = {"max_upload_mb": 5, "max_pixels": 50_000_000}


def test_a_chat_request_is_read_as_photo_question_mode_and_history(photo):
    chat = engine_chat({"model": "damage-rag:rag", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"}, user_message("Any dent?", data_uri(photo))]}, LIMITS)
    assert chat.photo == photo.read_bytes() and chat.question == "Any dent?" and chat.mode == "rag"
    assert [m.role.value for m in chat.history] == ["user", "assistant"]
    assert engine_chat({"model": "damage-rag", "messages": [user_message("x", data_uri(photo))]}, LIMITS).mode is None


@pytest.mark.parametrize(("body", "code"), [
    ({"model": "other", "messages": []}, "model_not_found"),
    ({"model": "damage-rag", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
     "tools_not_supported"),
    ({"model": "damage-rag", "messages": [{"role": "assistant", "content": "x"}]}, "unsupported_request"),
    ({"model": "damage-rag", "messages": [{"role": "tool", "content": "x"}, {"role": "user", "content": [
        {"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "PHOTO"}}]}]}, "unsupported_role"),
])
def test_what_the_engine_cannot_answer_is_unsupported(photo, body, code):
    for message in body["messages"]:
        if isinstance(message["content"], list):
            message["content"][1]["image_url"]["url"] = data_uri(photo)
    with pytest.raises(Unsupported) as caught:
        engine_chat(body, LIMITS)
    assert caught.value.code == code


def test_a_broken_request_for_the_engine_is_an_error_not_unsupported(photo):
    with pytest.raises(ServiceError) as caught:
        engine_chat({"model": "damage-rag", "messages": [user_message("  ", data_uri(photo))]}, LIMITS)
    assert caught.value.code == "missing_question" and not isinstance(caught.value, Unsupported)
    with pytest.raises(ServiceError) as caught:
        engine_chat({"model": "damage-rag", "messages": [user_message("x", "data:image/png;base64,aGVsbG8=")]}, LIMITS)
    assert caught.value.status == 415


def test_the_gate_admits_concurrent_plus_queue_then_refuses_at_once():
    async def run() -> tuple[list[int], ServiceError]:
        gate = InferenceGate(max_concurrent=2, max_queue=1, retry_after_s=3)
        release = asyncio.Event()
        peak = []

        async def hold() -> None:
            async with gate.slot():
                peak.append(gate.running)
                await release.wait()

        tasks = [asyncio.create_task(hold()) for _ in range(3)]
        await asyncio.sleep(0.01)
        assert (gate.running, gate.waiting) == (2, 1)
        with pytest.raises(ServiceError) as refused:
            gate.slot()
        release.set()
        await asyncio.gather(*tasks)
        assert (gate.running, gate.waiting) == (0, 0)
        return peak, refused.value

    peak, refused = asyncio.run(run())
    assert max(peak) == 2 and refused.status == 503 and refused.headers == {"Retry-After": "3"}


@pytest.mark.parametrize(("exc", "status"), [
    (ModelEndpointError("x", ServerAnswer(Problem.UNREACHABLE, None, "refused")), 503),
    (ModelEndpointError("x", ServerAnswer(Problem.TIMEOUT, None, "slow")), 504),
    (ModelEndpointError("x", ServerAnswer(Problem.SERVER, 500, "boom")), 502),
    (ModelRequestRejected("x", ServerAnswer(Problem.AUTH, 401, "key")), 502),
    (IndexNotFoundError("no index"), 503),
    (VectorStoreFileError("corrupt metadata"), 503),
    (UnknownLabelError("no such label"), 400),
    (ServiceError(413, "big"), 413),
    (RuntimeError("a bug"), 500),
])
def test_errors_get_their_status(exc, status):
    assert status_of(exc)[0] == status


def test_request_values_never_become_paths_or_fetches():
    for bad in ("../../etc/passwd", "20260101-120000-a1b2c3/../x", "20260101-120000-A1B2C3", ""):
        with pytest.raises(ServiceError):
            checked_trace_id(bad)
    assert checked_trace_id("20260101-120000-a1b2c3") == "20260101-120000-a1b2c3"
    for url in ("https://example.com/a.jpg", "file:///etc/passwd", "HTTP://x/y.png"):
        with pytest.raises(ServiceError, match="never fetches URLs"):
            decode_image_field(url)
    wrapped = base64.encodebytes(b"\x89PNG" * 50).decode()  # MIME-style lines
    assert decode_image_field(wrapped) == b"\x89PNG" * 50
    assert decode_image_field("data:image/png;base64," + base64.b64encode(b"abc").decode()) == b"abc"


def _app(tmp_path, **overrides):
    from fastapi.testclient import TestClient

    from agent.engine import DamageQueryEngine
    from agent.service import create_app
    from index.config import apply_overrides, load_config
    from tests.fixtures.paths import VEHICLE_CONFIG

    config = apply_overrides(load_config(VEHICLE_CONFIG), {
        "model.api_base": "http://127.0.0.1:9/v1", "agent.traces_dir": str(tmp_path / "traces"), **overrides})
    return TestClient(create_app(DamageQueryEngine(config, index_dir=tmp_path / "no-index")))


def test_readyz_says_in_one_line_why_not(tmp_path):
    import time

    with _app(tmp_path) as client:  # agentic: the index is needed, and there is none
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 30
        while "still loading" in (message := client.get("/readyz").json()["error"]["message"]) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "no-index" in message and "\n" not in message
        assert str(tmp_path) not in message  # the index by name, never its path on the server
    with _app(tmp_path, **{"agent.mode": "zero-shot"}) as client:  # no index needed; nothing listens on port 9
        response = client.get("/readyz")
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert "http://127.0.0.1:9/v1 is unreachable" in response.json()["error"]["message"]


def test_a_caller_that_goes_away_gives_its_slot_back():
    from agent.service.state import ServiceState

    class Engine:  # answers after a long time; records cancellation
        config = None
        cancelled = 0

        async def aquery(self, photo, question, **kwargs):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                Engine.cancelled += 1
                raise

    async def run() -> tuple[int, int, int]:
        state = ServiceState.__new__(ServiceState)  # the parts ask() uses, without a real engine
        state.engine, state.gate = Engine(), InferenceGate(1, 1, 1)
        state.needs_index = lambda mode: False
        state.loop = type("Direct", (), {"run": staticmethod(lambda coro: coro)})()
        gone = asyncio.Event()

        async def disconnected() -> bool:
            return gone.is_set()

        asking = [asyncio.create_task(state.ask(b"", "q", mode=None, disconnected=disconnected)) for _ in range(2)]
        await asyncio.sleep(0.05)
        busy = (state.gate.running, state.gate.waiting)
        gone.set()
        results = await asyncio.gather(*asking, return_exceptions=True)
        assert all(isinstance(r, ServiceError) and r.status == 499 for r in results)
        return *busy, state.gate.running + state.gate.waiting

    running, waiting, left = asyncio.run(run())
    assert (running, waiting, left) == (1, 1, 0) and Engine.cancelled == 1


@pytest.mark.parametrize(("body", "param"), [
    ({"model": ["damage-rag"], "messages": []}, "model"),
    ({"model": {"x": 1}, "messages": []}, "model"),
    ({"model": "damage-rag", "messages": ["hello"]}, "messages"),
    ({"model": "damage-rag", "messages": [{"content": "no role"}, {"role": "user", "content": "x"}]}, "messages"),
    ({"model": "other", "messages": [None]}, "messages"),
])
def test_a_malformed_chat_request_is_a_400_not_a_crash_nor_passed_through(body, param):
    with pytest.raises(ServiceError) as caught:
        engine_chat(body, LIMITS)
    assert caught.value.status == 400 and caught.value.param == param and not isinstance(caught.value, Unsupported)


def test_trace_events_show_base_names_never_server_paths():
    from agent.service.public import Redactor

    redact = Redactor(folders=(("/srv/data/index-v2", "index-v2"),))
    events = [{"type": "query", "question": "Any dent?", "photo": "/home/u/photos/car.jpg"},
              {"type": "photo", "photo_copy": "/srv/traces/20260101-120000-a1b2c3/query.jpg"},
              {"type": "images_sent", "images": [{"path": "/srv/traces/x/img1-0.jpg", "caption": "r-1"}]},
              {"type": "tool_call", "result": {"hits": [{"crop_path": "crops/r-1.jpg",
                                                         "source_image": "C:\\data\\img\\a.jpg"}]},
               "error": "No index at /srv/data/index-v2/manifest.json."}]
    public = redact.events(events)
    assert public[0] == {"type": "query", "question": "Any dent?", "photo": "car.jpg"}
    assert public[1]["photo_copy"] == "query.jpg" and public[2]["images"][0] == {"path": "img1-0.jpg", "caption": "r-1"}
    assert public[3]["result"]["hits"][0] == {"crop_path": "r-1.jpg", "source_image": "a.jpg"}
    assert public[3]["error"] == "No index at index-v2/manifest.json."
    for_page = redact.events(events, keep_files=True)  # the page reads the images, prints no path
    assert for_page[1]["photo_copy"] == events[1]["photo_copy"] and for_page[0]["photo"] == "car.jpg"
    assert for_page[2]["images"][0]["path"] == events[2]["images"][0]["path"]


def test_service_messages_name_folders_and_mask_the_qdrant_key(tmp_path, monkeypatch):
    from agent.engine import DamageQueryEngine
    from agent.service.public import Redactor
    from index.config import apply_overrides, load_config
    from tests.fixtures.paths import VEHICLE_CONFIG

    monkeypatch.setenv("QDRANT_API_KEY", "qdrant-secret-key-123")
    config = apply_overrides(load_config(VEHICLE_CONFIG), {"agent.traces_dir": str(tmp_path / "traces")})
    redact = Redactor.for_engine(DamageQueryEngine(config, index_dir=tmp_path / "idx"))
    line = redact(f"No index at {tmp_path / 'idx' / 'manifest.json'}; Qdrant refused key qdrant-secret-key-123.")
    assert line == "No index at idx/manifest.json; Qdrant refused key ***."


def test_the_upload_pixel_limit_is_the_services(tmp_path):
    from PIL import Image

    from agent.service.uploads import check_photo, upload_limits
    from index.config import apply_overrides, load_config
    from tests.fixtures.paths import VEHICLE_CONFIG

    config = load_config(VEHICLE_CONFIG)
    assert config.service.max_upload_pixels == 40_000_000
    big = tmp_path / "big.png"
    Image.new("1", (8000, 5100)).save(big)  # 40.8 MP, a few KB
    with pytest.raises(ServiceError) as caught:
        check_photo(big.read_bytes(), what="photo", **upload_limits(config))
    assert caught.value.status == 400 and "service.max_upload_pixels allows 40 MP" in str(caught.value)
    lower = apply_overrides(config, {"dataset.max_image_pixels": 4_000_000})
    assert upload_limits(lower)["pixels_setting"] == "dataset.max_image_pixels"
    check_photo(big.read_bytes(), what="photo", **upload_limits(apply_overrides(
        config, {"service.max_upload_pixels": 50_000_000})))


def test_starlettes_own_refusals_are_openai_style_errors(tmp_path):
    with _app(tmp_path, **{"agent.mode": "zero-shot"}) as client:
        no_boundary = client.post("/v1/inspect", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"})
        wrong_method = client.delete("/v1/inspect")
    error = no_boundary.json()["error"]
    assert no_boundary.status_code == 400 and "detail" not in no_boundary.json()
    assert error["message"].startswith("POST /v1/inspect: ") and "boundary" in error["message"].lower()
    assert "\n" not in error["message"] and error["type"] == "invalid_request_error"
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["message"] == "No route DELETE /v1/inspect."
