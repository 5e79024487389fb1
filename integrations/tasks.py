"""Celery tasks of the integrations app: take ids, call one service, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from integrations.services import webhooks


@shared_task(bind=True, acks_late=True, soft_time_limit=60, time_limit=90)
def webhook_deliver_task(self, delivery_id: int) -> str:
    """One attempt; a failed one is queued again after its backoff. An eager run (tests) does not
    wait: the resume sweep sends the retry when it is due."""
    wait = webhooks.delivery_attempt(delivery_id=delivery_id)
    if wait is None:
        return "done"
    if not self.request.is_eager:
        webhook_deliver_task.apply_async((delivery_id,), countdown=wait)
    return f"retry in {wait:g} s"


@shared_task(acks_late=True)
def webhook_deliveries_resume_task() -> int:
    return len(webhooks.deliveries_resume())
