"""The catalogue and the dataset page (``frontend/views/catalogue.py``), through Django's test client."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from marketplace.models import Dataset
from tests.factories import make_dataset
from tests.frontend.support import client_as, text

pytestmark = pytest.mark.django_db


# --- catalogue -----------------------------------------------------------------------------


def test_catalogue_lists_only_listed_datasets_with_their_terms(provider, staff):
    make_dataset(
        owner=provider,
        title="Listed blood tests",
        status=Dataset.Status.LISTED,
        moderator=staff,
        price="7.5",
        tags=("health", "blood"),
    )
    make_dataset(owner=provider, title="Draft secrets", status=Dataset.Status.DRAFT)
    response = Client().get("/")
    assert response.status_code == 200
    body = text(response)
    assert "Listed blood tests" in body and "Draft secrets" not in body
    assert "7.5 USDC" in body and "by provider" in body
    assert "ε 10 total · 1 per job" in body
    assert 'href="/?tags=blood"' in body and "CC-BY-4.0" in body


def test_catalogue_search_tags_licence_and_price_filters(provider, staff):
    make_dataset(owner=provider, title="Heart rates", tags=("health",), price="3", status="listed", moderator=staff)
    make_dataset(
        owner=provider,
        title="Taxi rides",
        tags=("mobility",),
        price="30",
        licence="ODbL-1.0",
        status="listed",
        moderator=staff,
    )
    client = Client()
    assert "Taxi rides" not in text(client.get("/", {"q": "heart"}))
    assert "Heart rates" in text(client.get("/", {"q": "heart"}))
    body = text(client.get("/", {"tags": "mobility"}))
    assert "Taxi rides" in body and "Heart rates" not in body
    body = text(client.get("/", {"licence": "ODbL-1.0"}))
    assert "Taxi rides" in body and "Heart rates" not in body
    body = text(client.get("/", {"price_min": "10", "sort": "-price"}))
    assert "Taxi rides" in body and "Heart rates" not in body
    body = text(client.get("/", {"price_max": "10", "sort": "price"}))
    assert "Heart rates" in body and "Taxi rides" not in body


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"price_min": "abc"}, "Min price: Enter a number."),
        ({"price_min": "9", "price_max": "2"}, "The minimum price must not be above the maximum price."),
        ({"sort": "cheapest"}, "Select a valid choice."),
        ({"licence": "WTFPL"}, "Select a valid choice."),
        ({"price_max": "-1"}, "greater than or equal to 0"),
    ],
)
def test_catalogue_bad_filter_input_shows_a_message_not_a_500(params, message):
    response = Client().get("/", params)
    assert response.status_code == 400
    assert "Please check the filters." in text(response)
    assert message in text(response)


def test_catalogue_paginates_by_20_and_keeps_filters_in_links(provider, staff):
    for i in range(21):
        make_dataset(owner=provider, title=f"Series {i:02d}", tags=("series",), status="listed", moderator=staff)
    client = Client()
    first = text(client.get("/", {"tags": "series", "sort": "newest"}))
    assert first.count('class="card"') == 20
    assert "Page 1 of 2" in first
    next_link = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "tags=series" in next_link and "sort=newest" in next_link and "page=2" in next_link
    second = text(client.get(next_link))
    assert second.count('class="card"') == 1 and "Series 00" in second
    assert text(client.get("/", {"page": "99"})).count('class="card"') == 1  # out of range: last page
    assert client.get("/", {"page": "nonsense"}).status_code == 200


# --- dataset page --------------------------------------------------------------------------


def test_description_markdown_is_rendered_and_sanitised(provider, staff):
    dataset = make_dataset(
        owner=provider,
        status="listed",
        moderator=staff,
        description="# Heading\n\n**bold** <script>alert('x')</script> "
        "<img src=x onerror=alert(1)> [link](javascript:alert(1))",
    )
    body = text(Client().get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "<strong>bold</strong>" in body and "<h1>Heading</h1>" in body
    assert "<script>alert" not in body and "onerror" not in body and "javascript:" not in body


def test_dataset_page_shows_terms_schema_and_mock_preview(provider, staff):
    dataset = make_dataset(owner=provider, status="listed", moderator=staff, price="4")
    body = text(Client().get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "ε = 10" in body and "ε = 1" in body and "δ = 0.00001" in body
    assert "<code>age</code>" in body and "integer" in body
    assert f'href="/api/v1/datasets/{dataset.pk}/mock/"' in body and "Download mock CSV" in body
    preview = re.search(r"<caption[^>]*>Mock data, first (\d+) rows</caption>", body)
    assert preview and preview.group(1) == "10"
    # strangers see neither owner controls nor the private row count
    assert "Submit for review" not in body and "visible only to you" not in body


def test_owner_sees_status_validation_controls_and_history(provider, staff):
    dataset = make_dataset(owner=provider, status="rejected", moderator=staff)
    body = text(client_as(provider).get(reverse("frontend:dataset", args=[dataset.pk])))
    assert "badge-rejected" in body and "Valid" in body and "30 rows (visible only to you)" in body
    for label in ("Edit listing", "Edit schema", "Mock file", "Submit for review", "Delete"):
        assert label in body
    assert "reject in test" in body and "Moderation history" in body
    assert 'http-equiv="refresh"' not in body


def test_owner_page_refreshes_while_validation_is_pending(provider):
    dataset = make_dataset(owner=provider)
    Dataset.objects.filter(pk=dataset.pk).update(validation=Dataset.Validation.PENDING, validation_progress=40)
    body = text(client_as(provider).get(reverse("frontend:dataset", args=[dataset.pk])))
    assert '<meta http-equiv="refresh" content="2">' in body
    assert '<progress max="100" value="40"' in body


def test_staff_see_moderation_forms_with_required_reason(provider, staff):
    dataset = make_dataset(owner=provider, status="pending_review")
    body = text(client_as(staff).get(reverse("frontend:dataset", args=[dataset.pk])))
    assert 'name="action" value="approve"' in body and 'name="action" value="reject"' in body
    assert 'name="action" value="delist"' not in body
    assert re.search(r'<textarea id="reason-approve" name="reason"[^>]*required', body)
