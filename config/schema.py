"""``GET /api/schema/``: the OpenAPI document, generated once per process.

drf-spectacular's generation is not thread-safe: it binds each view's shared ``AutoSchema``
instance to the view being inspected as it walks the URLs, so two requests generating at once
under gunicorn's threaded workers mix each other's views up and one of them raises (a 500). The
document depends only on the code (the schema is served public, for everyone alike), so it is
built once, under a lock, and every later request answers from it."""

from __future__ import annotations

import threading
from typing import Any

from django.utils import translation
from drf_spectacular.views import SpectacularAPIView
from rest_framework.response import Response

_lock = threading.Lock()
_schemas: dict[tuple[Any, ...], dict] = {}


class CachedSpectacularAPIView(SpectacularAPIView):
    def _get_schema_response(self, request):
        version = self.api_version or request.version or self._get_version_parameter(request)
        key = (version, translation.get_language(), self.serve_public)
        schema = _schemas.get(key)
        if schema is None:
            with _lock:
                schema = _schemas.get(key)
                if schema is None:
                    generator = self.generator_class(urlconf=self.urlconf, api_version=version, patterns=self.patterns)
                    schema = _schemas[key] = generator.get_schema(request=request, public=self.serve_public)
        return Response(
            data=schema,
            headers={"Content-Disposition": f'inline; filename="{self._get_filename(request, version)}"'},
        )


def schema_cache_clear() -> None:
    """Forget the generated documents (tests that change the URLs or settings call it)."""
    with _lock:
        _schemas.clear()
