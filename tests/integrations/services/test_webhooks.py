"""A job's status changes reach its buyer's and its provider's webhooks as signed POSTs to a real
HTTP receiver (Celery eager here; the whole paid job on a real chain and sandbox is below)."""

from __future__ import annotations

import pytest
from django.core import mail

from compute_to_data.models import ComputeJob
from integrations.models import WebhookDelivery
from integrations.services import webhooks as webhook_services
from integrations.signing import signature_verify
from tests.factories import UserFactory
from tests.integrations.support import job_make, job_move

pytestmark = pytest.mark.django_db(transaction=True)


def _hook(user, url, events):
    return webhook_services.webhook_create(owner=user, url=url, events=events)


def _verify(request, secret):
    signature_verify(
        secret,
        request.body,
        timestamp=request.headers["x-marketplace-timestamp"],
        signature=request.headers["x-marketplace-signature"],
    )


def test_buyer_and_provider_hear_of_their_job_and_a_stranger_does_not(buyer, provider, listed, receiver):
    every = _hook(buyer, receiver.url + "?who=buyer", ["job.status_changed"])
    ends = _hook(provider, receiver.url + "?who=provider", ["job.finished"])
    stranger = _hook(UserFactory(username="stranger"), receiver.url + "?who=stranger", ["job.status_changed"])
    job = job_make(buyer=buyer, dataset=listed)

    job_move(job, "paid", "queued", "provisioning", "running", "publishing")
    job_move(job, "finished", epsilon_spent=0.42, budget_state="charged")

    requests = receiver.wait_for(7)
    by_who = {who: [r for r in requests if r.path.endswith(f"who={who}")] for who in ("buyer", "provider", "stranger")}
    assert by_who["stranger"] == []
    buyer_events = [r.json for r in by_who["buyer"]]
    assert [e["data"]["status"] for e in buyer_events] == [
        "paid",
        "queued",
        "provisioning",
        "running",
        "publishing",
        "finished",
    ]
    assert [e["data"]["previous_status"] for e in buyer_events][:2] == ["created", "paid"]
    assert {e["type"] for e in buyer_events} == {"job.status_changed"}
    assert all(e["data"]["role"] == "buyer" and e["data"]["job"]["id"] == job.pk for e in buyer_events)
    for request in by_who["buyer"]:
        _verify(request, every.secret)

    [provider_request] = by_who["provider"]
    _verify(provider_request, ends.secret)
    event = provider_request.json
    assert event["type"] == "job.finished" and event["data"]["role"] == "provider"
    job_fields = event["data"]["job"]
    assert job_fields["status"] == "finished" and job_fields["epsilon_spent"] == "0.420000"
    assert "results" not in job_fields and "artifacts" not in job_fields, "results are the buyer's alone"
    assert provider_request.headers["x-marketplace-event-id"] == event["id"]

    assert WebhookDelivery.objects.filter(endpoint=stranger.endpoint).count() == 0
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}
    # The e-mails went out too: the buyer's and the provider's.
    assert sorted(m.to[0] for m in mail.outbox if "job" in m.subject) == ["buyer@example.org", "provider@example.org"]


def test_a_receiver_that_is_down_never_stops_the_job(buyer, listed, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    _hook(buyer, "http://127.0.0.1:9/unreachable", ["job.status_changed", "job.failed"])
    job = job_make(buyer=buyer, dataset=listed)
    job_move(job, "paid", "queued")
    job_move(job, "failed", reason="The sandbox is not available.")
    assert ComputeJob.objects.get(pk=job.pk).status == "failed"
    deliveries = WebhookDelivery.objects.filter(job=job)
    assert {d.event_type for d in deliveries} == {"job.status_changed", "job.failed"}
    assert all(d.status == "pending" and d.attempts == 1 and d.next_attempt_at for d in deliveries)
    assert all(d.error for d in deliveries)


def test_a_switched_off_endpoint_gets_nothing(buyer, listed, receiver):
    created = _hook(buyer, receiver.url, ["job.status_changed"])
    webhook_services.webhook_update(endpoint=created.endpoint, is_active=False)
    job_move(job_make(buyer=buyer, dataset=listed), "paid")
    assert receiver.requests == [] and not WebhookDelivery.objects.exists()
