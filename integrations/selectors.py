"""Reads of webhooks: a user sees their own endpoints and their deliveries only."""

from __future__ import annotations

from django.db.models import QuerySet

from common.errors import InvalidInput, NotFound
from integrations.models import WebhookDelivery, WebhookEndpoint
from marketplace.models import User


def webhooks_of(*, user: User) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(owner_id=user.pk)


def deliveries_of(*, endpoint: WebhookEndpoint, status: str | None = None) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    if status:
        if status not in WebhookDelivery.Status.values:
            raise InvalidInput(
                f"Unknown status {status!r}; use one of {', '.join(WebhookDelivery.Status.values)}.",
                code="invalid_status",
            )
        deliveries = deliveries.filter(status=status)
    return deliveries


def delivery_get(*, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint, pk=delivery_id).first()
    if delivery is None:
        raise NotFound("No such delivery.")
    return delivery
