"""marketplace_client.errors: every API answer maps to one error class, keeping its code, detail and facts."""

from __future__ import annotations

import pytest

from marketplace_client import (
    AuthenticationError,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestTooLarge,
    ServerError,
    ServiceUnavailable,
)
from marketplace_client.errors import error_from_response, parse_retry_after

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
