"""Every API error is JSON: ``{"code": "<stable_code>", "detail": "<human text>", ...}``."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from marketplace.api.serializers import ErrorSerializer
from marketplace.errors import DomainError

# OpenAPI descriptions of the error answers, shared by every API view.
ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Bad input"),
    401: OpenApiResponse(ErrorSerializer, description="Not signed in"),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed"),
    404: OpenApiResponse(ErrorSerializer, description="Unknown id, or not visible to you"),
    409: OpenApiResponse(ErrorSerializer, description="Refused in the current state"),
    503: OpenApiResponse(ErrorSerializer, description="The chain is not configured or not reachable"),
}


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
    data = {"code": code, "detail": str(detail)}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        data["retry_after_seconds"] = int(exc.wait)
    response.data = data
    return response
