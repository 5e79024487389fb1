"""A JSON body nested 100,000 deep gets a 400, and the gunicorn worker that read it lives on."""

from __future__ import annotations

import http.client
import sys

import pytest

from marketplace.middleware import MAX_JSON_DEPTH, json_depth_exceeds
from tests.gunicorn_support import gunicorn_server


def test_depth_is_counted_outside_strings_and_without_recursion():
    assert not json_depth_exceeds(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert json_depth_exceeds(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    assert not json_depth_exceeds(b'{"a": "' + b"[" * 500 + b'"}')
    assert not json_depth_exceeds(b'["\\"' + b"{" * 500 + b'"]')
    assert json_depth_exceeds(b"[" * 1_000_000)  # linear, no recursion


@pytest.mark.django_db
def test_the_api_refuses_deep_json_with_a_clear_400(api, buyer):
    api.force_authenticate(buyer)
    deep = b"[" * 100_000 + b"]" * 100_000
    response = api.generic("POST", "/api/v1/jobs/quote/", deep, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"code": "json_too_deep", "detail": "The JSON body is nested deeper than 64 levels."}
    shallow = api.post("/api/v1/jobs/quote/", {"dataset": 0, "algorithm": "dp-statistics"}, format="json")
    assert shallow.status_code == 404, "ordinary bodies still reach the view"
    assert sys.getrecursionlimit() <= 10_000, "the chain libraries' 100,000 limit is undone"


def _request(port: int, method: str, path: str, body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_gunicorn_answers_a_body_nested_100000_deep_and_keeps_its_worker(tmp_path):
    with gunicorn_server(tmp_path) as server:
        port, log = server.port, server.log
        for _ in range(3):
            assert _request(port, "POST", "/api/v1/auth/token/", b"[" * 100_000 + b"]" * 100_000) == 400
        assert _request(port, "GET", "/healthz/") == 200
        text = log.read_text()
        assert "Worker (pid" not in text and "SIGSEGV" not in text, text[-3000:]
