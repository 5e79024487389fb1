"""A JSON body nested 100,000 deep gets a 400, and the gunicorn worker that read it lives on."""

from __future__ import annotations

import base64
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from marketplace.middleware import MAX_JSON_DEPTH, json_depth_exceeds

REPO_ROOT = Path(__file__).resolve().parents[2]


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(port: int, method: str, path: str, body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_gunicorn_answers_a_body_nested_100000_deep_and_keeps_its_worker(tmp_path):
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        database_url = f"sqlite:///{db['NAME']}"
    else:
        database_url = (
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHAIN_", "DATASET_", "WALLET_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATASET_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        WALLET_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        DATABASE_URL=database_url,
        MARKETPLACE_DATA_DIR=str(tmp_path),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SSL_REDIRECT="false",  # plain http on loopback; production redirects to https
    )
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if _request(port, "GET", "/healthz/") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        for _ in range(3):
            assert _request(port, "POST", "/api/v1/auth/token/", b"[" * 100_000 + b"]" * 100_000) == 400
        assert _request(port, "GET", "/healthz/") == 200
        text = log.read_text()
        assert "Worker (pid" not in text and "SIGSEGV" not in text, text[-3000:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
