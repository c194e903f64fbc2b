"""``POST /v1/inspect`` as curl sends it (multipart) or a script (JSON), the bad uploads, the
bearer token, the examples and the traces, over real HTTP against ``agent serve``."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.agent.service.running import SERVICE_TOKEN, data_uri, one_line_error

QUESTION = "¿Tiene rayones en el capó?"


def png(width: int, height: int, noise: bool = True, mode: str = "RGB") -> bytes:
    """A PNG: random noise (incompressible, so its size is about 3 bytes a pixel) or blank."""
    if noise:
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8))
    else:
        image = Image.new(mode, (width, height))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_multipart_upload_answers_the_ask_json_report(service, fake, photo):
    with service.client() as http:
        response = http.post("/v1/inspect", files={"photo": (photo.name, photo.read_bytes(), "image/jpeg")},
                             data={"question": QUESTION, "mode": "rag"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert response.headers["x-trace-id"] == report["trace_id"]
    expected = {"damage_detected", "findings", "answer", "examples_used", "examples_cited", "mode", "model",
                "trace_id", "question", "tool_calls", "valid", "error", "raw_text", "repairs", "timings", "usage",
                "trace", "trace_error"}
    assert set(report) == expected  # agent ask --json: the report's fields, plus trace and trace_error
    assert report["mode"] == "rag" and report["question"] == QUESTION and report["examples_used"]
    assert report["trace"] == f"/v1/traces/{report['trace_id']}" and report["trace_error"] is None
    assert report["findings"][0]["label"]["key"] == "scratch"


def test_json_body_with_a_data_uri_or_bare_base64_and_the_simple_shape(service, fake, photo):
    with service.client() as http:
        simple = http.post("/v1/inspect?simple=1", json={"image": data_uri(photo), "question": "Any damage?",
                                                         "mode": "zero-shot"})
        bare = http.post("/v1/inspect", json={"image": base64.b64encode(photo.read_bytes()).decode(),
                                              "question": "Any damage?", "mode": "zero-shot"})
    assert simple.status_code == 200, simple.text
    assert simple.json() == {"damage_detected": True, "damage_type": "scratch", "location": "door",
                             "confidence": 0.8, "similar_examples_used": 0, "analysis": simple.json()["analysis"]}
    assert bare.status_code == 200 and bare.json()["mode"] == "zero-shot"


def test_a_label_is_named_in_the_question_so_rag_retrieves_it(service, fake, photo):
    with service.client() as http:
        report = http.post("/v1/inspect", files={"photo": ("p.jpg", photo.read_bytes())},
                           data={"question": "Is there anything here?", "mode": "rag", "label": "abolladura"}).json()
        trace = http.get(f"/v1/traces/{report['trace_id']}").json()["events"]
    (search,) = [e for e in trace if e["type"] == "tool_call"]
    assert search["arguments"]["label"] == "dent"
    assert all("dent" in hit["labels"] for hit in search["result"]["hits"])


@pytest.mark.parametrize(("upload", "status", "said"), [
    (b"this is not an image at all", 415, "is not an image"),
    (png(820, 600), 413, "service.max_upload_mb allows 1 MB"),  # about 1.5 MB: the photo check
    (png(1400, 1000), 413, "The request body is"),  # about 4.2 MB: refused by its Content-Length
    (png(3000, 2000, noise=False, mode="1"), 400, "dataset.max_image_pixels allows 4 MP"),
    (b"", 400, "is empty"),
])
def test_bad_uploads_get_one_line(service, fake, upload, status, said):
    with service.client() as http:
        response = http.post("/v1/inspect", files={"photo": ("x.png", upload)}, data={"question": "Any damage?"})
    assert said in one_line_error(response, status)
    assert fake.chat_requests == []  # refused before anything else


def test_a_truncated_jpeg_is_refused(service, fake, photo):
    with service.client() as http:
        response = http.post("/v1/inspect", files={"photo": ("x.jpg", photo.read_bytes()[:20000])},
                             data={"question": "Any damage?"})
    assert "truncated" in one_line_error(response, 400)


@pytest.mark.parametrize(("fields", "said"), [
    ({}, "has no question"), ({"question": "   "}, "has no question"),
    ({"question": "x", "mode": "psychic"}, "Unknown mode 'psychic'"),
    ({"question": "x", "label": "rust"}, "Unknown label 'rust'"),
])
def test_missing_question_or_bad_fields_get_one_line(service, fake, photo, fields, said):
    with service.client() as http:
        response = http.post("/v1/inspect", files={"photo": ("p.jpg", photo.read_bytes())}, data=fields)
    assert said in one_line_error(response, 400)


def test_json_body_errors_get_one_line(service, fake):
    with service.client() as http:
        assert "has no photo" in one_line_error(http.post("/v1/inspect", json={"question": "x"}), 400)
        assert "never fetches URLs" in one_line_error(
            http.post("/v1/inspect", json={"image": "http://example.com/a.jpg", "question": "x"}), 400)
        assert "neither base64" in one_line_error(http.post("/v1/inspect", json={"image": "@@@", "question": "x"}), 400)
        assert "not JSON" in one_line_error(
            http.post("/v1/inspect", content=b"{", headers={"Content-Type": "application/json"}), 400)


def test_every_v1_route_wants_the_token(service, fake, photo):
    with httpx.Client(base_url=service.url, timeout=30) as http:
        for method, path in [("GET", "/v1/models"), ("GET", "/v1/traces"), ("POST", "/v1/inspect"),
                             ("POST", "/v1/chat/completions"), ("GET", "/v1/examples/x")]:
            assert "bearer token" in one_line_error(http.request(method, path), 401)
        wrong = http.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert "not this service's" in one_line_error(wrong, 401) and SERVICE_TOKEN not in wrong.text
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").json()["auth"] is True
        assert http.get("/openapi.json").json()["paths"]["/v1/inspect"]["post"]["requestBody"]


def test_examples_json_and_crop(service, fake, photo):
    with service.client() as http:
        report = http.post("/v1/inspect", files={"photo": ("p.jpg", photo.read_bytes())},
                           data={"question": "Any scratch?", "mode": "rag"}).json()
        example_id = report["examples_used"][0]
        info = http.get(f"/v1/examples/{example_id}", params={"trace": report["trace_id"]}).json()
        crop = http.get(f"/v1/examples/{example_id}/image")
        unknown = http.get("/v1/examples/r-doesnotexist")
    assert info["id"] == example_id and info["labels"] and info["source_image"].endswith(".jpg")
    assert "/" not in info["source_image"]
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert crop.headers["cache-control"] == "private, max-age=3600"  # it may need the bearer token
    with Image.open(io.BytesIO(crop.content)) as image:
        assert image.size == (info["width"], info["height"])
    assert info["polygons"] and all(len(point) == 2 for polygon in info["polygons"] for point in polygon)
    x1, y1, x2, y2 = info["bbox"]
    assert 0 <= x1 < x2 <= info["width"] and 0 <= y1 < y2 <= info["height"]
    assert 0 < info["score"] <= 1.0001
    assert "No example" in one_line_error(unknown, 404)


def test_traces_list_json_html_and_ids_checked(service, fake, photo):
    with service.client() as http:
        report = http.post("/v1/inspect", files={"photo": ("p.jpg", photo.read_bytes())},
                           data={"question": "A question for the trace list", "mode": "zero-shot"}).json()
        listed = http.get("/v1/traces").json()
        page = http.get(f"/v1/traces/{report['trace_id']}", params={"format": "html"})
        browser = http.get(f"/v1/traces/{report['trace_id']}", headers={"Accept": "text/html,*/*"})
        as_json = http.get(f"/v1/traces/{report['trace_id']}").json()
        bad = http.get("/v1/traces/..%2F..%2Fetc%2Fpasswd")
        odd = http.get("/v1/traces/not-a-trace-id")
        missing = http.get("/v1/traces/20000101-000000-abcdef")
    assert any(t["id"] == report["trace_id"] and t["question"] == "A question for the trace list"
               for t in listed["data"])
    assert page.headers["content-type"].startswith("text/html") and "A question for the trace list" in page.text
    assert browser.headers["content-type"].startswith("text/html")
    assert as_json["events"][-1]["type"] == "report"
    photo_event = next(e for e in as_json["events"] if e["type"] == "photo")
    assert photo_event["photo_copy"] == "query.jpg"  # a base name, never the server's path
    for shown in (json.dumps(as_json), json.dumps(listed), page.text):
        assert str(service.traces_dir) not in shown and str(service.traces_dir.parent) not in shown
    assert "src='data:image/jpeg;base64," in page.text  # the page still shows the photo, read server-side
    assert bad.status_code == 404
    assert "is not a trace id" in one_line_error(odd, 404)
    assert "No trace" in one_line_error(missing, 404)
    json.dumps(as_json)


def test_the_page_and_docs_are_served(service):
    with httpx.Client(base_url=service.url, timeout=30) as http:
        assert http.get("/").headers["content-type"].startswith("text/html")
        assert http.get("/docs").status_code == 200
        assert "No route" in one_line_error(http.get("/nowhere"), 404)
