"""Domain errors raised outside the API (pages, upload parsing) become proper responses:
JSON with ``code`` and ``detail`` under /api/, a short page elsewhere."""

import re
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from common.errors import DomainError


class DomainErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        # Parse the body before CsrfViewMiddleware does: FileTooLarge raised inside another
        # middleware's process_view would otherwise become a 500 instead of a 413.
        if request.method == "POST" and not getattr(view_func, "csrf_exempt", False):
            try:
                request.POST  # noqa: B018
            except DomainError as exc:
                return self.process_exception(request, exc)
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DomainError):
            return None
        if request.path.startswith("/api/"):
            return JsonResponse(
                {"code": exception.code, "detail": exception.detail, **exception.extra}, status=exception.status
            )
        return render(request, "frontend/error.html", {"error": exception}, status=exception.status)


MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON text nests arrays/objects deeper than ``limit`` (strings are skipped, so a
    bracket inside one does not count). Linear in the body, no recursion."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class JSONDepthMiddleware:
    """Refuses a JSON body nested deeper than ``MAX_JSON_DEPTH`` with a 400 before any parser sees
    it: the parsers recurse once per level, and a body nested 100,000 deep overflows the C stack
    and kills the worker process (the chain libraries raise the recursion limit)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        content_type = request.META.get("CONTENT_TYPE", "")
        if "json" in content_type and request.method in ("POST", "PUT", "PATCH", "DELETE"):
            try:
                body = request.body
            except Exception:  # noqa: BLE001 - a body too large is answered by the usual path
                body = b""
            if json_depth_exceeds(body):
                detail = f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels."
                if request.path.startswith("/api/"):
                    return JsonResponse({"code": "json_too_deep", "detail": detail}, status=400)
                return render(request, "frontend/error.html", {"error": DomainError(detail)}, status=400)
        return self.get_response(request)


QUERY_TIMEOUT_DETAIL = (
    "This request took too long in the database and was stopped. Try again in a moment, or narrow the search."
)


def _is_query_timeout(exception: BaseException) -> bool:
    from django.db import OperationalError
    from psycopg2 import errors as pg_errors

    return isinstance(exception, OperationalError) and isinstance(exception.__cause__, pg_errors.QueryCanceled)


class QueryTimeoutMiddleware:
    """A statement cancelled by the web's ``statement_timeout`` (config/db.py) is answered with a
    503 and ``Retry-After``: JSON ``query_timeout`` under /api/, a short page elsewhere. Nothing
    was written: the statement and its transaction were rolled back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not _is_query_timeout(exception):
            return None
        error = DomainError(QUERY_TIMEOUT_DETAIL, code="query_timeout")
        error.status = 503
        response: HttpResponse
        if request.path.startswith("/api/"):
            response = JsonResponse({"code": error.code, "detail": error.detail}, status=503)
        else:
            try:
                response = render(request, "frontend/error.html", {"error": error, "bare": True}, status=503)
            except Exception:  # noqa: BLE001 - the page's own queries may time out too
                response = HttpResponse(QUERY_TIMEOUT_DETAIL, content_type="text/plain; charset=utf-8", status=503)
        response["Retry-After"] = "5"
        return response
