"""What the client's unit tests share: a scripted HTTP session (no server) and a job as the API returns it."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

import requests

from marketplace_client import (
    MarketplaceClient,
)

URL = "http://marketplace.test"


def _response(status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None):
    response = requests.Response()
    response.status_code = status
    response._content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    response.headers.update({"Content-Type": "application/json", **(headers or {})})
    response.url = URL
    return response


class ScriptedSession(requests.Session):
    """Answers each request with the next scripted response (or exception) for its path."""

    def __init__(self, script: dict[tuple[str, str], list[Any]]) -> None:
        super().__init__()
        self.script = {key: deque(items) for key, items in script.items()}
        self.calls: list[tuple[str, str, dict]] = []

    def request(self, method, url, **kwargs):  # type: ignore[override]
        path = url.removeprefix(URL)
        self.calls.append((method, path, kwargs))
        queue = self.script.get((method, path))
        if not queue:
            raise AssertionError(f"unexpected {method} {path}")
        item = queue[0] if len(queue) == 1 else queue.popleft()
        if isinstance(item, BaseException):
            raise item
        return item() if isinstance(item, Callable) else item


def _client(script, **kwargs) -> tuple[MarketplaceClient, ScriptedSession, list[float]]:
    session = ScriptedSession(script)
    slept: list[float] = []
    client = MarketplaceClient(URL, token="t0k", session=session, sleep=slept.append, **kwargs)
    return client, session, slept


def _job(**fields) -> dict:
    return {
        "id": 7,
        "dataset": 3,
        "algorithm": "dp-logistic-regression",
        "parameters": {"target": "label", "epochs": 5, "epsilon": 0.5},
        "params_hash": "0xabc",
        "epsilon": "0.5000",
        "delta": 1e-5,
        "status": "running",
        "reason": "",
        "progress": {
            "phase": "training",
            "percent": 40,
            "epoch": 2,
            "epochs": 5,
            "step": 16,
            "steps": 40,
            "epsilon": 0.213,
        },
        "cancelling": False,
        "epsilon_spent": None,
        "receipt": None,
        **fields,
    }
