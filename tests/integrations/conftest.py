"""Fixtures for integrations: a real HTTP receiver on loopback and a listed dataset."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from marketplace.models import Dataset
from tests.factories import make_dataset


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server in a thread that records every POST and answers with ``responses`` in turn
    (the last one repeats)."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    responses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def next_status(self) -> int:
        with self._lock:
            return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]

    def record(self, item: Received) -> None:
        with self._arrived:
            self.requests.append(item)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.requests)} requests arrived, expected {count}")
                self._arrived.wait(left)
            return list(self.requests)

    def events(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if state.delay:
                time.sleep(state.delay)
            status = state.next_status()
            payload = b"ok" if status < 400 else b"nope"
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/marketplace"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def listed(provider, staff) -> Dataset:
    return make_dataset(owner=provider, status=Dataset.Status.LISTED, moderator=staff)
