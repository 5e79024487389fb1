"""Descriptions: rendered once when saved (never per request), refused past the caps on the API and the
page, and an owner's edit of a listed dataset's public text shown only once a moderator approves."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from common import markdown
from marketplace.models import Dataset, ModerationLogEntry
from marketplace.selectors.catalog import listing_search
from tests.factories import make_dataset


@pytest.mark.django_db
def test_description_refused_on_the_api_and_the_page(provider, staff, api):
    dataset = make_dataset(owner=provider)
    api.force_authenticate(provider)
    response = api.patch(f"/api/v1/datasets/{dataset.pk}/", {"description": "> " * 50 + "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "description_too_nested" and "50 deep" in response.json()["detail"]

    client = Client()
    client.force_login(provider)
    form = {
        "title": "Clinical measurements",
        "description": "[" * 40,
        "tags": "health",
        "licence": "CC-BY-4.0",
        "price": "5",
        "price_token": "USDC",
        "epsilon_total": "10",
        "epsilon_per_job": "1",
        "delta": "0.00001",
    }
    page = client.post(reverse("frontend:dataset-edit", args=[dataset.pk]), form)
    assert page.status_code == 400 and "nests quotes, lists or brackets 40 deep" in page.content.decode()
    dataset.refresh_from_db()
    assert dataset.description == "Blood tests." and dataset.description_html == "<p>Blood tests.</p>\n"


@pytest.mark.django_db
def test_pages_and_api_never_render_markdown_per_request(provider, staff, api, monkeypatch):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff, description="**Rendered** once.")
    assert dataset.description_html == "<p><strong>Rendered</strong> once.</p>\n"

    def refuse(*args, **kwargs):
        raise AssertionError("Markdown rendered during a request")

    monkeypatch.setattr(markdown._PARSER, "render", refuse)
    for path in ("/", reverse("frontend:dataset", args=[dataset.pk])):
        response = Client().get(path)
        assert response.status_code == 200 and "Rendered" in response.content.decode()
    assert "<strong>Rendered</strong>" in Client().get(reverse("frontend:dataset", args=[dataset.pk])).content.decode()
    detail = api.get(f"/api/v1/datasets/{dataset.pk}/").json()
    assert detail["description_html"] == "<p><strong>Rendered</strong> once.</p>\n"
    assert api.get("/api/v1/datasets/").json()["results"][0]["description"] == "**Rendered** once."


@pytest.mark.django_db
def test_migration_renders_existing_descriptions_and_escapes_those_past_the_caps(provider):
    ok = make_dataset(owner=provider, description="*old* text")
    deep = make_dataset(owner=provider, description="plain")
    Dataset.objects.filter(pk=ok.pk).update(description_html="")
    # Saved before the caps existed: stored as escaped text, never parsed.
    Dataset.objects.filter(pk=deep.pk).update(description=">" * 500 + "<b>x</b>\n\nnext", description_html="")
    from importlib import import_module

    from django.apps import apps

    migration = import_module("marketplace.migrations.0009_dataset_description_html")
    migration.render_descriptions(apps, SimpleNamespace(connection=connection))
    ok.refresh_from_db()
    deep.refresh_from_db()
    assert ok.description_html == "<p><em>old</em> text</p>\n"
    assert deep.description_html == "<p>" + "&gt;" * 500 + "&lt;b&gt;x&lt;/b&gt;</p><p>next</p>"


# --- an edit of a listed dataset waits for a moderator ----------------------------------------


@pytest.mark.django_db
def test_api_edit_of_a_listed_dataset_is_shown_only_once_approved(provider, staff, buyer, api):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff, title="Clinic visits", tags=["health"])
    api.force_authenticate(provider)
    response = api.patch(
        f"/api/v1/datasets/{dataset.pk}/",
        {"title": "Clinic visits with names", "description": "**Now** with names.", "tags": "health,pii", "price": "7"},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "Clinic visits" and body["status"] == "listed" and body["price"] == "7.000000"
    assert body["pending_edit"]["title"] == "Clinic visits with names"
    assert body["pending_edit"]["description_html"] == "<p><strong>Now</strong> with names.</p>\n"
    assert body["pending_edit"]["tags"] == ["health", "pii"]

    # Nobody else sees the edit: not the catalogue, its search or tags, nor the detail page.
    api.force_authenticate(buyer)
    public = api.get(f"/api/v1/datasets/{dataset.pk}/").json()
    assert public["title"] == "Clinic visits" and public["description"] == "Blood tests."
    assert "pending_edit" not in public and public["tags"] == ["health"]
    assert [d.title for d in listing_search(query="names")] == []
    assert [d.title for d in listing_search(tags=["pii"])] == []
    page = Client().get(reverse("frontend:dataset", args=[dataset.pk])).content.decode()
    assert "Clinic visits with names" not in page and "Edit awaiting review" not in page

    api.force_authenticate(staff)
    queue = api.get("/api/v1/moderation/queue/", {"status": "edit_pending"}).json()
    assert [item["id"] for item in queue["results"]] == [dataset.pk]
    assert queue["results"][0]["pending_edit"]["title"] == "Clinic visits with names"
    no_reason = api.post(f"/api/v1/datasets/{dataset.pk}/edit/approve/", {}, format="json")
    assert no_reason.status_code == 400 and no_reason.json()["code"] == "reason_required"
    api.force_authenticate(provider)
    assert api.post(f"/api/v1/datasets/{dataset.pk}/edit/approve/", {"reason": "mine"}).status_code == 403

    api.force_authenticate(staff)
    stale = api.post(
        f"/api/v1/datasets/{dataset.pk}/edit/approve/",
        {"reason": "Checked.", "submitted_at": "2020-01-01T00:00:00Z"},
        format="json",
    )
    assert stale.status_code == 409 and stale.json()["code"] == "pending_edit_changed"
    submitted_at = queue["results"][0]["pending_edit"]["submitted_at"]
    approved = api.post(
        f"/api/v1/datasets/{dataset.pk}/edit/approve/",
        {"reason": "Checked.", "submitted_at": submitted_at},
        format="json",
    )
    assert approved.status_code == 200 and approved.json()["pending_edit"] is None
    public = Client().get(f"/api/v1/datasets/{dataset.pk}/").json()
    assert public["title"] == "Clinic visits with names" and public["tags"] == ["health", "pii"]
    assert public["description_html"] == "<p><strong>Now</strong> with names.</p>\n"
    assert [d.title for d in listing_search(query="names")] == ["Clinic visits with names"]
    again = api.post(f"/api/v1/datasets/{dataset.pk}/edit/approve/", {"reason": "Twice."}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "no_pending_edit"
    actions = list(ModerationLogEntry.objects.filter(dataset=dataset).values_list("action", flat=True))
    assert actions[:2] == ["approve_edit", "submit_edit"]


@pytest.mark.django_db
def test_rejected_edit_leaves_the_approved_text_and_a_revert_withdraws_it(provider, staff, api):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff, title="Clinic visits")
    api.force_authenticate(provider)
    api.patch(f"/api/v1/datasets/{dataset.pk}/", {"licence": "CC0-1.0"}, format="json")
    api.force_authenticate(staff)
    rejected = api.post(f"/api/v1/datasets/{dataset.pk}/edit/reject/", {"reason": "Licence unclear."}, format="json")
    assert rejected.status_code == 200 and rejected.json()["pending_edit"] is None
    dataset.refresh_from_db()
    assert dataset.licence == "CC-BY-4.0" and dataset.status == "listed"

    api.force_authenticate(provider)
    api.patch(f"/api/v1/datasets/{dataset.pk}/", {"title": "Renamed"}, format="json")
    back = api.patch(f"/api/v1/datasets/{dataset.pk}/", {"title": "Clinic visits"}, format="json")
    assert back.json()["pending_edit"] is None  # back to the approved text: nothing to review
    # A draft's edits are its own until it is submitted: applied at once.
    draft = make_dataset(owner=provider, title="Draft")
    assert api.patch(f"/api/v1/datasets/{draft.pk}/", {"title": "Draft 2"}, format="json").json()["title"] == "Draft 2"


@pytest.mark.django_db
def test_page_edit_waits_in_the_moderation_queue_until_approved(provider, staff):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff, title="Clinic visits")
    owner = Client()
    owner.force_login(provider)
    edit_url = reverse("frontend:dataset-edit", args=[dataset.pk])
    form = owner.get(edit_url).content.decode()
    assert "changes to the title, description, tags or licence are shown once a moderator approves them" in form
    fields = {
        "title": "Clinic visits 2024",
        "description": "Now *with* 2024.",
        "tags": "health",
        "licence": "CC-BY-4.0",
        "price": "5",
        "price_token": "USDC",
        "epsilon_total": "10",
        "epsilon_per_job": "1",
        "delta": "0.00001",
    }
    saved = owner.post(edit_url, fields, follow=True).content.decode()
    assert "wait for a moderator" in saved and "Edit awaiting review" in saved
    assert "Clinic visits 2024" in owner.get(edit_url).content.decode()  # the owner goes on from the edit
    assert "Clinic visits 2024" not in Client().get(reverse("frontend:dataset", args=[dataset.pk])).content.decode()
    assert "Clinic visits 2024" not in Client().get("/").content.decode()

    moderator = Client()
    moderator.force_login(staff)
    queue = moderator.get(reverse("frontend:moderation")).content.decode()
    assert "Edits of listed datasets" in queue and "Clinic visits 2024" in queue and "Approve edit" in queue
    decide = reverse("frontend:dataset-edit-decide", args=[dataset.pk])
    version = re.search(r'name="submitted_at" value="([^"]+)"', queue).group(1)
    refused = moderator.post(decide, {"decision": "approve", "reason": "", "submitted_at": version}, follow=True)
    assert "A reason is required" in refused.content.decode()
    # The owner swaps the text while the moderator reads it: the decision does not apply to the new one.
    owner.post(edit_url, {**fields, "title": "Clinic visits with names"})
    stale = moderator.post(decide, {"decision": "approve", "reason": "Fine.", "submitted_at": version}, follow=True)
    assert "The owner changed this edit after you opened it" in stale.content.decode()
    assert "with names" not in Client().get(reverse("frontend:dataset", args=[dataset.pk])).content.decode()
    owner.post(edit_url, fields)  # back to the 2024 wording, reviewed afresh
    queue = moderator.get(reverse("frontend:moderation")).content.decode()
    version = re.search(r'name="submitted_at" value="([^"]+)"', queue).group(1)
    done = moderator.post(decide, {"decision": "approve", "reason": "Fine.", "submitted_at": version}, follow=True)
    assert "Edit approved" in done.content.decode()
    public = Client().get(reverse("frontend:dataset", args=[dataset.pk])).content.decode()
    assert "Clinic visits 2024" in public and "Now <em>with</em> 2024." in public
