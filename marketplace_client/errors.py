"""One exception hierarchy for everything the marketplace API (or the way to it) can answer.

The API answers errors as JSON ``{"code": "<stable code>", "detail": "<human text>", ...}``;
validation errors add ``errors`` (field -> messages), and some refusals add facts of their own
(``epsilon_left`` on ``budget_exhausted``, ``retry_after_seconds`` when throttled). Each HTTP
status maps to one class below, so callers can catch what they can handle::

    MarketplaceError
    ├── TransportError            the server could not be reached (connection, timeout)
    ├── VerificationFailed        a download does not have the announced SHA-256
    ├── WaitTimeout               a wait ran past its deadline (the operation goes on)
    ├── OperationFailed           what was waited for failed (validation, publishing)
    └── APIError                  the server answered with an error status
        ├── InvalidRequest        400 (and 413 RequestTooLarge): bad input, with field errors
        ├── AuthenticationError   401, or 403 "not_authenticated": no token, a bad token
        ├── PermissionDenied      403: signed in, but not allowed
        ├── NotFound              404: unknown id, not visible to you, or no such endpoint
        ├── Conflict              409: refused in the current state (budget, status...)
        ├── RateLimited           429: too many requests; ``retry_after`` seconds
        └── ServerError           5xx
            └── ServiceUnavailable 503: e.g. the chain is not reachable

Every ``APIError`` keeps ``status``, ``code``, ``detail``, ``errors`` and the whole ``payload``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "Conflict",
    "InvalidRequest",
    "MarketplaceError",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RequestTooLarge",
    "ServerError",
    "ServiceUnavailable",
    "TransportError",
    "OperationFailed",
    "VerificationFailed",
    "WaitTimeout",
    "error_from_response",
    "parse_retry_after",
]


class MarketplaceError(Exception):
    """Base of every error this client raises."""

    status: int | None = None
    code: str = "error"
    detail: str = ""

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class TransportError(MarketplaceError):
    """The request never got an answer: connection refused, DNS, TLS, timeout."""

    code = "unreachable"


class VerificationFailed(MarketplaceError):
    """A downloaded artifact does not have the SHA-256 the server announced."""

    code = "hash_mismatch"


class APIError(MarketplaceError):
    """The server answered with an error status."""

    def __init__(
        self,
        detail: str,
        *,
        status: int,
        code: str = "error",
        errors: Mapping[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail, code=code)
        self.status = status
        self.errors: dict[str, list[str]] = _field_errors(errors)
        self.payload: dict[str, Any] = dict(payload or {})
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.detail} ({self.status} {self.code})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, detail={self.detail!r})"


class InvalidRequest(APIError):
    """400: the input was refused. ``errors`` maps each field to its messages."""


class RequestTooLarge(InvalidRequest):
    """413: the upload is over the server's limit."""


class AuthenticationError(APIError):
    """Not signed in: no token, an unknown token, or wrong credentials."""


class PermissionDenied(APIError):
    """403: signed in, but this account may not do that."""


class NotFound(APIError):
    """404: no such object (or not visible to you), or no such endpoint on this server."""


class Conflict(APIError):
    """409: refused in the current state. ``payload`` holds extra facts (``epsilon_left``...)."""


class RateLimited(APIError):
    """429: throttled. ``retry_after`` is how many seconds the server asks to wait."""


class ServerError(APIError):
    """5xx: the server failed. Worth retrying later."""


class ServiceUnavailable(ServerError):
    """503: a part the server needs (the chain, the database) is not reachable."""


# Codes that mean "who are you?" whatever the status (DRF answers 403 for them when the first
# authentication class has no WWW-Authenticate header).
_AUTH_CODES = {"not_authenticated", "authentication_failed", "invalid_credentials"}

_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    405: NotFound,
    409: Conflict,
    413: RequestTooLarge,
    429: RateLimited,
    503: ServiceUnavailable,
}


def _field_errors(errors: Mapping[str, Any] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for field, messages in (errors or {}).items():
        if isinstance(messages, list | tuple):
            out[str(field)] = [m if isinstance(m, str) else str(m) for m in messages]
        else:
            out[str(field)] = [str(messages)]
    return out


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(
    status: int, payload: Any, *, headers: Mapping[str, str] | None = None, text: str = ""
) -> APIError:
    """The exception for an error answer: ``payload`` is the decoded JSON body (or None)."""
    body: dict[str, Any] = payload if isinstance(payload, dict) else {}
    code = str(body.get("code") or _default_code(status))
    detail = body.get("detail")
    if not isinstance(detail, str) or not detail:
        detail = _fallback_detail(status, text)
    retry_after = parse_retry_after((headers or {}).get("Retry-After"))
    if retry_after is None and isinstance(body.get("retry_after_seconds"), int | float):
        retry_after = float(body["retry_after_seconds"])
    if code in _AUTH_CODES and status in (400, 401, 403):
        cls: type[APIError] = AuthenticationError
    elif status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif status >= 500:
        cls = ServerError
    elif status >= 400:
        cls = InvalidRequest
    else:
        cls = APIError
    errors = body.get("errors")
    return cls(
        detail,
        status=status,
        code=code,
        errors=errors if isinstance(errors, dict) else None,
        payload=body,
        retry_after=retry_after,
    )


def _default_code(status: int) -> str:
    return {
        400: "invalid",
        401: "not_authenticated",
        403: "permission_denied",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "too_large",
        429: "throttled",
        503: "unavailable",
    }.get(status, "server_error" if status >= 500 else "error")


def _fallback_detail(status: int, text: str) -> str:
    snippet = " ".join(text.split())[:200]
    reason = {
        401: "Not signed in.",
        403: "Not allowed.",
        404: "Not found.",
        429: "Too many requests.",
        502: "Bad gateway.",
        503: "Service unavailable.",
        504: "Gateway timeout.",
    }.get(status, f"HTTP {status}.")
    return f"{reason} {snippet}".strip() if snippet and not snippet.startswith("<") else reason


class WaitTimeout(MarketplaceError):
    """A wait (validation, publishing, a job) ran past its deadline; the operation goes on."""

    code = "wait_timeout"


class OperationFailed(MarketplaceError):
    """Something the client waited for ended badly: a file failed validation, a publish
    transaction failed."""

    code = "operation_failed"
