"""Helpers for integrations tests: jobs moved through the job service without a chain, and a
small server-sent-events reader."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction

from compute_to_data.models import ComputeJob
from compute_to_data.services.jobs import job_transition
from marketplace.models import Dataset


def job_make(*, buyer, dataset: Dataset) -> ComputeJob:
    """A job row as ``job_create`` leaves it (no order: these tests do not pay on chain)."""
    return ComputeJob.objects.create(
        buyer=buyer,
        dataset=dataset,
        algorithm="dp-statistics",
        parameters={"columns": ["age"], "epsilon": 0.5},
        params_hash="0x" + "ab" * 32,
        epsilon=Decimal("0.5"),
        delta=1e-6,
    )


def job_move(job: ComputeJob, *statuses: str, **fields: Any) -> ComputeJob:
    """Move the job through ``statuses`` with the job service, one committed transition each."""
    for status in statuses:
        with transaction.atomic():
            locked = ComputeJob.objects.select_for_update().get(pk=job.pk)
            job = job_transition(locked, status, **fields)
    return job


@dataclass
class SSEEvent:
    event: str
    data: str
    id: str | None

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.data)


class SSEStream:
    """Reads a text/event-stream answer line by line as it arrives (comments kept apart)."""

    def __init__(self, base_url: str, path: str, headers: dict[str, str], timeout: float = 15) -> None:
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream", **headers})
        self.response = self.conn.getresponse()
        self.comments: list[str] = []
        self.retry: int | None = None
        self.closed = False

    @property
    def status(self) -> int:
        return self.response.status

    def next_event(self) -> SSEEvent | None:
        """The next event, or None when the server closed the stream."""
        data: list[str] = []
        event, event_id = "message", None
        while True:
            raw = self.response.readline()
            if not raw:
                self.closed = True
                return None
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if data:
                    return SSEEvent(event, "\n".join(data), event_id)
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                event_id = value
            elif name == "retry":
                self.retry = int(value)

    def rest(self) -> list[SSEEvent]:
        events = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        self.conn.close()
