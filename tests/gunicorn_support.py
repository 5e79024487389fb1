"""Real gunicorn servers for tests: production settings, the test database, loopback http.

One place for what every gunicorn test needs (a fresh production environment with generated
secrets, the test database's URL, a free port, waiting for /healthz/, stopping the process group),
so each test says only what it changes: worker class, threads, extra environment."""

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.db import connection

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the database the tests run on, for a server process to use the same one."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def production_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a production server on plain http over loopback: this process's
    environment without its Django, chain and key variables, fresh secrets, the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHAIN_", "DATASET_", "WALLET_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATASET_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        WALLET_ENCRYPTION_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        DATABASE_URL=database_url(),
        MARKETPLACE_DATA_DIR=str(data_dir),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SSL_REDIRECT="false",  # plain http on loopback; production redirects to https
    )
    env.update(extra)
    return env


def status_of(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


@dataclass
class Server:
    port: int
    log: Path
    process: subprocess.Popen


@contextmanager
def gunicorn_servers(
    tmp_path: Path, *, count: int = 1, args: Sequence[str] = ("--workers", "1"), env: dict[str, str] | None = None
) -> Iterator[list[Server]]:
    """``count`` gunicorn servers on free ports, sharing one log and the test database; each is
    answering /healthz/ when the block starts, and its process group is gone when it ends."""
    log = tmp_path / "gunicorn.log"
    environment = env if env is not None else production_env(tmp_path)
    servers: list[Server] = []
    try:
        with open(log, "ab") as out:
            for _ in range(count):
                port = free_port()
                process = subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}", *args],
                    cwd=REPO_ROOT,
                    env=environment,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                servers.append(Server(port, log, process))
        deadline = time.monotonic() + 90
        for server in servers:
            while True:
                assert server.process.poll() is None, log.read_text()[-3000:]
                try:
                    if status_of(server.port, "/healthz/") == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
        yield servers
    finally:
        for server in servers:
            server.process.terminate()
        for server in servers:
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)


@contextmanager
def gunicorn_server(tmp_path: Path, **options) -> Iterator[Server]:
    """One gunicorn server (see ``gunicorn_servers``)."""
    with gunicorn_servers(tmp_path, **options) as servers:
        yield servers[0]
