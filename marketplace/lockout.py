"""What django-axes counts log-in failures against, and what a locked-out client is told.

Settings name these functions (``AXES_CLIENT_IP_CALLABLE``, ``AXES_USERNAME_CALLABLE``,
``AXES_LOCKOUT_CALLABLE``); axes calls them for the log-in page and the API token endpoint."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from common.errors import TooManyAttempts


def client_ip(request: HttpRequest) -> str | None:
    """The client's address. X-Forwarded-For is anyone's to write, so it counts only behind a
    proxy we were told about (DJANGO_TRUST_PROXY), and then only its last hop: the address
    our proxy saw, which the client cannot choose."""
    if settings.TRUST_PROXY:
        forwarded = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if forwarded and _is_ip(forwarded[-1]):
            return forwarded[-1]
    remote = request.META.get("REMOTE_ADDR") or ""
    return remote if _is_ip(remote) else None


def _is_ip(value: str) -> bool:
    # Stored in an inet column: anything else would fail the insert (a 500), not count.
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def client_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """Usernames are unique regardless of case, so "Alice" and "alice" share one counter."""
    username = (credentials or {}).get("username")
    if username is None and request is not None:
        username = request.POST.get("username")
    # Cut to what axes' columns hold: an over-long name must count as a failure, not fail to be saved.
    return username.strip().lower()[:150] if isinstance(username, str) else None


def lockout_minutes() -> int:
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))


def lockout_error() -> TooManyAttempts:
    return TooManyAttempts(
        f"Too many failed log-ins for this account or from your address. Try again in {lockout_minutes()} "
        "minutes, or reset your password by e-mail.",
        extra={"retry_after_seconds": int(settings.AXES_COOLOFF_TIME.total_seconds())},
    )


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """A JSON 429 with ``code`` on the API, the log-in page's lockout notice elsewhere."""
    error = lockout_error()
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"code": error.code, "detail": error.detail, **error.extra}, status=error.status
        )
    else:
        response = render(
            request,
            "registration/account_locked.html",
            {"minutes": lockout_minutes(), "detail": error.detail},
            status=error.status,
        )
    response["Retry-After"] = str(error.extra["retry_after_seconds"])
    return response
