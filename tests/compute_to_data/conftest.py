"""Fixtures for compute jobs: the chain fixtures (a real anvil, the session's deployment, funded
managed wallets), a world-traversable work folder for sandboxes, and fake runners."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from kombu import pools as kombu_pools

from config.celery_app import app as celery_app
from devtools.broker import broker_settings
from tests.chain.conftest import _session_chain, accounts, anvil, chain, deployment, on_chain, people, w3  # noqa: F401
from tests.compute_to_data.support import HOSTILE
from tests.worker_support import database_url, reset_connections


@pytest.fixture
def compute_settings(settings):
    """Sandboxes work under a folder the unprivileged sandbox uid can traverse (pytest's tmp_path
    is 0700), one per test, removed afterwards."""
    base = Path(tempfile.gettempdir()) / "ppdx-compute-tests"
    base.mkdir(mode=0o711, exist_ok=True)
    os.chmod(base, 0o711)  # noqa: S103  (traversable, not listable, by the sandbox uid)
    work = base / uuid.uuid4().hex
    settings.COMPUTE_WORK_DIR = str(work)
    settings.COMPUTE_THREADS = 2
    yield settings
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def fake_runner(compute_settings):
    """``fake_runner("sleep_forever")`` makes the sandbox run that hostile program (from
    tests/compute_to_data/hostile/) instead of the trusted runner."""
    made: list[Path] = []

    def install(name: str, source: str | None = None) -> Path:
        root = Path(compute_settings.COMPUTE_WORK_DIR).parent / f"runner-{uuid.uuid4().hex}"
        root.mkdir(mode=0o755)
        (root / "__init__.py").write_text("")
        body = source if source is not None else (HOSTILE / f"{name}.py").read_text()
        (root / "__main__.py").write_text(body)
        for p in (root, root / "__init__.py", root / "__main__.py"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        compute_settings.COMPUTE_RUNNER_DIR = str(root)
        made.append(root)
        return root

    yield install
    for root in made:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def compute_worker(tmp_path, on_chain, compute_settings):
    """A real Celery worker process on the `celery` and `compute` queues (the embedded SQLite
    broker of `make run`), pointed at the test anvil: ``start(runner_dir)`` launches one (again
    after a kill: the same broker, so unacknowledged messages are delivered again); the test's own
    enqueues go to it until ``eager_again()``. Yields ``(start, eager_again, log_path)``."""
    broker = tmp_path / "broker"
    url, transport, options = broker_settings(broker)
    keys = ("task_always_eager", "broker_url", "broker_transport", "broker_transport_options")
    saved = {key: celery_app.conf.get(key) for key in keys}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "MARKETPLACE_TEST_DATA_DIR": str(tmp_path),
        "CELERY_INTEGRATION_BROKER_DIR": str(broker),
        "CELERY_INTEGRATION_MAIL_DIR": str(tmp_path),
        "CELERY_INTEGRATION_CHAIN_RPC_URL": compute_settings.CHAIN_RPC_URL,
        "CELERY_INTEGRATION_CHAIN_DEPLOYMENT_FILE": compute_settings.CHAIN_DEPLOYMENT_FILE,
        "CELERY_INTEGRATION_CHAIN_OPERATOR_KEY": compute_settings.CHAIN_OPERATOR_KEY,
        "COMPUTE_WORK_DIR": compute_settings.COMPUTE_WORK_DIR,
        "COMPUTE_HEARTBEAT_SECONDS": "0.5",
    }
    log_path = tmp_path / "worker.log"
    procs: list[subprocess.Popen] = []

    def start(runner_dir: str) -> subprocess.Popen:
        celery_app.conf.update(
            task_always_eager=False, broker_url=url, broker_transport=transport, broker_transport_options=options
        )
        reset_connections()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "-Q",
                "celery,compute",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
            ],
            env={**env, "COMPUTE_RUNNER_DIR": runner_dir},
            stdout=log_path.open("a"),
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    def eager_again() -> None:
        celery_app.conf.update(saved)
        reset_connections()
        kombu_pools.reset()  # eager tasks still take a producer from kombu's (now closed) pools

    yield start, eager_again, log_path
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    eager_again()
