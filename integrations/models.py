"""Webhook endpoints and their delivery log. Both change only through
``integrations.services.webhooks``."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class WebhookEvent(models.TextChoices):
    """What an endpoint can subscribe to."""

    JOB_STATUS_CHANGED = "job.status_changed", "Every status change of a job"
    JOB_FINISHED = "job.finished", "A job finished (results ready)"
    JOB_FAILED = "job.failed", "A job failed"
    JOB_CANCELLED = "job.cancelled", "A job was cancelled"
    JOB_REJECTED = "job.rejected", "A job was rejected (payment or budget)"


# The terminal job statuses that have an event of their own.
TERMINAL_EVENTS = {
    "finished": WebhookEvent.JOB_FINISHED,
    "failed": WebhookEvent.JOB_FAILED,
    "cancelled": WebhookEvent.JOB_CANCELLED,
    "rejected": WebhookEvent.JOB_REJECTED,
}
# Sent by the "ping" action only; nobody subscribes to it.
PING_EVENT = "ping"


class WebhookEndpoint(models.Model):
    """A URL a user wants events POSTed to. It receives the events of the jobs the user bought
    and of the jobs run on the user's datasets (the same job fields the job's API shows them;
    never results). Payloads are signed with the endpoint's secret (HMAC-SHA256), which is shown
    once and kept sealed."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text="Subscribed event types (WebhookEvent values).")
    secret_sealed = models.BinaryField(editable=False)
    secret_hint = models.CharField(max_length=20, blank=True, help_text="The secret's last characters.")
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} of user {self.owner_id}: {self.url}"

    @property
    def last_delivery(self) -> WebhookDelivery | None:
        return self.deliveries.order_by("-created_at", "-id").first()


class WebhookDelivery(models.Model):
    """One event POSTed (or being POSTed) to one endpoint, with its attempts and last answer."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Given up"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.CharField(max_length=40, help_text="Same for every endpoint that gets this event.")
    event_type = models.CharField(max_length=40)
    job = models.ForeignKey(
        "compute_to_data.ComputeJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_event_once_per_endpoint")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")]

    def __str__(self) -> str:
        return f"{self.event_type} to webhook {self.endpoint_id} ({self.status})"
