"""Fast tests of the integrator client: error mapping, retries, the event-stream parser, polling
fallback, the progress bar and the hashes it recomputes. No server: a scripted session."""

from __future__ import annotations

import io
import json
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import requests

from marketplace_client import (
    AuthenticationError,
    Conflict,
    InvalidRequest,
    MarketplaceClient,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestTooLarge,
    ServerError,
    ServiceUnavailable,
    TransportError,
    VerificationFailed,
    params_hash,
    result_hash,
)
from marketplace_client.cli import EXIT_CODES, exit_code_for, parse_parameters
from marketplace_client.client import _merge_job, _safe_name, _sse_parse
from marketplace_client.errors import error_from_response, parse_retry_after
from marketplace_client.progress import ProgressBar, render
from marketplace_client.types import Job

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


# --- error mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (
            400,
            {"code": "invalid", "detail": "epsilon: too small", "errors": {"epsilon": ["too small"]}},
            InvalidRequest,
        ),
        (
            400,
            {"code": "invalid_credentials", "detail": "Unable to sign in with those credentials."},
            AuthenticationError,
        ),
        (401, {"code": "authentication_failed", "detail": "Invalid token."}, AuthenticationError),
        (
            403,
            {"code": "not_authenticated", "detail": "Authentication credentials were not provided."},
            AuthenticationError,
        ),
        (403, {"code": "permission_denied", "detail": "Only the dataset's owner can change it."}, PermissionDenied),
        (404, {"code": "not_found", "detail": "Not found."}, NotFound),
        (409, {"code": "budget_exhausted", "detail": "Only 0.2 left.", "epsilon_left": "0.2"}, Conflict),
        (413, {"code": "file_too_large", "detail": "The file is over 1 GiB."}, RequestTooLarge),
        (429, {"code": "throttled", "detail": "Request was throttled.", "retry_after_seconds": 9}, RateLimited),
        (503, {"code": "chain_unavailable", "detail": "The chain is not reachable."}, ServiceUnavailable),
        (502, None, ServerError),
    ],
)
def test_each_status_maps_to_one_error_class_keeping_code_and_detail(status, body, cls):
    error = error_from_response(status, body, text="" if body else "<html>Bad gateway</html>")
    assert type(error) is cls
    assert error.status == status
    if body:
        assert error.code == body["code"] and error.detail == body["detail"]
        assert str(error) == f"{body['detail']} ({status} {body['code']})"
    else:
        assert error.detail == "Bad gateway." and error.code == "server_error"  # no HTML in the message


def test_validation_errors_keep_every_field_and_refusals_keep_their_facts():
    error = error_from_response(
        400, {"code": "invalid", "detail": "x", "errors": {"epochs": ["Too many.", "Whole numbers."], "q": "bad"}}
    )
    assert error.errors == {"epochs": ["Too many.", "Whole numbers."], "q": ["bad"]}
    conflict = error_from_response(409, {"code": "budget_exhausted", "detail": "y", "epsilon_left": "0.2"})
    assert conflict.payload["epsilon_left"] == "0.2"
    assert isinstance(error_from_response(413, {}), InvalidRequest)
    assert isinstance(error_from_response(503, {}), ServerError)


def test_retry_after_is_read_from_seconds_and_from_http_dates():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: now
    assert parse_retry_after("soon") is None
    assert error_from_response(429, {}, headers={"Retry-After": "4"}).retry_after == 4.0
    assert error_from_response(429, {"retry_after_seconds": 6}).retry_after == 6.0


def test_cli_exit_codes_follow_the_error_class():
    assert exit_code_for(error_from_response(401, {})) == 3
    assert exit_code_for(error_from_response(403, {})) == 4
    assert exit_code_for(error_from_response(404, {})) == 5
    assert exit_code_for(error_from_response(400, {})) == 6
    assert exit_code_for(error_from_response(409, {})) == 7
    assert exit_code_for(error_from_response(429, {})) == 8
    assert exit_code_for(error_from_response(503, {})) == 9
    assert exit_code_for(TransportError("down")) == 9
    assert set(EXIT_CODES) == set(range(12))


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


# --- progress bar -----------------------------------------------------------------------------


def test_the_progress_bar_shows_phase_epoch_step_and_epsilon():
    job = Job.from_json(_job())
    assert render(job, width=10) == (
        "job 7 [####------]  40% running | training | epoch 2/5 | step 16/40 | eps 0.21/0.50"
    )
    done = Job.from_json(_job(status="finished", progress={"percent": 97}, epsilon_spent="0.4987"))
    assert render(done, width=10) == "job 7 [##########] 100% finished | eps spent 0.50/0.50"
    failed = Job.from_json(_job(status="failed", progress={"percent": 0}, reason="Out of memory.\nmore"))
    assert render(failed, width=4) == "job 7 [----]   0% failed | Out of memory."
    queued = Job.from_json(_job(status="queued", progress={}))
    assert render(queued, width=4) == "job 7 [----]   0% queued"


def test_the_progress_bar_redraws_in_place_and_ends_the_line():
    stream = io.StringIO()
    with ProgressBar(stream, width=4) as bar:
        bar.update(Job.from_json(_job(status="queued", progress={}, reason="")))
        bar.update(Job.from_json(_job(status="queued", progress={}, reason="")))  # same: not redrawn
        bar.update(Job.from_json(_job()))
        bar.update(Job.from_json(_job(status="finished", progress={"percent": 100}, epsilon_spent="0.5")))
    text = stream.getvalue()
    frames = text.split("\r")[1:]
    assert len(frames) == 3 and text.endswith("\n")
    assert frames[0] == "job 7 [----]   0% queued"
    assert frames[2].startswith("job 7 [####] 100% finished | eps spent 0.50/0.50")
    assert len(frames[2].rstrip("\n")) >= len(frames[1])  # padded over the longer line before
    silent = io.StringIO()
    with ProgressBar(silent, enabled=False) as bar:
        bar.update(Job.from_json(_job()))
    assert silent.getvalue() == ""


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


def test_cli_parameters_come_from_json_and_key_value_pairs(tmp_path):
    spec = tmp_path / "p.json"
    spec.write_text('{"epochs": 2, "target": "x"}')
    assert parse_parameters(["epochs=4", "hidden=[8, 4]", "target=label", "private_metrics=true"], f"@{spec}") == {
        "epochs": 4,
        "hidden": [8, 4],
        "target": "label",
        "private_metrics": True,
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_parameters(["epochs"], None)
