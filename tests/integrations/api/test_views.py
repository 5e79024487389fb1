"""Webhook endpoints over the REST API: the secret shown once, only the owner sees an endpoint,
URL and event checks, a signed ping to a real receiver, the delivery log, retries with backoff,
giving up, redelivery, rotating the secret and switching off an endpoint that keeps failing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import WebhookDelivery, WebhookEndpoint
from integrations.services import webhooks as webhook_services
from integrations.signing import signature_verify
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _create(client, url, events=("job.finished", "job.failed"), **extra):
    return client.post("/api/v1/webhooks/", {"url": url, "events": list(events), **extra}, format="json")


def _verify(request, secret):
    signature_verify(
        secret,
        request.body,
        timestamp=request.headers["x-marketplace-timestamp"],
        signature=request.headers["x-marketplace-signature"],
    )


def test_the_secret_is_shown_once_and_the_endpoint_is_the_owners_alone(buyer, receiver):
    client = client_for(buyer)
    created = _create(client, receiver.url, description="CI")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["job.finished", "job.failed"]
    assert created["Cache-Control"] == "no-store"
    assert body["secret_hint"].endswith(body["secret"][-4:])

    listed = client.get("/api/v1/webhooks/").json()
    assert [w["id"] for w in listed] == [body["id"]]
    assert "secret" not in listed[0] and "secret" not in client.get(f"/api/v1/webhooks/{body['id']}/").json()
    # Sealed at rest: the raw secret is not in the row.
    assert body["secret"].encode() not in bytes(WebhookEndpoint.objects.get().secret_sealed)

    stranger = client_for(UserFactory(username="stranger"))
    assert stranger.get("/api/v1/webhooks/").json() == []
    for method in ("get", "delete", "patch"):
        answer = getattr(stranger, method)(f"/api/v1/webhooks/{body['id']}/", {}, format="json")
        assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    assert stranger.post(f"/api/v1/webhooks/{body['id']}/ping/").status_code == 404
    assert stranger.get(f"/api/v1/webhooks/{body['id']}/deliveries/").status_code == 404

    assert client.delete(f"/api/v1/webhooks/{body['id']}/").status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_anonymous_callers_are_refused(api):
    assert api.get("/api/v1/webhooks/").status_code == 401
    assert api.post("/api/v1/webhooks/", {}, format="json").status_code == 401


@pytest.mark.parametrize(
    "body, code, words",
    [
        ({"url": "ftp://example.com/x", "events": ["job.finished"]}, "invalid_url", "Only http"),
        ({"url": "https://example.com/x", "events": ["job.exploded"]}, "invalid", "events"),
        ({"url": "https://example.com/x", "events": []}, "invalid", "events"),
        ({"events": ["job.finished"]}, "invalid", "url"),
    ],
)
def test_bad_urls_and_events_are_refused_with_a_reason(buyer, body, code, words):
    answer = client_for(buyer).post("/api/v1/webhooks/", body, format="json")
    assert answer.status_code == 400
    assert answer.json()["code"] == code and words in answer.json()["detail"]


def test_private_addresses_are_refused_when_not_allowed(buyer, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    answer = _create(client_for(buyer), "http://127.0.0.1:8000/hook")
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_url"
    assert "public addresses only" in answer.json()["detail"]


def test_a_user_has_at_most_the_configured_number_of_endpoints(buyer, settings, receiver):
    settings.WEBHOOK_MAX_PER_USER = 2
    client = client_for(buyer)
    assert [_create(client, receiver.url).status_code for _ in range(3)] == [201, 201, 409]
    assert _create(client, receiver.url).json()["code"] == "too_many_webhooks"


def test_ping_reaches_the_receiver_signed_and_is_logged(buyer, receiver, django_capture_on_commit_callbacks):
    client = client_for(buyer)
    created = _create(client, receiver.url).json()
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(f"/api/v1/webhooks/{created['id']}/ping/")
    assert answer.status_code == 202
    [request] = receiver.wait_for(1)
    _verify(request, created["secret"])
    event = request.json
    assert event["type"] == "ping" and event["id"].startswith("evt_")
    assert request.headers["x-marketplace-event"] == "ping"
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/hooks/marketplace"

    log = client.get(f"/api/v1/webhooks/{created['id']}/deliveries/").json()
    assert log["count"] == 1
    entry = log["results"][0]
    assert (entry["status"], entry["attempts"], entry["response_status"]) == ("succeeded", 1, 200)
    assert entry["payload"] == event and entry["response_body"] == "ok"
    assert client.get(f"/api/v1/webhooks/{created['id']}/").json()["last_delivery"]["status"] == "succeeded"
    assert client.get(f"/api/v1/webhooks/{created['id']}/deliveries/?status=failed").json()["count"] == 0
    assert client.get(f"/api/v1/webhooks/{created['id']}/deliveries/?status=odd").status_code == 400


def test_a_failing_receiver_is_retried_with_backoff_then_given_up_then_redelivered(
    buyer, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_SCHEDULE = (10, 60)
    receiver.responses = [500, 503, 502, 200]
    client = client_for(buyer)
    created = _create(client, receiver.url).json()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/api/v1/webhooks/{created['id']}/ping/")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 1, 500)
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 9 <= wait <= 11, "the first retry waits the first step of the schedule"

    # Not due yet: a second delivery of the task does nothing.
    assert webhook_services.delivery_attempt(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 1

    # Due: the resume sweep queues it (the eager task runs it at once).
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=1))
    assert webhook_services.deliveries_resume() == [delivery.pk]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 2, 503)
    assert 59 <= (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds() <= 61

    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=1))
    webhook_services.deliveries_resume()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 3, 502)
    assert delivery.next_attempt_at is None and delivery.error == "HTTP 502"
    assert webhook_services.deliveries_resume() == []
    assert WebhookEndpoint.objects.get().consecutive_failures == 3

    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(f"/api/v1/webhooks/{created['id']}/deliveries/{delivery.pk}/redeliver/")
    assert again.status_code == 202
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 1, 200)
    ids = {r.json["id"] for r in receiver.requests}
    assert len(receiver.requests) == 4 and len(ids) == 1, "every attempt carries the same event id"
    assert [r.headers["x-marketplace-attempt"] for r in receiver.requests] == ["1", "2", "3", "1"]
    assert WebhookEndpoint.objects.get().consecutive_failures == 0
    pending = client.post(f"/api/v1/webhooks/{created['id']}/deliveries/{delivery.pk}/redeliver/")
    assert pending.status_code == 202  # delivered ones can be sent again too


def test_an_endpoint_that_keeps_failing_is_switched_off_and_on_again(
    buyer, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_SCHEDULE = ()
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    receiver.responses = [500]
    client = client_for(buyer)
    created = _create(client, receiver.url).json()
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            client.post(f"/api/v1/webhooks/{created['id']}/ping/")
    hook = client.get(f"/api/v1/webhooks/{created['id']}/").json()
    assert hook["is_active"] is False and "2 failed attempts" in hook["disabled_reason"]
    answer = client.patch(f"/api/v1/webhooks/{created['id']}/", {"is_active": True}, format="json")
    assert answer.json()["is_active"] is True and answer.json()["consecutive_failures"] == 0


def test_rotating_the_secret_signs_the_next_delivery_with_the_new_one(
    buyer, receiver, django_capture_on_commit_callbacks
):
    client = client_for(buyer)
    created = _create(client, receiver.url).json()
    rotated = client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret/")
    assert rotated.status_code == 200 and rotated["Cache-Control"] == "no-store"
    new = rotated.json()["secret"]
    assert new != created["secret"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/api/v1/webhooks/{created['id']}/ping/")
    [request] = receiver.wait_for(1)
    _verify(request, new)
    with pytest.raises(ValueError):
        _verify(request, created["secret"])


def test_changing_an_endpoint_checks_the_new_url_and_events(buyer, receiver, settings):
    client = client_for(buyer)
    created = _create(client, receiver.url).json()
    changed = client.patch(
        f"/api/v1/webhooks/{created['id']}/",
        {"events": ["job.status_changed"], "description": "all changes"},
        format="json",
    ).json()
    assert changed["events"] == ["job.status_changed"] and changed["description"] == "all changes"
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    refused = client.patch(f"/api/v1/webhooks/{created['id']}/", {"url": "http://10.0.0.1/"}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_url"
    assert WebhookEndpoint.objects.get().url == receiver.url


def test_the_schema_documents_every_webhook_operation_with_examples(api):
    import yaml

    schema = yaml.safe_load(api.get("/api/schema/").content)
    paths = schema["paths"]
    expected = {
        ("/api/v1/webhooks/", "get"),
        ("/api/v1/webhooks/", "post"),
        ("/api/v1/webhooks/{webhook_id}/", "get"),
        ("/api/v1/webhooks/{webhook_id}/", "patch"),
        ("/api/v1/webhooks/{webhook_id}/ping/", "post"),
        ("/api/v1/webhooks/{webhook_id}/rotate-secret/", "post"),
        ("/api/v1/webhooks/{webhook_id}/deliveries/", "get"),
        ("/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver/", "post"),
        ("/api/v1/jobs/{job_id}/events/", "get"),
    }
    for path, method in expected:
        operation = paths[path][method]
        content = next(r["content"] for code, r in operation["responses"].items() if code.startswith("2"))
        assert any(media.get("examples") for media in content.values()), (path, method)
    stream = paths["/api/v1/jobs/{job_id}/events/"]["get"]["responses"]["200"]["content"]
    assert "event: status" in next(iter(stream["text/event-stream"]["examples"].values()))["value"]
