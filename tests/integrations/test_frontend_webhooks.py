"""The profile page's webhooks section: list, add (the secret shown once on the answer page),
ping and delete, each only on one's own endpoints."""

from __future__ import annotations

import pytest
from django.test import Client

from integrations.models import WebhookEndpoint
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_user_adds_pings_and_deletes_a_webhook_from_the_profile(buyer, receiver, django_capture_on_commit_callbacks):
    client = _client(buyer)
    page = client.get("/me/")
    assert page.status_code == 200
    assert b'id="webhooks"' in page.content and b"You have no webhooks yet." in page.content
    assert b'value="job.status_changed"' in page.content

    added = client.post("/me/webhooks/", {"url": receiver.url, "events": ["job.finished"], "description": "CI"})
    assert added.status_code == 201 and added["Cache-Control"] == "no-store"
    endpoint = WebhookEndpoint.objects.get(owner=buyer)
    secret = added.context["secret"]
    assert secret.startswith("whsec_") and secret.encode() in added.content

    page = client.get("/me/")
    assert receiver.url.encode() in page.content and b"job.finished" in page.content
    assert secret.encode() not in page.content, "the secret is shown once"

    with django_capture_on_commit_callbacks(execute=True):
        pinged = client.post(f"/me/webhooks/{endpoint.pk}/ping/", follow=True)
    assert b"Ping sent" in pinged.content
    assert receiver.wait_for(1)[0].json["type"] == "ping"
    assert b"ping: delivered (HTTP 200)" in client.get("/me/").content

    stranger = _client(UserFactory(username="stranger"))
    refused = stranger.post(f"/me/webhooks/{endpoint.pk}/delete/", follow=True)
    assert b"No such webhook." in refused.content and WebhookEndpoint.objects.exists()

    deleted = client.post(f"/me/webhooks/{endpoint.pk}/delete/", follow=True)
    assert b"Webhook deleted." in deleted.content and not WebhookEndpoint.objects.exists()


def test_a_refused_url_comes_back_with_its_reason(buyer, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    answer = _client(buyer).post("/me/webhooks/", {"url": "http://127.0.0.1/x", "events": ["job.failed"]}, follow=True)
    assert b"The webhook was not added" in answer.content and b"public addresses only" in answer.content
    assert not WebhookEndpoint.objects.exists()


def test_signed_out_visitors_are_sent_to_log_in(client):
    answer = client.post("/me/webhooks/", {"url": "http://127.0.0.1/x", "events": ["job.failed"]})
    assert answer.status_code == 302 and "/login/" in answer["Location"]
