"""Server-sent events of a job, read by a real HTTP client from a live server while the job
service moves the job along: authorisation, every change, heartbeats, Last-Event-ID, the
terminal status closing the stream, and the connection's maximum lifetime."""

from __future__ import annotations

import json
import time

import pytest
from rest_framework.authtoken.models import Token

from compute_to_data.models import ComputeJob
from tests.factories import UserFactory
from tests.integrations.support import SSEStream, job_make, job_move

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_stream(settings):
    settings.JOB_EVENTS_POLL_SECONDS = 0.05
    settings.JOB_EVENTS_HEARTBEAT_SECONDS = 15
    settings.JOB_EVENTS_MAX_SECONDS = 20
    return settings


def _auth(user) -> dict[str, str]:
    return {"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


def _open(live_server, job, user=None, **headers) -> SSEStream:
    return SSEStream(live_server.url, f"/api/v1/jobs/{job.pk}/events/", {**(_auth(user) if user else {}), **headers})


def test_the_buyer_follows_a_job_to_its_end(live_server, buyer, listed, fast_stream):
    job = job_make(buyer=buyer, dataset=listed)
    stream = _open(live_server, job, buyer)
    try:
        assert stream.status == 200
        assert stream.response.getheader("Content-Type").startswith("text/event-stream")
        assert stream.response.getheader("Cache-Control") == "no-cache"
        first = stream.next_event()
        assert stream.retry == 1000
        assert first.event == "status" and first.json["status"] == "created" and first.json["id"] == job.pk
        assert first.id

        job_move(job, "paid")
        assert stream.next_event().json["status"] == "paid"
        job_move(job, "queued", "provisioning", "running")
        seen = stream.next_event().json
        while seen["status"] != "running":
            seen = stream.next_event().json

        # Progress written by the worker's monitor (a plain update, no status change) is sent too.
        progress = {"phase": "training", "epoch": 2, "epochs": 5, "step": 40, "steps": 100, "epsilon": 0.41}
        ComputeJob.objects.filter(pk=job.pk).update(progress={**progress, "percent": 40})
        update = stream.next_event().json
        assert update["status"] == "running"
        assert update["progress"]["epoch"] == 2 and update["progress"]["epsilon"] == 0.41

        job_move(job, "failed", reason="The runner ran out of memory.")
        last = stream.next_event()
        assert last.json["status"] == "failed" and last.json["reason"] == "The runner ran out of memory."
        assert stream.next_event() is None and stream.closed, "the terminal status ends the stream"
    finally:
        stream.close()

    # EventSource reconnects with the last id: it is told there is nothing more (204, it stops).
    again = _open(live_server, job, buyer, **{"Last-Event-ID": last.id})
    assert again.status == 204
    again.close()
    # A client without that id gets the final state once, then the end.
    fresh = _open(live_server, job, buyer)
    events = fresh.rest()
    fresh.close()
    assert [e.json["status"] for e in events] == ["failed"]


def test_provider_and_staff_may_follow_a_stranger_and_anonymous_may_not(
    live_server, buyer, provider, staff, listed, fast_stream
):
    job = job_make(buyer=buyer, dataset=listed)
    job_move(job, "rejected", reason="The payment was not accepted.")
    for user in (provider, staff):
        stream = _open(live_server, job, user)
        assert stream.status == 200
        assert [e.json["status"] for e in stream.rest()] == ["rejected"]
        stream.close()

    stranger = _open(live_server, job, UserFactory(username="stranger"))
    assert stranger.status == 404
    assert stranger.response.getheader("Content-Type") == "application/json"
    assert b'"code":"not_found"' in stranger.response.read()
    stranger.close()

    anonymous = _open(live_server, job)
    assert anonymous.status == 401 and b"not_authenticated" in anonymous.response.read()
    anonymous.close()

    missing = SSEStream(live_server.url, "/api/v1/jobs/999999/events/", _auth(buyer))
    assert missing.status == 404
    missing.close()


def test_heartbeats_keep_a_quiet_stream_alive_and_it_ends_at_its_lifetime(live_server, buyer, listed, settings):
    settings.JOB_EVENTS_POLL_SECONDS = 0.05
    settings.JOB_EVENTS_HEARTBEAT_SECONDS = 0.3
    settings.JOB_EVENTS_MAX_SECONDS = 1.2
    job = job_make(buyer=buyer, dataset=listed)
    job_move(job, "paid", "queued")
    started = time.monotonic()
    stream = _open(live_server, job, buyer)
    events = stream.rest()
    took = time.monotonic() - started
    stream.close()
    assert [e.json["status"] for e in events] == ["queued"]
    assert stream.comments.count("heartbeat") >= 2
    assert any("reconnect" in c for c in stream.comments)
    assert 1.1 <= took < 5

    # Reconnecting with the last id does not repeat the state the client has; a change comes through.
    resumed = _open(live_server, job, buyer, **{"Last-Event-ID": events[-1].id})
    job_move(job, "cancelled", reason="Cancelled by the buyer before it started.")
    assert [e.json["status"] for e in resumed.rest()] == ["cancelled"]
    resumed.close()


def test_the_documented_requests_client_reads_events_as_they_come(live_server, buyer, listed, fast_stream):
    import requests

    job = job_make(buyer=buyer, dataset=listed)
    statuses = []
    with requests.get(
        f"{live_server.url}/api/v1/jobs/{job.pk}/events/",
        headers={**_auth(buyer), "Accept": "text/event-stream"},
        stream=True,
        timeout=10,
    ) as response:
        event = None
        for line in response.iter_lines(chunk_size=1, decode_unicode=True):
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "status":
                statuses.append(json.loads(line[5:])["status"])
                # Each change arrives while the stream is open, not when it ends.
                if statuses[-1] == "created":
                    job_move(job, "paid")
                elif statuses[-1] == "paid":
                    job_move(job, "cancelled", reason="Cancelled by the buyer before it started.")
    assert statuses == ["created", "paid", "cancelled"]
