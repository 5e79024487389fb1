"""Webhooks: endpoints (create, change, delete, rotate the secret), the events of a job fanned out
to the endpoints that may see it, and deliveries (one attempt at a time, retried with backoff).

Who gets a job's events: the endpoints of its buyer and of its dataset's provider, with the same
job fields ``GET /api/v1/jobs/{id}/`` shows them (status, progress, parameters, reason, receipt;
never results)."""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from common.crypto import key_setting
from common.errors import Conflict, InvalidInput, NotFound
from common.tasks import enqueue
from integrations import net, signing
from integrations.conf import setting
from integrations.models import PING_EVENT, TERMINAL_EVENTS, WebhookDelivery, WebhookEndpoint, WebhookEvent
from marketplace.models import User

logger = logging.getLogger(__name__)

USER_AGENT = "ppdx-webhooks/1"


# --- the secret, sealed at rest -------------------------------------------------------------------


def _cipher() -> AESGCM:
    # A key of its own, derived from the server's key-sealing secret.
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ppdx webhook secret v1").derive(
        key_setting("WALLET_ENCRYPTION_KEY")
    )
    return AESGCM(key)


def _seal(secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + _cipher().encrypt(nonce, secret.encode(), b"webhook-secret")


def webhook_secret(endpoint: WebhookEndpoint) -> str:
    sealed = bytes(endpoint.secret_sealed)
    return _cipher().decrypt(sealed[:12], sealed[12:], b"webhook-secret").decode()


# --- endpoints -----------------------------------------------------------------------------------


@dataclass
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str


def _events_clean(events: list[str] | None) -> list[str]:
    events = list(dict.fromkeys(events or []))
    if not events:
        raise InvalidInput("Choose at least one event.", code="invalid_events")
    unknown = sorted(set(events) - set(WebhookEvent.values))
    if unknown:
        raise InvalidInput(
            f"Unknown event {unknown[0]!r}; choose from {', '.join(WebhookEvent.values)}.", code="invalid_events"
        )
    return events


def webhook_create(*, owner: User, url: str, events: list[str] | None, description: str = "") -> CreatedEndpoint:
    """Register an endpoint. The secret comes back here once; afterwards only its last
    characters are shown (``webhook_rotate_secret`` makes a new one)."""
    target = net.url_check(url, resolve_host=False)
    events = _events_clean(events)
    secret = signing.secret_generate()
    with transaction.atomic():
        # Lock the owner so two creations at once cannot pass the limit together.
        User.objects.select_for_update().filter(pk=owner.pk).first()
        if WebhookEndpoint.objects.filter(owner=owner).count() >= int(setting("WEBHOOK_MAX_PER_USER")):
            raise Conflict(
                f"You have {setting('WEBHOOK_MAX_PER_USER')} webhooks already; delete one first.",
                code="too_many_webhooks",
            )
        endpoint = WebhookEndpoint.objects.create(
            owner=owner,
            url=url.strip(),
            description=(description or "").strip()[:200],
            events=events,
            secret_sealed=_seal(secret),
            secret_hint=secret[-4:],
        )
    logger.info("webhook %s created by user %s for %s", endpoint.pk, owner.pk, target.host)
    return CreatedEndpoint(endpoint=endpoint, secret=secret)


def webhook_get_owned(*, user: User, endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, owner_id=user.pk).first()
    if endpoint is None or not user.is_authenticated:
        raise NotFound("No such webhook.")
    return endpoint


def webhook_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: list[str] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    """Change an endpoint. Switching it back on clears its failure count."""
    fields = {"updated_at"}
    if url is not None:
        net.url_check(url, resolve_host=False)
        endpoint.url = url.strip()
        fields.add("url")
    if events is not None:
        endpoint.events = _events_clean(events)
        fields.add("events")
    if description is not None:
        endpoint.description = description.strip()[:200]
        fields.add("description")
    if is_active is not None:
        endpoint.is_active = is_active
        fields.add("is_active")
        if is_active:
            endpoint.consecutive_failures, endpoint.disabled_reason = 0, ""
            fields |= {"consecutive_failures", "disabled_reason"}
    endpoint.save(update_fields=sorted(fields))
    return endpoint


def webhook_rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """A new secret, in force at once (deliveries still pending are signed with it too)."""
    secret = signing.secret_generate()
    endpoint.secret_sealed = _seal(secret)
    endpoint.secret_hint = secret[-4:]
    endpoint.save(update_fields=["secret_sealed", "secret_hint", "updated_at"])
    return secret


def webhook_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint and its delivery log; pending deliveries are dropped."""
    endpoint.delete()


# --- events --------------------------------------------------------------------------------------


def _new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def event_envelope(*, event_id: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "created_at": timezone.now().isoformat(), "data": data}


def job_snapshot(job_id: int) -> dict[str, Any] | None:
    """The job as ``GET /api/v1/jobs/{id}/`` shows it, as plain JSON values."""
    from compute_to_data.api.serializers import JobSerializer
    from compute_to_data.models import ComputeJob

    job = ComputeJob.objects.select_related("order").filter(pk=job_id).first()
    if job is None:
        return None
    return json.loads(json.dumps(JobSerializer(job).data, cls=DjangoJSONEncoder))


def job_event_dispatch(*, job_id: int, status: str, previous: str) -> list[int]:
    """Record a delivery of this status change to every active endpoint of the job's buyer and
    provider that subscribed to it, and queue them. Returns the deliveries' ids."""
    from compute_to_data.models import ComputeJob

    types = [WebhookEvent.JOB_STATUS_CHANGED.value]
    if status in TERMINAL_EVENTS:
        types.append(TERMINAL_EVENTS[status].value)
    job = ComputeJob.objects.select_related("dataset").filter(pk=job_id).first()
    if job is None:
        return []
    roles = {job.buyer_id: "buyer", job.dataset.owner_id: "provider"}
    endpoints = [
        e
        for e in WebhookEndpoint.objects.filter(owner_id__in=roles, is_active=True)
        if any(t in e.events for t in types)
    ]
    if not endpoints:
        return []
    # ``status`` is this transition's; the job snapshot is the row as it is now (rarely later).
    snapshot = job_snapshot(job_id)
    event_ids = {t: _new_event_id() for t in types}
    ids: list[int] = []
    with transaction.atomic():
        for endpoint in endpoints:
            for event_type in types:
                if event_type not in endpoint.events:
                    continue
                data = {
                    "status": status,
                    "previous_status": previous,
                    "role": roles[endpoint.owner_id],
                    "job": snapshot,
                }
                delivery = WebhookDelivery.objects.create(
                    endpoint=endpoint,
                    event_id=event_ids[event_type],
                    event_type=event_type,
                    job_id=job_id,
                    payload=event_envelope(event_id=event_ids[event_type], event_type=event_type, data=data),
                    next_attempt_at=timezone.now(),
                )
                ids.append(delivery.pk)
        transaction.on_commit(lambda: deliveries_enqueue(ids))
    return ids


def webhook_ping(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a ``ping`` event to the endpoint (even a switched-off one), to test the receiver."""
    event_id = _new_event_id()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_id=event_id,
            event_type=PING_EVENT,
            payload=event_envelope(
                event_id=event_id,
                event_type=PING_EVENT,
                data={"webhook": endpoint.pk, "message": "It works: this endpoint receives marketplace events."},
            ),
            next_attempt_at=timezone.now(),
        )
        delivery_id = delivery.pk
        transaction.on_commit(lambda: deliveries_enqueue([delivery_id]))
    return delivery


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivered or given-up event again (same event id, so receivers can deduplicate)."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        if delivery.status == WebhookDelivery.Status.PENDING:
            raise Conflict("This delivery is still being attempted.", code="delivery_pending")
        delivery.status = WebhookDelivery.Status.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = timezone.now()
        delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
        delivery_id = delivery.pk
        transaction.on_commit(lambda: deliveries_enqueue([delivery_id]))
    return delivery


def deliveries_enqueue(ids: list[int]) -> None:
    for delivery_id in ids:
        try:
            enqueue("integrations.tasks.webhook_deliver_task", delivery_id, on_commit=False)
        except Exception:  # the resume sweep picks it up
            logger.exception("webhook delivery %s: could not queue", delivery_id)


# --- delivering ----------------------------------------------------------------------------------


def _retry_schedule() -> list[float]:
    return [float(s) for s in setting("WEBHOOK_RETRY_SCHEDULE")]


def max_attempts() -> int:
    return len(_retry_schedule()) + 1


def delivery_attempt(*, delivery_id: int) -> float | None:
    """Make the next attempt of a pending delivery that is due. Returns the seconds until the
    next attempt when this one failed and another is planned, else None.

    Safe to call twice: the attempt is claimed under a row lock (its next attempt moved past the
    request's time limit), so a second caller finds it not due and does nothing."""
    timeout = float(setting("WEBHOOK_TIMEOUT_SECONDS"))
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
            return None
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
            # Not due (a duplicate message, or one attempt in flight): its own message or the
            # resume sweep comes back for it.
            return None
        endpoint = delivery.endpoint
        if not endpoint.is_active and delivery.event_type != PING_EVENT:
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.error = "The webhook is switched off."
            delivery.save(update_fields=["status", "error"])
            return None
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + timedelta(seconds=4 * timeout + 30)
        delivery.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])
        url, secret, attempt = endpoint.url, webhook_secret(endpoint), delivery.attempts
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Marketplace-Event": delivery.event_type,
        "X-Marketplace-Event-Id": delivery.event_id,
        "X-Marketplace-Delivery": str(delivery.pk),
        "X-Marketplace-Attempt": str(attempt),
        **signing.signature_headers(secret, body),
    }
    result = net.post_json(url, body, headers)
    return _delivery_record(delivery_id=delivery.pk, endpoint_id=endpoint.pk, attempt=attempt, result=result)


def _delivery_record(*, delivery_id: int, endpoint_id: int, attempt: int, result: net.PostResult) -> float | None:
    now = timezone.now()
    fields: dict[str, Any] = {
        "response_status": result.status,
        "response_body": result.body,
        "error": result.error,
        "duration_ms": result.duration_ms,
    }
    wait: float | None = None
    if result.ok:
        fields.update(status=WebhookDelivery.Status.SUCCEEDED, delivered_at=now, next_attempt_at=None)
        WebhookEndpoint.objects.filter(pk=endpoint_id).update(consecutive_failures=0)
    else:
        schedule = _retry_schedule()
        if attempt <= len(schedule):
            wait = schedule[attempt - 1]
            fields.update(next_attempt_at=now + timedelta(seconds=wait))
        else:
            fields.update(status=WebhookDelivery.Status.FAILED, next_attempt_at=None)
        _endpoint_failed(endpoint_id)
    WebhookDelivery.objects.filter(pk=delivery_id, attempts=attempt).update(**fields)
    return wait


def _endpoint_failed(endpoint_id: int) -> None:
    limit = int(setting("WEBHOOK_DISABLE_AFTER_FAILURES"))
    WebhookEndpoint.objects.filter(pk=endpoint_id).update(consecutive_failures=F("consecutive_failures") + 1)
    switched_off = WebhookEndpoint.objects.filter(
        pk=endpoint_id, is_active=True, consecutive_failures__gte=limit
    ).update(
        is_active=False,
        disabled_reason=f"Switched off after {limit} failed attempts in a row; switch it on again when it is fixed.",
        updated_at=timezone.now(),
    )
    if switched_off:
        logger.warning("webhook %s switched off after %s failures", endpoint_id, limit)


def deliveries_resume(*, grace_seconds: float = 30) -> list[int]:
    """Queue the pending deliveries whose attempt is overdue (a lost message, a worker that died
    mid-attempt, a retry planned by an eager run). Returns their ids."""
    due = timezone.now() - timedelta(seconds=grace_seconds)
    ids = list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
        .filter(Q(next_attempt_at__lte=due) | Q(next_attempt_at__isnull=True))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:500]
    )
    deliveries_enqueue(ids)
    return ids
