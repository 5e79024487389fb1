from csp.decorators import csp_update
from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularSwaggerSplitView

from config.schema import CachedSpectacularAPIView
from frontend.views import errors as error_views


def healthz(request):
    return JsonResponse({"status": "ok"})


@csrf_exempt  # a JSON 404 for any method: a POST to an unknown API path must not get the HTML CSRF page
def api_not_found(request, rest=""):
    return JsonResponse({"code": "not_found", "detail": f"No API endpoint at {request.path}."}, status=404)


urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("marketplace.api.urls")),
    path("api/v1/", include("chain.api.urls")),
    path("api/v1/", include("compute_to_data.api.urls")),
    path("api/v1/", include("integrations.api.urls")),
    # Generated once per process under a lock: generation is not thread-safe (config/schema.py).
    path("api/schema/", CachedSpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file (GET api/docs/?script), so the
    # page runs under the site's script policy; only its own inline <style> needs an exception.
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="swagger-ui",
    ),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
    path("", include("frontend.urls")),
]

handler404 = error_views.not_found
handler500 = error_views.server_error
