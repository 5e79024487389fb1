from django.http import HttpResponse, JsonResponse


def catalogue(request):
    return HttpResponse("catalogue")


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
    return HttpResponse("Not found", status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "server_error", "detail": "Server error."}, status=500)
    return HttpResponse("Server error", status=500)
