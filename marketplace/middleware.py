"""Domain errors raised outside the API (pages, upload parsing) become proper responses:
JSON with ``code`` and ``detail`` under /api/, a short page elsewhere."""

from django.http import JsonResponse
from django.shortcuts import render

from marketplace.errors import DomainError


class DomainErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Parse the body before CsrfViewMiddleware does: FileTooLarge raised inside another
        # middleware's process_view would otherwise become a 500 instead of a 413.
        if request.method == "POST" and not getattr(view_func, "csrf_exempt", False):
            try:
                request.POST  # noqa: B018
            except DomainError as exc:
                return self.process_exception(request, exc)
        return None

    def process_exception(self, request, exception):
        if not isinstance(exception, DomainError):
            return None
        if request.path.startswith("/api/"):
            return JsonResponse(
                {"code": exception.code, "detail": exception.detail, **exception.extra}, status=exception.status
            )
        return render(request, "frontend/error.html", {"error": exception}, status=exception.status)
