"""How a run's end is explained, from evidence only, and root mode being required where it must be: pure logic,
no sandbox started (these run as any user)."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys

import pytest

from compute_to_data.sandbox import Limits, SandboxConfig, SandboxUnavailable, launcher
from compute_to_data.sandbox.monitor import RUNNER_ERROR_TEXT, Evidence, Tail, classify
from tests.config.settings.support import ROOT, deploy_env

LIMITS = Limits(memory_bytes=512 << 20, processes=16, cpu_seconds=2, disk_bytes=32 << 20, files=500)


EXITED_1 = Evidence(killed_for=None, exit_code=1, sig=None, cpu_used=0.1)


def _ended(**facts: object) -> Evidence:
    return dataclasses.replace(EXITED_1, **facts)


@pytest.mark.parametrize(
    ("facts", "limit", "reason"),
    [
        ({"oom_killed": True, "sig": signal.SIGKILL, "exit_code": None}, "memory", "ran out of memory (limit 512 MiB)"),
        ({"pids_refused": True}, "processes", "more than 16 processes or threads"),
        ({"sig": signal.SIGKILL, "exit_code": None, "cpu_used": 2.5}, "cpu", "CPU-time limit of 2 s"),
        ({"file_at_limit": True}, "file_size", "a file larger than 32 MiB"),
        ({"killed_for": "disk"}, "disk", "more than 32 MiB (or more than 500 files)"),
        ({"sandbox_started": False}, None, "The sandbox could not be started."),
        ({}, None, "The runner stopped with exit status 1."),
        ({"sig": signal.SIGSEGV, "exit_code": None}, None, "The runner was killed by SIGSEGV."),
    ],
)
def test_each_limit_is_read_from_the_kernels_facts(facts: dict, limit: str | None, reason: str) -> None:
    got_limit, got_reason = classify(_ended(**facts), LIMITS)
    assert got_limit == limit and reason in got_reason


def test_a_runner_error_code_only_picks_a_fixed_sentence() -> None:
    for code, text in RUNNER_ERROR_TEXT.items():
        assert classify(_ended(runner_error_code=code), LIMITS) == (None, text)
    # Codes that name a limit prove nothing: no limit, the generic sentence.
    for code in ("memory", "cpu", "file_size", "processes", "\x1b[31mhttps://evil.example"):
        assert classify(_ended(runner_error_code=code), LIMITS) == (None, "The runner reported an error.")


def test_the_stderr_tail_has_no_control_characters() -> None:
    tail = Tail()
    tail._buf += b"MemoryError \x1b[31mred\x1b[0m \x1b]8;;https://evil.example\x07link\x00\ttab\n"
    assert tail.text() == "MemoryError ?[31mred?[0m ?]8;;https://evil.example?link?\ttab\n"


def test_preflight_refuses_unprivileged_mode_when_root_mode_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "cgroups_available", lambda: "the worker is not root")
    config = dataclasses.replace(SandboxConfig(), require_root_mode=True)
    with pytest.raises(SandboxUnavailable, match="must run in root mode here.*the worker is not root"):
        launcher.sandbox_preflight(config)


def test_production_requires_root_mode(tmp_path) -> None:
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.COMPUTE_SANDBOX_REQUIRE_ROOT_MODE)"
    )
    env = deploy_env(tmp_path, COMPUTE_SANDBOX_REQUIRE_ROOT_MODE="false")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"
