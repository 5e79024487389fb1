"""A real Celery worker process on the embedded SQLite broker, for the tests that need one, and the
wait for what it does."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from config.celery_app import app as celery_app
from devtools.broker import broker_settings


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def reset_connections() -> None:
    """Drop pooled broker connections so the next send uses the current broker settings."""
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def real_worker(tmp_path):
    broker = tmp_path / "broker"
    mail = tmp_path / "mail"
    mail.mkdir()
    url, transport, options = broker_settings(broker)
    keys = ("task_always_eager", "broker_url", "broker_transport", "broker_transport_options")
    saved = {key: celery_app.conf.get(key) for key in keys}
    celery_app.conf.update(
        task_always_eager=False, broker_url=url, broker_transport=transport, broker_transport_options=options
    )
    reset_connections()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "MARKETPLACE_TEST_DATA_DIR": str(tmp_path),
        "CELERY_INTEGRATION_BROKER_DIR": str(broker),
        "CELERY_INTEGRATION_MAIL_DIR": str(mail),
    }
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "-Q",
            "celery",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[1],
    )
    yield {"mail": mail, "log": tmp_path / "worker.log"}
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    celery_app.conf.update(saved)
    reset_connections()


def wait_for(predicate, timeout=45.0, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    raise AssertionError("timed out; worker log:\n" + (log.read_text()[-3000:] if log else ""))
