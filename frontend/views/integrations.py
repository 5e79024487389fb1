"""Profile-page webhooks: create (the secret is shown once, on the answer page), delete, ping.
The list and the form are frontend/includes/webhooks.html, included by the profile page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from common.errors import DomainError
from frontend.views.common import signed_in_user
from integrations.services import webhooks as webhook_services


def _back() -> HttpResponse:
    return redirect(reverse("frontend:profile") + "#webhooks")


@require_POST
@login_required
def webhook_create(request: HttpRequest) -> HttpResponse:
    try:
        created = webhook_services.webhook_create(
            owner=signed_in_user(request),
            url=request.POST.get("url", ""),
            events=request.POST.getlist("events"),
            description=request.POST.get("description", ""),
        )
    except DomainError as exc:
        messages.error(request, f"The webhook was not added: {exc.detail}")
        return _back()
    # Rendered, not redirected: the secret must not travel through a message cookie.
    response = render(
        request, "frontend/webhook_created.html", {"endpoint": created.endpoint, "secret": created.secret}, status=201
    )
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def webhook_delete(request: HttpRequest, webhook_id: int) -> HttpResponse:
    try:
        endpoint = webhook_services.webhook_get_owned(user=signed_in_user(request), endpoint_id=webhook_id)
        webhook_services.webhook_delete(endpoint=endpoint)
    except DomainError as exc:
        messages.error(request, exc.detail)
        return _back()
    messages.success(request, "Webhook deleted.")
    return _back()


@require_POST
@login_required
def webhook_ping(request: HttpRequest, webhook_id: int) -> HttpResponse:
    try:
        endpoint = webhook_services.webhook_get_owned(user=signed_in_user(request), endpoint_id=webhook_id)
        webhook_services.webhook_ping(endpoint=endpoint)
    except DomainError as exc:
        messages.error(request, exc.detail)
        return _back()
    messages.success(request, "Ping sent; its result shows under the webhook.")
    return _back()
