"""Every API error is JSON: ``{"code": "<stable_code>", "detail": "<human text>", ...}``."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from marketplace.errors import DomainError


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
