"""marketplace_client.client: retries, following a job (event stream and polling), the hashes it
recomputes and the names it writes. A scripted session, no server."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
import requests

from marketplace_client import (
    AuthenticationError,
    MarketplaceClient,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    VerificationFailed,
    params_hash,
    result_hash,
)
from marketplace_client.client import _merge_job, _safe_name, _sse_parse
from marketplace_client.types import Job
from tests.client.support import _client, _job, _response

# --- retries ----------------------------------------------------------------------------------


def test_a_throttled_request_waits_what_retry_after_says_then_succeeds_even_a_write():
    client, session, slept = _client(
        {
            ("POST", "/api/v1/jobs/quote/"): [
                _response(429, {"code": "throttled", "detail": "Slow down."}, {"Retry-After": "3"}),
                _response(200, {"parameters": {}, "params_hash": "0x1", "epsilon": "0.5", "problems": []}),
            ]
        }
    )
    quote = client.job_quote(3, "dp-statistics", {"epsilon": 0.5})
    assert quote.ok and quote.epsilon == Decimal("0.5")
    assert slept == [3.0]
    assert len(session.calls) == 2
    assert session.calls[0][2]["headers"]["Authorization"] == "Token t0k"


def test_rate_limited_is_raised_when_the_wait_is_longer_than_allowed():
    client, _, slept = _client(
        {("GET", "/api/v1/jobs/7/"): [_response(429, {"code": "throttled", "detail": "No."}, {"Retry-After": "900"})]},
        max_retry_wait=60,
    )
    with pytest.raises(RateLimited) as caught:
        client.job(7)
    assert caught.value.retry_after == 900.0 and slept == []


def test_unavailable_reads_are_retried_with_backoff_but_writes_are_not():
    unavailable = _response(503, {"code": "chain_unavailable", "detail": "The chain is not reachable."})
    client, session, slept = _client(
        {
            ("GET", "/api/v1/jobs/7/"): [unavailable, unavailable, _response(200, _job())],
            ("POST", "/api/v1/jobs/"): [unavailable],
        }
    )
    assert client.job(7).status == "running"
    assert slept == [1.0, 2.0]
    with pytest.raises(ServiceUnavailable, match="The chain is not reachable"):
        client.job_create(3, "dp-statistics")
    assert [c[0] for c in session.calls].count("POST") == 1


def test_a_server_that_cannot_be_reached_is_a_transport_error():
    client, _, slept = _client({("GET", "/api/v1/jobs/7/"): [requests.ConnectionError("refused")]}, max_retries=2)
    with pytest.raises(TransportError, match="Could not reach http://marketplace.test"):
        client.job(7)
    assert slept == [1.0, 2.0]


def test_base_url_accepts_the_api_prefix_and_refuses_other_schemes():
    assert MarketplaceClient("http://h:8000/api/v1/").url("jobs/1/") == "http://h:8000/api/v1/jobs/1/"
    assert MarketplaceClient("https://h").url("/api/v1/x/") == "https://h/api/v1/x/"
    client, session, _ = _client(
        {("GET", "/api/v1/x/"): [_response(200, {})], ("GET", "https://elsewhere.test/x"): [_response(200, {})]}
    )
    client.get("x/")
    client.get("https://elsewhere.test/x")
    assert session.calls[0][2]["headers"]["Authorization"] == "Token t0k"
    assert "Authorization" not in session.calls[1][2]["headers"]  # the token never leaves the marketplace
    with pytest.raises(ValueError, match="http:// or https://"):
        MarketplaceClient("h:8000")
    with pytest.raises(AuthenticationError, match="log in first"):
        MarketplaceClient("http://h").dataset_create(io.BytesIO(b"a\n1\n"), title="x")


# --- following a job --------------------------------------------------------------------------


def test_the_event_stream_parser_handles_split_lines_crlf_comments_and_ids():
    stream = [
        b"retry: 1000\n\n: heartbeat\n\nid: a1\nevent: status\nda",
        b'ta: {"id": 7,\ndata:  "status": "queued"}\r',
        b"\n\r\n",
        b'event: status\ndata: {"id": 7, "status": "running"}\n\n',
        b'data: {"cut": "off"}',  # no blank line: dropped
    ]
    events = list(_sse_parse(stream))
    assert [(e.name, e.id) for e in events] == [("status", "a1"), ("status", "a1")]
    assert json.loads(events[0].data) == {"id": 7, "status": "queued"}
    assert json.loads(events[1].data)["status"] == "running"


def test_events_may_carry_the_whole_job_or_only_what_changed():
    current = Job.from_json(_job())
    whole = _merge_job(current, _job(status="publishing"))
    assert whole is not None and whole.status == "publishing"
    partial = _merge_job(current, {"progress": {"epoch": 3}})
    assert partial is not None and partial.progress.epoch == 3 and partial.progress.epochs == 5
    assert _merge_job(current, {"id": 8, "status": "failed"}) is None  # another job
    assert _merge_job(None, {"status": "running"}) is None  # nothing to lay it over


def test_without_an_events_endpoint_the_job_is_polled_with_backoff_until_it_ends():
    running = _response(200, _job())
    states = [
        _response(200, _job(status="queued", progress={})),
        running,
        running,
        running,
        _response(200, _job(status="finished", progress={"percent": 100}, epsilon_spent="0.4987")),
    ]
    client, session, slept = _client(
        {
            ("GET", "/api/v1/jobs/7/"): states,
            ("GET", "/api/v1/jobs/7/events/"): [
                _response(404, {"code": "not_found", "detail": "No API endpoint at /api/v1/jobs/7/events/."})
            ],
        }
    )
    seen: list[str] = []
    job = client.follow_job(7, on_update=lambda j: seen.append(j.status))
    assert job.succeeded and job.epsilon_spent == Decimal("0.4987")
    assert seen == ["queued", "running", "finished"]  # each change once
    assert slept == [0.5, 0.5, 0.75, 1.125]  # the interval grows while nothing changes
    assert sum(1 for c in session.calls if c[1].endswith("/events/")) == 1  # not asked again


# --- hashes and names ------------------------------------------------------------------------


def test_hashes_recomputed_by_the_client_are_the_servers():
    from chain.services.orders import algorithm_hash
    from compute_to_data.services.receipts import result_hash_of

    parameters = {"target": "label", "epochs": 3, "epsilon": 0.5, "hidden": [16, 8], "accountant": "rdp"}
    assert params_hash("dp-mlp-classifier", parameters) == algorithm_hash("dp-mlp-classifier", parameters)
    artifacts = [("model.onnx", "ab" * 32), ("manifest.json", "cd" * 32)]
    assert result_hash(artifacts) == result_hash_of(artifacts)


def test_artifact_names_that_leave_the_folder_are_refused():
    assert _safe_name("model.onnx") == "model.onnx"
    for bad in ("../etc/passwd", "/abs", "a/b", "..", "", "a\\b"):
        with pytest.raises(VerificationFailed):
            _safe_name(bad)
