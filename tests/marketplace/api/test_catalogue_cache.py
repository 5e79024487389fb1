"""Catalogue pages served from memory (PostgreSQL) are never older than the committed catalogue:
every write that changes what the list shows moves the catalogue to a new generation."""

import pytest
from django.db import connection

from marketplace.api import catalogue_cache
from marketplace.models import Dataset, Tag, User
from marketplace.services.moderation import dataset_transition
from tests.factories import make_dataset

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the page cache needs PostgreSQL's generation"),
]


@pytest.fixture(autouse=True)
def empty_cache():
    catalogue_cache.clear()
    yield
    catalogue_cache.clear()


def titles(api, query: str = "") -> list[str]:
    response = api.get(f"/api/v1/datasets/{query}", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return [row["title"] for row in response.json()["results"]]


def test_an_unchanged_catalogue_is_answered_from_memory_with_one_query(api, provider, staff, django_assert_num_queries):
    make_dataset(owner=provider, title="Heart outcomes", status=Dataset.Status.LISTED, moderator=staff)
    first = api.get("/api/v1/datasets/?sort=newest&page_size=5", HTTP_ACCEPT="application/json")
    with django_assert_num_queries(1):  # the generation; no rows, no count
        again = api.get("/api/v1/datasets/?page_size=5&sort=newest", HTTP_ACCEPT="application/json")
    assert again.content == first.content and again["Content-Type"] == first["Content-Type"]
    assert again.headers.get("Vary") == first.headers.get("Vary")


def test_every_change_the_list_shows_is_seen_at_once(api, provider, staff):
    heart = make_dataset(owner=provider, title="Heart outcomes", tags=("health",), status="listed", moderator=staff)
    assert titles(api) == ["Heart outcomes"]

    energy = make_dataset(owner=provider, title="Energy use", status="listed", moderator=staff)
    assert titles(api) == ["Energy use", "Heart outcomes"]  # a new listing

    Dataset.objects.filter(pk=heart.pk).update(title="Heart outcomes v2")  # a bulk update, no signals
    assert "Heart outcomes v2" in titles(api)

    dataset_transition(dataset=energy, actor=staff, action="delist", reason="Licence unclear.")
    assert titles(api) == ["Heart outcomes v2"]  # delisted

    assert titles(api, "?tags=health") == ["Heart outcomes v2"]
    heart.tags.clear()
    assert titles(api, "?tags=health") == []  # tags

    Tag.objects.filter(name="health").delete()
    User.objects.filter(pk=provider.pk).update(username="clinic")
    rows = api.get("/api/v1/datasets/", HTTP_ACCEPT="application/json").json()["results"]
    assert rows[0]["owner"] == "clinic"  # the owner's name

    Dataset.objects.filter(pk=heart.pk).delete()
    assert titles(api) == []
    assert api.get("/api/v1/datasets/", HTTP_ACCEPT="application/json").json()["count"] == 0


def test_drafts_do_not_disturb_the_cached_pages(api, provider, staff, django_assert_num_queries):
    make_dataset(owner=provider, title="Heart outcomes", status="listed", moderator=staff)
    titles(api)
    draft = make_dataset(owner=provider, title="Work in progress")  # not listed: same generation
    Dataset.objects.filter(pk=draft.pk).update(title="Still in progress")
    with django_assert_num_queries(1):
        assert titles(api) == ["Heart outcomes"]


def test_errors_and_the_browsable_api_are_not_stored(api, provider, staff):
    make_dataset(owner=provider, title="Heart outcomes", status="listed", moderator=staff)
    assert api.get("/api/v1/datasets/?sort=nonsense", HTTP_ACCEPT="application/json").status_code == 400
    assert api.get("/api/v1/datasets/?sort=nonsense", HTTP_ACCEPT="application/json").status_code == 400
    html = api.get("/api/v1/datasets/", HTTP_ACCEPT="text/html")
    assert html.status_code == 200 and html["Content-Type"].startswith("text/html")
    assert api.get("/api/v1/datasets/", HTTP_ACCEPT="application/json")["Content-Type"] == "application/json"


def test_with_the_page_cache_totals_are_exact_even_with_a_count_cache(api, provider, staff, settings):
    settings.CATALOGUE_COUNT_CACHE_SECONDS = 30
    make_dataset(owner=provider, title="Sensor one", status="listed", moderator=staff)
    assert api.get("/api/v1/datasets/?q=sensor", HTTP_ACCEPT="application/json").json()["count"] == 1
    make_dataset(owner=provider, title="Sensor two", status="listed", moderator=staff)
    body = api.get("/api/v1/datasets/?q=sensor", HTTP_ACCEPT="application/json").json()
    assert body["count"] == 2 and len(body["results"]) == 2
