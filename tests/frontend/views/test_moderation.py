"""Review and moderation through the pages (``frontend/views/moderation.py``): submit, approve,
the queue, reports and the audit log."""

from __future__ import annotations

import pytest
from django.urls import reverse

from marketplace.models import Dataset, ModerationLogEntry, Report
from marketplace.services.moderation import report_create
from tests.factories import UserFactory, make_dataset
from tests.frontend.support import client_as, text

pytestmark = pytest.mark.django_db


def test_submit_then_approve_through_the_pages(provider, staff):
    dataset = make_dataset(owner=provider)
    transition = reverse("frontend:dataset-transition", args=[dataset.pk])
    owner = client_as(provider)
    response = owner.post(transition, {"action": "submit"}, follow=True)
    assert "Submitted for review" in text(response)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.PENDING_REVIEW

    moderator = client_as(staff)
    queue = text(moderator.get(reverse("frontend:moderation")))
    assert "Clinical measurements" in queue and 'value="approve"' in queue
    response = moderator.post(transition, {"action": "approve", "reason": "", "next": "/moderation/"}, follow=True)
    assert "A reason is required to approve." in text(response)
    response = moderator.post(transition, {"action": "approve", "reason": "Looks good", "next": "/moderation/"})
    assert response["Location"] == "/moderation/"
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.LISTED
    entry = ModerationLogEntry.objects.get(action="approve")
    assert entry.actor == staff and entry.reason == "Looks good"
    assert "Looks good" in text(owner.get(reverse("frontend:dataset", args=[dataset.pk])))


def test_non_staff_cannot_approve(provider, buyer):
    dataset = make_dataset(owner=provider, status="pending_review")
    response = client_as(provider).post(
        reverse("frontend:dataset-transition", args=[dataset.pk]), {"action": "approve", "reason": "mine"}, follow=True
    )
    assert "Only moderators can do that." in text(response)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.PENDING_REVIEW


def test_transition_ignores_offsite_next(provider, staff):
    dataset = make_dataset(owner=provider, status="pending_review")
    response = client_as(staff).post(
        reverse("frontend:dataset-transition", args=[dataset.pk]),
        {"action": "approve", "reason": "ok", "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("frontend:dataset", args=[dataset.pk])


def test_moderation_queue_filters(provider, staff):
    make_dataset(owner=provider, title="Waiting one", status="pending_review")
    listed = make_dataset(owner=provider, title="Live one", status="listed", moderator=staff)
    client = client_as(staff)
    body = text(client.get(reverse("frontend:moderation")))
    assert "Waiting one" in body and "Live one" not in body
    body = text(client.get(reverse("frontend:moderation"), {"status": "listed"}))
    assert "Live one" in body and "Waiting one" not in body and 'value="delist"' in body
    body = text(client.get(reverse("frontend:moderation"), {"status": "all", "q": "waiting"}))
    assert "Waiting one" in body and "Live one" not in body
    report_create(dataset=listed, reporter=UserFactory(username="whistle"), reason="Contains names")
    body = text(client.get(reverse("frontend:moderation"), {"status": "all", "reported": "on"}))
    assert "Live one" in body and "Waiting one" not in body and "1 open report" in body
    bad = client.get(reverse("frontend:moderation"), {"status": "bogus"})
    assert bad.status_code == 400 and "Unknown filter" in text(bad)


def test_report_then_resolve(provider, buyer, staff):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff)
    page = text(client_as(buyer).get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "Report this listing" in page
    assert "Report this listing" not in text(client_as(provider).get(reverse("frontend:dataset", args=[dataset.pk])))
    reporter = client_as(buyer)
    response = reporter.post(
        reverse("frontend:dataset-report", args=[dataset.pk]), {"reason": "It has real names"}, follow=True
    )
    assert "The moderators have your report." in text(response)
    again = reporter.post(reverse("frontend:dataset-report", args=[dataset.pk]), {"reason": "again"}, follow=True)
    assert "You already have an open report" in text(again)
    report = Report.objects.get()
    moderator = client_as(staff)
    assert "It has real names" in text(moderator.get(reverse("frontend:moderation")))
    resolve = reverse("frontend:report-resolve", args=[report.pk])
    assert "A reason is required" in text(
        moderator.post(resolve, {"decision": "resolve", "resolution": ""}, follow=True)
    )
    moderator.post(resolve, {"decision": "dismiss", "resolution": "Names are synthetic"})
    report.refresh_from_db()
    assert report.status == Report.Status.DISMISSED and report.resolution == "Names are synthetic"
    assert client_as(buyer).post(resolve, {"decision": "resolve", "resolution": "x"}).status_code == 403


def test_audit_log_staff_see_all_providers_their_own(provider, buyer, staff):
    make_dataset(owner=provider, title="Provider's", status="listed", moderator=staff)
    make_dataset(owner=buyer, title="Buyer's", status="rejected", moderator=staff)
    staff_log = text(client_as(staff).get(reverse("frontend:moderation-log")))
    assert "Provider&#x27;s" in staff_log and "Buyer&#x27;s" in staff_log and "approve in test" in staff_log
    own_log = text(client_as(provider).get(reverse("frontend:moderation-log")))
    assert "Provider&#x27;s" in own_log and "Buyer&#x27;s" not in own_log


def test_providers_are_not_told_who_reported_them(provider, staff):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff)
    report_create(dataset=dataset, reporter=UserFactory(username="whistleblower"), reason="Looks like real names")
    for url in (reverse("frontend:moderation-log"), reverse("frontend:dataset", args=[dataset.pk])):
        body = text(client_as(provider).get(url))
        assert "Looks like real names" in body and "whistleblower" not in body
    assert "whistleblower" in text(client_as(staff).get(reverse("frontend:moderation-log")))
