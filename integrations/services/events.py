"""Server-sent events of one job: its state (status, progress, reason) each time it changes.

The web server is WSGI, so the stream is a generator that looks at the job row every
``JOB_EVENTS_POLL_SECONDS`` (one primary-key read of a few columns) and sends the whole job when
what it read differs from what it sent last. The event id is a digest of that state, so a client
that reconnects with ``Last-Event-ID`` is not sent the state it already has, and a client that
saw the terminal state is told to stop (HTTP 204). Connections last ``JOB_EVENTS_MAX_SECONDS``;
EventSource reconnects by itself."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections, connection

from compute_to_data.models import ComputeJob
from integrations.conf import setting
from integrations.services.webhooks import job_snapshot

_STATE_FIELDS = ("status", "updated_at", "progress", "reason", "cancel_requested_at")


def job_state(job_id: int) -> tuple[Any, ...] | None:
    """What the stream watches: the row's status, progress and reason (not its heartbeat)."""
    return ComputeJob.objects.filter(pk=job_id).values_list(*_STATE_FIELDS).first()


def state_event_id(state: tuple[Any, ...]) -> str:
    raw = json.dumps(list(state), cls=DjangoJSONEncoder, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def job_events_finished_for(*, job_id: int, last_event_id: str | None) -> bool:
    """True when the job has ended and the client's last event was that end: nothing more to say."""
    state = job_state(job_id)
    return bool(last_event_id and state and state[0] in ComputeJob.TERMINAL and state_event_id(state) == last_event_id)


def _message(*, event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id else []
    lines += [f"event: {event}", "data: " + json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":"))]
    return "\n".join(lines) + "\n\n"


def job_event_stream(
    *,
    job_id: int,
    last_event_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """The text of the stream: ``event: status`` with the job (as the job API shows it) whenever
    it changes, a comment every ``JOB_EVENTS_HEARTBEAT_SECONDS``, and the end after the terminal
    status or ``JOB_EVENTS_MAX_SECONDS``. Releases its database connection when it ends."""
    poll = float(setting("JOB_EVENTS_POLL_SECONDS"))
    heartbeat = float(setting("JOB_EVENTS_HEARTBEAT_SECONDS"))
    lifetime = float(setting("JOB_EVENTS_MAX_SECONDS"))
    started = last_output = clock()
    sent = last_event_id
    try:
        yield f"retry: {int(setting('JOB_EVENTS_RETRY_MS'))}\n\n"
        while True:
            # Drop a connection that broke or outlived CONN_MAX_AGE while the stream was open.
            close_old_connections()
            state = job_state(job_id)
            if state is None:
                yield _message(event="error", data={"code": "not_found", "detail": "The job is gone."})
                return
            event_id = state_event_id(state)
            if event_id != sent:
                snapshot = job_snapshot(job_id)
                if snapshot is not None:
                    yield _message(event="status", data=snapshot, event_id=event_id)
                    sent, last_output = event_id, clock()
            if state[0] in ComputeJob.TERMINAL:
                return
            now = clock()
            if now - started >= lifetime:
                yield ": connection lifetime reached, reconnect with Last-Event-ID\n\n"
                return
            if now - last_output >= heartbeat:
                yield ": heartbeat\n\n"
                last_output = now
            sleep(poll)
    finally:
        # The WSGI server also closes it at request_finished; a stream held it long enough.
        connection.close()
