"""The 404 and 500 pages (``handler404``/``handler500`` in config/urls.py): JSON under /api/, the
error page elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader

from frontend.views.common import PageError


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
    error = PageError("not_found", "There is no page at this address.", 404)
    return render(request, "frontend/error.html", {"error": error}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "server_error", "detail": "Server error."}, status=500)
    error = PageError("server_error", "Something went wrong on our side. Please try again in a moment.", 500)
    try:
        # No request context: whatever broke may be the database the context processors need.
        body = loader.get_template("frontend/error.html").render({"error": error, "bare": True})
    except Exception:  # the error page must not fail itself
        body = "<h1>Server error</h1><p>Please try again in a moment.</p>"
    return HttpResponse(body, status=500)
