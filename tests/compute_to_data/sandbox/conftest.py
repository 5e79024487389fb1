# The sandbox uid must traverse these folders and read the runner: permissive modes are the point.
# ruff: noqa: S103
"""Fixtures of the sandbox tests: a world-traversable base folder, runner packages of a given body, and running a
hostile program as the runner (``python -m dp_runner /data/spec.json``) the way the worker does."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from compute_to_data.sandbox import (
    Limits,
    SandboxConfig,
    SandboxUnavailable,
    Workspace,
    sandbox_preflight,
    sandbox_run,
    workspace,
)
from tests.compute_to_data.sandbox.support import SMALL, Run, wait_no_processes
from tests.compute_to_data.support import HOSTILE


@pytest.fixture(scope="module")
def base() -> Path:
    """A world-traversable folder for workspaces, runners and host-side targets."""
    path = Path(tempfile.mkdtemp(prefix="sandbox-tests-", dir="/tmp"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def make_config(base: Path) -> Callable[[str], SandboxConfig]:
    """Builds a config whose runner package (``dp_runner/__main__.py``) has the given body."""

    def make(main_body: str) -> SandboxConfig:
        runner = Path(tempfile.mkdtemp(prefix="runner-", dir=base)) / "dp_runner"
        runner.mkdir()
        (runner / "__init__.py").write_text("")
        (runner / "__main__.py").write_text(main_body)
        for path in (runner.parent, runner):
            os.chmod(path, 0o755)
        for path in runner.iterdir():
            os.chmod(path, 0o644)
        return SandboxConfig(runner_dir=str(runner))

    return make


@pytest.fixture(scope="module")
def config(make_config: Callable[[str], SandboxConfig]) -> SandboxConfig:
    cfg = make_config("print('runner')\n")
    try:
        sandbox_preflight(cfg)
    except SandboxUnavailable as exc:
        pytest.fail(f"The sandbox cannot start on this machine: {exc}")
    return cfg


@pytest.fixture
def run_hostile(base: Path, make_config: Callable[[str], SandboxConfig]):
    """Runs ``hostile/<attack>.py`` as the runner (``python -m dp_runner /data/spec.json``) in a fresh workspace.

    ``before(ws)`` runs before the program starts, ``check(ws)`` after it ended while the workspace still exists;
    afterwards no process of the job's uid may remain (unless the test keeps ``others_running``)."""

    def run(
        attack: str,
        *,
        limits: Limits = SMALL,
        args: dict | None = None,
        before: Callable[[Workspace], None] | None = None,
        check: Callable[[Workspace], None] | None = None,
        others_running: bool = False,
    ) -> Run:
        cfg = make_config((HOSTILE / f"{attack}.py").read_text())
        events: list[dict] = []
        with workspace(base, attack, cfg) as ws:
            ws.write_input("spec.json", [json.dumps({"algorithm": "hostile"}).encode()])
            if before is not None:
                before(ws)
            outcome = sandbox_run(
                config=cfg,
                workspace=ws,
                argv=["python3", "-m", "dp_runner", "/data/spec.json"],
                limits=limits,
                on_event=events.append,
                extra_env={"HOSTILE_ARGS": json.dumps(args or {})},
            )
            if check is not None:
                check(ws)
        assert not ws.root.exists()
        if not others_running:
            assert wait_no_processes(ws.uid) == []
        return Run(outcome, events, ws.uid)

    return run
