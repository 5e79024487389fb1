"""Every API error is JSON: ``{"code": "<stable_code>", "detail": "<human text>", ...}``."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from common.errors import DomainError


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer (the OpenAPI schema's ``Error``)."""

    code = serializers.CharField(help_text="Stable machine-readable error code.")
    detail = serializers.CharField(help_text="Human-readable explanation.")


def _error(description: str, code: str, detail: str, **extra) -> OpenApiResponse:
    example = OpenApiExample(code, value={"code": code, "detail": detail, **extra}, response_only=True)
    return OpenApiResponse(ErrorSerializer, description=description, examples=[example])


# OpenAPI descriptions of the error answers, shared by every API view, each with a typical body.
ERROR_RESPONSES = {
    400: _error(
        "Bad input",
        "invalid",
        "epsilon: Ensure this value is greater than or equal to 0.0001.",
        errors={"epsilon": ["Ensure this value is greater than or equal to 0.0001."]},
    ),
    401: _error("Not signed in", "not_authenticated", "Authentication credentials were not provided."),
    403: _error("Not allowed", "permission_denied", "Only the dataset's owner can change it."),
    404: _error("Unknown id, or not visible to you", "not_found", "Not found."),
    409: _error(
        "Refused in the current state",
        "illegal_transition",
        "Cannot approve a dataset that is draft; approve applies to: pending_review.",
    ),
    429: _error(
        "Too many failed log-ins for this account or from this address",
        "login_locked",
        "Too many failed log-ins for this account or from your address. Try again in 15 minutes, or reset your "
        "password by e-mail.",
        retry_after_seconds=900,
    ),
    503: _error("The chain is not configured or not reachable", "chain_unavailable", "The chain node does not answer."),
}

# Paginated lists answer 404 for a page past the last one (or a page that is not a number).
PAGE_NOT_FOUND = {404: _error("No such page", "not_found", "Invalid page.")}


def error_responses(*codes: int) -> dict:
    """``responses=`` entries for the error codes an endpoint can answer with."""
    return {code: ERROR_RESPONSES.get(code, OpenApiResponse(ErrorSerializer)) for code in codes}


def api_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response({"code": exc.code, "detail": exc.detail, **exc.extra}, status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        first_field, first_messages = next(iter(errors.items()))
        first = first_messages[0] if isinstance(first_messages, list) and first_messages else first_messages
        where = "" if first_field in ("non_field_errors", "detail") else f"{first_field}: "
        response.data = {"code": "invalid", "detail": f"{where}{first}", "errors": errors}
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response
    code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    if not isinstance(code, str):
        code = "error"
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    data: dict[str, str | int] = {"code": code, "detail": str(detail)}
    if isinstance(exc, exceptions.Throttled):
        wait: int | None = exc.wait  # type: ignore[attr-defined]  # set by Throttled.__init__; the stubs omit it
        if wait is not None:
            data["retry_after_seconds"] = int(wait)
    response.data = data
    return response
