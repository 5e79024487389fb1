"""Production settings as an operator runs them: ``check --deploy`` has nothing to say, plain
http is redirected to https, and X-Forwarded-Proto is believed only behind a declared proxy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.config.settings.support import ROOT, deploy_env

# What the page request prints: status, redirect target, and the security headers.
PROBE = """
import json, django
django.setup()
from django.test import Client
answer = Client().get("/login/", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({
    "status": answer.status_code,
    "location": answer.get("Location"),
    "hsts": answer.get("Strict-Transport-Security"),
    "csp": answer.get("Content-Security-Policy"),
}))
"""


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_check_deploy_reports_nothing_for_a_sensible_production_environment(tmp_path):
    result = _run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], deploy_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr


def test_check_deploy_still_catches_an_operator_turning_https_off(tmp_path):
    env = deploy_env(tmp_path, DJANGO_SSL_REDIRECT="false", DJANGO_SECURE_COOKIES="false", DJANGO_HSTS_SECONDS="0")
    result = _run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert all(code in output for code in ("security.W004", "security.W008", "security.W012", "security.W016"))


def _probe(tmp_path: Path, **extra: str) -> dict:
    result = _run([sys.executable, "-c", PROBE], deploy_env(tmp_path, **extra))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_forged_x_forwarded_proto_is_ignored_without_a_declared_proxy(tmp_path):
    """A client on plain http that claims https is still sent to https, and gets no HSTS."""
    answer = _probe(tmp_path)
    assert answer["status"] == 301 and answer["location"] == "https://testserver/login/"
    assert answer["hsts"] is None


def test_behind_a_declared_proxy_x_forwarded_proto_marks_the_request_secure(tmp_path):
    answer = _probe(tmp_path, DJANGO_TRUST_PROXY="true")
    assert answer["status"] == 200 and answer["location"] is None
    assert answer["hsts"] == "max-age=31536000; includeSubDomains"
    assert "script-src 'self'" in answer["csp"] and "frame-ancestors 'none'" in answer["csp"]
